/* REDUCE_MAX int8 over any set of axes: TFLM's ReduceGeneric with init INT8_MIN (numeric_limits::lowest) and
 * `in > current ? in : current` on raw values (codegen requires equal input and output quantization, as TFLM
 * does). */
#include "fm_kernels_common.h"

int fm_reduce_max_s8(const fm_reduce_params_t *p, const int8_t *input, int8_t *output)
{
    int32_t kidx[FM_BCAST_DIMS] = {0};
    int32_t base = 0;
    for (int32_t o = 0; o < p->out_size; ++o) {
        int32_t ridx[FM_BCAST_DIMS] = {0};
        int32_t off = base;
        int8_t m = INT8_MIN;
        for (int32_t r = 0; r < p->red_count; ++r) {
            const int8_t v = input[off];
            m = v > m ? v : m;
            fm_walk_next(p->red_dims, p->red_strides, ridx, &off);
        }
        output[o] = m;
        fm_walk_next(p->kept_dims, p->kept_strides, kidx, &base);
    }
    return FM_OK;
}
