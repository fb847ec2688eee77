/* Block-sparse FULLY_CONNECTED int8: tflite::reference_integer_ops::FullyConnected(PerChannel) over the stored
 * (non-zero) blocks only. Bit-exact: a skipped block holds only zero weights, which add nothing. */
#include "fm_kernels_common.h"
#include "fm_sparse.h"

int fm_fully_connected_sparse_s8(const fm_fully_connected_sparse_s8_params_t *p, const int8_t *input,
                                 int8_t *output, void *scratch)
{
    (void)scratch;
    const fm_block_sparse_s8_t *w = &p->weights;
    const int32_t depth = p->accum_depth;
    if (depth <= 0 || w->rows != p->output_depth || w->blocks_per_row != fm_sparse_blocks(depth) ||
        !fm_sparse_rows_ok(w)) {
        return FM_ERR_PARAM;
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_row = input + (size_t)b * depth;
        for (int32_t oc = 0; oc < p->output_depth; ++oc) {
            int32_t acc = 0;
            for (int32_t k = w->row_ptr[oc]; k < w->row_ptr[oc + 1]; ++k) {
                const int32_t col = w->cols[k];
                if (col >= w->blocks_per_row) {
                    return FM_ERR_PARAM;
                }
                acc += fm_sparse_block_dot(w->values + (size_t)k * FM_SPARSE_BLOCK, in_row + col * FM_SPARSE_BLOCK,
                                           depth - col * FM_SPARSE_BLOCK, p->input_offset);
            }
            FM_CONV_OUTPUT_S8(output[(size_t)b * p->output_depth + oc], acc, p, oc, p->per_channel ? oc : 0);
        }
    }
    return FM_OK;
}
