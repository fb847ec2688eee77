/*
 * DEPTHWISE_CONV_2D int8, per-channel (TFLM reference_integer_ops::DepthwiseConvPerChannel, bit-exact),
 * Helium/MVE, vectorized across channels.
 *
 * Layout FM_HE_LAYOUT_DW16, packed at codegen (sets/helium/conv.py): weights widened to int16 and grouped per block
 * of 8 channels, [block][tap][8] with taps column by column (t = kx * k_h + ky), zeros past out_c, so one pointer
 * reaches a block's taps with immediate offsets; packed_aux holds per block 32 int32: the folded bias (bias +
 * input_offset * sum of the channel's weights) of the even channels (c, c+2, c+4, c+6), of the odd ones, then the
 * requantization tables (fm_helium.h) of the even and of the odd channels. folded_bias is NULL.
 * FM_HE_LAYOUT_NO_LS: every channel shifts right (fm_helium.h).
 *
 * Depth multiplier 1 without horizontal dilation (fm_he_dw_staged, below): the input rows a segment of up to
 * FM_HE_DW_SEG output pixels reads are staged in k_h scratch slots with zero-point padding (kept while later output
 * rows still read them), so every tap sits at a fixed offset from its row's pointer. Per block of 8 channels and
 * tap: one widening load (8 bytes -> int16), one weight load, VMULLB/VMULLT (even / odd lanes -> int32) and two
 * adds; both accumulators are requantized and narrowed back into channel order with saturation (VQMOVNB/VQMOVNT)
 * for the offset, clamp and one 8-byte store. 3x3 over full blocks with right shifts only (KWS) is one assembly
 * loop on the board; the channel tail is predicated. Scratch: sets/helium/conv.py depthwise_scratch. Depth
 * multiplier > 1 runs a scalar loop over the same tables, horizontal dilation a bounds-checked vector loop.
 */
#include "fm_helium.h"

#define FM_HE_DW_AUX 32       /* int32 per block of 8 channels */
#define FM_HE_DW_SEG 8        /* output pixels per staged segment (scratch: sets/helium/conv.py) */

/* Staged path (depth multiplier 1, no horizontal dilation, k_h <= FM_HE_DW_MAX_KH). Scratch holds k_h slots, each
 * one input row's window columns for a segment of up to FM_HE_DW_SEG output pixels, [slot][block of 16 channels]
 * [column][16 bytes], input zero points where the window leaves the image (zeros in a channel tail's lanes, whose
 * weights are zero). A slot keeps its row while the next output rows still read it, so with a vertical stride of
 * 1 each output row stages one new input row (all the rows outside the image share one slot of zero points). Tap
 * (ky, kx) of output pixel i then sits at column i * stride_w + kx of the slot of row ky: fixed offsets from k_h
 * row pointers, no bounds checks; a block of 8 channels reads its half of each 16 bytes. */
#define FM_HE_DW_MAX_KH 16

/* One input row (iy; outside the image: zero points) into a slot: columns from input x = x0. */
static void fm_he_dw_stage_row(const fm_depthwise_conv_s8_params_t *p, const int8_t *in_b, int32_t iy, int32_t x0,
                               int32_t cols, int8_t *slot, int32_t bst)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t c_full = in_c & ~15, nb = (in_c + 15) / 16;
    const int8x16_t zp = vdupq_n_s8((int8_t)(-p->input_offset));
    const mve_pred16_t tail = vctp8q((uint32_t)(in_c - c_full));
    const int inside = iy >= 0 && iy < in_h;
    /* the columns inside the image: [lo, hi) */
    const int32_t lo = inside ? fm_min_i32(cols, x0 < 0 ? -x0 : 0) : cols;
    const int32_t hi = inside ? fm_max_i32(lo, fm_min_i32(cols, in_w - x0)) : cols;
    for (int32_t b = 0; b < nb; ++b) {
        int8_t *dst = slot + b * bst;
        for (int32_t col = 0; col < lo; ++col) {
            vstrbq_s8(dst + col * 16, zp);
        }
        for (int32_t col = hi; col < cols; ++col) {
            vstrbq_s8(dst + col * 16, zp);
        }
    }
    if (hi == lo) {
        return;
    }
    const int8_t *src = in_b + ((size_t)iy * in_w + x0 + lo) * in_c;
    for (int32_t col = lo; col < hi; ++col, src += in_c) {
        int8_t *dst = slot + col * 16;
        int32_t c = 0;
        for (; c < c_full; c += 16, dst += bst) {
            vstrbq_s8(dst, vldrbq_s8(src + c));
        }
        if (c < in_c) {
            vstrbq_s8(dst, vldrbq_z_s8(src + c, tail));
        }
    }
}

/* One pixel's block of 8 channels: tap (ky, kx) at rows[ky] + 16 kx (+ the pixel's column), weights at
 * wb + 8 (kx * k_h + ky); the accumulators start at the folded biases. */
FM_INLINE void fm_he_dw_macs(const int8_t *const *rows, int32_t off, const int16_t *wb, int32_t k_h, int32_t k_w,
                             int32x4_t *e, int32x4_t *o)
{
    int32x4_t ea = *e, oa = *o;
    for (int32_t kx = 0; kx < k_w; ++kx) {
        for (int32_t ky = 0; ky < k_h; ++ky, wb += 8) {
            const int16x8_t x = vldrbq_s16(rows[ky] + off + 16 * kx);
            const int16x8_t f = vldrhq_s16(wb);
            ea = vaddq_s32(ea, vmullbq_int_s16(x, f));
            oa = vaddq_s32(oa, vmulltq_int_s16(x, f));
            FM_MVE_KEEP(ea);
            FM_MVE_KEEP(oa);
        }
    }
    *e = ea;
    *o = oa;
}

/* n pixels of one block of 8 channels (full or predicated), the pixel's column stepping by pstep bytes, dst by
 * ostep. */
FM_INLINE void fm_he_dw_pixels_c(const int8_t *const *rows, const int16_t *wb, int32_t k_h, int32_t k_w,
                                 const int32_t *blk, int8_t *dst, int32_t n, int32_t pstep, int32_t ostep,
                                 int16_t out_off, int16x8_t lo, int16x8_t hi, mve_pred16_t pred, int left_shifts)
{
    for (int32_t i = 0; i < n; ++i, dst += ostep) {
        int32x4_t e = vldrwq_s32(blk), o = vldrwq_s32(blk + 4);
        fm_he_dw_macs(rows, i * pstep, wb, k_h, k_w, &e, &o);
        e = fm_he_scale_v(e, vldrwq_s32(blk + 8), vldrwq_s32(blk + 12), vldrwq_s32(blk + 16), left_shifts);
        o = fm_he_scale_v(o, vldrwq_s32(blk + 20), vldrwq_s32(blk + 24), vldrwq_s32(blk + 28), left_shifts);
        vstrbq_p_s16(dst, fm_he_out8(e, o, out_off, lo, hi), pred);
    }
}

/* 3x3, a full block, every channel shifting right (FM_HE_LAYOUT_NO_LS; KWS): the same computation. On the board the
 * whole pixel loop is assembly (80 instructions a pixel: 54 for the taps, 19 for the output stage), as GCC 12
 * reloads its loop state from the stack around the tap block; the host runs fm_he_dw_pixels_c. */
#if FM_MVE_NATIVE
/* The output stage both pixel loops share: q4/q5 (even/odd accumulators) times their multipliers, the rounding
 * right shift with TFLM's rounding, narrowed with saturation into the 8 int16 lanes of q0. */
#define FM_HE_DW_REQUANT                                                                                          \
                     "vldrw.32 q0, [%[q], #32]\n\t"                                                                 \
                     "vldrw.32 q1, [%[q], #64]\n\t"                                                                 \
                     "vqrdmulh.s32 q4, q4, q0\n\t"                                                                  \
                     "vshr.s32 q2, q4, #31\n\t"                                                                     \
                     "vqadd.s32 q4, q4, q2\n\t"                                                                     \
                     "vrshl.s32 q4, q4, q1\n\t"                                                                     \
                     "vldrw.32 q0, [%[q], #80]\n\t"                                                                 \
                     "vldrw.32 q1, [%[q], #112]\n\t"                                                                \
                     "vqrdmulh.s32 q5, q5, q0\n\t"                                                                  \
                     "vshr.s32 q2, q5, #31\n\t"                                                                     \
                     "vqadd.s32 q5, q5, q2\n\t"                                                                     \
                     "vrshl.s32 q5, q5, q1\n\t"                                                                     \
                     "vqmovnb.s32 q0, q4\n\t"                                                                       \
                     "vqmovnt.s32 q0, q5\n\t"

FM_INLINE void fm_he_dw_pixels9(const int8_t *r0, const int8_t *r1, const int8_t *r2, const int16_t *wb,
                                const int32_t *blk, int8_t *dst, int32_t n, int32_t pstep, int32_t ostep,
                                const int16_t *cst)
{
    /* q4/q5: even/odd accumulators, q6/q7: clamp bounds; aux block (int32): bias e 0, o 4, then per half
     * multiplier, ls, rs (e: 8, 12, 16; o: 20, 24, 28); weights: tap (ky, kx) at 16 (3 kx + ky) bytes */
    /* the clamp bounds and the output offset come as int16 vectors from memory (cst: lo[8], hi[8], offset[8]): no
     * general register is left for them */
    __asm__ volatile("vldrh.16 q6, [%[c]]\n\t"
                     "vldrh.16 q7, [%[c], #16]\n"
                     "1:\n\t"
                     "vldrw.32 q4, [%[q]]\n\t"
                     "vldrw.32 q5, [%[q], #16]\n\t"
#define FM_HE_DW_TAP4(row, xo, wo)                                                                                \
                     "vldrb.s16 q0, [%[" row "], #" #xo "]\n\t"                                                   \
                     "vldrh.16 q1, [%[w], #" #wo "]\n\t"                                                           \
                     "vmullb.s16 q2, q0, q1\n\t"                                                                   \
                     "vmullt.s16 q3, q0, q1\n\t"                                                                   \
                     "vadd.i32 q4, q4, q2\n\t"                                                                     \
                     "vadd.i32 q5, q5, q3\n\t"
                     FM_HE_DW_TAP4("x0", 0, 0) FM_HE_DW_TAP4("x1", 0, 16) FM_HE_DW_TAP4("x2", 0, 32)
                     FM_HE_DW_TAP4("x0", 16, 48) FM_HE_DW_TAP4("x1", 16, 64) FM_HE_DW_TAP4("x2", 16, 80)
                     FM_HE_DW_TAP4("x0", 32, 96) FM_HE_DW_TAP4("x1", 32, 112) FM_HE_DW_TAP4("x2", 32, 128)
                     FM_HE_DW_REQUANT
                     "vldrh.16 q1, [%[c], #32]\n\t"
                     "vqadd.s16 q0, q0, q1\n\t"
                     "vmax.s16 q0, q0, q6\n\t"
                     "vmin.s16 q0, q0, q7\n\t"
                     "vstrb.16 q0, [%[d]]\n\t"
                     "add %[d], %[d], %[os]\n\t"
                     "add %[x0], %[x0], %[ps]\n\t"
                     "add %[x1], %[x1], %[ps]\n\t"
                     "add %[x2], %[x2], %[ps]\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     : [x0] "+l"(r0), [x1] "+l"(r1), [x2] "+l"(r2), [d] "+l"(dst), [n] "+r"(n)
                     : [w] "r"(wb), [q] "r"(blk), [ps] "r"(pstep), [os] "r"(ostep), [c] "r"(cst)
                     : "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "memory", "cc");
}

/* Stride 1: the first tap of each row post-increments its pointer by one column (no adds), so a general register
 * is free for the output offset. */
FM_INLINE void fm_he_dw_pixels9_s1(const int8_t *r0, const int8_t *r1, const int8_t *r2, const int16_t *wb,
                                   const int32_t *blk, int8_t *dst, int32_t n, int32_t ostep, const int16_t *cst,
                                   int32_t out_off)
{
    __asm__ volatile("vldrh.16 q6, [%[c]]\n\t"
                     "vldrh.16 q7, [%[c], #16]\n"
                     "1:\n\t"
                     "vldrw.32 q4, [%[q]]\n\t"
                     "vldrw.32 q5, [%[q], #16]\n\t"
#define FM_HE_DW_TAP4P(row, wo)                                                                                   \
                     "vldrb.s16 q0, [%[" row "]], #16\n\t"                                                        \
                     "vldrh.16 q1, [%[w], #" #wo "]\n\t"                                                           \
                     "vmullb.s16 q2, q0, q1\n\t"                                                                   \
                     "vmullt.s16 q3, q0, q1\n\t"                                                                   \
                     "vadd.i32 q4, q4, q2\n\t"                                                                     \
                     "vadd.i32 q5, q5, q3\n\t"
                     FM_HE_DW_TAP4P("x0", 0) FM_HE_DW_TAP4P("x1", 16) FM_HE_DW_TAP4P("x2", 32)
                     FM_HE_DW_TAP4("x0", 0, 48) FM_HE_DW_TAP4("x1", 0, 64) FM_HE_DW_TAP4("x2", 0, 80)
                     FM_HE_DW_TAP4("x0", 16, 96) FM_HE_DW_TAP4("x1", 16, 112) FM_HE_DW_TAP4("x2", 16, 128)
#undef FM_HE_DW_TAP4P
                     FM_HE_DW_REQUANT
                     "vqadd.s16 q0, q0, %[off]\n\t"
                     "vmax.s16 q0, q0, q6\n\t"
                     "vmin.s16 q0, q0, q7\n\t"
                     "vstrb.16 q0, [%[d]]\n\t"
                     "add %[d], %[d], %[os]\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     : [x0] "+l"(r0), [x1] "+l"(r1), [x2] "+l"(r2), [d] "+l"(dst), [n] "+r"(n)
                     : [w] "r"(wb), [q] "r"(blk), [os] "r"(ostep), [c] "r"(cst), [off] "r"(out_off)
                     : "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "memory", "cc");
}
#undef FM_HE_DW_TAP4
#undef FM_HE_DW_REQUANT
#else
FM_INLINE void fm_he_dw_pixels9_s1(const int8_t *r0, const int8_t *r1, const int8_t *r2, const int16_t *wb,
                                   const int32_t *blk, int8_t *dst, int32_t n, int32_t ostep, const int16_t *cst,
                                   int32_t out_off)
{
    const int8_t *const rows[3] = {r0, r1, r2};
    fm_he_dw_pixels_c(rows, wb, 3, 3, blk, dst, n, 16, ostep, (int16_t)out_off, vldrhq_s16(cst),
                      vldrhq_s16(cst + 8), 0xffff, 0);
}

FM_INLINE void fm_he_dw_pixels9(const int8_t *r0, const int8_t *r1, const int8_t *r2, const int16_t *wb,
                                const int32_t *blk, int8_t *dst, int32_t n, int32_t pstep, int32_t ostep,
                                const int16_t *cst)
{
    const int8_t *const rows[3] = {r0, r1, r2};
    fm_he_dw_pixels_c(rows, wb, 3, 3, blk, dst, n, pstep, ostep, cst[16], vldrhq_s16(cst), vldrhq_s16(cst + 8),
                      0xffff, 0);
}
#endif

FM_INLINE void fm_he_dw_staged(const fm_depthwise_conv_s8_params_t *p, const int8_t *input, int8_t *output,
                               int8_t *st, int left_shifts)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w, taps = k_h * k_w, sw = p->stride_w;
    const int32_t nb = (in_c + 15) / 16, pstep = sw * 16;
    const int16_t *w = (const int16_t *)(const void *)p->packed_filter;
    const int32_t *aux = (const int32_t *)p->packed_aux;
    const int16_t out_off = (int16_t)p->output_offset;
    const int16x8_t lo = vdupq_n_s16((int16_t)p->act_min), hi = vdupq_n_s16((int16_t)p->act_max);
    const int fast = k_h == 3 && k_w == 3 && !left_shifts;
    int16_t cst[24]; /* fm_he_dw_pixels9: clamp bounds and output offset as int16 vectors */
    vstrhq_s16(cst, lo);
    vstrhq_s16(cst + 8, hi);
    vstrhq_s16(cst + 16, vdupq_n_s16(out_off));
    int32_t key[FM_HE_DW_MAX_KH];  /* per slot: the input row it holds (-1: zero points), -2: nothing */
    int32_t slot[FM_HE_DW_MAX_KH]; /* per ky: its slot */
    const int8_t *rows[FM_HE_DW_MAX_KH];
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        for (int32_t s = 0; s < k_h; ++s) {
            key[s] = -2;
        }
        for (int32_t oy = 0; oy < out_h; ++oy) {
            for (int32_t ox0 = 0; ox0 < out_w; ox0 += FM_HE_DW_SEG) {
                const int32_t n_px = fm_min_i32(FM_HE_DW_SEG, out_w - ox0);
                const int32_t cols = (n_px - 1) * sw + k_w, bst = cols * 16;
                const int32_t x0 = ox0 * sw - p->pad_w;
                if (ox0 > 0 || out_w > FM_HE_DW_SEG) { /* several segments per row: no reuse across rows */
                    for (int32_t s = 0; s < k_h; ++s) {
                        key[s] = -2;
                    }
                }
                /* keep the slots this row reads, stage its other rows into the free ones */
                uint32_t used = 0;
                for (int32_t ky = 0; ky < k_h; ++ky) {
                    const int32_t iy = oy * p->stride_h - p->pad_h + ky * p->dilation_h;
                    const int32_t want = iy >= 0 && iy < in_h ? iy : -1;
                    slot[ky] = -1;
                    for (int32_t s = 0; s < k_h; ++s) {
                        if (key[s] == want) {
                            slot[ky] = s;
                            used |= 1u << s;
                        }
                    }
                }
                for (int32_t ky = 0; ky < k_h; ++ky) {
                    if (slot[ky] >= 0) {
                        continue;
                    }
                    const int32_t iy = oy * p->stride_h - p->pad_h + ky * p->dilation_h;
                    const int32_t want = iy >= 0 && iy < in_h ? iy : -1;
                    int32_t s = 0;
                    while (used & (1u << s)) {
                        ++s;
                    }
                    fm_he_dw_stage_row(p, in_b, want, x0, cols, st + (size_t)s * nb * bst, bst);
                    key[s] = want;
                    used |= 1u << s;
                    for (int32_t k2 = ky; k2 < k_h; ++k2) { /* rows outside the image share the slot */
                        const int32_t iy2 = oy * p->stride_h - p->pad_h + k2 * p->dilation_h;
                        if (slot[k2] < 0 && (iy2 >= 0 && iy2 < in_h ? iy2 : -1) == want) {
                            slot[k2] = s;
                        }
                    }
                }
                int8_t *dst0 = output + (((size_t)b * out_h + oy) * out_w + ox0) * out_c;
                int32_t c = 0;
                if (fast) { /* 3x3, right shifts only: the full blocks through fm_he_dw_pixels9 */
                    const int8_t *s0 = st + (size_t)slot[0] * nb * bst, *s1 = st + (size_t)slot[1] * nb * bst;
                    const int8_t *s2 = st + (size_t)slot[2] * nb * bst;
                    for (; c + 8 <= out_c; c += 8) {
                        const int32_t boff = (c >> 4) * bst + (c & 8);
                        if (sw == 1) {
                            fm_he_dw_pixels9_s1(s0 + boff, s1 + boff, s2 + boff, w + (size_t)c * 9,
                                                aux + (c / 8) * FM_HE_DW_AUX, dst0 + c, n_px, out_c, cst,
                                                p->output_offset);
                        } else {
                            fm_he_dw_pixels9(s0 + boff, s1 + boff, s2 + boff, w + (size_t)c * 9,
                                             aux + (c / 8) * FM_HE_DW_AUX, dst0 + c, n_px, pstep, out_c, cst);
                        }
                    }
                }
                for (; c < out_c; c += 8) {
                    for (int32_t ky = 0; ky < k_h; ++ky) {
                        rows[ky] = st + ((size_t)slot[ky] * nb + c / 16) * bst + (c & 8);
                    }
                    fm_he_dw_pixels_c(rows, w + (size_t)c * taps, k_h, k_w, aux + (c / 8) * FM_HE_DW_AUX, dst0 + c,
                                      n_px, pstep, out_c, out_off, lo, hi, vctp16q((uint32_t)(out_c - c)),
                                      left_shifts);
                }
            }
        }
    }
}

/* Horizontal dilation (rare): the same blocks, each tap's address and bounds computed in the loop. */
static void fm_he_dw_big(const fm_depthwise_conv_s8_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, taps = k_h * p->filter_dims.w;
    const int16_t *w = (const int16_t *)(const void *)p->packed_filter;
    const int32_t *aux = (const int32_t *)p->packed_aux;
    const int16x8_t zp = vdupq_n_s16((int16_t)(-p->input_offset));
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
                int8_t *dst = output + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                for (int32_t c = 0; c < out_c; c += 8) {
                    const mve_pred16_t pred = vctp16q((uint32_t)(out_c - c));
                    const int32_t *blk = aux + (c / 8) * FM_HE_DW_AUX;
                    const int16_t *wb = w + (size_t)c * taps;
                    int32x4_t e = vldrwq_s32(blk), o = vldrwq_s32(blk + 4);
                    for (int32_t t = 0; t < taps; ++t) {
                        const int32_t iy = y0 + (t % k_h) * p->dilation_h, ix = x0 + (t / k_h) * p->dilation_w;
                        const int16x8_t x = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w
                            ? vldrbq_z_s16(in_b + ((size_t)iy * in_w + ix) * in_c + c, pred) : zp;
                        const int16x8_t f = vldrhq_s16(wb + 8 * t);
                        e = vaddq_s32(e, vmullbq_int_s16(x, f));
                        o = vaddq_s32(o, vmulltq_int_s16(x, f));
                    }
                    e = fm_he_requant(e, blk + 8, p->output_offset, p->act_min, p->act_max);
                    o = fm_he_requant(o, blk + 8 + FM_HE_AUX_BLOCK, p->output_offset, p->act_min, p->act_max);
                    vstrbq_p_s16(dst + c, vmovntq_s32(vmovnbq_s32(vdupq_n_s16(0), e), o), pred);
                }
            }
        }
    }
}

/* Depth multiplier > 1 (rare): one channel at a time over the packed tables. */
static void fm_he_dw_scalar(const fm_depthwise_conv_s8_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t dm = p->depth_multiplier, taps = p->filter_dims.h * p->filter_dims.w;
    const int16_t *w = (const int16_t *)(const void *)p->packed_filter;
    const int32_t *aux = (const int32_t *)p->packed_aux;
    const int32_t zp = -p->input_offset;
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        for (int32_t oy = 0; oy < out_h; ++oy) {
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
                for (int32_t oc = 0; oc < out_c; ++oc) {
                    const int32_t *blk = aux + (oc / 8) * FM_HE_DW_AUX;
                    const int32_t lane = (oc % 8) / 2, odd = oc % 2;
                    int32_t acc = blk[odd * 4 + lane];
                    for (int32_t ky = 0; ky < p->filter_dims.h; ++ky) {
                        const int32_t iy = y0 + ky * p->dilation_h;
                        for (int32_t kx = 0; kx < p->filter_dims.w; ++kx) {
                            const int32_t ix = x0 + kx * p->dilation_w;
                            const int32_t x = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w
                                ? input[(((size_t)b * in_h + iy) * in_w + ix) * in_c + oc / dm] : zp;
                            const int32_t t = kx * p->filter_dims.h + ky; /* packed column by column */
                            acc = fm_wrap_add(acc, x * w[((size_t)(oc / 8) * taps + t) * 8 + oc % 8]);
                        }
                    }
                    const int32_t *q = blk + 8 + odd * FM_HE_AUX_BLOCK;
                    acc = fm_mbqm(acc, q[lane], q[4 + lane] + q[8 + lane]);
                    acc += p->output_offset;
                    output[(((size_t)b * out_h + oy) * out_w + ox) * out_c + oc] =
                        (int8_t)fm_clamp_i32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}

int fm_depthwise_conv2d_s8(const fm_depthwise_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    if ((p->packed_layout & ~FM_HE_LAYOUT_NO_LS) != FM_HE_LAYOUT_DW16 || p->packed_filter == NULL
        || p->packed_aux == NULL) {
        return FM_ERR_PARAM; /* not packed for this set */
    }
    const int32_t in_c = p->input_dims.c, out_c = p->output_dims.c;
    if (p->depth_multiplier <= 0 || in_c * p->depth_multiplier != out_c || p->filter_dims.c != out_c) {
        return FM_ERR_PARAM;
    }
    if (p->depth_multiplier != 1) {
        fm_he_dw_scalar(p, input, output);
    } else if (p->dilation_w == 1 && p->filter_dims.h <= FM_HE_DW_MAX_KH) {
        if (scratch == NULL) {
            return FM_ERR_PARAM;
        }
        fm_he_dw_staged(p, input, output, (int8_t *)scratch, !(p->packed_layout & FM_HE_LAYOUT_NO_LS));
    } else {
        fm_he_dw_big(p, input, output);
    }
    return FM_OK;
}
