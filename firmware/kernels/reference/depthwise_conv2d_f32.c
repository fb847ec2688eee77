/* DEPTHWISE_CONV_2D float32 (TFLM reference_ops::DepthwiseConv): output channel ic * depth_multiplier + m. */
#include "fm_kernels_common.h"

int fm_depthwise_conv2d_f32(const fm_conv_f32_params_t *p, const float *input, float *output, void *scratch)
{
    (void)scratch; /* the reference kernels need no scratch memory */
    const fm_dims4_t *in = &p->input_dims;
    const fm_dims4_t *f = &p->filter_dims;
    const fm_dims4_t *out = &p->output_dims;
    const int32_t dm = p->depth_multiplier;
    for (int32_t b = 0; b < out->n; ++b) {
        for (int32_t oy = 0; oy < out->h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < out->w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                for (int32_t ic = 0; ic < in->c; ++ic) {
                    for (int32_t m = 0; m < dm; ++m) {
                        const int32_t oc = ic * dm + m;
                        float acc = 0.0f;
                        for (int32_t fy = 0; fy < f->h; ++fy) {
                            const int32_t iy = y0 + p->dilation_h * fy;
                            if (iy < 0 || iy >= in->h) continue;
                            for (int32_t fx = 0; fx < f->w; ++fx) {
                                const int32_t ix = x0 + p->dilation_w * fx;
                                if (ix < 0 || ix >= in->w) continue;
                                acc += input[(((size_t)b * in->h + iy) * in->w + ix) * in->c + ic] *
                                       p->filter[((size_t)fy * f->w + fx) * f->c + oc];
                            }
                        }
                        FM_CONV_OUTPUT_F32(output[(((size_t)b * out->h + oy) * out->w + ox) * out->c + oc], acc, p, oc);
                    }
                }
            }
        }
    }
    return FM_OK;
}
