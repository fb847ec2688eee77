/*
 * CONV_2D int8, per-channel (TFLM reference_integer_ops::ConvPerChannel, bit-exact) for Armv7E-M DSP: two output
 * pixels at a time are widened to int16 into a panel, a 2 output channels x 2 pixels SMLAD micro-kernel runs over
 * every channel pair, then one requantization pass writes the pair of output pixels.
 *
 * Ahead-of-time data (host/formicary/codegen/sets/dsp/gemm.py), depth K = kh*kw*in_c/groups in TFLite order,
 * padded to a multiple of 4 with zero weights, output channels in pairs per group (an odd count padded with a zero
 * channel):
 * - packed_filter, FM_DSP_LAYOUT_CONV_GEMM: per pair K/4 blocks of [channel 0: (k0,k2),(k1,k3)][channel 1: same]
 *   int16 words (pre-extended: fastest, 2 bytes per weight); FM_DSP_LAYOUT_CONV_GEMM8: per pair K/4 blocks of
 *   [channel 0: k0..k3][channel 1: k0..k3] int8 (compact: 1 byte per weight, 4 SXTB16 more per block);
 * - folded_bias = bias + input_offset * sum(weights), per group padded to the pairs (the loop adds no offsets and
 *   padding taps hold the input zero point, whose terms cancel exactly);
 * - packed_aux: per channel {multiplier, k, rs - 1} of fm_dsp_requant_fast (output offset folded into k), or
 *   {multiplier, shift, -1} for shifts it does not cover (fm_mbqm). multiplier/shift of the params are unused.
 *
 * Scratch: the panel, K/4 blocks of [pixel 0: 2 words][pixel 1: 2 words] (int16 activations in SXTB16 order),
 * one int8 im2col column (Kp bytes), the int32 accumulators of 2 pixels x one group's channels.
 * Micro-kernel (int16 layout): per depth block 2 LDM (4 activation words, 4 weight words) and 8 SMLAD for 16 MACs,
 * in Thumb-2 assembly on a DSP core (the compiler neither uses LDM nor frees the 14 registers it needs), unrolled
 * by 4 blocks with a TBB entry for the remainder. Panel fill: a 1x1 / stride 1 / unpadded conv widens input pixels
 * directly; a conv whose rows of taps are whole words (kw*in_c % 4 == 0, dilation_w 1, no groups; KWS's 10x4
 * first layer) widens each row of taps straight from the input and only builds padded rows in the column; other
 * shapes (groups, dilation) go through a full im2col column.
 */
#include "fm_dsp_gemm.h"

FM_INLINE void fill_bytes(int8_t *dst, int8_t v, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        dst[i] = v;
    }
}

FM_INLINE void copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, src += 4, dst += 4) {
        fm_store_u32(dst, fm_load_u32(src));
    }
    for (int32_t i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}

/* Widen K int8 at src to int16 pairs (k0,k2),(k1,k3) per block of 4, into one pixel's slots of the panel. */
static void widen(uint32_t *panel, const int8_t *src, int32_t k)
{
    for (; k >= 4; k -= 4, src += 4, panel += 4) {
        const uint32_t w = fm_load_u32(src);
        panel[0] = fm_sxtb16(w);
        panel[1] = fm_sxtb16_ror8(w);
    }
    if (k > 0) {
        const uint32_t w = fm_dsp_tail_word(src, k);
        panel[0] = fm_sxtb16(w);
        panel[1] = fm_sxtb16_ror8(w);
    }
}

/* Geometry of one output pixel's window. */
typedef struct {
    const int8_t *in_b; /* image of the pixel's batch, at group g's first channel */
    int32_t iy, ix0;    /* top-left input tap (may be outside the image) */
    int32_t lo_b, mid_b, hi_b; /* bytes of a tap row: [0, lo_b) left padding, then mid_b input bytes; hi_b = end */
} window_t;

static window_t window(const fm_conv_s8_params_t *p, const int8_t *input, int32_t pix, int32_t g)
{
    const int32_t in_w = p->input_dims.w, in_c = p->input_dims.c, k_w = p->filter_dims.w, k_c = p->filter_dims.c;
    const int32_t ox = pix % p->output_dims.w, t = pix / p->output_dims.w;
    const int32_t oy = t % p->output_dims.h, b = t / p->output_dims.h;
    window_t win;
    win.in_b = input + (size_t)b * p->input_dims.h * in_w * in_c + (size_t)g * k_c;
    win.iy = oy * p->stride_h - p->pad_h;
    win.ix0 = ox * p->stride_w - p->pad_w;
    const int32_t lo = fm_min_i32(k_w, fm_max_i32(0, -win.ix0));
    const int32_t hi = fm_max_i32(lo, fm_min_i32(k_w, in_w - win.ix0));
    win.lo_b = lo * k_c;
    win.mid_b = (hi - lo) * k_c;
    win.hi_b = hi * k_c;
    return win;
}

/* One row of taps (row = kw*k_c bytes, dilation_w 1, k_c == in_c) as int8 in TFLite order: a pointer into the
 * input when the row lies inside the image, else built in `col` with the input zero point as padding. */
static const int8_t *tap_row(const fm_conv_s8_params_t *p, const window_t *win, int32_t iy, int8_t *col)
{
    const int32_t row = p->filter_dims.w * p->filter_dims.c;
    const int8_t zp = (int8_t)(-p->input_offset);
    if (iy < 0 || iy >= p->input_dims.h) {
        fill_bytes(col, zp, row);
        return col;
    }
    const int8_t *in_row = win->in_b + (size_t)iy * p->input_dims.w * p->input_dims.c + win->ix0 * p->input_dims.c;
    if (win->mid_b == row) {
        return in_row;
    }
    fill_bytes(col, zp, win->lo_b);
    copy_bytes(col + win->lo_b, in_row + win->lo_b, win->mid_b);
    fill_bytes(col + win->hi_b, zp, row - win->hi_b);
    return col;
}

/* The depth-K column of output pixel `pix` (over n, oy, ox), group g, as int8 in TFLite tap order (ky, kx,
 * channel), padding taps at the input zero point: any dilation and groups. */
static __attribute__((noinline)) const int8_t *im2col(const fm_conv_s8_params_t *p, const int8_t *input,
                                                      int32_t pix, int32_t g, int8_t *col)
{
    const int32_t k_w = p->filter_dims.w, k_c = p->filter_dims.c, in_c = p->input_dims.c;
    const window_t win = window(p, input, pix, g);
    const int8_t zp = (int8_t)(-p->input_offset);
    int8_t *dst = col;
    for (int32_t ky = 0, iy = win.iy; ky < p->filter_dims.h; ++ky, dst += k_w * k_c, iy += p->dilation_h) {
        if (iy < 0 || iy >= p->input_dims.h) {
            fill_bytes(dst, zp, k_w * k_c);
            continue;
        }
        const int8_t *in_row = win.in_b + (size_t)iy * p->input_dims.w * in_c;
        for (int32_t kx = 0; kx < k_w; ++kx) {
            const int32_t ix = win.ix0 + kx * p->dilation_w;
            if (ix < 0 || ix >= p->input_dims.w) {
                fill_bytes(dst + kx * k_c, zp, k_c);
            } else {
                copy_bytes(dst + kx * k_c, in_row + (size_t)ix * in_c, k_c);
            }
        }
    }
    return col;
}

/* Pixel pix's slots (j = 0, 1) of the panel for group g. */
static void fill_panel(const fm_conv_s8_params_t *p, const int8_t *input, int32_t pix, int32_t g, int32_t j,
                       int32_t depth, uint32_t *panel, int8_t *col, int mode)
{
    if (mode == 0) { /* pointwise */
        widen(panel + 2 * j, input + (size_t)pix * p->input_dims.c, depth);
    } else if (mode == 1) { /* rows of taps are whole words: row by row, straight from the input */
        const window_t win = window(p, input, pix, g);
        const int32_t row = p->filter_dims.w * p->filter_dims.c, in_h = p->input_dims.h;
        const int32_t step = p->dilation_h * p->input_dims.w * p->input_dims.c;
        const int inside_w = win.mid_b == row;
        /* offset of the row's first tap from in_b; only dereferenced for rows inside the image */
        int32_t off = win.iy * p->input_dims.w * p->input_dims.c + win.ix0 * p->input_dims.c;
        uint32_t *dst = panel + 2 * j;
        for (int32_t ky = 0, iy = win.iy; ky < p->filter_dims.h; ++ky, iy += p->dilation_h, off += step) {
            const int8_t *src = inside_w && (uint32_t)iy < (uint32_t)in_h ? win.in_b + off
                                                                           : tap_row(p, &win, iy, col);
            for (int32_t k = 0; k < row; k += 4, dst += 4) {
                const uint32_t w = fm_load_u32(src + k);
                dst[0] = fm_sxtb16(w);
                dst[1] = fm_sxtb16_ror8(w);
            }
        }
    } else {
        widen(panel + 2 * j, im2col(p, input, pix, g, col), depth);
    }
}

/* One depth block of 4 for 2 channels x 2 pixels (w: packed weights, x: the panel). */
#define GEMM_2X2_BLOCK(LOAD_W)                                  \
    do {                                                        \
        uint32_t w0a, w0b, w1a, w1b, x0a, x0b, x1a, x1b;        \
        LOAD_W;                                                 \
        fm_read_u32x2(&x, &x0a, &x0b);                          \
        fm_read_u32x2(&x, &x1a, &x1b);                          \
        a00 = fm_smlad(x0a, w0a, a00);                          \
        a00 = fm_smlad(x0b, w0b, a00);                          \
        a01 = fm_smlad(x1a, w0a, a01);                          \
        a01 = fm_smlad(x1b, w0b, a01);                          \
        a10 = fm_smlad(x0a, w1a, a10);                          \
        a10 = fm_smlad(x0b, w1b, a10);                          \
        a11 = fm_smlad(x1a, w1a, a11);                          \
        a11 = fm_smlad(x1b, w1b, a11);                          \
    } while (0)

/* int16 weights: two words per channel. */
#define LOAD_W16                                                \
    do {                                                        \
        fm_read_u32x2(&w, &w0a, &w0b);                          \
        fm_read_u32x2(&w, &w1a, &w1b);                          \
    } while (0)

/* int8 weights: one word per channel, widened here. */
#define LOAD_W8                                                 \
    do {                                                        \
        uint32_t r0, r1;                                        \
        fm_read_u32x2(&w, &r0, &r1);                            \
        w0a = fm_sxtb16(r0);                                    \
        w0b = fm_sxtb16_ror8(r0);                               \
        w1a = fm_sxtb16(r1);                                    \
        w1b = fm_sxtb16_ror8(r1);                               \
    } while (0)

/*
 * acc[4*pr + {0, 1, 2, 3}] = {channel 0 pixel 0, channel 0 pixel 1, channel 1 pixel 0, channel 1 pixel 1} of
 * channel pair pr < pairs, from bias[2*pr + {0, 1}] and `blocks` depth blocks of the pair's weights w (int16
 * layout) against the panel x.
 */
#if FM_HAVE_DSP && defined(__thumb2__)
void fm_dsp_gemm2x2_w16(const uint32_t *w, const uint32_t *x, int32_t blocks, int32_t pairs, const int32_t *bias,
                        int32_t *acc);
/* r0 = w, r1 = x, r2-r5 activations, r6-r9 weights, r10-r12/lr accumulators; loop state on the stack:
 * [sp] panel, [sp+4] panel end, [sp+8] pairs left, [sp+12] blocks % 4, [sp+16] bias, [sp+20] acc. */
#define FM_UNUSED __attribute__((unused))
__attribute__((naked, noinline)) void fm_dsp_gemm2x2_w16(FM_UNUSED const uint32_t *w, FM_UNUSED const uint32_t *x,
                                                         FM_UNUSED int32_t blocks, FM_UNUSED int32_t pairs,
                                                         FM_UNUSED const int32_t *bias, FM_UNUSED int32_t *acc)
{
    __asm__ volatile(
        "push   {r4-r11, lr}\n\t"
        "sub    sp, sp, #24\n\t"
        "str    r1, [sp]\n\t"
        "add    r4, r1, r2, lsl #4\n\t"
        "str    r4, [sp, #4]\n\t"
        "str    r3, [sp, #8]\n\t"
        "and    r4, r2, #3\n\t"
        "str    r4, [sp, #12]\n\t"
        "ldr    r4, [sp, #60]\n\t"
        "str    r4, [sp, #16]\n\t"
        "ldr    r4, [sp, #64]\n\t"
        "str    r4, [sp, #20]\n\t"
        "1:\n\t" /* channel pair */
        "ldr    r2, [sp, #16]\n\t"
        "ldrd   r10, r12, [r2], #8\n\t"
        "str    r2, [sp, #16]\n\t"
        "mov    r11, r10\n\t"
        "mov    lr, r12\n\t"
        "ldr    r1, [sp]\n\t"
        "ldr    r2, [sp, #12]\n\t"
        "tbb    [pc, r2]\n\t"
        "2:\n\t"
        ".byte  (3f - 2b) / 2, (6f - 2b) / 2, (5f - 2b) / 2, (4f - 2b) / 2\n\t"
#define FM_G2X2_BLOCK                                  \
        "ldmia  r1!, {r2-r5}\n\t"                      \
        "ldmia  r0!, {r6-r9}\n\t"                      \
        "smlad  r10, r2, r6, r10\n\t"                  \
        "smlad  r10, r3, r7, r10\n\t"                  \
        "smlad  r11, r4, r6, r11\n\t"                  \
        "smlad  r11, r5, r7, r11\n\t"                  \
        "smlad  r12, r2, r8, r12\n\t"                  \
        "smlad  r12, r3, r9, r12\n\t"                  \
        "smlad  lr, r4, r8, lr\n\t"                    \
        "smlad  lr, r5, r9, lr\n\t"
        "3:\n\t" FM_G2X2_BLOCK
        "4:\n\t" FM_G2X2_BLOCK
        "5:\n\t" FM_G2X2_BLOCK
        "6:\n\t" FM_G2X2_BLOCK
#undef FM_G2X2_BLOCK
        "ldr    r2, [sp, #4]\n\t"
        "cmp    r1, r2\n\t"
        "bne    3b\n\t"
        "ldr    r2, [sp, #20]\n\t"
        "stmia  r2!, {r10, r11, r12, lr}\n\t"
        "str    r2, [sp, #20]\n\t"
        "ldr    r2, [sp, #8]\n\t"
        "subs   r2, r2, #1\n\t"
        "str    r2, [sp, #8]\n\t"
        "bne    1b\n\t"
        "add    sp, sp, #24\n\t"
        "pop    {r4-r11, pc}\n\t");
}
#define gemm2x2_w16 fm_dsp_gemm2x2_w16
#else
static void gemm2x2_w16(const uint32_t *w, const uint32_t *x0, int32_t blocks, int32_t pairs, const int32_t *bias,
                        int32_t *acc)
{
    for (int32_t pr = 0; pr < pairs; ++pr, bias += 2, acc += 4) {
        int32_t a00 = bias[0], a01 = a00, a10 = bias[1], a11 = a10;
        const uint32_t *x = x0;
        for (int32_t n = 0; n < blocks; ++n) {
            GEMM_2X2_BLOCK(LOAD_W16);
        }
        acc[0] = a00;
        acc[1] = a01;
        acc[2] = a10;
        acc[3] = a11;
    }
}
#endif

/* The same for the compact int8 layout (C: the widening in the loop leaves the compiler enough registers). */
static __attribute__((noinline)) void gemm2x2_w8(const uint32_t *w, const uint32_t *x0, int32_t blocks,
                                                 int32_t pairs, const int32_t *bias, int32_t *acc)
{
    for (int32_t pr = 0; pr < pairs; ++pr, bias += 2, acc += 4) {
        int32_t a00 = bias[0], a01 = a00, a10 = bias[1], a11 = a10;
        const uint32_t *x = x0;
        for (int32_t n = blocks >> 1; n > 0; --n) {
            GEMM_2X2_BLOCK(LOAD_W8);
            GEMM_2X2_BLOCK(LOAD_W8);
        }
        if (blocks & 1) {
            GEMM_2X2_BLOCK(LOAD_W8);
        }
        acc[0] = a00;
        acc[1] = a01;
        acc[2] = a10;
        acc[3] = a11;
    }
}

/* Requantize n channels of two pixels: acc[2i], acc[2i+1] -> out0[i], out1[i], with the packer's table rq
 * (3 words per channel, see the top). out1[i] is written first, so an odd last pixel passes out1 == out0 and its
 * real result wins. full: the activation range is all of int8, the clamp is one SSAT. */
FM_INLINE void requant2_body(const int32_t *acc, int8_t *out0, int8_t *out1, const int32_t *rq, int32_t n,
                             const fm_dsp_out_t *o, int full)
{
    for (int32_t i = 0; i < n; ++i, acc += 2, rq += 3) {
        const int32_t m = rq[0], rs1 = rq[2];
        int32_t v0, v1;
#if !FM_SINGLE_ROUNDING
        if (rs1 >= 0) {
            const uint32_t k = (uint32_t)rq[1];
            v1 = fm_dsp_requant_fast(acc[1], m, k, rs1);
            v0 = fm_dsp_requant_fast(acc[0], m, k, rs1);
        } else
#endif
        {
            v1 = fm_dsp_mbqm_slow(acc[1], m, rq[1]) + o->offset;
            v0 = fm_dsp_mbqm_slow(acc[0], m, rq[1]) + o->offset;
        }
        out1[i] = (int8_t)(full ? fm_dsp_sat8(v1) : fm_dsp_clamp(v1, o));
        out0[i] = (int8_t)(full ? fm_dsp_sat8(v0) : fm_dsp_clamp(v0, o));
    }
}

static __attribute__((noinline)) void requant2(const int32_t *acc, int8_t *out0, int8_t *out1, const int32_t *rq,
                                               int32_t n, const fm_dsp_out_t *os)
{
    const fm_dsp_out_t o = *os;
    if (o.lo == -128 && o.hi == 127) {
        requant2_body(acc, out0, out1, rq, n, &o, 1);
    } else {
        requant2_body(acc, out0, out1, rq, n, &o, 0);
    }
}

int fm_conv2d_s8(const fm_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    const int wide = p->packed_layout == FM_DSP_LAYOUT_CONV_GEMM;
    if ((!wide && p->packed_layout != FM_DSP_LAYOUT_CONV_GEMM8) || p->packed_filter == NULL ||
        p->folded_bias == NULL || p->packed_aux == NULL || scratch == NULL) {
        return FM_ERR_PARAM;
    }
    const int32_t in_c = p->input_dims.c, out_c = p->output_dims.c;
    const int32_t k_c = p->filter_dims.c;
    if (k_c <= 0 || in_c % k_c != 0) {
        return FM_ERR_PARAM;
    }
    const int32_t groups = in_c / k_c;
    if (out_c % groups != 0) {
        return FM_ERR_PARAM;
    }
    const int32_t per_group = out_c / groups;
    const int32_t pairs = (per_group + 1) / 2;
    const int32_t depth = p->filter_dims.h * p->filter_dims.w * k_c;
    const int32_t blocks = (depth + 3) / 4;
    const int32_t pixels = p->output_dims.n * p->output_dims.h * p->output_dims.w;
    const int32_t row = p->filter_dims.w * k_c;
    int mode = 2;
    if (p->filter_dims.h == 1 && p->filter_dims.w == 1 && groups == 1 && p->stride_h == 1 && p->stride_w == 1 &&
        p->pad_h == 0 && p->pad_w == 0) {
        mode = 0;
    } else if (groups == 1 && p->dilation_w == 1 && row % 4 == 0) {
        mode = 1;
    }
    uint32_t *panel = (uint32_t *)scratch;
    int8_t *col = (int8_t *)(panel + 4 * blocks);
    int32_t *accs = (int32_t *)(void *)(col + 4 * blocks);
    /* The packed weights are an int32 array (4-aligned) reached through the int8 pointer of the params. */
    const uint32_t *weights = (const uint32_t *)(const void *)p->packed_filter;
    const size_t group_words = (size_t)pairs * blocks * (wide ? 4 : 2);
    const fm_dsp_out_t os = fm_dsp_out(p->output_offset, p->act_min, p->act_max);
    const int32_t *rq = (const int32_t *)p->packed_aux;

    for (int32_t pix = 0; pix < pixels; pix += 2) {
        const int32_t npix = pixels - pix >= 2 ? 2 : 1;
        for (int32_t g = 0; g < groups; ++g) {
            /* an odd last pixel fills both slots with itself; the second result is not stored */
            fill_panel(p, input, pix, g, 0, depth, panel, col, mode);
            fill_panel(p, input, pix + npix - 1, g, 1, depth, panel, col, mode);
            const int32_t *bias = p->folded_bias + (size_t)g * pairs * 2;
            if (wide) {
                gemm2x2_w16(weights + g * group_words, panel, blocks, pairs, bias, accs);
            } else {
                gemm2x2_w8(weights + g * group_words, panel, blocks, pairs, bias, accs);
            }
            const int32_t oc0 = g * per_group;
            int8_t *out0 = output + (size_t)pix * out_c + oc0;
            requant2(accs, out0, npix > 1 ? out0 + out_c : out0, rq + 3 * oc0, per_group, &os);
        }
    }
    return FM_OK;
}
