/* RELU6 int8 (TFLM Relu6Quantized): clamp to [zero, six] quantized with the input's parameters; TFLM assumes
 * the output shares them, so no requantization happens. */
#include "fm_kernels.h"

int fm_relu6_s8(const fm_relu6_s8_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = input[i];
        output[i] = (int8_t)(v > p->six ? p->six : (v < p->zero ? p->zero : v));
    }
    return FM_OK;
}
