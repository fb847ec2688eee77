/* MEAN float32: sum of each reduced group divided by its element count. */
#include "fm_kernels_common.h"

int fm_mean_f32(const fm_mean_params_t *p, const float *input, float *output)
{
    int32_t kidx[FM_BCAST_DIMS] = {0};
    int32_t base = 0;
    for (int32_t o = 0; o < p->out_size; ++o) {
        int32_t ridx[FM_BCAST_DIMS] = {0};
        int32_t off = base;
        float sum = 0.0f;
        for (int32_t r = 0; r < p->red_count; ++r) {
            sum += input[off];
            fm_walk_next(p->red_dims, p->red_strides, ridx, &off);
        }
        output[o] = sum / (float)p->red_count;
        fm_walk_next(p->kept_dims, p->kept_strides, kidx, &base);
    }
    return FM_OK;
}
