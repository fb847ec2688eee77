/*
 * Pieces shared by the helium kernels: the vector int8 output stage (TFLM MultiplyByQuantizedMultiplier on four
 * lanes, bit-exact) and the int8 GEMM micro kernel of CONV_2D and FULLY_CONNECTED over weights packed ahead of time
 * (host/formicary/codegen/sets/helium/conv.py writes the layouts described here).
 *
 * Requantization, per lane: x << ls, VQRDMULH by the multiplier, then a rounding right shift by -rs. VQRDMULH is
 * gemmlowp's SaturatingRoundingDoublingHighMul exactly: both give floor((x*m + 2^30) / 2^31) (for x*m < 0 the
 * truncating division of x*m + 1 - 2^30 equals that floor), and both saturate only at INT32_MIN * INT32_MIN.
 * VRSHL by -e adds 2^(e-1) and shifts (ties up); gemmlowp's RoundingDivideByPOT rounds ties away from zero, so a
 * negative value first gets -1 ((x & rs) >> 31 is -1 exactly when x < 0 and rs != 0; the saturating add only
 * clamps at INT32_MIN, whose quotient does not change). ls = max(shift, 0), rs = min(shift, 0).
 *
 * Requantization table (packed_aux of conv/FC), per block of 4 output channels: multiplier[4], ls[4], rs[4].
 *
 * GEMM layout (FM_HE_LAYOUT_GEMM): output channels in blocks of 4 (padded with zero rows), reduction depth K padded
 * to K16 (a multiple of 16) with zeros, bytes ordered [block][chunk of 16][channel of the block][16] so one pointer
 * walks the block with immediate offsets; folded_bias padded to the blocks. Grouped convolution: one such matrix
 * per group, each group's channels padded to blocks of 4.
 */
#ifndef FM_HELIUM_H
#define FM_HELIUM_H

#include "fm_kernels_common.h"
#include "fm_mve.h"

#define FM_HE_LAYOUT_GEMM 0x4801      /* conv and FC: see above */
#define FM_HE_LAYOUT_DW16 0x4802      /* depthwise: int16 weights [tap][C8], see depthwise_conv2d_s8.c */
#define FM_HE_AUX_BLOCK 12            /* int32 per block of 4 channels in the requantization table */
#define FM_HE_LAYOUT_NO_LS 0x10000    /* or-ed into the layout id: every shift <= 0, the kernel skips the left shift */

/* The int8 output stage on 4 lanes: requantize `acc` with the table `q` (multiplier[4], ls[4], rs[4]). */
FM_INLINE int32x4_t fm_he_requant_ls(int32x4_t acc, const int32_t *q, int32_t out_off, int32_t act_min,
                                     int32_t act_max, int left_shifts)
{
    const int32x4_t rs = vldrwq_s32(q + 8);
    if (left_shifts) {
        acc = vshlq_s32(acc, vldrwq_s32(q + 4));
    }
    acc = vqrdmulhq_s32(acc, vldrwq_s32(q));
    acc = vqaddq_s32(acc, vshrq_n_s32(vandq_s32(acc, rs), 31));
    acc = vrshlq_s32(acc, rs);
    acc = vaddq_n_s32(acc, out_off);
    acc = vmaxq_s32(acc, vdupq_n_s32(act_min));
    return vminq_s32(acc, vdupq_n_s32(act_max));
}

FM_INLINE int32x4_t fm_he_requant(int32x4_t acc, const int32_t *q, int32_t out_off, int32_t act_min, int32_t act_max)
{
    return fm_he_requant_ls(acc, q, out_off, act_min, act_max, 1);
}

/* Byte copy and fill of at most 16 bytes with one predicated load/store: cheaper than memcpy calls for the short
 * rows of im2col (e.g. 4 bytes of a 10x4 kernel over one channel). */
FM_INLINE void fm_he_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    while (n > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
        dst += 16;
        src += 16;
        n -= 16;
    }
}

FM_INLINE void fm_he_fill(int8_t *dst, int8_t value, int32_t n)
{
    const int8x16_t v = vdupq_n_s8(value);
    while (n > 0) {
        vstrbq_p_s8(dst, v, vctp8q((uint32_t)n));
        dst += 16;
        n -= 16;
    }
}

/* One GEMM: m rows of k int8 values (row i at a + i * a_stride) times the packed matrix `w` (n output channels in
 * blocks of 4, depth k16), plus folded bias, requantized into out[i * out_stride + j] for j < n. filter_offset
 * (FULLY_CONNECTED per-tensor weights only; else 0) adds filter_offset * sum(row) to every output of the row.
 * Rows go in pairs against one block of 4 channels: per 16-deep chunk 2 row loads, 4 weight loads and 8 VMLADAVA
 * (128 MACs); the last chunk's row loads are predicated, the weights past k are zero. */
typedef struct {
    const int8_t *w;
    const int32_t *bias;
    const int32_t *q;
    int32_t n, k, k16;
    int32_t out_off, act_min, act_max;
    int32_t filter_offset;
    int32_t left_shifts; /* 0: the layout says no channel shifts left */
} fm_he_gemm_t;

FM_INLINE int32_t fm_he_row_sum(const int8_t *a, int32_t k)
{
    int32_t s = 0;
    for (int32_t i = 0; i < k; i += 16) {
        s = vaddvaq_s8(s, vldrbq_z_s8(a + i, vctp8q((uint32_t)(k - i))));
    }
    return s;
}

FM_INLINE void fm_he_gemm_body(const fm_he_gemm_t *g, const int8_t *a, int32_t a_stride, int32_t m, int8_t *out,
                               int32_t out_stride, int left_shifts)
{
    const int32_t full = g->k & ~15;
    const int32_t tail = g->k - full;
    const mve_pred16_t tp = vctp8q((uint32_t)tail);
    for (int32_t j = 0; j < g->n; j += 4) {
        const int8_t *wb = g->w + (size_t)j * g->k16;
        const int32_t *q = g->q + (j / 4) * FM_HE_AUX_BLOCK;
        const int32x4_t bias = vldrwq_s32(g->bias + j);
        const mve_pred16_t sp = vctp32q((uint32_t)(g->n - j));
        for (int32_t i = 0; i < m; i += 2) {
            const int8_t *a0 = a + (size_t)i * a_stride;
            const int8_t *a1 = i + 1 < m ? a0 + a_stride : a0; /* odd m: the last row twice, stored once */
            const int8_t *wp = wb;
            int32_t s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
            for (int32_t c = 0; c < full; c += 16) {
                const int8x16_t x0 = vldrbq_s8(a0 + c), x1 = vldrbq_s8(a1 + c);
                int8x16_t f = vldrbq_s8(wp);
                wp += 16;
                s00 = vmladavaq_s8(s00, x0, f);
                s10 = vmladavaq_s8(s10, x1, f);
                f = vldrbq_s8(wp);
                wp += 16;
                s01 = vmladavaq_s8(s01, x0, f);
                s11 = vmladavaq_s8(s11, x1, f);
                f = vldrbq_s8(wp);
                wp += 16;
                s02 = vmladavaq_s8(s02, x0, f);
                s12 = vmladavaq_s8(s12, x1, f);
                f = vldrbq_s8(wp);
                wp += 16;
                s03 = vmladavaq_s8(s03, x0, f);
                s13 = vmladavaq_s8(s13, x1, f);
            }
            if (tail) {
                const int8x16_t x0 = vldrbq_z_s8(a0 + full, tp), x1 = vldrbq_z_s8(a1 + full, tp);
                int8x16_t f = vldrbq_s8(wp);
                s00 = vmladavaq_s8(s00, x0, f);
                s10 = vmladavaq_s8(s10, x1, f);
                f = vldrbq_s8(wp + 16);
                s01 = vmladavaq_s8(s01, x0, f);
                s11 = vmladavaq_s8(s11, x1, f);
                f = vldrbq_s8(wp + 32);
                s02 = vmladavaq_s8(s02, x0, f);
                s12 = vmladavaq_s8(s12, x1, f);
                f = vldrbq_s8(wp + 48);
                s03 = vmladavaq_s8(s03, x0, f);
                s13 = vmladavaq_s8(s13, x1, f);
            }
            int32x4_t r0 = vdupq_n_s32(0), r1 = vdupq_n_s32(0);
            r0 = vsetq_lane_s32(s00, r0, 0);
            r0 = vsetq_lane_s32(s01, r0, 1);
            r0 = vsetq_lane_s32(s02, r0, 2);
            r0 = vsetq_lane_s32(s03, r0, 3);
            r1 = vsetq_lane_s32(s10, r1, 0);
            r1 = vsetq_lane_s32(s11, r1, 1);
            r1 = vsetq_lane_s32(s12, r1, 2);
            r1 = vsetq_lane_s32(s13, r1, 3);
            r0 = vaddq_s32(r0, bias);
            r1 = vaddq_s32(r1, bias);
            if (g->filter_offset) {
                r0 = vaddq_n_s32(r0, (int32_t)((uint32_t)g->filter_offset * (uint32_t)fm_he_row_sum(a0, g->k)));
                r1 = vaddq_n_s32(r1, (int32_t)((uint32_t)g->filter_offset * (uint32_t)fm_he_row_sum(a1, g->k)));
            }
            int8_t *o = out + (size_t)i * out_stride + j;
            vstrbq_p_s32(o, fm_he_requant_ls(r0, q, g->out_off, g->act_min, g->act_max, left_shifts), sp);
            if (i + 1 < m) {
                vstrbq_p_s32(o + out_stride, fm_he_requant_ls(r1, q, g->out_off, g->act_min, g->act_max, left_shifts),
                             sp);
            }
        }
    }
}

/* The loop counter of GEMM's inner loop stays out of LR: VMLADAVA accumulates in even registers only, and all
 * eight (r0..r12, lr) are needed for the 2x4 accumulators. */
__attribute__((optimize("no-branch-count-reg"))) static inline void
fm_he_gemm(const fm_he_gemm_t *g, const int8_t *a, int32_t a_stride, int32_t m, int8_t *out, int32_t out_stride)
{
    if (g->left_shifts) {
        fm_he_gemm_body(g, a, a_stride, m, out, out_stride, 1);
    } else {
        fm_he_gemm_body(g, a, a_stride, m, out, out_stride, 0);
    }
}

#endif /* FM_HELIUM_H */
