/*
 * CONV_2D int8, per-channel (TFLM reference_integer_ops::ConvPerChannel, bit-exact) for Armv7E-M DSP: im2col of
 * two output pixels at a time into scratch, a 2 output channels x 2 pixels SMLAD micro-kernel, then one
 * requantization pass over the pair's accumulators.
 *
 * Ahead-of-time data (host/formicary/codegen/sets/dsp/gemm.py, FM_DSP_LAYOUT_CONV_GEMM):
 * - packed_filter: per group, output channels in pairs (an odd count padded with a zero channel), per pair depth/4
 *   blocks of [channel 0: (k0,k2),(k1,k3)][channel 1: same] int16 words; depth K = kh*kw*in_c/groups in TFLite
 *   order, padded to a multiple of 4 with zero weights;
 * - folded_bias = bias + input_offset * sum(weights): the loop adds no offsets and padding taps hold the input zero
 *   point (their terms cancel exactly);
 * - packed_aux: per channel {k, rs - 1} of fm_dsp_requant_fast (output offset folded in), or {0, -1}.
 *
 * Scratch: the panel, K/4 blocks of [pixel 0: 2 words][pixel 1: 2 words] (int16 activations in the SXTB16 order,
 * 4*Kp bytes), one int8 im2col column (Kp bytes), the int32 accumulators of 2 pixels x one group's channels.
 * Per depth block the micro-kernel does 4 LDRD and 8 SMLAD for 16 MACs: activations are widened once per pixel
 * (not once per channel pair) and weights are pre-extended, which counts fewer instructions than widening either
 * in the loop. Paths: 1x1 / stride 1 / no padding widens each pixel's channels straight from the input (no im2col);
 * otherwise im2col copies whole rows of taps (kw*in_c contiguous bytes when dilation_w is 1), which keeps
 * few-channel layers (KWS's 10x4 first layer, 1 input channel, K = 40) cheap. Groups and dilation go through the
 * same im2col.
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

/* The depth-K column of output pixel `pix` (over n, oy, ox), group g, as int8 in TFLite tap order (ky, kx, channel):
 * padding taps hold the input zero point. With dilation_w 1 and no groups a row of taps is kw*in_c contiguous
 * bytes of the input; [lo, hi) are the taps of a row inside the image, the same for every row of the pixel. */
static __attribute__((noinline)) const int8_t *im2col(const fm_conv_s8_params_t *p, const int8_t *input,
                                                      int32_t pix, int32_t g, int8_t *col)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w, k_c = p->filter_dims.c;
    const int32_t ox = pix % p->output_dims.w, t = pix / p->output_dims.w;
    const int32_t oy = t % p->output_dims.h, b = t / p->output_dims.h;
    const int8_t zp = (int8_t)(-p->input_offset);
    const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c + (size_t)g * k_c;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    const int32_t row = k_w * k_c;
    const int contiguous = p->dilation_w == 1 && k_c == in_c;
    const int32_t lo = fm_min_i32(k_w, fm_max_i32(0, -ix0));
    const int32_t hi = fm_max_i32(lo, fm_min_i32(k_w, in_w - ix0));
    const int32_t lo_b = lo * k_c, mid_b = (hi - lo) * k_c, hi_b = hi * k_c;
    int32_t iy = oy * p->stride_h - p->pad_h;
    int8_t *dst = col;
    for (int32_t ky = 0; ky < k_h; ++ky, dst += row, iy += p->dilation_h) {
        if (iy < 0 || iy >= in_h) {
            fill_bytes(dst, zp, row);
            continue;
        }
        const int8_t *in_row = in_b + (size_t)iy * in_w * in_c;
        if (contiguous) {
            fill_bytes(dst, zp, lo_b);
            copy_bytes(dst + lo_b, in_row + (ix0 + lo) * in_c, mid_b);
            fill_bytes(dst + hi_b, zp, row - hi_b);
        } else {
            for (int32_t kx = 0; kx < k_w; ++kx) {
                const int32_t ix = ix0 + kx * p->dilation_w;
                if (ix < 0 || ix >= in_w) {
                    fill_bytes(dst + kx * k_c, zp, k_c);
                } else {
                    copy_bytes(dst + kx * k_c, in_row + (size_t)ix * in_c, k_c);
                }
            }
        }
    }
    return col;
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

/* One depth block of 4 for 2 channels x 2 pixels: 4 LDRD, 8 SMLAD (w: packed weights, x: the panel). */
#define GEMM_2X2_BLOCK()                                        \
    do {                                                        \
        uint32_t w0a, w0b, w1a, w1b, x0a, x0b, x1a, x1b;        \
        fm_read_u32x2(&w, &w0a, &w0b);                          \
        fm_read_u32x2(&x, &x0a, &x0b);                          \
        a00 = fm_smlad(x0a, w0a, a00);                          \
        a00 = fm_smlad(x0b, w0b, a00);                          \
        fm_read_u32x2(&x, &x1a, &x1b);                          \
        a01 = fm_smlad(x1a, w0a, a01);                          \
        a01 = fm_smlad(x1b, w0b, a01);                          \
        fm_read_u32x2(&w, &w1a, &w1b);                          \
        a10 = fm_smlad(x0a, w1a, a10);                          \
        a10 = fm_smlad(x0b, w1b, a10);                          \
        a11 = fm_smlad(x1a, w1a, a11);                          \
        a11 = fm_smlad(x1b, w1b, a11);                          \
    } while (0)

/* Requantize n channels of two pixels: acc[2i], acc[2i+1] -> out0[i], out1[i]; rqk[2i], rqk[2i+1]: the channel's
 * {k, rs - 1} of fm_dsp_requant_fast, written by the packer (rs - 1 < 0: other shifts, fm_mbqm). out1[i] is
 * written first, so an odd last pixel passes out1 == out0 and its real result wins. */
static __attribute__((noinline)) void requant2(const int32_t *acc, int8_t *out0, int8_t *out1, const int32_t *mult,
                                               const int32_t *shift, const int32_t *rqk, int32_t n,
                                               const fm_dsp_out_t *os)
{
    const fm_dsp_out_t o = *os;
    for (int32_t i = 0; i < n; ++i, acc += 2, rqk += 2) {
        const int32_t m = mult[i], rs1 = rqk[1];
#if !FM_SINGLE_ROUNDING
        if (rs1 >= 0) {
            const uint32_t k = (uint32_t)rqk[0];
            out1[i] = (int8_t)fm_dsp_clamp(fm_dsp_requant_fast(acc[1], m, k, rs1), &o);
            out0[i] = (int8_t)fm_dsp_clamp(fm_dsp_requant_fast(acc[0], m, k, rs1), &o);
            continue;
        }
#endif
        out1[i] = fm_dsp_out1(acc[1], m, shift[i], &o);
        out0[i] = fm_dsp_out1(acc[0], m, shift[i], &o);
    }
}

int fm_conv2d_s8(const fm_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    if (p->packed_layout != FM_DSP_LAYOUT_CONV_GEMM || p->packed_filter == NULL || p->folded_bias == NULL ||
        p->packed_aux == NULL || scratch == NULL) {
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
    const int pointwise = p->filter_dims.h == 1 && p->filter_dims.w == 1 && groups == 1 && p->stride_h == 1 &&
                          p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0;
    uint32_t *panel = (uint32_t *)scratch;
    int8_t *col = (int8_t *)(panel + 4 * blocks);
    /* The packed weights are an int32 array (4-aligned) reached through the int8 pointer of the params. */
    const uint32_t *weights = (const uint32_t *)(const void *)p->packed_filter;
    const fm_dsp_out_t os = fm_dsp_out(p->output_offset, p->act_min, p->act_max);
    const int32_t *bias = p->folded_bias, *mult = p->multiplier, *shift = p->shift;
    const int32_t *rqk = (const int32_t *)p->packed_aux;
    int32_t *accs = (int32_t *)(void *)(col + 4 * blocks);

    for (int32_t pix = 0; pix < pixels; pix += 2) {
        const int32_t npix = pixels - pix >= 2 ? 2 : 1;
        for (int32_t g = 0; g < groups; ++g) {
            for (int32_t j = 0; j < 2; ++j) {
                /* an odd last pixel fills both slots with itself; the second result is not stored */
                const int32_t px = pix + (j < npix ? j : 0);
                const int8_t *src = pointwise ? input + (size_t)px * in_c : im2col(p, input, px, g, col);
                widen(panel + 2 * j, src, depth);
            }
            const uint32_t *w = weights + (size_t)g * pairs * blocks * 4;
            const int32_t oc0 = g * per_group;
            int32_t *acc = accs;
            for (int32_t pr = 0; pr < pairs; ++pr, acc += 4) {
                const int32_t oc = oc0 + 2 * pr;
                int32_t a00 = bias[oc], a01 = a00; /* channel 0, pixels 0 and 1 */
                int32_t a10 = 2 * pr + 1 < per_group ? bias[oc + 1] : 0, a11 = a10;
                const uint32_t *x = panel;
                /* two depth blocks per iteration (less loop overhead), then an odd last one */
                for (int32_t n = blocks >> 1; n > 0; --n) {
                    GEMM_2X2_BLOCK();
                    GEMM_2X2_BLOCK();
                }
                if (blocks & 1) {
                    GEMM_2X2_BLOCK();
                }
                acc[0] = a00;
                acc[1] = a01;
                acc[2] = a10;
                acc[3] = a11;
            }
            int8_t *out0 = output + (size_t)pix * out_c + oc0;
            requant2(accs, out0, npix > 1 ? out0 + out_c : out0, mult + oc0, shift + oc0, rqk + 2 * oc0, per_group,
                     &os);
        }
    }
    return FM_OK;
}
