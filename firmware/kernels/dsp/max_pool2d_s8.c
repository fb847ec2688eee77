/*
 * MAX_POOL_2D int8 for Armv7E-M DSP, bit-exact with tflite::reference_integer_ops::MaxPool: the max over the
 * window clipped to the input (padding never wins), then the fused-activation clamp.
 *
 * Vectorized across channels: 4 channels per 32-bit load, a running max of 4 signed bytes by SSUB8 + SEL
 * (fm_max_s8x4), and the clamp as one more max and min against the replicated bounds; the last 1-3 channels take
 * a scalar loop.
 */
#include "fm_kernels_common.h"
#include "fm_acle.h"

int fm_max_pool2d_s8(const fm_pool_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, depth = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w;
    const size_t in_row = (size_t)in_w * depth;
    const uint32_t lo4 = 0x01010101u * (uint8_t)p->act_min, hi4 = 0x01010101u * (uint8_t)p->act_max;
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_row;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const fm_window_t wy = fm_pool_window(oy, p->stride_h, p->pad_h, p->filter_h, in_h);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const fm_window_t wx = fm_pool_window(ox, p->stride_w, p->pad_w, p->filter_w, in_w);
                const int32_t rows = wy.end - wy.start, cols = wx.end - wx.start;
                const int8_t *win = in_b + (size_t)(wy.origin + wy.start) * in_row +
                                    (size_t)(wx.origin + wx.start) * depth;
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * depth;
                int32_t c = 0;
                for (; c + 4 <= depth; c += 4) {
                    uint32_t m = 0x80808080u;
                    const int8_t *row = win + c;
                    for (int32_t r = 0; r < rows; ++r, row += in_row) {
                        const int8_t *q = row;
                        for (int32_t k = 0; k < cols; ++k, q += depth) {
                            m = fm_max_s8x4(m, fm_load_u32(q));
                        }
                    }
                    fm_store_u32(out_px + c, fm_min_s8x4(fm_max_s8x4(m, lo4), hi4));
                }
                for (; c < depth; ++c) {
                    int32_t m = INT8_MIN;
                    const int8_t *row = win + c;
                    for (int32_t r = 0; r < rows; ++r, row += in_row) {
                        for (int32_t k = 0; k < cols; ++k) {
                            const int32_t v = row[(size_t)k * depth];
                            m = v > m ? v : m;
                        }
                    }
                    out_px[c] = (int8_t)fm_clamp_i32(m, p->act_min, p->act_max);
                }
            }
        }
    }
    return FM_OK;
}
