/*
 * Shared pieces of the dsp set's GEMM kernels (conv2d_s8.c, fully_connected_s8.c): the packed-layout ids the
 * Python packer (host/formicary/codegen/sets/dsp/gemm.py) writes, and the int8 output stage with an exact, faster
 * form of TFLM's MultiplyByQuantizedMultiplier.
 *
 * Packed weights are int16 pairs in int32 words. Depth is padded to a multiple of 4 with zero weights and each
 * group of 4 depth values k0..k3 is stored (k0,k2),(k1,k3): the order SXTB16 and SXTB16-ROR8 give when they
 * expand 4 int8 activations, so a weight word and an activation word meet in one SMLAD.
 */
#ifndef FM_DSP_GEMM_H
#define FM_DSP_GEMM_H

#include "fm_kernels_common.h"
#include "fm_acle.h"

#define FM_DSP_LAYOUT_CONV_GEMM 0x4447  /* conv: [group][oc pair][depth/4][2 oc][4 int16] */
#define FM_DSP_LAYOUT_FC_GEMV 0x4446    /* fully connected: [row/4][depth/4][4 rows][4 int16], w + filter_offset */
#define FM_DSP_LAYOUT_CONV_GEMM8 0x3847 /* conv, compact: [group][oc pair][depth/4][2 oc][4 int8] (TFLite order) */
#define FM_DSP_LAYOUT_FC_GEMV8 0x3846   /* fully connected, compact: [row/4][depth/4][4 rows][4 int8] */

/* Slow path of the requantization: a call, so that the hot loops keep one copy of the fast path only. Weak:
 * every kernel file including this header emits it and the linker keeps one copy. */
int32_t fm_dsp_mbqm_slow(int32_t acc, int32_t mult, int32_t shift);
__attribute__((weak, noinline)) int32_t fm_dsp_mbqm_slow(int32_t acc, int32_t mult, int32_t shift)
{
    return fm_mbqm(acc, mult, shift);
}

/* Saturate to int8: one SSAT on a DSP core (the clamp of layers whose activation range is the whole int8). */
FM_INLINE int32_t fm_dsp_sat8(int32_t v)
{
#if FM_HAVE_DSP
    return __ssat(v, 8);
#else
    return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
}

/*
 * Requantization + output offset, as TFLM's double-rounding MultiplyByQuantizedMultiplier
 * (RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m), rs)) + offset, exact for multipliers m in
 * [0, 2^31) and right shifts rs = -shift in [2, 23] (every KWS layer), in one 64-bit multiply-accumulate (SMLAL):
 *   SRDHM = floor((acc*m + 2^30) / 2^31) (its nudge and truncating division reduce to this); rounding that half
 *   away from zero by 2^rs is floor((v + 2^(rs-1) - [v<0]) / 2^rs); nested floors merge, and so does the offset:
 *   floor((acc*m + 2^30 + 2^(30+rs) - [acc<0]*2^31 + offset*2^(31+rs)) / 2^(31+rs)). [acc<0] may stand for [v<0]:
 *   where they differ v = 0 and both give 0. |sum| < 2^63 for |offset| <= 128, rs <= 23.
 * The constant's high word is k - [acc<0], k = 2^(rs-2) + offset*2^(rs-1); its low word 2^30 | [acc<0]*2^31; the
 * result is the sum's high word >> (rs-1). Other shifts take fm_mbqm.
 */
FM_INLINE int fm_dsp_fast_shift(int32_t shift)
{
    return shift <= -2 && shift >= -23;
}

FM_INLINE uint32_t fm_dsp_round_k(int32_t shift, int32_t offset)
{
    return (1u << (-shift - 2)) + ((uint32_t)offset << (-shift - 1));
}

FM_INLINE int32_t fm_dsp_requant_fast(int32_t acc, int32_t mult, uint32_t k, int32_t rs1)
{
    const uint32_t neg = (uint32_t)acc >> 31;
    const uint64_t c = ((uint64_t)(k - neg) << 32) | (0x40000000u | (neg << 31));
    const int64_t sum = (int64_t)c + (int64_t)acc * mult;
    return (int32_t)(sum >> 32) >> rs1;
}

/* Output offset and fused-activation clamp, copied out of the params: int8 stores may alias the params struct,
 * which would make the compiler reload them after every output byte. */
typedef struct {
    int32_t offset, lo, hi;
} fm_dsp_out_t;

FM_INLINE fm_dsp_out_t fm_dsp_out(int32_t offset, int32_t lo, int32_t hi)
{
    fm_dsp_out_t o;
    o.offset = offset;
    o.lo = lo;
    o.hi = hi;
    return o;
}

FM_INLINE int32_t fm_dsp_clamp(int32_t v, const fm_dsp_out_t *o)
{
    v = v < o->lo ? o->lo : v;
    return v > o->hi ? o->hi : v;
}

/* One requantized output (offset included, clamped), any shift. */
FM_INLINE int8_t fm_dsp_out1(int32_t acc, int32_t mult, int32_t shift, const fm_dsp_out_t *o)
{
#if !FM_SINGLE_ROUNDING
    if (fm_dsp_fast_shift(shift)) {
        return (int8_t)fm_dsp_clamp(fm_dsp_requant_fast(acc, mult, fm_dsp_round_k(shift, o->offset), -shift - 1), o);
    }
#endif
    return (int8_t)fm_dsp_clamp(fm_dsp_mbqm_slow(acc, mult, shift) + o->offset, o);
}

/* A word of 4 int8 at src, of which only the first n (0 < n < 4) may be read; the rest are 0. */
FM_INLINE uint32_t fm_dsp_tail_word(const int8_t *src, int32_t n)
{
    uint32_t w = 0;
    for (int32_t i = 0; i < n; ++i) {
        w |= (uint32_t)(uint8_t)src[i] << (8 * i);
    }
    return w;
}

#endif /* FM_DSP_GEMM_H */
