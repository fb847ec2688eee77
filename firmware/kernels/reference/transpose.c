/* TRANSPOSE (and DEPTH_TO_SPACE / SPACE_TO_DEPTH, which codegen writes as 6-D transposes): the output is written
 * in order, a 4-deep loop nest finds each block's first input element through the permuted strides, and the
 * two innermost dims are copied as a block: rows contiguous in the input as one run each, else element by element
 * (one byte or one 4-byte word per step; other sizes by memcpy). Bytes are moved unchanged, as TFLM's
 * reference_ops::Transpose moves values, so one kernel serves every type; memcpy keeps word reads aligned-safe. */
#include <string.h>

#include "fm_kernels_common.h"

/* The two innermost output dims (n4 rows of n5 elements, input steps s4 and s5 bytes) as one block: short rows
 * (a channel shuffle's rows hold the group count) cost one loop step per element, not one call per row. */
static uint8_t *copy_block(uint8_t *out, const uint8_t *src, int32_t n4, size_t s4, int32_t n5, size_t s5,
                           size_t eb)
{
    if (eb == 1 && s5 != 1 && n5 < n4) {
        /* short strided rows of bytes: walk the block by columns, so the inner loop is the longer dim */
        for (int32_t j = 0; j < n5; ++j) {
            const uint8_t *col = src + (size_t)j * s5;
            for (int32_t i4 = 0; i4 < n4; ++i4) out[(size_t)i4 * (size_t)n5 + (size_t)j] = col[(size_t)i4 * s4];
        }
        return out + (size_t)n4 * (size_t)n5;
    }
    for (int32_t i4 = 0; i4 < n4; ++i4) {
        const uint8_t *row = src + (size_t)i4 * s4;
        if (s5 == eb) {               /* contiguous in the input: one run */
            fm_copy_bytes(out, row, (size_t)n5 * eb);
            out += (size_t)n5 * eb;
        } else if (eb == 1) {
            for (int32_t j = 0; j < n5; ++j) out[j] = row[(size_t)j * s5];
            out += n5;
        } else if (eb == 4) {
            for (int32_t j = 0; j < n5; ++j) memcpy(out + (size_t)j * 4u, row + (size_t)j * s5, 4u);
            out += (size_t)n5 * 4u;
        } else {
            for (int32_t j = 0; j < n5; ++j) memcpy(out + (size_t)j * eb, row + (size_t)j * s5, eb);
            out += (size_t)n5 * eb;
        }
    }
    return out;
}

int fm_transpose(const fm_transpose_params_t *p, const void *input, void *output)
{
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    const int32_t *n = p->out_dims;
    const size_t eb = (size_t)p->element_bytes;
    size_t s[FM_TRANSPOSE_DIMS];
    for (int d = 0; d < FM_TRANSPOSE_DIMS; ++d) {
        if (n[d] <= 0) return FM_OK; /* empty output */
        s[d] = (size_t)p->in_strides[d] * eb;
    }
    for (int32_t i0 = 0; i0 < n[0]; ++i0) {
        const uint8_t *b0 = in + (size_t)i0 * s[0];
        for (int32_t i1 = 0; i1 < n[1]; ++i1) {
            const uint8_t *b1 = b0 + (size_t)i1 * s[1];
            for (int32_t i2 = 0; i2 < n[2]; ++i2) {
                const uint8_t *b2 = b1 + (size_t)i2 * s[2];
                for (int32_t i3 = 0; i3 < n[3]; ++i3) {
                    out = copy_block(out, b2 + (size_t)i3 * s[3], n[4], s[4], n[5], s[5], eb);
                }
            }
        }
    }
    return FM_OK;
}
