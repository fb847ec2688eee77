/* TRANSPOSE_CONV float32 (TFLM reference_ops::TransposeConv): a scatter straight into the output (zeroed first):
 * every input pixel adds input * filter to the output pixels its kh x kw window covers, in TFLM's loop order
 * (input pixel, input channel, filter row, filter column, output channel); then bias and the fused-activation
 * clamp per element. The output must not overlap the input. Layout: NHWC, filter [out_c, kh, kw, in_c]. */
#include "fm_kernels_common.h"

int fm_transpose_conv_f32(const fm_transpose_conv_f32_params_t *p, const float *input, float *output)
{
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w;
    const size_t elements = (size_t)p->output_dims.n * out_h * out_w * out_c;
    const size_t f_step = (size_t)k_h * k_w * in_c;
    for (size_t i = 0; i < elements; ++i) {
        output[i] = 0.0f;
    }
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const float *in_b = input + (size_t)b * in_h * in_w * in_c;
        float *out_b = output + (size_t)b * out_h * out_w * out_c;
        for (int32_t iy = 0; iy < in_h; ++iy) {
            const int32_t oy0 = iy * p->stride_h - p->pad_h;
            const int32_t ky0 = fm_max_i32(0, -oy0), ky1 = fm_min_i32(k_h, out_h - oy0);
            for (int32_t ix = 0; ix < in_w; ++ix) {
                const int32_t ox0 = ix * p->stride_w - p->pad_w;
                const int32_t kx0 = fm_max_i32(0, -ox0), kx1 = fm_min_i32(k_w, out_w - ox0);
                const float *in_px = in_b + ((size_t)iy * in_w + ix) * in_c;
                for (int32_t ic = 0; ic < in_c; ++ic) {
                    const float v = in_px[ic];
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            float *o = out_b + ((size_t)(oy0 + ky) * out_w + (ox0 + kx)) * out_c;
                            const float *f = p->filter + ((size_t)ky * k_w + kx) * in_c + ic;
                            for (int32_t oc = 0; oc < out_c; ++oc) {
                                o[oc] += v * f[(size_t)oc * f_step];
                            }
                        }
                    }
                }
            }
        }
    }
    for (size_t i = 0; i < elements; ++i) {
        FM_CONV_OUTPUT_F32(output[i], output[i], p, (int32_t)(i % (size_t)out_c));
    }
    return FM_OK;
}
