/*
 * DEPTHWISE_CONV_2D int8, per-channel (TFLM reference_integer_ops::DepthwiseConvPerChannel, bit-exact),
 * Helium/MVE, vectorized across channels.
 *
 * Layout FM_HE_LAYOUT_DW16, packed at codegen (sets/helium/conv.py): weights widened to int16, [tap][C8] with C8 the
 * channels rounded up to 8 (zeros past out_c); packed_aux holds per block of 8 channels 32 int32: the folded bias
 * (bias + input_offset * sum of the channel's weights) of the even channels (c, c+2, c+4, c+6) then the odd ones,
 * then the requantization tables (fm_helium.h) of the even and of the odd channels. folded_bias is NULL.
 *
 * Per output pixel and block of 8 channels, per tap: one widening input load (8 bytes -> int16), one weight load,
 * VMULLB/VMULLT (int16 x int16 -> int32 of the even / odd lanes) and two adds into the even/odd accumulators; at
 * the end both are requantized and narrowed back into channel order (VMOVNB/VMOVNT) for one 8-byte store. Padding
 * taps multiply the input zero point (the folded bias assumes every tap does). Interior pixels skip all bounds
 * checks (3x3 fully unrolled); the channel tail is predicated. Depth multiplier > 1 runs a scalar loop over the
 * same tables.
 */
#include "fm_helium.h"

#define FM_HE_DW_AUX 32 /* int32 per block of 8 channels */

/* acc_e/acc_o += taps over rows at src + ky * row_step (kx * col_step within a row), weights at w (+c8 per tap) */
FM_INLINE void fm_he_dw_taps(int32x4_t *acc_e, int32x4_t *acc_o, const int8_t *src, int32_t row_step,
                             int32_t col_step, int32_t k_h, int32_t k_w, const int16_t *w, int32_t c8,
                             mve_pred16_t pred, int full)
{
    int32x4_t e = *acc_e, o = *acc_o;
    for (int32_t ky = 0; ky < k_h; ++ky) {
        const int8_t *s = src + (size_t)ky * row_step;
        for (int32_t kx = 0; kx < k_w; ++kx) {
            const int16x8_t x = full ? vldrbq_s16(s) : vldrbq_z_s16(s, pred);
            const int16x8_t f = vldrhq_s16(w);
            e = vaddq_s32(e, vmullbq_int_s16(x, f));
            o = vaddq_s32(o, vmulltq_int_s16(x, f));
            s += col_step;
            w += c8;
        }
    }
    *acc_e = e;
    *acc_o = o;
}

/* The same over a window that crosses the border: taps outside read the zero point. */
FM_INLINE void fm_he_dw_taps_border(int32x4_t *acc_e, int32x4_t *acc_o, const fm_depthwise_conv_s8_params_t *p,
                                    const int8_t *in_c0, int32_t y0, int32_t x0, const int16_t *w, int32_t c8,
                                    mve_pred16_t pred)
{
    const int32_t in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int16x8_t zp = vdupq_n_s16((int16_t)(-p->input_offset));
    int32x4_t e = *acc_e, o = *acc_o;
    for (int32_t ky = 0; ky < p->filter_dims.h; ++ky) {
        const int32_t iy = y0 + ky * p->dilation_h;
        const int row_in = iy >= 0 && iy < p->input_dims.h;
        for (int32_t kx = 0; kx < p->filter_dims.w; ++kx) {
            const int32_t ix = x0 + kx * p->dilation_w;
            const int16x8_t x = row_in && ix >= 0 && ix < in_w
                                    ? vldrbq_z_s16(in_c0 + ((size_t)iy * in_w + ix) * in_c, pred) : zp;
            const int16x8_t f = vldrhq_s16(w);
            e = vaddq_s32(e, vmullbq_int_s16(x, f));
            o = vaddq_s32(o, vmulltq_int_s16(x, f));
            w += c8;
        }
    }
    *acc_e = e;
    *acc_o = o;
}

FM_INLINE void fm_he_dw_store(int8_t *dst, int32x4_t e, int32x4_t o, const int32_t *aux,
                              const fm_depthwise_conv_s8_params_t *p, mve_pred16_t pred, int full)
{
    e = fm_he_requant(e, aux + 8, p->output_offset, p->act_min, p->act_max);
    o = fm_he_requant(o, aux + 8 + FM_HE_AUX_BLOCK, p->output_offset, p->act_min, p->act_max);
    const int16x8_t v = vmovntq_s32(vmovnbq_s32(vdupq_n_s16(0), e), o);
    if (full) {
        vstrbq_s16(dst, v);
    } else {
        vstrbq_p_s16(dst, v, pred);
    }
}

/* Depth multiplier > 1 (rare): one channel at a time over the packed tables. */
static void fm_he_dw_scalar(const fm_depthwise_conv_s8_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t c8 = (out_c + 7) & ~7, dm = p->depth_multiplier;
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
                            acc = fm_wrap_add(acc, x * w[(ky * p->filter_dims.w + kx) * c8 + oc]);
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
    (void)scratch;
    if (p->packed_layout != FM_HE_LAYOUT_DW16 || p->packed_filter == NULL || p->packed_aux == NULL) {
        return FM_ERR_PARAM; /* not packed for this set */
    }
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w;
    if (p->depth_multiplier <= 0 || in_c * p->depth_multiplier != out_c || p->filter_dims.c != out_c) {
        return FM_ERR_PARAM;
    }
    if (p->depth_multiplier != 1) {
        fm_he_dw_scalar(p, input, output);
        return FM_OK;
    }
    const int32_t c8 = (out_c + 7) & ~7, c_full = out_c & ~7;
    const int16_t *w = (const int16_t *)(const void *)p->packed_filter;
    const int32_t *aux = (const int32_t *)p->packed_aux;
    const int32_t row_step = p->dilation_h * in_w * in_c, col_step = p->dilation_w * in_c;
    const mve_pred16_t tail = vctp16q((uint32_t)(out_c - c_full));
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int rows_in = y0 >= 0 && y0 + (k_h - 1) * p->dilation_h < in_h;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int inside = rows_in && x0 >= 0 && x0 + (k_w - 1) * p->dilation_w < in_w;
                int8_t *dst = output + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                const int8_t *src = inside ? in_b + ((size_t)y0 * in_w + x0) * in_c : in_b;
                for (int32_t c = 0; c < c_full; c += 8) {
                    const int32_t *blk = aux + (c / 8) * FM_HE_DW_AUX;
                    int32x4_t e = vldrwq_s32(blk), o = vldrwq_s32(blk + 4);
                    if (!inside) {
                        fm_he_dw_taps_border(&e, &o, p, in_b + c, y0, x0, w + c, c8, 0xffff);
                    } else if (k_h == 3 && k_w == 3) {
                        fm_he_dw_taps(&e, &o, src + c, row_step, col_step, 3, 3, w + c, c8, 0xffff, 1);
                    } else {
                        fm_he_dw_taps(&e, &o, src + c, row_step, col_step, k_h, k_w, w + c, c8, 0xffff, 1);
                    }
                    fm_he_dw_store(dst + c, e, o, blk, p, 0xffff, 1);
                }
                if (c_full < out_c) {
                    const int32_t c = c_full;
                    const int32_t *blk = aux + (c / 8) * FM_HE_DW_AUX;
                    int32x4_t e = vldrwq_s32(blk), o = vldrwq_s32(blk + 4);
                    if (!inside) {
                        fm_he_dw_taps_border(&e, &o, p, in_b + c, y0, x0, w + c, c8, tail);
                    } else {
                        fm_he_dw_taps(&e, &o, src + c, row_step, col_step, k_h, k_w, w + c, c8, tail, 0);
                    }
                    fm_he_dw_store(dst + c, e, o, blk, p, tail, 0);
                }
            }
        }
    }
    return FM_OK;
}
