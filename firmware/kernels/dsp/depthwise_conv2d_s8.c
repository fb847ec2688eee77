/*
 * DEPTHWISE_CONV_2D int8, per-channel, for Armv7E-M DSP: bit-exact with tflite::reference_integer_ops::
 * DepthwiseConvPerChannel.
 *
 * Layout 1 (depth multiplier 1), written by the packer (host/formicary/codegen/sets/dsp/depthwise.py): channels in
 * groups of 4, and per group and tap (ky, kx row-major) two words of int16 weights, [w0 | w2] and [w1 | w3], the
 * lanes SXTB16 and SXTB16-ROR8 make of one 32-bit load of 4 input channels; channels past the last are zero.
 * Accumulators start from folded_bias (bias + input_offset * sum of weights), so the hot loop adds no offsets and
 * a padding tap must read the input zero point: a pixel whose window crosses the border is first copied into a
 * k_h x k_w x C patch in scratch with the zero point at the outside taps, and then costs what an interior one does.
 * Each tap is one load, two extends and four SMLABB/SMLATT (2 instructions per MAC; pairing taps for SMLAD needs
 * two PKH per pair and counts the same). 3x3 windows run an unrolled copy of the tap loop.
 * Channels past the last full group of 4 run a scalar loop over the same packed weights. packed_aux, when the
 * packer could make it (every shift in [-31, -1]), holds per channel {multiplier, H, L, rs - 1} of a 6-instruction
 * exact requantization (dw_requant); otherwise the multiplier/shift arrays are used.
 *
 * Layout 2 (other depth multipliers): the TFLite filter [kh, kw, out_c] in packed_filter, folded_bias; a plain
 * loop that reads the zero point at padding taps.
 */
#include "fm_kernels_common.h"
#include "fm_acle.h"
#include "fm_dsp_requant.h"

#define DW_LAYOUT_GROUPS4 1
#define DW_LAYOUT_PLAIN 2

/* Output stage of one channel: requantize, add the output offset, clamp. */
FM_INLINE int8_t dw_out(const fm_depthwise_conv_s8_params_t *p, int32_t acc, int32_t oc)
{
    acc = fm_dsp_mbqm(acc, p->multiplier[oc], p->shift[oc]) + p->output_offset;
    return (int8_t)fm_clamp_i32(acc, p->act_min, p->act_max);
}

/* MultiplyByQuantizedMultiplier(x, m, -rs) for 1 <= rs <= 31 from the packer's per-channel row {m, H, L, rs - 1}
 * (packed_aux): both roundings in one 64-bit sum, floor((x*m + 2^30 + 2^(30+rs) - [t<0] 2^31) / 2^(31+rs)), where
 * (H, L) = 2^30 + 2^(30+rs) and t < 0 (the doubling high product is negative) exactly when x < 0 for the
 * multipliers TFLM makes (0 or >= 2^30); subtracting 2^31 flips bit 31 of L and borrows from H when it was 0.
 * The result is the high word of the sum shifted by rs - 1: SMLAL and five single-cycle instructions. */
FM_INLINE int32_t dw_requant(int32_t x, const int32_t *row)
{
    const int32_t s = x >> 31;
    const uint32_t lo = (uint32_t)row[2] ^ ((uint32_t)s << 31);
    const int32_t hi = row[1] + (s & ~(row[2] >> 31));
    uint64_t sum = ((uint64_t)(uint32_t)hi << 32) | lo;
    sum += (uint64_t)((int64_t)x * row[0]);
    return (int32_t)(uint32_t)(sum >> 32) >> row[3];
}

/* Fused-activation clamp as an unsigned byte, without branches (max then min: two IT blocks). */
FM_INLINE uint32_t dw_clamp(int32_t v, int32_t lo, int32_t hi)
{
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    return (uint32_t)v & 0xFFu;
}

/* Four channels' accumulators += the tap at `x` (4 int8 inputs) times its packed weights at `w` (2 words). */
#define DW_TAP(x, w)                                                   \
    do {                                                               \
        const uint32_t x02_ = fm_sxtb16(x), x13_ = fm_sxtb16_ror8(x);  \
        const uint32_t w02_ = (uint32_t)(w)[0], w13_ = (uint32_t)(w)[1]; \
        a0 = fm_smlabb(x02_, w02_, a0);                                \
        a2 = fm_smlatt(x02_, w02_, a2);                                \
        a1 = fm_smlabb(x13_, w13_, a1);                                \
        a3 = fm_smlatt(x13_, w13_, a3);                                \
    } while (0)

/* One output pixel, all channels: tap (ky, kx) of channel c is at base[ky * row + kx * col + c]. */
static void dw_pixel(const fm_depthwise_conv_s8_params_t *p, const int8_t *base, int32_t row, int32_t col,
                     int8_t *out)
{
    const int32_t ch = p->output_dims.c, k_h = p->filter_dims.h, k_w = p->filter_dims.w;
    const int32_t *w = (const int32_t *)(const void *)p->packed_filter;
    const int32_t *fb = p->folded_bias;
    const int32_t *rq = (const int32_t *)p->packed_aux;
    const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int is3x3 = k_h == 3 && k_w == 3;
    int32_t c = 0;
    for (; c + 4 <= ch; c += 4, fb += 4) {
        int32_t a0 = fb[0], a1 = fb[1], a2 = fb[2], a3 = fb[3];
        const int8_t *px = base + c;
        if (is3x3) {
            /* One tap's input live at a time: the loop keeps 14 registers busy and nothing spills. */
            const int32_t *w_end = w + 18;
            do {
                uint32_t x = fm_load_u32(px);
                DW_TAP(x, w);
                x = fm_load_u32(px + col);
                DW_TAP(x, w + 2);
                x = fm_load_u32(px + 2 * col);
                DW_TAP(x, w + 4);
                px += row;
                w += 6;
            } while (w != w_end);
        } else {
            for (int32_t ky = 0; ky < k_h; ++ky, px += row) {
                const int8_t *q = px;
                for (int32_t kx = 0; kx < k_w; ++kx, q += col, w += 2) {
                    const uint32_t x = fm_load_u32(q);
                    DW_TAP(x, w);
                }
            }
        }
        if (rq != NULL) {
            a0 = dw_requant(a0, rq);
            a1 = dw_requant(a1, rq + 4);
            a2 = dw_requant(a2, rq + 8);
            a3 = dw_requant(a3, rq + 12);
            rq += 16;
        } else {
            a0 = fm_dsp_mbqm(a0, p->multiplier[c], p->shift[c]);
            a1 = fm_dsp_mbqm(a1, p->multiplier[c + 1], p->shift[c + 1]);
            a2 = fm_dsp_mbqm(a2, p->multiplier[c + 2], p->shift[c + 2]);
            a3 = fm_dsp_mbqm(a3, p->multiplier[c + 3], p->shift[c + 3]);
        }
        const uint32_t packed = dw_clamp(a0 + out_off, lo, hi) | dw_clamp(a1 + out_off, lo, hi) << 8 |
                                dw_clamp(a2 + out_off, lo, hi) << 16 | dw_clamp(a3 + out_off, lo, hi) << 24;
        fm_store_u32(out + c, packed);
    }
    /* Last 1-3 channels: lane (c & 1) of word (c >> 1 & 1) of each tap's pair, as the packer placed them. */
    for (int32_t j = 0; c < ch; ++c, ++j) {
        int32_t acc = fb[j];
        const int32_t *wj = w + (j & 1);
        const int32_t high = j >> 1;
        const int8_t *px = base + c;
        for (int32_t ky = 0; ky < k_h; ++ky, px += row) {
            for (int32_t kx = 0; kx < k_w; ++kx, wj += 2) {
                const uint32_t pair = (uint32_t)*wj;
                acc += (int32_t)px[kx * col] * (high ? fm_hi16(pair) : fm_lo16(pair));
            }
        }
        out[c] = dw_out(p, acc, c);
    }
}

/* n bytes from src to dst, a word at a time. */
static void dw_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        fm_store_u32(dst + i, fm_load_u32(src + i));
    }
    for (; i < n; ++i) {
        dst[i] = src[i];
    }
}

/* n bytes of the replicated zero point `v4` at dst. */
static void dw_fill(int8_t *dst, uint32_t v4, int32_t n)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        fm_store_u32(dst + i, v4);
    }
    for (; i < n; ++i) {
        dst[i] = (int8_t)v4;
    }
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
                    out_px[oc] = dw_out(p, acc, oc);
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
    if (p->packed_layout != DW_LAYOUT_GROUPS4 || p->depth_multiplier != 1) {
        return FM_ERR_PARAM;
    }
    const int32_t row = p->dilation_h * in_w * ch, col = p->dilation_w * ch;
    const int32_t span_h = (k_h - 1) * p->dilation_h, span_w = (k_w - 1) * p->dilation_w;
    int8_t *patch = (int8_t *)scratch;
    const uint32_t zp4 = 0x01010101u * (uint8_t)(-p->input_offset);
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * ch;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int inside_y = iy0 >= 0 && iy0 + span_h < in_h;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * ch;
                if (inside_y && ix0 >= 0 && ix0 + span_w < in_w) {
                    dw_pixel(p, in_b + ((size_t)iy0 * in_w + ix0) * ch, row, col, out_px);
                    continue;
                }
                /* Window crosses the border: the taps into the patch, the zero point where they fall outside
                 * (word copies: the C library's memcpy/memset of newlib-nano go byte by byte). */
                int8_t *dst = patch;
                for (int32_t ky = 0; ky < k_h; ++ky) {
                    const int32_t iy = iy0 + ky * p->dilation_h;
                    for (int32_t kx = 0; kx < k_w; ++kx, dst += ch) {
                        const int32_t ix = ix0 + kx * p->dilation_w;
                        if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                            dw_fill(dst, zp4, ch);
                        } else {
                            dw_copy(dst, in_b + ((size_t)iy * in_w + ix) * ch, ch);
                        }
                    }
                }
                dw_pixel(p, patch, k_w * ch, ch, out_px);
            }
        }
    }
    return FM_OK;
}
