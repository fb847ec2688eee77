/* SOFTMAX float32 (TFLM reference_ops::Softmax): exp((x - max) * beta) / sum over the last dimension. */
#include <math.h>

#include "fm_kernels.h"

int fm_softmax_f32(const fm_softmax_f32_params_t *p, const float *input, float *output)
{
    for (int32_t r = 0; r < p->outer_size; ++r) {
        const float *x = input + (size_t)r * p->depth;
        float *y = output + (size_t)r * p->depth;
        float mx = x[0];
        for (int32_t i = 1; i < p->depth; ++i) mx = x[i] > mx ? x[i] : mx;
        float sum = 0.0f;
        for (int32_t i = 0; i < p->depth; ++i) {
            const float e = expf((x[i] - mx) * p->beta);
            y[i] = e;
            sum += e;
        }
        for (int32_t i = 0; i < p->depth; ++i) y[i] = y[i] / sum;
    }
    return FM_OK;
}
