/* SUM float32 over any set of axes: TFLM's ReduceGeneric<float> with init 0 and `in + current`. Each output
 * adds its inputs in the input's row-major order, the order TFLM's single pass over the input gives it, so the
 * float result is the same bit for bit. */
#include "fm_kernels_common.h"

int fm_sum_f32(const fm_reduce_params_t *p, const float *input, float *output)
{
    int32_t kidx[FM_BCAST_DIMS] = {0};
    int32_t base = 0;
    for (int32_t o = 0; o < p->out_size; ++o) {
        int32_t ridx[FM_BCAST_DIMS] = {0};
        int32_t off = base;
        float sum = 0.0f;
        for (int32_t r = 0; r < p->red_count; ++r) {
            sum = input[off] + sum;
            fm_walk_next(p->red_dims, p->red_strides, ridx, &off);
        }
        output[o] = sum;
        fm_walk_next(p->kept_dims, p->kept_strides, kidx, &base);
    }
    return FM_OK;
}
