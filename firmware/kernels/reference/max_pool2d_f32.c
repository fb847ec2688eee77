/* MAX_POOL_2D float32 (TFLM reference_ops::MaxPool): max over the window clipped to the input, then clamp. */
#include <float.h>

#include "fm_kernels_common.h"

int fm_max_pool2d_f32(const fm_pool_params_t *p, const float *input, float *output)
{
    const fm_dims4_t *in = &p->input_dims;
    const fm_dims4_t *out = &p->output_dims;
    for (int32_t b = 0; b < out->n; ++b) {
        for (int32_t oy = 0; oy < out->h; ++oy) {
            const fm_window_t wy = fm_pool_window(oy, p->stride_h, p->pad_h, p->filter_h, in->h);
            for (int32_t ox = 0; ox < out->w; ++ox) {
                const fm_window_t wx = fm_pool_window(ox, p->stride_w, p->pad_w, p->filter_w, in->w);
                for (int32_t c = 0; c < out->c; ++c) {
                    float m = -FLT_MAX;
                    for (int32_t fy = wy.start; fy < wy.end; ++fy) {
                        for (int32_t fx = wx.start; fx < wx.end; ++fx) {
                            const float v =
                                input[(((size_t)b * in->h + wy.origin + fy) * in->w + wx.origin + fx) * in->c + c];
                            m = v > m ? v : m;
                        }
                    }
                    output[(((size_t)b * out->h + oy) * out->w + ox) * out->c + c] =
                        fm_clamp_f32(m, p->act_min_f, p->act_max_f);
                }
            }
        }
    }
    return FM_OK;
}
