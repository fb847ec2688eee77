/* DEPTHWISE_CONV_2D int8, per-channel: tflite::reference_integer_ops::DepthwiseConvPerChannel. */
#include "fm_kernels_common.h"

int fm_depthwise_conv2d_s8(const fm_depthwise_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch; /* the reference kernels need no scratch memory */
    if (p->filter == NULL) {
        return FM_ERR_PARAM; /* packed for another kernel set */
    }
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w;
    const int32_t dm = p->depth_multiplier;
    if (dm <= 0 || in_c * dm != out_c || p->filter_dims.c != out_c) {
        return FM_ERR_PARAM;
    }
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                for (int32_t ic = 0; ic < in_c; ++ic) {
                    for (int32_t m = 0; m < dm; ++m) {
                        const int32_t oc = ic * dm + m;
                        int32_t acc = 0;
                        for (int32_t ky = 0; ky < k_h; ++ky) {
                            const int32_t iy = in_y0 + p->dilation_h * ky;
                            if (iy < 0 || iy >= in_h) {
                                continue;
                            }
                            for (int32_t kx = 0; kx < k_w; ++kx) {
                                const int32_t ix = in_x0 + p->dilation_w * kx;
                                if (ix < 0 || ix >= in_w) {
                                    continue;
                                }
                                const int32_t iv = in_b[((size_t)iy * in_w + ix) * in_c + ic];
                                const int32_t fv = p->filter[((size_t)ky * k_w + kx) * out_c + oc];
                                acc += fv * (iv + p->input_offset);
                            }
                        }
                        FM_CONV_OUTPUT_S8(out_px[oc], acc, p, oc, oc);
                    }
                }
            }
        }
    }
    return FM_OK;
}
