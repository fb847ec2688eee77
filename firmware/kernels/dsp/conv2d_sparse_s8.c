/*
 * Block-sparse CONV_2D int8, groups = 1 (tflite::reference_integer_ops::ConvPerChannel, bit-exact: skipped blocks
 * hold only zero weights) for Armv7E-M DSP: 4 output pixels at a time, each pixel's taps are widened once into an
 * int16 panel with the input offset added (padding taps become 0), then each output channel runs over its stored
 * 1x4 blocks with one weight widening and 8 SMLAD per block (fm_dsp_sparse.h). Scratch: the panel, 32 bytes per
 * block column (taps x ceil(in_c / 4)).
 */
#include "fm_dsp_sparse.h"

/* Pixel pix's taps into slot j of the panel: column tap * per_tap + block, as fm_block_sparse_s8_t numbers them. */
static void fill(const fm_conv_sparse_s8_params_t *p, const int8_t *input, int32_t pix, int32_t j, uint32_t off2,
                 uint32_t *panel)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t per_tap = fm_sparse_blocks(in_c), full = in_c / FM_SPARSE_BLOCK, tail = in_c % FM_SPARSE_BLOCK;
    const int32_t ox = pix % p->output_dims.w, t = pix / p->output_dims.w;
    const int32_t oy = t % p->output_dims.h, b = t / p->output_dims.h;
    const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
    const uint32_t zp = (uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u;
    int32_t c = 0;
    for (int32_t ky = 0; ky < p->filter_dims.h; ++ky) {
        const int32_t iy = oy * p->stride_h - p->pad_h + ky * p->dilation_h;
        for (int32_t kx = 0; kx < p->filter_dims.w; ++kx) {
            const int32_t ix = ox * p->stride_w - p->pad_w + kx * p->dilation_w;
            if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                for (int32_t i = 0; i < per_tap; ++i, ++c) {
                    fm_dsp_sparse_put(panel, c, j, zp, off2); /* zero point + offset = 0 */
                }
                continue;
            }
            const int8_t *x = in_b + ((size_t)iy * in_w + ix) * in_c;
            for (int32_t i = 0; i < full; ++i, ++c) {
                fm_dsp_sparse_put(panel, c, j, fm_load_u32(x + i * FM_SPARSE_BLOCK), off2);
            }
            if (tail) {
                fm_dsp_sparse_put(panel, c++, j, fm_dsp_tail_word(x + full * FM_SPARSE_BLOCK, tail), off2);
            }
        }
    }
}

int fm_conv2d_sparse_s8(const fm_conv_sparse_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    const fm_block_sparse_s8_t *w = &p->weights;
    const int32_t in_c = p->input_dims.c, out_c = p->output_dims.c;
    if (in_c <= 0 || p->filter_dims.h <= 0 || p->filter_dims.w <= 0 || p->filter_dims.c != in_c ||
        p->filter_dims.n != out_c || w->rows != out_c || scratch == NULL ||
        w->blocks_per_row != p->filter_dims.h * p->filter_dims.w * fm_sparse_blocks(in_c) || !fm_sparse_rows_ok(w) ||
        !fm_dsp_sparse_cols_ok(w)) {
        return FM_ERR_PARAM;
    }
    uint32_t *panel = (uint32_t *)scratch;
    const uint32_t off2 = fm_pack16(p->input_offset, p->input_offset);
    const fm_dsp_out_t os = fm_dsp_out(p->output_offset, p->act_min, p->act_max);
    const int32_t pixels = p->output_dims.n * p->output_dims.h * p->output_dims.w;
    for (int32_t pix = 0; pix < pixels; pix += FM_DSP_SPARSE_PIXELS) {
        const int32_t npix = fm_min_i32(FM_DSP_SPARSE_PIXELS, pixels - pix);
        for (int32_t j = 0; j < (npix > 1 ? FM_DSP_SPARSE_PIXELS : 1); ++j) {
            /* a short last group repeats its last pixel; those results are not stored */
            fill(p, input, pix + fm_min_i32(j, npix - 1), j, off2, panel);
        }
        fm_dsp_sparse_rows(w, panel, npix, p->bias, p->multiplier, p->shift, 1, &os,
                           output + (size_t)pix * out_c, out_c);
    }
    return FM_OK;
}
