/* TRANSPOSE_CONV int8 with per-channel requantization (TFLM reference_integer_ops::TransposeConv): a scatter.
 * Every input pixel adds (input + input_offset) * filter into the int32 accumulators of the output pixels its
 * kh x kw window covers (`scratch`, one int32 per output element); then TFLM's MultiplyByQuantizedMultiplier, the
 * output offset and the clamp. The accumulators wrap as two's complement, so the order of the additions cannot
 * change a result: they start at the bias instead of adding it last, and unlike TFLM's loop (input channel
 * outermost, one read-modify-write of an accumulator per MAC, filter read with a stride), this one sums each input
 * pixel's input channels first, contiguous in input and filter, and touches an accumulator once per filter tap.
 * Layout: NHWC, filter [out_c, kh, kw, in_c]. */
#include "fm_kernels_common.h"

int fm_transpose_conv_s8(const fm_transpose_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    int32_t *acc = (int32_t *)scratch;
    if (acc == NULL || p->filter == NULL) {
        return FM_ERR_PARAM;
    }
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, in_c = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w, out_c = p->output_dims.c;
    const int32_t k_h = p->filter_dims.h, k_w = p->filter_dims.w;
    const size_t elements = (size_t)p->output_dims.n * out_h * out_w * out_c;
    const size_t f_step = (size_t)k_h * k_w * in_c; /* from one output channel's filter to the next */
    const int32_t in_off = p->input_offset;           /* a local: the accumulator stores cannot alias it */
    const int8_t *filter = p->filter;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, pad_h = p->pad_h, pad_w = p->pad_w;
    /* the accumulators start at the bias (wrapping sums: the same result as adding it last, as TFLM does), which
     * also keeps GCC from turning a zeroing loop into newlib-nano's byte-by-byte memset */
    const int32_t *bias = p->bias;
    for (size_t px = 0; px < elements / (size_t)out_c; ++px) {
        for (int32_t oc = 0; oc < out_c; ++oc) {
            acc[px * out_c + oc] = bias ? bias[oc] : 0;
        }
    }

    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        int32_t *acc_b = acc + (size_t)b * out_h * out_w * out_c;
        for (int32_t iy = 0; iy < in_h; ++iy) {
            const int32_t oy0 = iy * stride_h - pad_h;
            /* filter rows whose output row falls inside the output */
            const int32_t ky0 = fm_max_i32(0, -oy0), ky1 = fm_min_i32(k_h, out_h - oy0);
            for (int32_t ix = 0; ix < in_w; ++ix) {
                const int32_t ox0 = ix * stride_w - pad_w;
                const int32_t kx0 = fm_max_i32(0, -ox0), kx1 = fm_min_i32(k_w, out_w - ox0);
                const int8_t *in_px = in_b + ((size_t)iy * in_w + ix) * in_c;
                for (int32_t ky = ky0; ky < ky1; ++ky) {
                    for (int32_t kx = kx0; kx < kx1; ++kx) {
                        int32_t *a = acc_b + ((size_t)(oy0 + ky) * out_w + (ox0 + kx)) * out_c;
                        const int8_t *f = filter + ((size_t)ky * k_w + kx) * in_c;
                        for (int32_t oc = 0; oc < out_c; ++oc, f += f_step) {
                            /* this input pixel's contribution to one output element: a dot product over the
                             * input channels, contiguous in input and filter (codegen bounds in_c so that it
                             * cannot overflow) */
                            int32_t sum = 0;
                            for (int32_t ic = 0; ic < in_c; ++ic) {
                                sum += ((int32_t)in_px[ic] + in_off) * f[ic];
                            }
                            a[oc] = fm_wrap_add(a[oc], sum);
                        }
                    }
                }
            }
        }
    }

    /* the parameters in locals: the int8 stores below may alias anything, so the compiler would reload them */
    const int32_t *mult = p->multiplier, *shift = p->shift;
    const int32_t out_off = p->output_offset, act_min = p->act_min, act_max = p->act_max;
    for (size_t px = 0; px < elements / (size_t)out_c; ++px) {
        const int32_t *a = acc + px * out_c;
        int8_t *o = output + px * out_c;
        for (int32_t oc = 0; oc < out_c; ++oc) {
            o[oc] = (int8_t)fm_clamp_i32(fm_mbqm(a[oc], mult[oc], shift[oc]) + out_off, act_min, act_max);
        }
    }
    return FM_OK;
}
