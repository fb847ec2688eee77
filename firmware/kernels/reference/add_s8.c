/* ADD int8: TFLM's general-rescaling add. Both inputs are shifted left by `left_shift` (20), scaled to a
 * common scale (twice the larger input scale) with multipliers below one, summed, then rescaled to the output.
 * Broadcasting follows TFLM's BroadcastAdd: same element arithmetic, inputs indexed with stride 0. */
#include "fm_kernels.h"

static inline int8_t add_one(const fm_add_s8_params_t *p, int32_t x, int32_t y)
{
    const int32_t in1 = (p->input1_offset + x) * ((int32_t)1 << p->left_shift);
    const int32_t in2 = (p->input2_offset + y) * ((int32_t)1 << p->left_shift);
    const int32_t s1 = fm_mbqm_smaller_than_one(in1, p->input1_multiplier, p->input1_shift);
    const int32_t s2 = fm_mbqm_smaller_than_one(in2, p->input2_multiplier, p->input2_shift);
    const int32_t raw = fm_mbqm_smaller_than_one(s1 + s2, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)fm_clamp_i32(raw, p->act_min, p->act_max);
}

int fm_add_s8(const fm_add_s8_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t n = p->shape.flat_size;
    if (!p->shape.broadcast) {
        for (int32_t i = 0; i < n; ++i) {
            output[i] = add_one(p, input1[i], input2[i]);
        }
        return FM_OK;
    }
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < n; ++i) {
        output[i] = add_one(p, input1[it.off1], input2[it.off2]);
        fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
