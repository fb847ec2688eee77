/* TANH float32. */
#include <math.h>

#include "fm_kernels.h"

int fm_tanh_f32(const fm_unary_f32_params_t *p, const float *input, float *output)
{
    for (int32_t i = 0; i < p->size; ++i) output[i] = tanhf(input[i]);
    return FM_OK;
}
