/*
 * Block-sparse FULLY_CONNECTED int8 (tflite::reference_integer_ops::FullyConnected(PerChannel), bit-exact: skipped
 * blocks hold only zero weights) for Armv7E-M DSP: up to 4 batch rows at a time are widened once into an int16
 * panel with the input offset added, then each output row runs over its stored 1x4 blocks with SMLAD
 * (fm_dsp_sparse.h). Scratch: the panel, 32 bytes per depth block.
 */
#include "fm_dsp_sparse.h"

int fm_fully_connected_sparse_s8(const fm_fully_connected_sparse_s8_params_t *p, const int8_t *input,
                                 int8_t *output, void *scratch)
{
    const fm_block_sparse_s8_t *w = &p->weights;
    const int32_t depth = p->accum_depth, full = depth / FM_SPARSE_BLOCK, tail = depth % FM_SPARSE_BLOCK;
    if (depth <= 0 || scratch == NULL || w->rows != p->output_depth || w->blocks_per_row != fm_sparse_blocks(depth) ||
        !fm_sparse_rows_ok(w) || !fm_dsp_sparse_cols_ok(w)) {
        return FM_ERR_PARAM;
    }
    uint32_t *panel = (uint32_t *)scratch;
    const uint32_t off2 = fm_pack16(p->input_offset, p->input_offset);
    const fm_dsp_out_t os = fm_dsp_out(p->output_offset, p->act_min, p->act_max);
    for (int32_t b0 = 0; b0 < p->batches; b0 += FM_DSP_SPARSE_PIXELS) {
        const int32_t npix = fm_min_i32(FM_DSP_SPARSE_PIXELS, p->batches - b0);
        for (int32_t j = 0; j < (npix > 1 ? FM_DSP_SPARSE_PIXELS : 1); ++j) {
            /* a short last group of 2 or 3 rows repeats its last row; those results are not stored */
            const int8_t *x = input + (size_t)(b0 + fm_min_i32(j, npix - 1)) * depth;
            for (int32_t c = 0; c < full; ++c) {
                fm_dsp_sparse_put(panel, c, j, fm_load_u32(x + c * FM_SPARSE_BLOCK), off2);
            }
            if (tail) {
                fm_dsp_sparse_put(panel, full, j, fm_dsp_tail_word(x + full * FM_SPARSE_BLOCK, tail), off2);
            }
        }
        fm_dsp_sparse_rows(w, panel, npix, p->bias, p->multiplier, p->shift, p->per_channel, &os,
                           output + (size_t)b0 * p->output_depth, p->output_depth);
    }
    return FM_OK;
}
