/* RESIZE_BILINEAR float32 (TFLM reference_ops::ResizeBilinear): the four neighbours weighted by (1 - dy) / dy and
 * (1 - dx) / dx, summed in TFLM's order. Rows, columns and fractions dy = input_y - y0 come from codegen's tables
 * (TFLM ComputeInterpolationValues in float, evaluated ahead of time). */
#include "fm_kernels.h"

int fm_resize_bilinear_f32(const fm_resize_bilinear_f32_params_t *p, const float *input, float *output)
{
    const int32_t depth = p->depth;
    const size_t row = (size_t)p->in_w * depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const float *in_b = input + (size_t)b * p->in_h * row;
        for (int32_t y = 0; y < p->out_h; ++y) {
            const float *r0 = in_b + (size_t)p->y_index[2 * y] * row;
            const float *r1 = in_b + (size_t)p->y_index[2 * y + 1] * row;
            const float dy = p->y_frac[y];
            for (int32_t x = 0; x < p->out_w; ++x) {
                const size_t c0 = (size_t)p->x_index[2 * x] * depth, c1 = (size_t)p->x_index[2 * x + 1] * depth;
                const float dx = p->x_frac[x];
                for (int32_t c = 0; c < depth; ++c) {
                    *output++ = r0[c0 + c] * (1 - dy) * (1 - dx) + r1[c0 + c] * dy * (1 - dx) +
                                r0[c1 + c] * (1 - dy) * dx + r1[c1 + c] * dy * dx;
                }
            }
        }
    }
    return FM_OK;
}
