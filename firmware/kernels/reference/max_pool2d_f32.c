/* MAX_POOL_2D float32 (TFLM reference_ops::MaxPool): max over the window clipped to the input, then clamp. */
#include <float.h>

#include "fm_kernels.h"

int fm_max_pool2d_f32(const fm_pool_params_t *p, const float *input, float *output)
{
    const fm_dims4_t *in = &p->input_dims;
    const fm_dims4_t *out = &p->output_dims;
    for (int32_t b = 0; b < out->n; ++b) {
        for (int32_t oy = 0; oy < out->h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = fm_max_i32(0, -y0), fy1 = fm_min_i32(p->filter_h, in->h - y0);
            for (int32_t ox = 0; ox < out->w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = fm_max_i32(0, -x0), fx1 = fm_min_i32(p->filter_w, in->w - x0);
                for (int32_t c = 0; c < out->c; ++c) {
                    float m = -FLT_MAX;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            const float v = input[(((size_t)b * in->h + y0 + fy) * in->w + x0 + fx) * in->c + c];
                            m = v > m ? v : m;
                        }
                    }
                    m = m < p->act_min_f ? p->act_min_f : (m > p->act_max_f ? p->act_max_f : m);
                    output[(((size_t)b * out->h + oy) * out->w + ox) * out->c + c] = m;
                }
            }
        }
    }
    return FM_OK;
}
