/*
 * ADD int8 (TFLM reference_integer_ops::Add / BroadcastAdd4DSlow, general rescaling with left_shift 20,
 * bit-exact), Helium/MVE.
 *
 * Without broadcasting, 4 elements at a time in int32 lanes (widening loads): (x + offset) << left_shift, then
 * each input's MultiplyByQuantizedMultiplierSmallerThanOneExp (VQRDMULH by the multiplier, then the rounding divide
 * by a power of two as in fm_helium.h), the sum, the output's, the output offset and the clamp; the last block is
 * predicated. Broadcasting walks the shapes with the reference iterator one element at a time, as does any
 * parameter set the vector form does not cover (a positive multiplier shift, FM_SINGLE_ROUNDING).
 */
#include "fm_helium.h"

/* RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, mult), -rs lanes): rs = shift <= 0 in every lane. */
FM_INLINE int32x4_t fm_he_mul_small(int32x4_t x, int32_t mult, int32x4_t rs)
{
    x = vqrdmulhq_n_s32(x, mult);
    x = vqaddq_s32(x, vshrq_n_s32(vandq_s32(x, rs), 31));
    return vrshlq_s32(x, rs);
}

/* Four elements widened to int32 lanes. */
FM_INLINE int32x4_t fm_he_add4(const fm_add_s8_params_t *p, int32x4_t x, int32x4_t y, int32x4_t rs1, int32x4_t rs2,
                               int32x4_t rso, int32x4_t lo, int32x4_t hi)
{
    x = vshlq_r_s32(vaddq_n_s32(x, p->input1_offset), p->left_shift);
    y = vshlq_r_s32(vaddq_n_s32(y, p->input2_offset), p->left_shift);
    const int32x4_t s = vaddq_s32(fm_he_mul_small(x, p->input1_multiplier, rs1),
                                  fm_he_mul_small(y, p->input2_multiplier, rs2));
    const int32x4_t r = vaddq_n_s32(fm_he_mul_small(s, p->output_multiplier, rso), p->output_offset);
    return vminq_s32(vmaxq_s32(r, lo), hi);
}

int fm_add_s8(const fm_add_s8_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t n = p->shape.flat_size;
    const int vector = !FM_SINGLE_ROUNDING && p->input1_shift <= 0 && p->input2_shift <= 0 && p->output_shift <= 0
                       && p->left_shift >= 0 && p->left_shift < 32;
    if (p->shape.broadcast || !vector) {
        fm_bcast_iter_t it = {{0}, 0, 0};
        for (int32_t i = 0; i < n; ++i) {
            if (p->shape.broadcast) {
                output[i] = fm_add_s8_one(p, input1[it.off1], input2[it.off2]);
                fm_bcast_next(&p->shape, &it);
            } else {
                output[i] = fm_add_s8_one(p, input1[i], input2[i]);
            }
        }
        return FM_OK;
    }
    const int32x4_t rs1 = vdupq_n_s32(p->input1_shift), rs2 = vdupq_n_s32(p->input2_shift);
    const int32x4_t rso = vdupq_n_s32(p->output_shift);
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    for (int32_t i = 0; i < n; i += 4) {
        const mve_pred16_t pred = vctp32q((uint32_t)(n - i));
        const int32x4_t r = fm_he_add4(p, vldrbq_z_s32(input1 + i, pred), vldrbq_z_s32(input2 + i, pred), rs1, rs2,
                                       rso, lo, hi);
        vstrbq_p_s32(output + i, r, pred);
    }
    return FM_OK;
}
