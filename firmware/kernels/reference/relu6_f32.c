/* RELU6 float32: clamp to [0, 6]. */
#include "fm_kernels.h"

int fm_relu6_f32(const fm_unary_f32_params_t *p, const float *input, float *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const float v = input[i];
        output[i] = v > 6.0f ? 6.0f : (v < 0.0f ? 0.0f : v);
    }
    return FM_OK;
}
