/* TRANSPOSE (and DEPTH_TO_SPACE / SPACE_TO_DEPTH, which codegen writes as 6-D transposes): the output is written
 * in order, a 5-deep loop nest finds each row's first input element through the permuted strides, and the
 * innermost dim is copied as one run when it is contiguous in the input, else element by element (one byte or
 * one 4-byte word per step; other sizes by memcpy). Bytes are moved unchanged, as TFLM's
 * reference_ops::Transpose moves values, so one kernel serves every type; memcpy keeps word reads aligned-safe. */
#include <string.h>

#include "fm_kernels.h"

static void copy_row(uint8_t *out, const uint8_t *src, int32_t n, size_t step, size_t eb)
{
    if (eb == 1) {
        for (int32_t j = 0; j < n; ++j) out[j] = src[(size_t)j * step];
    } else if (eb == 4) {
        for (int32_t j = 0; j < n; ++j) memcpy(out + (size_t)j * 4u, src + (size_t)j * step, 4u);
    } else {
        for (int32_t j = 0; j < n; ++j) memcpy(out + (size_t)j * eb, src + (size_t)j * step, eb);
    }
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
    const size_t row_bytes = (size_t)n[5] * eb;
    const int contiguous = p->in_strides[5] == 1;
    for (int32_t i0 = 0; i0 < n[0]; ++i0) {
        const uint8_t *b0 = in + (size_t)i0 * s[0];
        for (int32_t i1 = 0; i1 < n[1]; ++i1) {
            const uint8_t *b1 = b0 + (size_t)i1 * s[1];
            for (int32_t i2 = 0; i2 < n[2]; ++i2) {
                const uint8_t *b2 = b1 + (size_t)i2 * s[2];
                for (int32_t i3 = 0; i3 < n[3]; ++i3) {
                    const uint8_t *b3 = b2 + (size_t)i3 * s[3];
                    for (int32_t i4 = 0; i4 < n[4]; ++i4) {
                        const uint8_t *src = b3 + (size_t)i4 * s[4];
                        if (contiguous) {
                            memcpy(out, src, row_bytes);
                        } else {
                            copy_row(out, src, n[5], s[5], eb);
                        }
                        out += row_bytes;
                    }
                }
            }
        }
    }
    return FM_OK;
}
