/* MEAN float32: sum of each reduced group divided by its element count. */
#include "fm_kernels.h"

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
            for (int d = FM_BCAST_DIMS - 1; d >= 0; --d) {
                off += p->red_strides[d];
                if (++ridx[d] < p->red_dims[d]) {
                    break;
                }
                off -= p->red_strides[d] * p->red_dims[d];
                ridx[d] = 0;
            }
        }
        output[o] = sum / (float)p->red_count;
        for (int d = FM_BCAST_DIMS - 1; d >= 0; --d) {
            base += p->kept_strides[d];
            if (++kidx[d] < p->kept_dims[d]) {
                break;
            }
            base -= p->kept_strides[d] * p->kept_dims[d];
            kidx[d] = 0;
        }
    }
    return FM_OK;
}
