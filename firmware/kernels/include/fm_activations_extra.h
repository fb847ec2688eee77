/* Per-value arithmetic of HARD_SWISH and LEAKY_RELU int8, shared by the reference kernels (one call per element)
 * and the sets that tabulate it (one call per int8 value, then a lookup per element: bit-exact by construction).
 *
 * HARD_SWISH, x * relu6(x + 3) / 6, operation for operation as TFLM's reference_ops::HardSwish<int8_t>: all
 * arithmetic in int16 fixed point. x - zp is moved to a "hires" scale (<< 7), rescaled once to the output scale
 * (before its final shift) and once to the "reluish" scale where 3.0 is 32768 (saturating), the reluish value is
 * mapped from [-1, 1] to [0, 1] and multiplies the former with a truncating doubling high mul, and a rounding
 * right shift reaches the output scale. Every int16 store of an int result wraps as the C++ does (fm_hs_wrap16). */
#ifndef FM_ACTIVATIONS_EXTRA_H
#define FM_ACTIVATIONS_EXTRA_H

#include "fm_kernels.h"

/* Conversion of an int result to int16_t, two's complement modulo 2^16, without implementation-defined casts. */
FM_INLINE int16_t fm_hs_wrap16(int32_t v)
{
    const int32_t low = (int32_t)((uint32_t)v & 0xFFFFu);
    return (int16_t)(low >= 0x8000 ? low - 0x10000 : low);
}

/* gemmlowp::SaturatingRoundingDoublingHighMul<int16_t>: a * b * 2 / 2^16, rounded half away from zero. */
FM_INLINE int16_t fm_hs_srdhm16(int16_t a, int16_t b)
{
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    const int32_t ab = (int32_t)a * (int32_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return fm_hs_wrap16((ab + nudge) / (1 << 15));
}

/* TFLM's SaturatingDoublingHighMul: like the above, truncating towards zero (cancels its rounding bias). */
FM_INLINE int16_t fm_hs_sdhm16(int16_t a, int16_t b)
{
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    return fm_hs_wrap16(((int32_t)a * (int32_t)b) / (1 << 15));
}

/* gemmlowp::RoundingDivideByPOT instantiated for int16_t (0 <= exponent <= 31): the mask keeps the low 16 bits
 * of 2^exponent - 1, so exponents >= 16 give TFLM's (odd but exact) results too. */
FM_INLINE int16_t fm_hs_rdbpot16(int16_t x, int exponent)
{
    const int16_t mask = fm_hs_wrap16((int32_t)(((int64_t)1 << exponent) - 1));
    const int16_t remainder = (int16_t)(x & mask);
    const int16_t threshold = fm_hs_wrap16((mask >> 1) + (x < 0 ? 1 : 0));
    return fm_hs_wrap16((x >> exponent) + (remainder > threshold ? 1 : 0));
}

/* TFLM's SaturatingLeftShift for int16 (0 <= amount <= 30). */
FM_INLINE int16_t fm_hs_sat_shl16(int16_t v, int amount)
{
    const int64_t r = (int64_t)v * ((int64_t)1 << amount);
    return (int16_t)(r > INT16_MAX ? INT16_MAX : (r < INT16_MIN ? INT16_MIN : r));
}

/* HARD_SWISH of one int8 value. */
FM_INLINE int8_t fm_hard_swish_one_s8(const fm_hard_swish_s8_params_t *p, int8_t q)
{
    const int16_t x = (int16_t)((int32_t)q - p->input_zero_point);
    const int16_t hires = (int16_t)(x * (1 << 7)); /* |x| <= 255: fits */
    const int16_t preshift_out = fm_hs_srdhm16(hires, (int16_t)p->output_multiplier);
    const int relu_exp = (int)p->reluish_exponent;
    int16_t reluish = hires;
    if (relu_exp > 0) {
        /* all but one bit of the left shift first, so saturation here cannot reach the result */
        reluish = fm_hs_sat_shl16(reluish, relu_exp - 1);
    }
    reluish = fm_hs_srdhm16(reluish, (int16_t)p->reluish_multiplier);
    if (relu_exp > 0) {
        reluish = fm_hs_sat_shl16(reluish, 1);
    } else if (relu_exp < 0) {
        reluish = fm_hs_rdbpot16(reluish, -relu_exp);
    }
    reluish = (int16_t)(((int32_t)reluish + (1 << 15)) >> 1); /* [-1, 1] -> [0, 1]: in [0, 32767] */
    const int16_t preshift = fm_hs_sdhm16(reluish, preshift_out);
    int16_t y = fm_hs_rdbpot16(preshift, -p->output_exponent);
    y = fm_hs_wrap16((int32_t)y + p->output_zero_point);
    return (int8_t)fm_clamp_i32(y, INT8_MIN, INT8_MAX);
}

/* LEAKY_RELU of one int8 value (TFLM reference_ops::QuantizeLeakyRelu): x - zp >= 0 rescaled by input/output
 * scale, below zero by alpha * input/output scale, offset, clamped. */
FM_INLINE int8_t fm_leaky_relu_one_s8(const fm_leaky_relu_s8_params_t *p, int8_t q)
{
    const int32_t x = (int32_t)q - p->input_zero_point;
    const int32_t scaled = x >= 0 ? fm_mbqm(x, p->identity_multiplier, p->identity_shift)
                                  : fm_mbqm(x, p->alpha_multiplier, p->alpha_shift);
    return (int8_t)fm_clamp_i32(fm_wrap_add(p->output_zero_point, scaled), INT8_MIN, INT8_MAX);
}

#endif /* FM_ACTIVATIONS_EXTRA_H */
