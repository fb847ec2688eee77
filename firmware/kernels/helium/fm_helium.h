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
#define FM_HE_LAYOUT_NO_LS 0x10000    /* or-ed into the layout id: every channel shifts right (shift < 0): the kernels
                                       * skip the left shift and the rounding fix's mask (fm_he_scale_v) */

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
    int32_t left_shifts; /* 0: the layout says every channel shifts right (FM_HE_LAYOUT_NO_LS) */
} fm_he_gemm_t;

FM_INLINE int32_t fm_he_row_sum(const int8_t *a, int32_t k)
{
    int32_t s = 0;
    for (int32_t i = 0; i < k; i += 16) {
        s = vaddvaq_s8(s, vldrbq_z_s8(a + i, vctp8q((uint32_t)(k - i))));
    }
    return s;
}

/* The 2-row x 4-channel tile: rows a0, a1 (k bytes: `chunks` full 16-byte chunks, then `tail` < 16 bytes) times
 * one packed block of 4 channels at w; the 8 sums come back as two vectors (lane = channel). */
#if FM_MVE_NATIVE
/* GCC 12 cannot keep eight scalar accumulators in registers around VMLADAVA (whose accumulator must be an even
 * register: r0..r12 and lr are the only eight) and spills in the inner loop, so the tile is assembly: 14
 * instructions per 16-deep chunk (2 row loads, 4 weight loads, 8 VMLADAVA), loads post-incrementing, the loop
 * unrolled twice. The host build runs the C below, the same sums in the same order (wrapping int32). */
#define FM_HE_MK_W(op)                                                                                            \
    "vldrb.8 q2, [%[w]], #16\n\t"                                                                                 \
    "vldrb.8 q3, [%[w]], #16\n\t"                                                                                 \
    op " %[s00], q0, q2\n\t" op " %[s10], q1, q2\n\t"                                                             \
    "vldrb.8 q2, [%[w]], #16\n\t"                                                                                 \
    op " %[s01], q0, q3\n\t" op " %[s11], q1, q3\n\t"                                                             \
    "vldrb.8 q3, [%[w]], #16\n\t"                                                                                 \
    op " %[s02], q0, q2\n\t" op " %[s12], q1, q2\n\t"                                                             \
    op " %[s03], q0, q3\n\t" op " %[s13], q1, q3\n\t"
#define FM_HE_MK_CHUNK(op) "vldrb.8 q0, [%[a0]], #16\n\tvldrb.8 q1, [%[a1]], #16\n\t" FM_HE_MK_W(op)
FM_INLINE void fm_he_tile_c(const int8_t *a0, const int8_t *a1, const int8_t *w, int32_t chunks, int32_t tail,
                            int32x4_t *r0, int32x4_t *r1);

FM_INLINE void fm_he_tile(const int8_t *a0, const int8_t *a1, const int8_t *w, int32_t chunks, int32_t tail,
                          int32x4_t *r0, int32x4_t *r1)
{
    if (chunks <= 0) { /* k < 16: rare (FC/conv over a few inputs); the C tile */
        fm_he_tile_c(a0, a1, w, chunks, tail, r0, r1);
        return;
    }
    int32_t s00, s01, s02, s03, s10, s11, s12, s13;
    int32_t n = chunks;
    /* chunk 1 sets the accumulators (VMLADAV, no zeroing), then an odd one, then pairs (APSR flags survive the
     * vector instructions); then the predicated tail (VCTP: the row lanes past k load as zero, the weights there
     * are zero). */
    __asm__ volatile(FM_HE_MK_CHUNK("vmladav.s8")
                     "subs %[n], %[n], #1\n\t"
                     "beq 3f\n\t"
                     "lsrs %[n], %[n], #1\n\t"
                     "bcc 1f\n\t" FM_HE_MK_CHUNK("vmladava.s8")
                     "beq 3f\n"
                     "1:\n\t" FM_HE_MK_CHUNK("vmladava.s8") FM_HE_MK_CHUNK("vmladava.s8")
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n"
                     "3:\n\t"
                     : [s00] "=&Te"(s00), [s01] "=&Te"(s01), [s02] "=&Te"(s02), [s03] "=&Te"(s03),
                       [s10] "=&Te"(s10), [s11] "=&Te"(s11), [s12] "=&Te"(s12), [s13] "=&Te"(s13), [a0] "+r"(a0),
                       [a1] "+r"(a1), [w] "+r"(w), [n] "+r"(n)
                     :
                     : "q0", "q1", "q2", "q3", "memory", "cc");
    if (tail) { /* no register left for it above */
        /* the predicate goes in as an operand ("Up": VPR), so GCC knows the register's content */
        const mve_pred16_t tp = vctp8q((uint32_t)tail);
        __asm__ volatile("vpstt\n\t"
                         "vldrbt.8 q0, [%[a0]]\n\t"
                         "vldrbt.8 q1, [%[a1]]\n\t" FM_HE_MK_W("vmladava.s8")
                         : [s00] "+Te"(s00), [s01] "+Te"(s01), [s02] "+Te"(s02), [s03] "+Te"(s03),
                           [s10] "+Te"(s10), [s11] "+Te"(s11), [s12] "+Te"(s12), [s13] "+Te"(s13), [w] "+r"(w)
                         : [a0] "r"(a0), [a1] "r"(a1), [t] "Up"(tp)
                         : "q0", "q1", "q2", "q3", "memory");
    }
    /* Through memory rather than the two-lane VMOV (Qd[idx], Qd[idx2], Rt, Rt2), whose operand order assemblers,
     * emulators and documentation do not agree on: 4 STRD + 2 VLDRW. */
    int32_t acc[8];
    __asm__("strd %[s00], %[s01], [%[b]]\n\t"
            "strd %[s02], %[s03], [%[b], #8]\n\t"
            "strd %[s10], %[s11], [%[b], #16]\n\t"
            "strd %[s12], %[s13], [%[b], #24]"
            : "=m"(acc)
            : [b] "r"(acc), [s00] "r"(s00), [s01] "r"(s01), [s02] "r"(s02), [s03] "r"(s03), [s10] "r"(s10),
              [s11] "r"(s11), [s12] "r"(s12), [s13] "r"(s13));
    *r0 = vldrwq_s32(acc);
    *r1 = vldrwq_s32(acc + 4);
}
#endif

/* The tile in C: the host build's tile, and the board's for k < 16. */
FM_INLINE void fm_he_tile_c(const int8_t *a0, const int8_t *a1, const int8_t *w, int32_t chunks, int32_t tail,
                            int32x4_t *r0, int32x4_t *r1)
{
    int32_t s0[4] = {0, 0, 0, 0}, s1[4] = {0, 0, 0, 0};
    for (int32_t c = 0; c < chunks; ++c, a0 += 16, a1 += 16, w += 64) {
        const int8x16_t x0 = vldrbq_s8(a0), x1 = vldrbq_s8(a1);
        for (int j = 0; j < 4; ++j) {
            const int8x16_t f = vldrbq_s8(w + 16 * j);
            s0[j] = vmladavaq_s8(s0[j], x0, f);
            s1[j] = vmladavaq_s8(s1[j], x1, f);
        }
    }
    if (tail) {
        const mve_pred16_t tp = vctp8q((uint32_t)tail);
        const int8x16_t x0 = vldrbq_z_s8(a0, tp), x1 = vldrbq_z_s8(a1, tp);
        for (int j = 0; j < 4; ++j) {
            const int8x16_t f = vldrbq_s8(w + 16 * j);
            s0[j] = vmladavaq_s8(s0[j], x0, f);
            s1[j] = vmladavaq_s8(s1[j], x1, f);
        }
    }
    *r0 = vldrwq_s32(s0);
    *r1 = vldrwq_s32(s1);
}

#if !FM_MVE_NATIVE
#define fm_he_tile fm_he_tile_c
#endif

/* The output stage with the block's constants in registers (mult, ls, rs: the table's rows). */
FM_INLINE int32x4_t fm_he_scale_v(int32x4_t acc, int32x4_t mult, int32x4_t ls, int32x4_t rs, int left_shifts);

FM_INLINE int32x4_t fm_he_requant_v(int32x4_t acc, int32x4_t mult, int32x4_t ls, int32x4_t rs, int32_t out_off,
                                    int32x4_t lo, int32x4_t hi, int left_shifts)
{
    acc = vaddq_n_s32(fm_he_scale_v(acc, mult, ls, rs, left_shifts), out_off);
    return vminq_s32(vmaxq_s32(acc, lo), hi);
}

/* Requantization up to the rounding shift (fm_he_requant_v without offset and clamp). left_shifts == 0 is the
 * layout flag FM_HE_LAYOUT_NO_LS: every right shift is at least 1, so the -1 for negative values needs no mask. */
FM_INLINE int32x4_t fm_he_scale_v(int32x4_t acc, int32x4_t mult, int32x4_t ls, int32x4_t rs, int left_shifts)
{
    if (left_shifts) {
        acc = vshlq_s32(acc, ls);
        acc = vqrdmulhq_s32(acc, mult);
        acc = vqaddq_s32(acc, vshrq_n_s32(vandq_s32(acc, rs), 31));
    } else {
        acc = vqrdmulhq_s32(acc, mult);
        acc = vqaddq_s32(acc, vshrq_n_s32(acc, 31));
    }
    return vrshlq_s32(acc, rs);
}

/* The output stage of 8 channels held as even (e) and odd (o) lanes, in channel order as int16 lanes: saturating to
 * int16 first changes nothing, as the output offset and the clamp bounds are int8 (a saturated value stays past
 * the bound it would have crossed). 5 instructions instead of 9. */
FM_INLINE int16x8_t fm_he_out8(int32x4_t e, int32x4_t o, int16_t out_off, int16x8_t lo, int16x8_t hi)
{
    int16x8_t v = vqmovntq_s32(vqmovnbq_s32(vreinterpretq_s16_s32(e), e), o);
    v = vqaddq_n_s16(v, out_off);
    return vminq_s16(vmaxq_s16(v, lo), hi);
}

/* The 8 sums of a tile to int8 outputs: bias (+ filter_offset * row sums), requantization, stores of the rows
 * (the second only when `two`). */
FM_INLINE void fm_he_tile_out(const fm_he_gemm_t *g, int32x4_t r0, int32x4_t r1, const int8_t *a0, const int8_t *a1,
                              int32x4_t bias, int32x4_t mult, int32x4_t ls, int32x4_t rs, int32x4_t lo, int32x4_t hi,
                              int32_t out_off, int8_t *o, int32_t out_stride, mve_pred16_t sp, int two,
                              int left_shifts, int plain)
{
    r0 = vaddq_s32(r0, bias);
    r1 = vaddq_s32(r1, bias);
    if (!plain && g->filter_offset) {
        const uint32_t fo = (uint32_t)g->filter_offset;
        r0 = vaddq_n_s32(r0, (int32_t)(fo * (uint32_t)fm_he_row_sum(a0, g->k)));
        r1 = vaddq_n_s32(r1, (int32_t)(fo * (uint32_t)fm_he_row_sum(a1, g->k)));
    }
    r0 = fm_he_requant_v(r0, mult, ls, rs, out_off, lo, hi, left_shifts);
    if (plain) {
        vstrbq_s32(o, r0);
    } else {
        vstrbq_p_s32(o, r0, sp);
    }
    if (two) {
        r1 = fm_he_requant_v(r1, mult, ls, rs, out_off, lo, hi, left_shifts);
        if (plain) {
            vstrbq_s32(o + out_stride, r1);
        } else {
            vstrbq_p_s32(o + out_stride, r1, sp);
        }
    }
}

/* plain: every channel shifts right, k a multiple of 16, n of 4, no filter offset (KWS's convolutions): no tail,
 * no row sums, unpredicated stores. */
FM_INLINE void fm_he_gemm_body(const fm_he_gemm_t *g, const int8_t *a, int32_t a_stride, int32_t m, int8_t *out,
                               int32_t out_stride, int left_shifts, int plain)
{
    /* plain: k >= 16, so chunks >= 1 and the C tile for k < 16 drops out */
    const int32_t chunks = plain ? fm_max_i32(g->k >> 4, 1) : g->k >> 4, tail = plain ? 0 : g->k & 15;
    const int32_t n = g->n, k16 = g->k16, out_off = g->out_off;
    const int32x4_t lo = vdupq_n_s32(g->act_min), hi = vdupq_n_s32(g->act_max);
    const int32_t m2 = m & ~1;
    for (int32_t j = 0; j < n; j += 4) {
        const int8_t *wb = g->w + (size_t)j * k16;
        const int32_t *q = g->q + (j / 4) * FM_HE_AUX_BLOCK;
        const int32x4_t bias = vldrwq_s32(g->bias + j), mult = vldrwq_s32(q), rs = vldrwq_s32(q + 8);
        const int32x4_t ls = left_shifts ? vldrwq_s32(q + 4) : vdupq_n_s32(0);
        const mve_pred16_t sp = vctp32q((uint32_t)(n - j));
        const int8_t *a0 = a;
        int8_t *o = out + j;
        for (int32_t i = 0; i < m2; i += 2, a0 += 2 * (size_t)a_stride, o += 2 * (size_t)out_stride) {
            int32x4_t r0 = vdupq_n_s32(0), r1 = vdupq_n_s32(0);
            fm_he_tile(a0, a0 + a_stride, wb, chunks, tail, &r0, &r1);
            fm_he_tile_out(g, r0, r1, a0, a0 + a_stride, bias, mult, ls, rs, lo, hi, out_off, o, out_stride, sp, 1,
                           left_shifts, plain);
        }
        if (m & 1) { /* the last row twice, stored once */
            int32x4_t r0 = vdupq_n_s32(0), r1 = vdupq_n_s32(0);
            fm_he_tile(a0, a0, wb, chunks, tail, &r0, &r1);
            fm_he_tile_out(g, r0, r1, a0, a0, bias, mult, ls, rs, lo, hi, out_off, o, out_stride, sp, 0, left_shifts,
                           plain);
        }
    }
}

/* Any GEMM, the general variant only: for FULLY_CONNECTED, whose few outputs do not repay a second copy. */
static inline void fm_he_gemm_any(const fm_he_gemm_t *g, const int8_t *a, int32_t a_stride, int32_t m, int8_t *out,
                                  int32_t out_stride)
{
    fm_he_gemm_body(g, a, a_stride, m, out, out_stride, 1, 0);
}

static inline void fm_he_gemm(const fm_he_gemm_t *g, const int8_t *a, int32_t a_stride, int32_t m, int8_t *out,
                              int32_t out_stride)
{
    if (!g->left_shifts && g->k > 0 && (g->k & 15) == 0 && (g->n & 3) == 0 && g->filter_offset == 0) {
        fm_he_gemm_body(g, a, a_stride, m, out, out_stride, 0, 1);
    } else {
        fm_he_gemm_body(g, a, a_stride, m, out, out_stride, 1, 0);
    }
}

#endif /* FM_HELIUM_H */
