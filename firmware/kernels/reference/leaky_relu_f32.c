/* LEAKY_RELU float32 (TFLM reference_ops::LeakyRelu): val > 0 ? val : val * alpha (alpha may exceed 1 or be
 * negative, so no max()). */
#include "fm_kernels.h"

int fm_leaky_relu_f32(const fm_leaky_relu_f32_params_t *p, const float *input, float *output)
{
    const float alpha = p->alpha;
    for (int32_t i = 0; i < p->size; ++i) {
        const float v = input[i];
        output[i] = v > 0.0f ? v : v * alpha;
    }
    return FM_OK;
}
