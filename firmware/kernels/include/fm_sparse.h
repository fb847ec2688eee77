/* Shared by the block-sparse kernels (conv2d_sparse_s8.c, fully_connected_sparse_s8.c): the index checks and the
 * dot product of one stored block. */
#ifndef FM_SPARSE_H
#define FM_SPARSE_H

#include "fm_kernels.h"

/* Blocks per filter tap for `depth` input channels. */
FM_INLINE int32_t fm_sparse_blocks(int32_t depth)
{
    return (depth + FM_SPARSE_BLOCK - 1) / FM_SPARSE_BLOCK;
}

/* The row index is well formed: starts at 0, never decreases, ends at nnz_blocks (O(rows), once per call). */
FM_INLINE int fm_sparse_rows_ok(const fm_block_sparse_s8_t *w)
{
    if (w->rows <= 0 || w->blocks_per_row <= 0 || w->nnz_blocks < 0 || w->row_ptr[0] != 0 ||
        w->row_ptr[w->rows] != w->nnz_blocks) {
        return 0;
    }
    for (int32_t r = 0; r < w->rows; ++r) {
        if (w->row_ptr[r + 1] < w->row_ptr[r]) {
            return 0;
        }
    }
    return 1;
}

/* sum over the block of weight * (input + offset); `left` = input channels from the block's first one to the end
 * of the tap (a partial last block reads only those). */
FM_INLINE int32_t fm_sparse_block_dot(const int8_t *wv, const int8_t *x, int32_t left, int32_t input_offset)
{
    if (left >= FM_SPARSE_BLOCK) {
        return (int32_t)wv[0] * ((int32_t)x[0] + input_offset) + (int32_t)wv[1] * ((int32_t)x[1] + input_offset) +
               (int32_t)wv[2] * ((int32_t)x[2] + input_offset) + (int32_t)wv[3] * ((int32_t)x[3] + input_offset);
    }
    int32_t acc = 0;
    for (int32_t i = 0; i < left; ++i) {
        acc += (int32_t)wv[i] * ((int32_t)x[i] + input_offset);
    }
    return acc;
}

#endif /* FM_SPARSE_H */
