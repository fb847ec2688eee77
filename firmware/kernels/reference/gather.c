/* GATHER with int32 positions: for every batch, outer index and position, one contiguous slice of inner_bytes
 * is copied from input row `position` (TFLM's Gather<T, int32_t>, same output order). Positions are run-time
 * data: a batch's positions are all checked against [0, axis_size) before any slice of that batch is read, and a
 * bad one ends the op with FM_ERR_RANGE (TFLM returns kTfLiteError), so no byte outside the input is ever read.
 * Checking first keeps the copy loops free of tests; one-byte slices (a channel gather of int8) copy without a
 * call per byte. */
#include <string.h>

#include "fm_kernels_common.h"

int fm_gather(const fm_gather_params_t *p, const void *input, const int32_t *coords, void *output)
{
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    const size_t inner = (size_t)p->inner_bytes;
    const size_t axis_bytes = (size_t)p->axis_size * inner;
    const int32_t nc = p->coord_size;
    for (int32_t b = 0; b < p->batch_size; ++b) {
        const int32_t *pos = coords + (size_t)b * (size_t)nc;
        for (int32_t c = 0; c < nc; ++c) {
            if (pos[c] < 0 || pos[c] >= p->axis_size) return FM_ERR_RANGE;
        }
        for (int32_t o = 0; o < p->outer_size; ++o) {
            const uint8_t *row = in + ((size_t)b * (size_t)p->outer_size + (size_t)o) * axis_bytes;
            if (inner == 1) {
                for (int32_t c = 0; c < nc; ++c) out[c] = row[pos[c]];
            } else if (inner == 4) {
                for (int32_t c = 0; c < nc; ++c) memcpy(out + (size_t)c * 4u, row + (size_t)pos[c] * 4u, 4u);
            } else {
                for (int32_t c = 0; c < nc; ++c) {
                    fm_copy_bytes(out + (size_t)c * inner, row + (size_t)pos[c] * inner, inner);
                }
            }
            out += (size_t)nc * inner;
        }
    }
    return FM_OK;
}
