/* CONV_2D int8 with per-channel requantization: tflite::reference_integer_ops::ConvPerChannel. */
#include "fm_kernels_common.h"

int fm_conv2d_s8(const fm_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch; /* the reference kernels need no scratch memory */
    if (p->filter == NULL) {
        return FM_ERR_PARAM; /* packed for another kernel set */
    }
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w, k_c = p->filter_dims.c;
    if (k_c <= 0 || in_c % k_c != 0) {
        return FM_ERR_PARAM;
    }
    const int32_t groups = in_c / k_c;
    if (out_c % groups != 0) {
        return FM_ERR_PARAM;
    }
    const int32_t filters_per_group = out_c / groups;

    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                for (int32_t oc = 0; oc < out_c; ++oc) {
                    const int32_t group = oc / filters_per_group;
                    const int8_t *filt = p->filter + (size_t)oc * k_h * k_w * k_c;
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
                            const int8_t *in_px = in_b + ((size_t)iy * in_w + ix) * in_c + (size_t)group * k_c;
                            const int8_t *f = filt + ((size_t)ky * k_w + kx) * k_c;
                            for (int32_t ic = 0; ic < k_c; ++ic) {
                                acc += (int32_t)f[ic] * ((int32_t)in_px[ic] + p->input_offset);
                            }
                        }
                    }
                    FM_CONV_OUTPUT_S8(out_px[oc], acc, p, oc, oc);
                }
            }
        }
    }
    return FM_OK;
}
