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

#define FM_DSP_LAYOUT_CONV_GEMM 0x4447 /* conv: [group][oc pair][depth/4][2 oc][4 int16] */
#define FM_DSP_LAYOUT_FC_GEMV 0x4446   /* fully connected: [row/4][depth/4][4 rows][4 int16], w + filter_offset */

/* Slow path of the requantization: a call, so that the hot loops keep one copy of the fast path only. */
static __attribute__((noinline)) int32_t fm_dsp_mbqm_slow(int32_t acc, int32_t mult, int32_t shift)
{
    return fm_mbqm(acc, mult, shift);
}

/*
 * One output channel's requantization, as TFLM's double-rounding MultiplyByQuantizedMultiplier
 * (RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m), rs)) for multipliers m in [0, 2^31) and right
 * shifts rs = -shift in [2, 31] (every KWS layer), computed in one 64-bit multiply-accumulate (SMLAL):
 *   SRDHM = floor((acc*m + 2^30) / 2^31) (its nudge and truncating division reduce to this), and rounding that
 *   half away from zero by 2^rs is floor((v + 2^(rs-1) - [v<0]) / 2^rs); nested floors merge into
 *   floor((acc*m + 2^30 + 2^(30+rs) - [acc<0]*2^31) / 2^(31+rs)) ([acc<0] may stand for [v<0]: where they
 *   differ v = 0 and both give 0). Other shifts take fm_mbqm.
 */
typedef struct {
    int32_t mult, shift;
    int32_t hi;   /* 2^(rs-2): high word of the rounding constant */
    int32_t rs1;  /* rs - 1: shift of the high word of the product */
    int32_t fast; /* shift in [-31, -2] */
} fm_dsp_rq_t;

FM_INLINE fm_dsp_rq_t fm_dsp_rq(int32_t mult, int32_t shift)
{
    fm_dsp_rq_t r;
    r.mult = mult;
    r.shift = shift;
    r.fast = shift <= -2 && shift >= -31;
    r.rs1 = -shift - 1;
    r.hi = r.fast ? (int32_t)(1u << (-shift - 2)) : 0;
    return r;
}

FM_INLINE int32_t fm_dsp_requant(int32_t acc, const fm_dsp_rq_t *r)
{
#if !FM_SINGLE_ROUNDING
    if (r->fast) {
        const uint32_t neg = (uint32_t)(acc < 0);
        const uint32_t lo = 0x40000000u | (neg << 31);
        const uint64_t k = ((uint64_t)((uint32_t)r->hi - neg) << 32) | lo;
        const int64_t sum = (int64_t)k + (int64_t)acc * r->mult; /* |acc*m| < 2^62: no overflow */
        return (int32_t)(sum >> 32) >> r->rs1;
    }
#endif
    return fm_dsp_mbqm_slow(acc, r->mult, r->shift);
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

/* Requantized accumulator + output offset, clamped to the fused activation, as int8. */
#define FM_DSP_OUT(dst, acc, rq, o)                                                    \
    do {                                                                               \
        int32_t fm_v_ = fm_dsp_requant((acc), (rq)) + (o)->offset;                   \
        fm_v_ = fm_v_ < (o)->lo ? (o)->lo : fm_v_;                                     \
        (dst) = (int8_t)(fm_v_ > (o)->hi ? (o)->hi : fm_v_);                           \
    } while (0)

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
