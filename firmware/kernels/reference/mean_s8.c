/* MEAN int8 (TFLM QuantizedMeanOrSum, integer form): sum the raw values of each reduced group, remove
 * red_count * input zero point, rescale with one multiplier that already holds input_scale / output_scale /
 * red_count (folded at code-generation time exactly as TFLM folds it), add the output zero point, clamp. */
#include "fm_kernels_common.h"

/* Sum of the input elements reduced into output element with input base offset `base`. */
static int32_t reduce_sum(const fm_mean_params_t *p, const int8_t *input, int32_t base)
{
    int32_t idx[FM_BCAST_DIMS] = {0};
    int32_t off = base;
    int32_t sum = 0;
    for (int32_t r = 0; r < p->red_count; ++r) {
        sum += input[off];
        fm_walk_next(p->red_dims, p->red_strides, idx, &off);
    }
    return sum;
}

int fm_mean_s8(const fm_mean_params_t *p, const int8_t *input, int8_t *output)
{
    int32_t idx[FM_BCAST_DIMS] = {0};
    int32_t base = 0;
    for (int32_t o = 0; o < p->out_size; ++o) {
        const int32_t shifted = reduce_sum(p, input, base) - p->input_zero_point * p->red_count;
        const int32_t v = fm_mbqm(shifted, p->multiplier, p->shift) + p->output_zero_point;
        output[o] = (int8_t)fm_clamp_i32(v, INT8_MIN, INT8_MAX);
        fm_walk_next(p->kept_dims, p->kept_strides, idx, &base);
    }
    return FM_OK;
}
