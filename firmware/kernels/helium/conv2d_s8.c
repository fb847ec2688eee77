/*
 * CONV_2D int8, per-channel (TFLM reference_integer_ops::ConvPerChannel, bit-exact), Helium/MVE.
 *
 * Weights come packed ahead of time (FM_HE_LAYOUT_GEMM, fm_helium.h): per group a [out_c/groups, kh*kw*in_c/groups]
 * matrix in 4-channel blocks of 16-deep chunks, and bias + input_offset * sum(weights) folded into one constant
 * per channel, so the hot loop is VMLADAVA on raw int8 and padding taps read the input zero point.
 * - 1x1 (any stride, one group): the input pixels are the GEMM rows, no copy (KWS: 77 % of its MACs);
 * - otherwise im2col: up to FM_HE_IM2COL_ROWS output pixels' windows are copied into scratch (rows of K16 bytes,
 *   zero point for padding taps, zeros past K) and multiplied by the packed matrix. Few input channels (KWS's first
 *   layer: 10x4 over 1 channel) take this path too: a window row of kw * in_c bytes is one predicated copy.
 */
#include "fm_helium.h"

#define FM_HE_IM2COL_ROWS 4 /* scratch: FM_HE_IM2COL_ROWS * K16 bytes (sets/helium/conv.py) */

int fm_conv2d_s8(const fm_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    if ((p->packed_layout & ~FM_HE_LAYOUT_NO_LS) != FM_HE_LAYOUT_GEMM || p->packed_filter == NULL || p->folded_bias == NULL) {
        return FM_ERR_PARAM; /* not packed for this set */
    }
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w, k_c = p->filter_dims.c;
    if (k_c <= 0 || in_c % k_c != 0 || out_c % (in_c / k_c) != 0) {
        return FM_ERR_PARAM;
    }
    const int32_t groups = in_c / k_c;
    const int32_t oc_g = out_c / groups, oc_g4 = (oc_g + 3) & ~3;
    const int32_t k = k_h * k_w * k_c, k16 = (k + 15) & ~15;
    fm_he_gemm_t g = {p->packed_filter, p->folded_bias, (const int32_t *)p->packed_aux, oc_g, k, k16,
                      p->output_offset, p->act_min, p->act_max, 0,
                      !(p->packed_layout & FM_HE_LAYOUT_NO_LS)};

    if (k_h == 1 && k_w == 1 && groups == 1 && p->pad_h == 0 && p->pad_w == 0) {
        if (p->stride_h == 1 && p->stride_w == 1 && in_h == out_h && in_w == out_w) {
            fm_he_gemm(&g, input, in_c, p->output_dims.n * out_h * out_w, output, out_c);
            return FM_OK;
        }
        for (int32_t b = 0; b < p->output_dims.n; ++b) {
            for (int32_t oy = 0; oy < out_h; ++oy) {
                const int8_t *row = input + (((size_t)b * in_h + (size_t)oy * p->stride_h) * in_w) * in_c;
                fm_he_gemm(&g, row, p->stride_w * in_c, out_w, output + (((size_t)b * out_h + oy) * out_w) * out_c,
                           out_c);
            }
        }
        return FM_OK;
    }

    if (scratch == NULL) {
        return FM_ERR_PARAM;
    }
    int8_t *cols = (int8_t *)scratch;
    const int8_t zp = (int8_t)(-p->input_offset);
    const int32_t n_px = out_h * out_w;
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        int8_t *out_b = output + (size_t)b * n_px * out_c;
        for (int32_t grp = 0; grp < groups; ++grp) {
            g.w = p->packed_filter + (size_t)grp * oc_g4 * k16;
            g.bias = p->folded_bias + grp * oc_g4;
            g.q = (const int32_t *)p->packed_aux + (grp * oc_g4 / 4) * FM_HE_AUX_BLOCK;
            int32_t oy = 0, ox = 0;
            for (int32_t px = 0; px < n_px; px += FM_HE_IM2COL_ROWS) {
                const int32_t rows = fm_min_i32(FM_HE_IM2COL_ROWS, n_px - px);
                for (int32_t r = 0; r < rows; ++r) {
                    int8_t *col = cols + (size_t)r * k16;
                    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
                    for (int32_t ky = 0; ky < k_h; ++ky) {
                        const int32_t iy = y0 + ky * p->dilation_h;
                        if (iy < 0 || iy >= in_h) {
                            fm_he_fill(col, zp, k_w * k_c);
                            col += k_w * k_c;
                            continue;
                        }
                        const int8_t *src = in_b + (size_t)iy * in_w * in_c + (size_t)grp * k_c;
                        if (p->dilation_w == 1 && x0 >= 0 && x0 + k_w <= in_w && k_c == in_c) {
                            fm_he_copy(col, src + (size_t)x0 * in_c, k_w * k_c); /* the whole window row */
                            col += k_w * k_c;
                            continue;
                        }
                        for (int32_t kx = 0; kx < k_w; ++kx) {
                            const int32_t ix = x0 + kx * p->dilation_w;
                            if (ix < 0 || ix >= in_w) {
                                fm_he_fill(col, zp, k_c);
                            } else {
                                fm_he_copy(col, src + (size_t)ix * in_c, k_c);
                            }
                            col += k_c;
                        }
                    }
                    fm_he_fill(col, 0, k16 - k);
                    if (++ox == out_w) {
                        ox = 0;
                        ++oy;
                    }
                }
                fm_he_gemm(&g, cols, k16, rows, out_b + (size_t)px * out_c + (size_t)grp * oc_g, out_c);
            }
        }
    }
    return FM_OK;
}
