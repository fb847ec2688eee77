/* RELU float32: max(x, 0). */
#include "fm_kernels.h"

int fm_relu_f32(const fm_unary_f32_params_t *p, const float *input, float *output)
{
    for (int32_t i = 0; i < p->size; ++i) output[i] = input[i] < 0.0f ? 0.0f : input[i];
    return FM_OK;
}
