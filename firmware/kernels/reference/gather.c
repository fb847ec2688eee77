/* GATHER with int32 positions: for every batch, outer index and position, one contiguous slice of inner_bytes
 * is copied from input row `position` (TFLM's Gather<T, int32_t>, same loop order). Positions are run-time data:
 * each is checked against [0, axis_size) before its slice is read, and a bad one ends the op with FM_ERR_RANGE
 * (TFLM returns kTfLiteError there), so no byte outside the input is ever read. */
#include <string.h>

#include "fm_kernels.h"

int fm_gather(const fm_gather_params_t *p, const void *input, const int32_t *coords, void *output)
{
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    const size_t inner = (size_t)p->inner_bytes;
    const size_t axis_bytes = (size_t)p->axis_size * inner;
    for (int32_t b = 0; b < p->batch_size; ++b) {
        const int32_t *pos = coords + (size_t)b * (size_t)p->coord_size;
        for (int32_t o = 0; o < p->outer_size; ++o) {
            const uint8_t *row = in + ((size_t)b * (size_t)p->outer_size + (size_t)o) * axis_bytes;
            for (int32_t c = 0; c < p->coord_size; ++c) {
                const int32_t v = pos[c];
                if (v < 0 || v >= p->axis_size) return FM_ERR_RANGE;
                memcpy(out, row + (size_t)v * inner, inner);
                out += inner;
            }
        }
    }
    return FM_OK;
}
