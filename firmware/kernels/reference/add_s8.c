/* ADD int8: TFLM's general-rescaling add. Both inputs are shifted left by `left_shift` (20), scaled to a
 * common scale (twice the larger input scale) with multipliers below one, summed, then rescaled to the output.
 * Broadcasting follows TFLM's BroadcastAdd: same element arithmetic, inputs indexed with stride 0. */
#include "fm_kernels_common.h"

int fm_add_s8(const fm_add_s8_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t n = p->shape.flat_size;
    if (!p->shape.broadcast) {
        for (int32_t i = 0; i < n; ++i) {
            output[i] = fm_add_s8_one(p, input1[i], input2[i]);
        }
        return FM_OK;
    }
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < n; ++i) {
        output[i] = fm_add_s8_one(p, input1[it.off1], input2[it.off2]);
        fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
