/* CONV_2D float32 (TFLM reference_ops::Conv): zero padding by skipping out-of-range taps, bias, clamp.
 * Grouped when filter_dims.c < input_dims.c. */
#include "fm_kernels_common.h"

int fm_conv2d_f32(const fm_conv_f32_params_t *p, const float *input, float *output, void *scratch)
{
    (void)scratch; /* the reference kernels need no scratch memory */
    const fm_dims4_t *in = &p->input_dims;
    const fm_dims4_t *f = &p->filter_dims;
    const fm_dims4_t *out = &p->output_dims;
    if (f->c <= 0 || in->c % f->c != 0) {
        return FM_ERR_PARAM;
    }
    const int32_t groups = in->c / f->c;
    const int32_t per_group = out->c / groups;
    for (int32_t b = 0; b < out->n; ++b) {
        for (int32_t oy = 0; oy < out->h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < out->w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                for (int32_t oc = 0; oc < out->c; ++oc) {
                    const int32_t g = oc / per_group;
                    float acc = 0.0f;
                    for (int32_t fy = 0; fy < f->h; ++fy) {
                        const int32_t iy = y0 + p->dilation_h * fy;
                        if (iy < 0 || iy >= in->h) continue;
                        for (int32_t fx = 0; fx < f->w; ++fx) {
                            const int32_t ix = x0 + p->dilation_w * fx;
                            if (ix < 0 || ix >= in->w) continue;
                            const float *ip = input + (((size_t)b * in->h + iy) * in->w + ix) * in->c + g * f->c;
                            const float *fp = p->filter + (((size_t)oc * f->h + fy) * f->w + fx) * f->c;
                            for (int32_t ic = 0; ic < f->c; ++ic) {
                                acc += ip[ic] * fp[ic];
                            }
                        }
                    }
                    FM_CONV_OUTPUT_F32(output[(((size_t)b * out->h + oy) * out->w + ox) * out->c + oc], acc, p, oc);
                }
            }
        }
    }
    return FM_OK;
}
