/*
 * MAX_POOL_2D int8 (TFLM reference_integer_ops::MaxPool, bit-exact), Helium/MVE, vectorized across channels.
 *
 * Per output pixel and block of 16 channels: VMAX of the window's taps inside the image (padding never wins; the
 * running maximum starts at -128, as TFLM's), then the fused-activation clamp and one store. The channel tail is
 * predicated (its loads zero the lanes past the channels, which are never stored). No scratch.
 */
#include "fm_helium.h"

int fm_max_pool2d_s8(const fm_pool_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, depth = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w;
    const size_t row = (size_t)in_w * depth;
    const int8x16_t lo = vdupq_n_s8((int8_t)p->act_min), hi = vdupq_n_s8((int8_t)p->act_max);
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * row;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const fm_window_t wy = fm_pool_window(oy, p->stride_h, p->pad_h, p->filter_h, in_h);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const fm_window_t wx = fm_pool_window(ox, p->stride_w, p->pad_w, p->filter_w, in_w);
                const int32_t wh = wy.end - wy.start, ww = wx.end - wx.start;
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * depth;
                const int8_t *win = wh > 0 && ww > 0 ? in_b + (size_t)(wy.origin + wy.start) * row
                                                           + (size_t)(wx.origin + wx.start) * depth
                                                     : in_b;
                for (int32_t c = 0; c < depth; c += 16) {
                    const mve_pred16_t pred = vctp8q((uint32_t)(depth - c));
                    int8x16_t m = vdupq_n_s8(INT8_MIN);
                    for (int32_t fy = 0; fy < wh; ++fy) {
                        const int8_t *src = win + (size_t)fy * row + c;
                        for (int32_t fx = 0; fx < ww; ++fx, src += depth) {
                            m = vmaxq_s8(m, vldrbq_z_s8(src, pred));
                        }
                    }
                    vstrbq_p_s8(out_px + c, vminq_s8(vmaxq_s8(m, lo), hi), pred);
                }
            }
        }
    }
    return FM_OK;
}
