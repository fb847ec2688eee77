/* RESIZE_BILINEAR int8 (TFLM reference_ops::ResizeBilinearInteger): each output value is the four neighbours
 * weighted by 10-bit fixed-point fractions (weights multiply to 2^20), rounded half away from zero (TFLM's default
 * double rounding; FM_SINGLE_ROUNDING: + 2^19 >> 20). Rows/columns and their weights come from codegen's tables
 * (TFLM ComputeInterpolationValuesInteger evaluated ahead of time), which also checked that every weight product
 * fits: |sum| <= 128 * 2048 * 2048 < 2^31, so int32 gives TFLM's int64 result exactly. */
#include "fm_kernels.h"

int fm_resize_bilinear_s8(const fm_resize_bilinear_s8_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t depth = p->depth;
    const size_t row = (size_t)p->in_w * depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + (size_t)b * p->in_h * row;
        for (int32_t y = 0; y < p->out_h; ++y) {
            const int32_t *ty = p->y_table + 3 * y;
            const int8_t *r0 = in_b + (size_t)ty[0] * row;
            const int8_t *r1 = in_b + (size_t)ty[1] * row;
            const int32_t wy1 = ty[2], wy0 = 1024 - ty[2];
            for (int32_t x = 0; x < p->out_w; ++x) {
                const int32_t *tx = p->x_table + 3 * x;
                const size_t c0 = (size_t)tx[0] * depth, c1 = (size_t)tx[1] * depth;
                const int32_t wx1 = tx[2], wx0 = 1024 - tx[2];
                /* the four products in TFLM's order: (y0,x0), (y1,x0), (y0,x1), (y1,x1) */
                const int32_t w00 = wy0 * wx0, w10 = wy1 * wx0, w01 = wy0 * wx1, w11 = wy1 * wx1;
                for (int32_t c = 0; c < depth; ++c) {
                    const int32_t acc = r0[c0 + c] * w00 + r1[c0 + c] * w10 + r0[c1 + c] * w01 + r1[c1 + c] * w11;
#if FM_SINGLE_ROUNDING
                    *output++ = (int8_t)((acc + (1 << 19)) >> 20);
#else
                    *output++ = (int8_t)((acc + (acc > 0 ? (1 << 19) : -(1 << 19))) / (1 << 20));
#endif
                }
            }
        }
    }
    return FM_OK;
}
