/*
 * Shared by the dsp set's block-sparse kernels (conv2d_sparse_s8.c, fully_connected_sparse_s8.c): up to 4 output
 * pixels (or batch rows) at a time, each input block of 4 int8 is widened once per pixel into an int16 panel with
 * the input offset added (x + offset fits int16), so the loop over a row's stored blocks adds no offsets: per
 * stored block one weight word widened by SXTB16 / SXTB16-ROR8, its column, and 2 SMLAD per pixel. The weights
 * are the TFLite-order 1x4 blocks of fm_block_sparse_s8_t (no re-layout, int8 in flash).
 *
 * Panel: per block column c, [pixel j: (k0,k2)+off, (k1,k3)+off] for j < 4: 8 words per column.
 */
#ifndef FM_DSP_SPARSE_H
#define FM_DSP_SPARSE_H

#include "fm_dsp_gemm.h"
#include "fm_sparse.h"

#define FM_DSP_SPARSE_PIXELS 4

/* Every stored column is below blocks_per_row (checked once per call instead of once per block). */
FM_INLINE int fm_dsp_sparse_cols_ok(const fm_block_sparse_s8_t *w)
{
    for (int32_t k = 0; k < w->nnz_blocks; ++k) {
        if (w->cols[k] >= w->blocks_per_row) {
            return 0;
        }
    }
    return 1;
}

/* One block word of pixel j into panel column c, offset added to both int16 lanes. */
FM_INLINE void fm_dsp_sparse_put(uint32_t *panel, int32_t c, int32_t j, uint32_t word, uint32_t off2)
{
    uint32_t *dst = panel + (size_t)c * 2 * FM_DSP_SPARSE_PIXELS + 2 * j;
    dst[0] = fm_sadd16(fm_sxtb16(word), off2);
    dst[1] = fm_sadd16(fm_sxtb16_ror8(word), off2);
}

/* Row r's dot products with np (1 or 4) pixels of the panel into acc[0..np), starting from bias. */
FM_INLINE void fm_dsp_sparse_row(const fm_block_sparse_s8_t *w, int32_t r, const uint32_t *panel, int32_t bias,
                                 int32_t *acc, const int np)
{
    int32_t a0 = bias, a1 = bias, a2 = bias, a3 = bias;
    const int8_t *v = w->values + (size_t)w->row_ptr[r] * FM_SPARSE_BLOCK;
    const uint16_t *col = w->cols + w->row_ptr[r];
    for (int32_t n = w->row_ptr[r + 1] - w->row_ptr[r]; n > 0; --n, v += FM_SPARSE_BLOCK) {
        const uint32_t wv = fm_load_u32(v);
        const uint32_t wa = fm_sxtb16(wv), wb = fm_sxtb16_ror8(wv);
        const uint32_t *x = panel + (size_t)*col++ * 2 * FM_DSP_SPARSE_PIXELS;
        a0 = fm_smlad(x[1], wb, fm_smlad(x[0], wa, a0));
        if (np > 1) {
            a1 = fm_smlad(x[3], wb, fm_smlad(x[2], wa, a1));
            a2 = fm_smlad(x[5], wb, fm_smlad(x[4], wa, a2));
            a3 = fm_smlad(x[7], wb, fm_smlad(x[6], wa, a3));
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Every row for npix (1..4) pixels (npix > 1: all 4 panel slots are filled and computed): out[j * out_stride + r], requantized with multiplier/shift[r or 0]. */
FM_INLINE void fm_dsp_sparse_rows(const fm_block_sparse_s8_t *w, const uint32_t *panel, int32_t npix,
                                  const int32_t *bias, const int32_t *mult, const int32_t *shift, int per_channel,
                                  const fm_dsp_out_t *o, int8_t *out, int32_t out_stride)
{
    for (int32_t r = 0; r < w->rows; ++r) {
        int32_t acc[FM_DSP_SPARSE_PIXELS];
        const int32_t b = bias != NULL ? bias[r] : 0;
        if (npix == 1) {
            fm_dsp_sparse_row(w, r, panel, b, acc, 1);
        } else {
            fm_dsp_sparse_row(w, r, panel, b, acc, FM_DSP_SPARSE_PIXELS);
        }
        const int32_t ch = per_channel ? r : 0;
        for (int32_t j = 0; j < npix; ++j) {
            out[(size_t)j * out_stride + r] = fm_dsp_out1(acc[j], mult[ch], shift[ch], o);
        }
    }
}

#endif /* FM_DSP_SPARSE_H */
