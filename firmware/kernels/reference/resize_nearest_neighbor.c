/* RESIZE_NEAREST_NEIGHBOR, any element type (TFLM reference_ops::ResizeNearestNeighbor): every output pixel is a
 * copy of one input pixel (depth elements, pixel_bytes bytes). The source row and column of each output row and
 * column (TFLM GetNearestNeighbor, float math) were evaluated by codegen into y_index / x_index, so the kernel
 * only copies. Output rows are written in order; the output never overlaps the input. */
#include <string.h>

#include "fm_kernels.h"

int fm_resize_nearest_neighbor(const fm_resize_nearest_params_t *p, const void *input, void *output)
{
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    const size_t px = (size_t)p->pixel_bytes;
    const size_t row = (size_t)p->in_w * px;
    for (int32_t b = 0; b < p->batches; ++b) {
        const uint8_t *in_b = in + (size_t)b * p->in_h * row;
        for (int32_t y = 0; y < p->out_h; ++y) {
            const uint8_t *in_row = in_b + (size_t)p->y_index[y] * row;
            for (int32_t x = 0; x < p->out_w; ++x) {
                memcpy(out, in_row + (size_t)p->x_index[x] * px, px);
                out += px;
            }
        }
    }
    return FM_OK;
}
