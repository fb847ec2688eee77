/*
 * CONV_2D int8, per-channel (TFLM reference_integer_ops::ConvPerChannel, bit-exact), Helium/MVE.
 *
 * Weights come packed ahead of time (FM_HE_LAYOUT_GEMM, fm_helium.h): per group a [out_c/groups, kh*kw*in_c/groups]
 * matrix in 4-channel blocks of 16-deep chunks, and bias + input_offset * sum(weights) folded into one constant
 * per channel, so the hot loop is VMLADAVA on raw int8 and padding taps read the input zero point.
 * - 1x1 (any stride, one group): the input pixels are the GEMM rows, no copy (KWS: 77 % of its MACs);
 * - windows spanning at most 256 bytes of a zero-point-padded band of input rows (KWS's first layer): band im2col
 *   with gather loads (fm_he_conv_band below);
 * - otherwise im2col: up to fm_he_im2col_rows() output pixels' windows are copied into scratch (rows of K16 bytes,
 *   zero point for padding taps, zeros past K) and multiplied by the packed matrix; a window row of kw * in_c bytes
 *   inside the image is one predicated copy.
 */
#include "fm_helium.h"

/* im2col rows per GEMM call: as many as fit FM_HE_IM2COL_BYTES (even, 4..32), so the per-block constants and loop
 * set-up are paid over many pixels (KWS's first layer: 20 rows of 48 bytes). Mirrored in sets/helium/conv.py. */
#define FM_HE_IM2COL_BYTES 1024
FM_INLINE int32_t fm_he_im2col_rows(int32_t k16)
{
    return fm_max_i32(4, fm_min_i32(32, (FM_HE_IM2COL_BYTES / k16) & ~1));
}

/* Band im2col (one group, every window's bytes within 255 of its first): per output row the k_h input rows its
 * windows read are copied once into a band in scratch, padded with the input zero point to the full width the
 * windows span ([k_h][band_w][in_c]); a window is then at fixed byte offsets from its first byte, and each 16 bytes
 * of its im2col row are one gather load (VLDRB with 8-bit offsets, the table built once per call) and one store.
 * Offsets past K read byte 0 of the window: their weights are zero. Scratch: im2col rows, then the band (2 k_h
 * rows), then the K16 offsets (sets/helium/conv.py). */
FM_INLINE int32_t fm_he_band_w(const fm_conv_s8_params_t *p)
{
    return (p->output_dims.w - 1) * p->stride_w + (p->filter_dims.w - 1) * p->dilation_w + 1;
}

FM_INLINE int32_t fm_he_band_max_offset(const fm_conv_s8_params_t *p, int32_t band_w)
{
    const int32_t in_c = p->input_dims.c;
    return ((p->filter_dims.h - 1) * band_w + (p->filter_dims.w - 1) * p->dilation_w) * in_c + in_c - 1;
}

/* One band row: input row iy (outside the image: zero points), columns from input x = -pad_w. */
FM_INLINE void fm_he_band_row(const fm_conv_s8_params_t *p, const int8_t *in_b, int32_t iy, int32_t x_lo,
                              int32_t x_hi, int32_t band_w, int8_t *dst)
{
    const int32_t in_c = p->input_dims.c, brow = band_w * in_c;
    const int8_t zp = (int8_t)(-p->input_offset);
    if (iy < 0 || iy >= p->input_dims.h || x_lo > 0 || x_hi < band_w) {
        fm_he_fill(dst, zp, brow); /* the padding (one pass: rows are short) */
    }
    if (iy >= 0 && iy < p->input_dims.h && x_hi > x_lo) {
        fm_he_copy(dst + x_lo * in_c, in_b + ((size_t)iy * p->input_dims.w + x_lo - p->pad_w) * in_c,
                   (x_hi - x_lo) * in_c);
    }
}

static void fm_he_conv_band(const fm_conv_s8_params_t *p, const fm_he_gemm_t *g, const int8_t *input,
                            int8_t *output, int8_t *cols, int32_t max_rows, int32_t band_w)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w, k = k_h * k_w * in_c, k16 = g->k16;
    const int32_t n_px = out_h * out_w, brow = band_w * in_c;
    /* Without vertical dilation the band is a ring of k_h input rows, each row written twice (slots s and
     * s + k_h), so any k_h consecutive rows are contiguous: an output row writes only the rows it newly reaches
     * (stride_h of them). With dilation the first k_h slots are rebuilt per output row. */
    const int ring = p->dilation_h == 1;
    int8_t *band = cols + (size_t)max_rows * k16;
    uint8_t *offs = (uint8_t *)(band + (size_t)2 * k_h * brow);
    for (int32_t j = 0; j < k16; ++j) {
        const int32_t ky = j / (k_w * in_c), kx = (j / in_c) % k_w, ci = j % in_c;
        offs[j] = (uint8_t)(j < k ? (ky * band_w + kx * p->dilation_w) * in_c + ci : 0);
    }
    /* the band's columns: input x from -pad_w, the part inside the image copied */
    const int32_t x_lo = fm_min_i32(band_w, p->pad_w), x_hi = fm_max_i32(x_lo, fm_min_i32(band_w, in_w + p->pad_w));
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        int8_t *out_b = output + (size_t)b * n_px * out_c;
        int32_t oy = 0, ox = 0, band_oy = -1, next_iy = INT32_MIN;
        const int8_t *base = band;
        for (int32_t px = 0; px < n_px; px += max_rows) {
            const int32_t rows = fm_min_i32(max_rows, n_px - px);
            for (int32_t r = 0; r < rows; ++r) {
                if (band_oy != oy) {
                    const int32_t iy0 = oy * p->stride_h - p->pad_h;
                    if (ring) {
                        for (int32_t iy = fm_max_i32(iy0, next_iy); iy < iy0 + k_h; ++iy) {
                            const int32_t s = ((iy % k_h) + k_h) % k_h;
                            int8_t *dst = band + (size_t)s * brow;
                            fm_he_band_row(p, in_b, iy, x_lo, x_hi, band_w, dst);
                            fm_he_copy(dst + (size_t)k_h * brow, dst, brow);
                        }
                        next_iy = iy0 + k_h;
                        base = band + (size_t)(((iy0 % k_h) + k_h) % k_h) * brow;
                    } else {
                        for (int32_t ky = 0; ky < k_h; ++ky) {
                            fm_he_band_row(p, in_b, iy0 + ky * p->dilation_h, x_lo, x_hi, band_w,
                                           band + (size_t)ky * brow);
                        }
                    }
                    band_oy = oy;
                }
                const int8_t *win = base + (size_t)ox * p->stride_w * in_c;
                int8_t *col = cols + (size_t)r * k16;
                for (int32_t j = 0; j < k16; j += 16) {
                    vstrbq_s8(col + j, vldrbq_gather_offset_s8(win, vldrbq_u8(offs + j)));
                }
                if (++ox == out_w) {
                    ox = 0;
                    ++oy;
                }
            }
            fm_he_gemm(g, cols, k16, rows, out_b + (size_t)px * out_c, out_c);
        }
    }
}

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
    const int32_t max_rows = fm_he_im2col_rows(k16);
    g.k = k16; /* the rows are zero-padded to K16 like the weights: no tail in the micro kernel */
    const int8_t zp = (int8_t)(-p->input_offset);
    const int32_t n_px = out_h * out_w;
    const int32_t band_w = fm_he_band_w(p);
    if (groups == 1 && fm_he_band_max_offset(p, band_w) <= 255) {
        fm_he_conv_band(p, &g, input, output, cols, max_rows, band_w);
        return FM_OK;
    }
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        int8_t *out_b = output + (size_t)b * n_px * out_c;
        for (int32_t grp = 0; grp < groups; ++grp) {
            g.w = p->packed_filter + (size_t)grp * oc_g4 * k16;
            g.bias = p->folded_bias + grp * oc_g4;
            g.q = (const int32_t *)p->packed_aux + (grp * oc_g4 / 4) * FM_HE_AUX_BLOCK;
            int32_t oy = 0, ox = 0;
            for (int32_t px = 0; px < n_px; px += max_rows) {
                const int32_t rows = fm_min_i32(max_rows, n_px - px);
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
