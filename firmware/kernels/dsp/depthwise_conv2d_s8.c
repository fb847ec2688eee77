/*
 * DEPTHWISE_CONV_2D int8, per-channel, for Armv7E-M DSP: bit-exact with tflite::reference_integer_ops::
 * DepthwiseConvPerChannel.
 *
 * Layout 1 (depth multiplier 1), packed ahead of time by host/formicary/codegen/sets/dsp/depthwise.py:
 * - packed_filter: the int8 weights [tap][C4], C4 the channel count rounded up to 4 with zero weights, so that a
 *   32-bit load of 4 channels' weights never reads past the array;
 * - folded_bias: bias + input_offset * sum of the channel's weights, so the loop adds no input offset and padding
 *   taps must read the input zero point;
 * - packed_layout: 1 | (output rows per band << 8).
 * The kernel works a group of 4 channels at a time over a band of output rows (the whole image when its slab fits
 * the packer's budget): it first writes the band's input rows of the 4 channels, extended to int16 and padded with
 * the zero point at every border, into scratch, so that every output, at the border or not, costs the same and the
 * extension is paid once per input pixel instead of once per tap.
 * - 3x3 windows with stride and dilation 1 along x (and requantization rows): one int16 plane per channel; a
 *   horizontal pair of taps is one halfword-pair load, so SMLAD does 2 MACs, and two neighbouring outputs share
 *   their loads (21 instructions for 18 MACs). The accumulators of a block of at most DW_ACC outputs go to the
 *   stack and a second pass requantizes them with the channel's constants in registers (SMLAL + 5, or + SSAT).
 * - any other window, stride or dilation: the 4 channels interleaved as the weights ([c0|c2], [c1|c3] per pixel);
 *   per tap two input words, one word of 4 weights extended by SXTB16 / SXTB16-ROR8, four SMLABB/SMLATT; 4 outputs
 *   saturated and packed into one word, clamped lane-wise (SSUB8/SEL).
 * Requantization: dw_requant (one SMLAL) with a row per channel derived from multiplier/shift once per channel and
 * band, or fm_dsp_mbqm for channels outside its range.
 * The last group of an odd channel count fills only its channels (zero weights in the missing lanes) and stores
 * only them.
 *
 * Layout 2 (other depth multipliers): the TFLite filter [kh, kw, out_c] in packed_filter and folded_bias; a plain
 * loop that reads the zero point at padding taps.
 */
#include "fm_kernels_common.h"
#include "fm_acle.h"
#include "fm_dsp_requant.h"

#define DW_LAYOUT_GROUPS4 1
#define DW_LAYOUT_PLAIN 2

/* MultiplyByQuantizedMultiplier(x, m, -rs) + output offset for 2 <= rs <= 24 from a channel's row {m, H, rs - 1}
 * (dw_row): both roundings in one 64-bit sum, floor((x*m + 2^30 + 2^(30+rs) - [t<0] 2^31) / 2^(31+rs)), where
 * t < 0 (the doubling high product is negative) exactly when x < 0 for the multipliers TFLM makes (0 or >= 2^30).
 * The start value's low word is 2^30, or 2^30 - 2^31 = 0xC0000000 with a borrow of 1 from the high word
 * H = 2^(rs-2) + output_offset * 2^(rs-1) when x < 0; the offset term comes out of the final arithmetic shift as
 * the added output offset exactly. SMLAL and five single-cycle instructions. */
FM_INLINE int32_t dw_requant(int32_t x, const int32_t *row)
{
    const uint32_t lo = ((uint32_t)x & 0x80000000u) | 0x40000000u;
    const int32_t hi = row[1] + (x >> 31);
    uint64_t sum = ((uint64_t)(uint32_t)hi << 32) | lo;
    sum += (uint64_t)((int64_t)x * row[0]);
    return (int32_t)(uint32_t)(sum >> 32) >> row[2];
}

/* The portable output stage of channel oc (requantize, add the output offset), for what dw_requant does not cover:
 * one out-of-line copy instead of one per call site. */
__attribute__((noinline)) static int32_t dw_requant_any(const fm_depthwise_conv_s8_params_t *p, int32_t acc,
                                                        int32_t oc)
{
    return fm_dsp_mbqm(acc, p->multiplier[oc], p->shift[oc]) + p->output_offset;
}

/* Channel oc's row {m, H, rs - 1} for dw_requant; 0 when its multiplier or shift is outside that form (the kernel
 * then uses fm_dsp_mbqm). */
static int dw_row(const fm_depthwise_conv_s8_params_t *p, int32_t oc, int32_t row[3])
{
    const int32_t m = p->multiplier[oc], rs = -p->shift[oc];
    if (rs < 2 || rs > 24 || (m != 0 && m < (1 << 30))) {
        row[0] = row[1] = row[2] = 0;
        return 0;
    }
    row[0] = m;
    row[1] = (1 << (rs - 2)) + p->output_offset * (1 << (rs - 1));
    row[2] = rs - 1;
    return 1;
}

/* Four channels' accumulators += the tap whose int16 inputs are at x ([c0|c2], [c1|c3]) and int8 weights at w. */
#define DW_TAP(x, w)                                                    \
    do {                                                                \
        const uint32_t x02_ = (x)[0], x13_ = (x)[1];                    \
        const uint32_t w_ = fm_load_u32(w);                             \
        const uint32_t w02_ = fm_sxtb16(w_), w13_ = fm_sxtb16_ror8(w_); \
        a0 = fm_smlabb(x02_, w02_, a0);                                 \
        a2 = fm_smlatt(x02_, w02_, a2);                                 \
        a1 = fm_smlabb(x13_, w13_, a1);                                 \
        a3 = fm_smlatt(x13_, w13_, a3);                                 \
    } while (0)

/* A band's input rows of channels [c, c + n) into the slab: 2 words per pixel, the zero point outside. */
static void dw_fill_slab(uint32_t *slab, const int8_t *in_b, int32_t iy0, int32_t rows, int32_t ix0, int32_t cols,
                         int32_t in_h, int32_t in_w, int32_t ch, int32_t c, int32_t n, uint32_t zp2)
{
    const int32_t x_start = fm_clamp_i32(-ix0, 0, cols), x_end = fm_clamp_i32(in_w - ix0, x_start, cols);
    for (int32_t r = 0; r < rows; ++r) {
        const int32_t iy = iy0 + r;
        uint32_t *dst = slab + (size_t)r * cols * 2;
        if (iy < 0 || iy >= in_h) {
            for (int32_t x = 0; x < 2 * cols; ++x) {
                dst[x] = zp2;
            }
            continue;
        }
        int32_t x = 0;
        for (; x < x_start; ++x) {
            dst[2 * x] = zp2;
            dst[2 * x + 1] = zp2;
        }
        const int8_t *src = in_b + ((size_t)iy * in_w + (ix0 + x)) * ch + c;
        if (n == 4) {
            for (; x < x_end; ++x, src += ch) {
                const uint32_t v = fm_load_u32(src);
                dst[2 * x] = fm_sxtb16(v);
                dst[2 * x + 1] = fm_sxtb16_ror8(v);
            }
        } else {
            for (; x < x_end; ++x, src += ch) {
                uint32_t v = 0;
                for (int32_t j = 0; j < n; ++j) {
                    v |= (uint32_t)(uint8_t)src[j] << (8 * j);
                }
                dst[2 * x] = fm_sxtb16(v);
                dst[2 * x + 1] = fm_sxtb16_ror8(v);
            }
        }
        for (; x < cols; ++x) {
            dst[2 * x] = zp2;
            dst[2 * x + 1] = zp2;
        }
    }
}

/* 4 outputs saturated to int8, packed into a word and clamped lane-wise to the activation range [lo4, hi4]. */
FM_INLINE uint32_t dw_pack4(int32_t a0, int32_t a1, int32_t a2, int32_t a3, uint32_t lo4, uint32_t hi4)
{
    const uint32_t h02 = fm_pkhbt16((uint32_t)fm_ssat8(a0), (uint32_t)fm_ssat8(a2));
    const uint32_t h13 = fm_pkhbt16((uint32_t)fm_ssat8(a1), (uint32_t)fm_ssat8(a3));
    const uint32_t v = (h02 & 0x00FF00FFu) | ((h13 & 0x00FF00FFu) << 8);
    return fm_min_s8x4(fm_max_s8x4(v, lo4), hi4);
}

/* The zero point in the cells of 4 int16 planes (`pitch` values per row) that fall outside the image: the same
 * cells for every group of channels, so they are written once per band. */
static void dw_pad_planes(int16_t *planes, int32_t plane, int32_t iy0, int32_t rows, int32_t ix0, int32_t pitch,
                          int32_t in_h, int32_t in_w, int32_t zp)
{
    const int32_t x_start = fm_clamp_i32(-ix0, 0, pitch), x_end = fm_clamp_i32(in_w - ix0, x_start, pitch);
    for (int32_t j = 0; j < 4; ++j) {
        for (int32_t r = 0; r < rows; ++r) {
            int16_t *d = planes + (size_t)j * plane + (size_t)r * pitch;
            const int inside = iy0 + r >= 0 && iy0 + r < in_h;
            /* the row's outside runs, not a test per cell (GCC made that 12 instructions a cell on Cortex-M7) */
            const int32_t a = inside ? x_start : pitch, e = inside ? x_end : pitch;
            for (int32_t x = 0; x < a; ++x) {
                d[x] = (int16_t)zp;
            }
            for (int32_t x = e; x < pitch; ++x) {
                d[x] = (int16_t)zp;
            }
        }
    }
}

/* The inside cells of a band's input rows of channels [c, c + n) into n int16 planes, one per channel. */
static void dw_fill_planes(int16_t *planes, int32_t plane, const int8_t *in_b, int32_t iy0, int32_t rows, int32_t ix0,
                           int32_t pitch, int32_t in_h, int32_t in_w, int32_t ch, int32_t c, int32_t n)
{
    const int32_t x_start = fm_clamp_i32(-ix0, 0, pitch), x_end = fm_clamp_i32(in_w - ix0, x_start, pitch);
    const int32_t r_start = fm_clamp_i32(-iy0, 0, rows), r_end = fm_clamp_i32(in_h - iy0, r_start, rows);
    const int32_t count = x_end - x_start;
    for (int32_t r = r_start; r < r_end; ++r) {
        int16_t *dst = planes + (size_t)r * pitch + x_start;
        const int8_t *src = in_b + ((size_t)(iy0 + r) * in_w + (ix0 + x_start)) * ch + c;
        if (n == 4) {
            for (int32_t x = 0; x < count; ++x, src += ch) {
                const uint32_t v = fm_load_u32(src);
                const uint32_t e = fm_sxtb16(v), o = fm_sxtb16_ror8(v);
                dst[x] = (int16_t)e;
                dst[x + plane] = (int16_t)o;
                dst[x + 2 * plane] = (int16_t)(e >> 16);
                dst[x + 3 * plane] = (int16_t)(o >> 16);
            }
        } else {
            for (int32_t x = 0; x < count; ++x, src += ch) {
                for (int32_t j = 0; j < n; ++j) {
                    dst[x + j * plane] = src[j];
                }
            }
        }
    }
}

#define DW_ACC 128 /* accumulators of one channel kept on the stack between the MAC and the requantization pass */

#if FM_HAVE_DSP && defined(__thumb2__)
/* The same on the board, in Thumb-2: GCC 12 schedules the C loop differently per -mcpu and spills on Cortex-M7
 * (35 instructions a pair instead of 30), so the loop is written out: three row pointers advanced by post-indexed
 * loads, one temporary, 24 instructions per pair of outputs (9 loads, 12 MACs, STRD, SUBS, BGE).
 * Registers: r0-r2 window rows, r3 input, r4-r8 w[0..4], r9 bias, r10/r11 the pair, r12 acc, lr pairs left.
 * Stack (after the 56 bytes pushed/reserved): [sp] row bytes, [sp+4] rstep bytes, [sp+8] rows left, [sp+12] row
 * start, then the arguments width, w, bias, acc at [sp+56..68]. */
#define DW_ARG __attribute__((unused)) /* read by the asm from r0-r3 and the stack */
__attribute__((naked, noinline)) static void dw_plane_macs(DW_ARG const int16_t *r, DW_ARG int32_t row,
                                                           DW_ARG int32_t rstep, DW_ARG int32_t rows,
                                                           DW_ARG int32_t width, DW_ARG const uint32_t *w,
                                                           DW_ARG int32_t bias, DW_ARG int32_t *acc)
{
    __asm__ volatile(
        "push   {r4-r11, lr}\n\t"
        "sub    sp, sp, #20\n\t"
        "cmp    r3, #0\n\t"
        "ble    9f\n\t"
        "lsls   r1, r1, #1\n\t"
        "lsls   r2, r2, #1\n\t"
        "str    r1, [sp]\n\t"
        "str    r2, [sp, #4]\n\t"
        "str    r3, [sp, #8]\n\t"
        "ldr    r12, [sp, #60]\n\t"
        "ldm    r12, {r4-r8}\n\t"
        "ldr    r9, [sp, #64]\n\t"
        "ldr    r12, [sp, #68]\n\t"
        "1:\n\t" /* one output row */
        "str    r0, [sp, #12]\n\t"
        "ldr    r2, [sp, #4]\n\t"
        "add    r1, r0, r2\n\t"
        "add    r2, r1, r2\n\t"
        "ldr    lr, [sp, #56]\n\t"
        "subs   lr, lr, #2\n\t"
        "blt    3f\n\t"
        "2:\n\t" /* two outputs: a (r10) at x0, b (r11) at x1 */
        "ldr    r3, [r0, #4]\n\t"
        "smlabb r10, r3, r7, r9\n\t"
        "smlatb r11, r3, r7, r9\n\t"
        "ldr    r3, [r0, #2]\n\t"
        "smlad  r11, r3, r4, r11\n\t"
        "ldr    r3, [r0], #4\n\t"
        "smlad  r10, r3, r4, r10\n\t"
        "ldr    r3, [r1, #4]\n\t"
        "smlabt r10, r3, r7, r10\n\t"
        "smlatt r11, r3, r7, r11\n\t"
        "ldr    r3, [r1, #2]\n\t"
        "smlad  r11, r3, r5, r11\n\t"
        "ldr    r3, [r1], #4\n\t"
        "smlad  r10, r3, r5, r10\n\t"
        "ldr    r3, [r2, #4]\n\t"
        "smlabb r10, r3, r8, r10\n\t"
        "smlatb r11, r3, r8, r11\n\t"
        "ldr    r3, [r2, #2]\n\t"
        "smlad  r11, r3, r6, r11\n\t"
        "ldr    r3, [r2], #4\n\t"
        "smlad  r10, r3, r6, r10\n\t"
        "strd   r10, r11, [r12], #8\n\t"
        "subs   lr, lr, #2\n\t"
        "bge    2b\n\t"
        "3:\n\t" /* lr == -1: odd width, the last output alone */
        "cmn    lr, #1\n\t"
        "bne    4f\n\t"
        "ldr    r3, [r0]\n\t"
        "smlad  r10, r3, r4, r9\n\t"
        "ldr    r3, [r0, #4]\n\t"
        "smlabb r10, r3, r7, r10\n\t"
        "ldr    r3, [r1]\n\t"
        "smlad  r10, r3, r5, r10\n\t"
        "ldr    r3, [r1, #4]\n\t"
        "smlabt r10, r3, r7, r10\n\t"
        "ldr    r3, [r2]\n\t"
        "smlad  r10, r3, r6, r10\n\t"
        "ldr    r3, [r2, #4]\n\t"
        "smlabb r10, r3, r8, r10\n\t"
        "str    r10, [r12], #4\n\t"
        "4:\n\t"
        "ldr    r0, [sp, #12]\n\t"
        "ldr    r3, [sp]\n\t"
        "add    r0, r0, r3\n\t"
        "ldr    r3, [sp, #8]\n\t"
        "subs   r3, r3, #1\n\t"
        "str    r3, [sp, #8]\n\t"
        "bgt    1b\n\t"
        "9:\n\t"
        "add    sp, sp, #20\n\t"
        "pop    {r4-r11, pc}\n\t");
}
#undef DW_ARG
#else
/* The accumulators of `rows` x `width` outputs of one channel (row-major into acc), 3x3 window, stride and dilation
 * 1 along x, from the channel's int16 plane at `r` (`row` values between output rows, `rstep` between window rows).
 * Horizontal tap pairs are adjacent halfwords, so SMLAD does two taps at once, and two neighbouring outputs share
 * their loads: per window row [x0|x1] and [x1|x2] by SMLAD with [w0|w1], [x2|x3] by SMLA<x>B/T with w2, 21
 * instructions for 18 MACs. w: [w00|w01], [w10|w11], [w20|w21], [w02|w12], [w22|0]. */
static void dw_plane_macs(const int16_t *r, int32_t row, int32_t rstep, int32_t rows,
                                                    int32_t width, const uint32_t *w, int32_t bias, int32_t *acc)
{
    const uint32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4];
    for (; rows > 0; --rows, r += row) {
        const int16_t *q0 = r;
        int32_t n = width;
        for (; n > 1; n -= 2, q0 += 2, acc += 2) {
            int32_t a = bias, b = bias;
            const int16_t *q = q0;
            uint32_t x01 = fm_load_u32(q), x12 = fm_load_u32(q + 1), x23 = fm_load_u32(q + 2);
            a = fm_smlad(x01, w0, a);
            b = fm_smlad(x12, w0, b);
            a = fm_smlabb(x23, w3, a);
            b = fm_smlatb(x23, w3, b);
            q += rstep;
            x01 = fm_load_u32(q);
            x12 = fm_load_u32(q + 1);
            x23 = fm_load_u32(q + 2);
            a = fm_smlad(x01, w1, a);
            b = fm_smlad(x12, w1, b);
            a = fm_smlabt(x23, w3, a);
            b = fm_smlatt(x23, w3, b);
            q += rstep;
            x01 = fm_load_u32(q);
            x12 = fm_load_u32(q + 1);
            x23 = fm_load_u32(q + 2);
            a = fm_smlad(x01, w2, a);
            b = fm_smlad(x12, w2, b);
            a = fm_smlabb(x23, w4, a);
            b = fm_smlatb(x23, w4, b);
            acc[0] = a;
            acc[1] = b;
        }
        if (n) { /* odd width: the last output alone */
            const int16_t *q = q0;
            int32_t a = fm_smlad(fm_load_u32(q), w0, bias);
            a = fm_smlabb(fm_load_u32(q + 2), w3, a);
            q += rstep;
            a = fm_smlad(fm_load_u32(q), w1, a);
            a = fm_smlabt(fm_load_u32(q + 2), w3, a);
            q += rstep;
            a = fm_smlad(fm_load_u32(q), w2, a);
            *acc++ = fm_smlabb(fm_load_u32(q + 2), w4, a);
        }
    }
}
#endif

/* `n` accumulators of one channel requantized (its row {m, H, rs - 1}, as dw_requant), clamped, stored `step` bytes
 * apart; an activation spanning int8 is one SSAT. */
__attribute__((noinline)) static void dw_plane_store(const int32_t *acc, int32_t n, const int32_t *rq, int8_t *out,
                                                     int32_t step, int32_t lo, int32_t hi)
{
    const int32_t m = rq[0], h = rq[1], rs1 = rq[2];
#define DW_RQ(x) \
    ((int32_t)(uint32_t)(((((uint64_t)(uint32_t)(h + ((x) >> 31)) << 32) | (((uint32_t)(x) & 0x80000000u) | 0x40000000u)) + \
                          (uint64_t)((int64_t)(x) * m)) >> 32) >> rs1)
    if (lo == INT8_MIN && hi == INT8_MAX) {
        for (; n > 0; --n, ++acc, out += step) {
            const int32_t x = *acc;
            *out = (int8_t)fm_ssat8(DW_RQ(x));
        }
        return;
    }
    for (; n > 0; --n, ++acc, out += step) {
        const int32_t x = *acc;
        int32_t v = DW_RQ(x);
        v = v > lo ? v : lo;
        v = v < hi ? v : hi;
        *out = (int8_t)v;
    }
#undef DW_RQ
}

/* The same with the portable requantization, for a channel dw_row does not cover. */
static void dw_plane_store_any(const fm_depthwise_conv_s8_params_t *p, int32_t oc, const int32_t *acc, int32_t n,
                               int8_t *out, int32_t step)
{
    for (; n > 0; --n, ++acc, out += step) {
        const int32_t v = dw_requant_any(p, *acc, oc);
        *out = (int8_t)fm_clamp_i32(v, p->act_min, p->act_max);
    }
}

/* A channel's 3x3 weights (tap k at wc[k * c4]) as dw_plane_macs wants them. */
static void dw_plane_weights(const int8_t *wc, int32_t c4, uint32_t w[5])
{
    int32_t t[9];
    for (int32_t k = 0; k < 9; ++k) {
        t[k] = wc[k * c4];
    }
    w[0] = fm_pack16(t[0], t[1]);
    w[1] = fm_pack16(t[3], t[4]);
    w[2] = fm_pack16(t[6], t[7]);
    w[3] = fm_pack16(t[2], t[5]);
    w[4] = fm_pack16(t[8], 0);
}

/* Depth multiplier != 1: TFLite filter order, folded bias, zero point at padding taps. */
static int dw_plain(const fm_depthwise_conv_s8_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w, dm = p->depth_multiplier;
    const int32_t zp = -p->input_offset;
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            for (int32_t ox = 0; ox < out_w; ++ox) {
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                for (int32_t oc = 0; oc < out_c; ++oc) {
                    const int32_t ic = oc / dm;
                    int32_t acc = p->folded_bias[oc];
                    for (int32_t ky = 0; ky < k_h; ++ky) {
                        const int32_t iy = oy * p->stride_h - p->pad_h + p->dilation_h * ky;
                        for (int32_t kx = 0; kx < k_w; ++kx) {
                            const int32_t ix = ox * p->stride_w - p->pad_w + p->dilation_w * kx;
                            const int32_t x = (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w)
                                                  ? zp : in_b[((size_t)iy * in_w + ix) * in_c + ic];
                            acc += x * p->packed_filter[(ky * k_w + kx) * out_c + oc];
                        }
                    }
                    acc = dw_requant_any(p, acc, oc);
                    out_px[oc] = (int8_t)fm_clamp_i32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
    return FM_OK;
}

int fm_depthwise_conv2d_s8(const fm_depthwise_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, ch = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w;
    if (p->packed_filter == NULL || p->folded_bias == NULL || p->depth_multiplier <= 0 ||
        ch * p->depth_multiplier != p->output_dims.c || p->filter_dims.c != p->output_dims.c) {
        return FM_ERR_PARAM; /* not packed by this set's packer */
    }
    if (p->packed_layout == DW_LAYOUT_PLAIN) {
        return dw_plain(p, input, output);
    }
    const int32_t band = p->packed_layout >> 8;
    if ((p->packed_layout & 0xFF) != DW_LAYOUT_GROUPS4 || p->depth_multiplier != 1 || band < 1 || scratch == NULL) {
        return FM_ERR_PARAM;
    }
    const int32_t sh = p->stride_h, sw = p->stride_w, dh = p->dilation_h, dw = p->dilation_w;
    const int32_t span_h = (k_h - 1) * dh;
    const int32_t cols = (out_w - 1) * sw + (k_w - 1) * dw + 1;   /* slab pixels per row */
    const int32_t row_words = 2 * cols;
    const int32_t c4 = (ch + 3) & ~3;
    const uint32_t zp2 = fm_pack16(-p->input_offset, -p->input_offset);
    const uint32_t lo4 = 0x01010101u * (uint8_t)p->act_min, hi4 = 0x01010101u * (uint8_t)p->act_max;
    /* 3x3, stride and dilation 1 along x: channel planes and SMLAD on horizontal tap pairs. */
    const int planar = k_h == 3 && k_w == 3 && dw == 1 && sw == 1;
    uint32_t *slab = (uint32_t *)scratch;
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * ch;
        for (int32_t oy0 = 0; oy0 < out_h; oy0 += band) {
            const int32_t oy1 = fm_min_i32(oy0 + band, out_h);
            const int32_t rows = (oy1 - oy0 - 1) * sh + span_h + 1;
            for (int32_t c = 0; c < ch; c += 4) {
                const int32_t n = fm_min_i32(4, ch - c);
                if (planar) {
                    const int32_t pitch = cols + 1, plane = rows * pitch;
                    int16_t *planes = (int16_t *)scratch;
                    if (c == 0) {
                        dw_pad_planes(planes, plane, oy0 * sh - p->pad_h, rows, -p->pad_w, pitch, in_h, in_w,
                                      -p->input_offset);
                    }
                    dw_fill_planes(planes, plane, in_b, oy0 * sh - p->pad_h, rows, -p->pad_w, pitch, in_h, in_w, ch, c,
                                   n);
                    for (int32_t j = 0; j < n; ++j) {
                        uint32_t w[5];
                        int32_t rq[3];
                        dw_plane_weights(p->packed_filter + c + j, c4, w);
                        const int fast = dw_row(p, c + j, rq);
                        /* Blocks of whole rows (or of one row's columns) of at most DW_ACC outputs. */
                        const int32_t blk_rows = fm_max_i32(1, DW_ACC / out_w), blk_w = fm_min_i32(out_w, DW_ACC);
                        for (int32_t oy = oy0; oy < oy1; oy += blk_rows) {
                            const int32_t nr = fm_min_i32(blk_rows, oy1 - oy);
                            for (int32_t x0 = 0; x0 < out_w; x0 += blk_w) {
                                int32_t acc[DW_ACC + 1];
                                const int32_t k = fm_min_i32(blk_w, out_w - x0);
                                dw_plane_macs(planes + (size_t)j * plane + (size_t)(oy - oy0) * sh * pitch + x0,
                                              sh * pitch, dh * pitch, nr, k, w, p->folded_bias[c + j], acc);
                                int8_t *o = output + (((size_t)b * out_h + oy) * out_w + x0) * ch + c + j;
                                if (fast) {
                                    dw_plane_store(acc, nr * k, rq, o, ch, p->act_min, p->act_max);
                                } else {
                                    dw_plane_store_any(p, c + j, acc, nr * k, o, ch);
                                }
                            }
                        }
                    }
                    continue;
                }
                dw_fill_slab(slab, in_b, oy0 * sh - p->pad_h, rows, -p->pad_w, cols, in_h, in_w, ch, c, n, zp2);
                const int32_t *fb = p->folded_bias + c;
                int32_t rq[4][3];
                int fast = 1;
                for (int32_t j = 0; j < 4; ++j) {
                    fast &= dw_row(p, c + fm_min_i32(j, n - 1), rq[j]);
                }
                for (int32_t oy = oy0; oy < oy1; ++oy) {
                    const uint32_t *srow = slab + (size_t)(oy - oy0) * sh * row_words;
                    int8_t *out = output + (((size_t)b * out_h + oy) * out_w) * ch + c;
                    for (int32_t ox = 0; ox < out_w; ++ox, srow += 2 * sw, out += ch) {
                        int32_t a0 = fb[0], a1 = 0, a2 = 0, a3 = 0;
                        if (n == 4) {
                            a1 = fb[1];
                            a2 = fb[2];
                            a3 = fb[3];
                        } else {
                            a1 = n > 1 ? fb[1] : 0;
                            a2 = n > 2 ? fb[2] : 0;
                        }
                        const int8_t *w = p->packed_filter + c;
                        for (int32_t ky = 0; ky < k_h; ++ky) {
                            const uint32_t *q = srow + ky * dh * row_words;
                            for (int32_t kx = 0; kx < k_w; ++kx, q += 2 * dw, w += c4) {
                                DW_TAP(q, w);
                            }
                        }
                        if (fast) {
                            a0 = dw_requant(a0, rq[0]);
                            a1 = dw_requant(a1, rq[1]);
                            a2 = dw_requant(a2, rq[2]);
                            a3 = dw_requant(a3, rq[3]);
                        } else {
                            /* lanes past the last channel requantize a real channel; they are not stored */
                            a0 = dw_requant_any(p, a0, c);
                            a1 = dw_requant_any(p, a1, c + fm_min_i32(1, n - 1));
                            a2 = dw_requant_any(p, a2, c + fm_min_i32(2, n - 1));
                            a3 = dw_requant_any(p, a3, c + fm_min_i32(3, n - 1));
                        }
                        const uint32_t v = dw_pack4(a0, a1, a2, a3, lo4, hi4);
                        if (n == 4) {
                            fm_store_u32(out, v);
                        } else {
                            for (int32_t j = 0; j < n; ++j) {
                                out[j] = (int8_t)(v >> (8 * j));
                            }
                        }
                    }
                }
            }
        }
    }
    return FM_OK;
}
