/* Block-sparse CONV_2D int8 (groups = 1): tflite::reference_integer_ops::ConvPerChannel over the stored (non-zero)
 * blocks only. Bit-exact: a skipped block holds only zero weights, which add nothing. A 1x1 filter takes a path
 * without per-block tap arithmetic or bounds checks (its input pixel is checked once per output pixel). */
#include "fm_kernels_common.h"
#include "fm_sparse.h"

/* One output pixel of a 1x1 convolution: every output channel from the same input pixel. */
static int fm_sparse_pixel_1x1(const fm_conv_sparse_s8_params_t *p, const int8_t *in_px, int8_t *out_px)
{
    const fm_block_sparse_s8_t *w = &p->weights;
    const int32_t depth = p->input_dims.c;
    for (int32_t oc = 0; oc < w->rows; ++oc) {
        int32_t acc = 0;
        for (int32_t k = w->row_ptr[oc]; k < w->row_ptr[oc + 1]; ++k) {
            const int32_t col = w->cols[k];
            if (col >= w->blocks_per_row) {
                return FM_ERR_PARAM;
            }
            acc += fm_sparse_block_dot(w->values + (size_t)k * FM_SPARSE_BLOCK, in_px + col * FM_SPARSE_BLOCK,
                                       depth - col * FM_SPARSE_BLOCK, p->input_offset);
        }
        FM_CONV_OUTPUT_S8(out_px[oc], acc, p, oc, oc);
    }
    return FM_OK;
}

int fm_conv2d_sparse_s8(const fm_conv_sparse_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch;
    const fm_block_sparse_s8_t *w = &p->weights;
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w;
    if (in_c <= 0 || k_h <= 0 || k_w <= 0 || p->filter_dims.c != in_c || p->filter_dims.n != out_c ||
        w->rows != out_c) {
        return FM_ERR_PARAM;
    }
    const int32_t per_tap = fm_sparse_blocks(in_c);
    if (w->blocks_per_row != k_h * k_w * per_tap || !fm_sparse_rows_ok(w)) {
        return FM_ERR_PARAM;
    }
    const int one_by_one = k_h == 1 && k_w == 1;
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                if (one_by_one) {
                    if (in_y0 < 0 || in_y0 >= in_h || in_x0 < 0 || in_x0 >= in_w) {
                        return FM_ERR_PARAM; /* a 1x1 filter under SAME/VALID padding never leaves the input */
                    }
                    const int rc = fm_sparse_pixel_1x1(p, in_b + ((size_t)in_y0 * in_w + in_x0) * in_c, out_px);
                    if (rc != FM_OK) {
                        return rc;
                    }
                    continue;
                }
                for (int32_t oc = 0; oc < out_c; ++oc) {
                    int32_t acc = 0;
                    for (int32_t k = w->row_ptr[oc]; k < w->row_ptr[oc + 1]; ++k) {
                        const int32_t col = w->cols[k];
                        if (col >= w->blocks_per_row) {
                            return FM_ERR_PARAM;
                        }
                        const int32_t tap = col / per_tap;
                        const int32_t ic0 = (col - tap * per_tap) * FM_SPARSE_BLOCK;
                        const int32_t ky = tap / k_w, kx = tap - (tap / k_w) * k_w;
                        const int32_t iy = in_y0 + p->dilation_h * ky;
                        const int32_t ix = in_x0 + p->dilation_w * kx;
                        if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                            continue; /* padding: contributes nothing, as in TFLM */
                        }
                        acc += fm_sparse_block_dot(w->values + (size_t)k * FM_SPARSE_BLOCK,
                                                   in_b + ((size_t)iy * in_w + ix) * in_c + ic0, in_c - ic0,
                                                   p->input_offset);
                    }
                    FM_CONV_OUTPUT_S8(out_px[oc], acc, p, oc, oc);
                }
            }
        }
    }
    return FM_OK;
}
