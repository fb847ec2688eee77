/*
 * Requantization of the dsp kernel set: tflite::MultiplyByQuantizedMultiplier (double rounding, the TFLM default)
 * with fewer instructions than the portable fm_mbqm, and the same result for every input the kernels pass.
 *
 * SaturatingRoundingDoublingHighMul(a, b) = trunc((a*b + nudge) / 2^31) with nudge = 2^30 or 1 - 2^30 by the sign
 * of a*b; for a negative product trunc((p + 1 - 2^30) / 2^31) = floor((p + 2^30) / 2^31), so both signs are one
 * arithmetic shift of p + 2^30 (SMULL, ADDS/ADC, two shifts). Its saturating case (a == b == INT32_MIN) needs
 * multiplier == INT32_MIN, which TFLM's QuantizeMultiplier never produces (multipliers are in [2^30, 2^31) or 0).
 * RoundingDivideByPOT is kept branch-free.
 */
#ifndef FM_DSP_REQUANT_H
#define FM_DSP_REQUANT_H

#include "fm_kernels.h"

/* gemmlowp::SaturatingRoundingDoublingHighMul(a, b) for b != INT32_MIN. */
FM_INLINE int32_t fm_dsp_srdhm(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp::RoundingDivideByPOT(x, e), 0 <= e <= 31, without branches. */
FM_INLINE int32_t fm_dsp_rdbpot(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)x >> 31);
    return (x >> e) + ((x & mask) > threshold);
}

/* tflite::MultiplyByQuantizedMultiplier(x, multiplier, shift) for multiplier != INT32_MIN. */
FM_INLINE int32_t fm_dsp_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
#if FM_SINGLE_ROUNDING
    return fm_mbqm(x, multiplier, shift);
#else
    const int32_t left = shift > 0 ? shift : 0;
    return fm_dsp_rdbpot(fm_dsp_srdhm(fm_wrap_shl(x, left), multiplier), left - shift);
#endif
}

#endif /* FM_DSP_REQUANT_H */
