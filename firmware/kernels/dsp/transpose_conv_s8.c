/*
 * TRANSPOSE_CONV int8 for Armv7E-M DSP, bit-exact with tflite::reference_integer_ops::TransposeConv: the same
 * scatter into one int32 accumulator per output element (`scratch`, as the reference set declares it), then
 * requantization and clamp.
 *
 * The accumulators wrap as two's complement, so the order of the additions cannot change a result: they start at
 * the bias (a word loop, where GCC would turn zeroing into newlib-nano's byte-wise memset). Each input
 * pixel's contribution to an output element is a dot product over the input channels, contiguous in the input and
 * in the TFLite filter layout [out_c, kh, kw, in_c]: 4 channels per word, widened by SXTB16 / SXTB16-ROR8 into
 * pairs (bytes 0,2 and 1,3 of both words, so no weight re-layout is needed), the input offset added lane-wise by
 * SADD16 (|input + offset| <= 255 fits a lane), two SMLADs per 4 MACs; two output channels share the widened
 * input. The last 1-3 channels take a scalar loop. Requantization: fm_dsp_mbqm (TFLM multipliers are never
 * INT32_MIN).
 */
#include "fm_kernels_common.h"
#include "fm_acle.h"
#include "fm_dsp_requant.h"

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
    const size_t f_step = (size_t)k_h * k_w * in_c;
    const int32_t in_off = p->input_offset;
    const uint32_t off2 = fm_pack16(in_off, in_off);
    const int32_t in_c4 = in_c & ~3; /* channels taken 4 at a time; the rest one by one */
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
            const int32_t ky0 = fm_max_i32(0, -oy0), ky1 = fm_min_i32(k_h, out_h - oy0);
            for (int32_t ix = 0; ix < in_w; ++ix) {
                const int32_t ox0 = ix * stride_w - pad_w;
                const int32_t kx0 = fm_max_i32(0, -ox0), kx1 = fm_min_i32(k_w, out_w - ox0);
                const int8_t *in_px = in_b + ((size_t)iy * in_w + ix) * in_c;
                for (int32_t ky = ky0; ky < ky1; ++ky) {
                    for (int32_t kx = kx0; kx < kx1; ++kx) {
                        int32_t *a = acc_b + ((size_t)(oy0 + ky) * out_w + (ox0 + kx)) * out_c;
                        const int8_t *f0 = filter + ((size_t)ky * k_w + kx) * in_c;
                        int32_t oc = 0;
                        for (; oc + 2 <= out_c; oc += 2, f0 += 2 * f_step) {
                            const int8_t *x = in_px, *w0p = f0, *w1p = f0 + f_step;
                            int32_t s0 = 0, s1 = 0;
                            for (const int8_t *x_end = in_px + in_c4; x != x_end;) {
                                const uint32_t xw = fm_read_s8x4(&x);
                                const uint32_t xa = fm_sadd16(fm_sxtb16(xw), off2);
                                const uint32_t xb = fm_sadd16(fm_sxtb16_ror8(xw), off2);
                                const uint32_t w0 = fm_read_s8x4(&w0p), w1 = fm_read_s8x4(&w1p);
                                s0 = fm_smlad(xa, fm_sxtb16(w0), s0);
                                s0 = fm_smlad(xb, fm_sxtb16_ror8(w0), s0);
                                s1 = fm_smlad(xa, fm_sxtb16(w1), s1);
                                s1 = fm_smlad(xb, fm_sxtb16_ror8(w1), s1);
                            }
                            for (int32_t ic = in_c4; ic < in_c; ++ic) {
                                const int32_t v = (int32_t)*x++ + in_off;
                                s0 = fm_wrap_add(s0, v * *w0p++);
                                s1 = fm_wrap_add(s1, v * *w1p++);
                            }
                            a[oc] = fm_wrap_add(a[oc], s0);
                            a[oc + 1] = fm_wrap_add(a[oc + 1], s1);
                        }
                        if (oc < out_c) {
                            const int8_t *x = in_px, *w0p = f0;
                            int32_t s0 = 0;
                            for (const int8_t *x_end = in_px + in_c4; x != x_end;) {
                                const uint32_t xw = fm_read_s8x4(&x), w0 = fm_read_s8x4(&w0p);
                                s0 = fm_smlad(fm_sadd16(fm_sxtb16(xw), off2), fm_sxtb16(w0), s0);
                                s0 = fm_smlad(fm_sadd16(fm_sxtb16_ror8(xw), off2), fm_sxtb16_ror8(w0), s0);
                            }
                            for (int32_t ic = in_c4; ic < in_c; ++ic) {
                                s0 = fm_wrap_add(s0, ((int32_t)*x++ + in_off) * *w0p++);
                            }
                            a[oc] = fm_wrap_add(a[oc], s0);
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
            o[oc] = (int8_t)fm_clamp_i32(fm_dsp_mbqm(a[oc], mult[oc], shift[oc]) + out_off, act_min, act_max);
        }
    }
    return FM_OK;
}
