/* RELU int8 (TFLM ReluQuantized): requantize from the input's to the output's parameters, clamp at the
 * quantized zero (and at the type range). */
#include "fm_kernels.h"

int fm_relu_s8(const fm_relu_s8_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = p->output_zero_point +
                          fm_mbqm((int32_t)input[i] - p->input_zero_point, p->multiplier, p->shift);
        output[i] = (int8_t)fm_clamp_i32(v, p->act_min, p->act_max);
    }
    return FM_OK;
}
