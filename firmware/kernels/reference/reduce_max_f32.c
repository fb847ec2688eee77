/* REDUCE_MAX float32 over any set of axes: TFLM's ReduceGeneric with init -FLT_MAX (numeric_limits::lowest) and
 * `in > current ? in : current` (NaN never wins; all -inf gives -FLT_MAX, as in TFLM). */
#include "fm_kernels_common.h"
#include <float.h>

int fm_reduce_max_f32(const fm_reduce_params_t *p, const float *input, float *output)
{
    int32_t kidx[FM_BCAST_DIMS] = {0};
    int32_t base = 0;
    for (int32_t o = 0; o < p->out_size; ++o) {
        int32_t ridx[FM_BCAST_DIMS] = {0};
        int32_t off = base;
        float m = -FLT_MAX;
        for (int32_t r = 0; r < p->red_count; ++r) {
            const float v = input[off];
            m = v > m ? v : m;
            fm_walk_next(p->red_dims, p->red_strides, ridx, &off);
        }
        output[o] = m;
        fm_walk_next(p->kept_dims, p->kept_strides, kidx, &base);
    }
    return FM_OK;
}
