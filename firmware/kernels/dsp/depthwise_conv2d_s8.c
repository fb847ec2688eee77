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
 * Channels past the last full group of 4 run a scalar loop over the same packed weights.
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
    int32_t c = 0;
    for (; c + 4 <= ch; c += 4, fb += 4) {
        int32_t a0 = fb[0], a1 = fb[1], a2 = fb[2], a3 = fb[3];
        const int8_t *px = base + c;
        if (k_h == 3 && k_w == 3) {
            for (int32_t ky = 0; ky < 3; ++ky, px += row, w += 6) {
                const uint32_t x0 = fm_load_u32(px), x1 = fm_load_u32(px + col), x2 = fm_load_u32(px + 2 * col);
                DW_TAP(x0, w);
                DW_TAP(x1, w + 2);
                DW_TAP(x2, w + 4);
            }
        } else {
            for (int32_t ky = 0; ky < k_h; ++ky, px += row) {
                const int8_t *q = px;
                for (int32_t kx = 0; kx < k_w; ++kx, q += col, w += 2) {
                    const uint32_t x = fm_load_u32(q);
                    DW_TAP(x, w);
                }
            }
        }
        out[c] = dw_out(p, a0, c);
        out[c + 1] = dw_out(p, a1, c + 1);
        out[c + 2] = dw_out(p, a2, c + 2);
        out[c + 3] = dw_out(p, a3, c + 3);
    }
    /* Last 1-3 channels: lane (c & 1) of word (c >> 1 & 1) of each tap's pair, as the packer placed them. */
    const int16_t *w16 = (const int16_t *)(const void *)w;
    for (int32_t j = 0; c < ch; ++c, ++j) {
        int32_t acc = fb[j];
        const int32_t lane = (j & 1) * 2 + (j >> 1);
        const int8_t *px = base + c;
        for (int32_t ky = 0, t = 0; ky < k_h; ++ky, px += row) {
            for (int32_t kx = 0; kx < k_w; ++kx, ++t) {
                acc += (int32_t)px[kx * col] * w16[t * 4 + lane];
            }
        }
        out[c] = dw_out(p, acc, c);
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
                /* Window crosses the border: the taps into the patch, the zero point where they fall outside. */
                int8_t *dst = patch;
                for (int32_t ky = 0; ky < k_h; ++ky) {
                    const int32_t iy = iy0 + ky * p->dilation_h;
                    for (int32_t kx = 0; kx < k_w; ++kx, dst += ch) {
                        const int32_t ix = ix0 + kx * p->dilation_w;
                        if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                            memset(dst, -p->input_offset, (size_t)ch);
                        } else {
                            memcpy(dst, in_b + ((size_t)iy * in_w + ix) * ch, (size_t)ch);
                        }
                    }
                }
                dw_pixel(p, patch, k_w * ch, ch, out_px);
            }
        }
    }
    return FM_OK;
}
