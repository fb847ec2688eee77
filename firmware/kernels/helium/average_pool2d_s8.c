/*
 * AVERAGE_POOL_2D int8 (TFLM reference_integer_ops::AveragePool, bit-exact), Helium/MVE, vectorized across channels.
 *
 * Per output pixel and block of 8 channels, the window's taps inside the image are summed in int16 lanes (one
 * widening load and one add per tap; at most 256 taps per int16 sum, |sum| <= 256 * 128 fits), flushed into int32
 * even/odd lanes (VMOVLB/VMOVLT); the rounded division (half away from zero by C division, as TFLM) is scalar per
 * channel, as MVE has no integer division. The channel tail is predicated. Windows of at most 256 taps (all the
 * usual ones) take 32 channels at a time: four sums, four loads and four adds per tap. No scratch.
 */
#include "fm_helium.h"

#define FM_HE_POOL_FLUSH 256 /* int16 partial sums hold at most this many taps */

/* n <= 8 channels' sums (int16 lanes, channel order) divided by count, rounding half away from zero as TFLM. */
static void fm_he_pool_out(int16x8_t s, int32_t count, int8_t *out, int32_t n, const fm_pool_params_t *p)
{
    int32_t sums[8];
    vstrwq_s32(sums, vmovlbq_s16(s));
    vstrwq_s32(sums + 4, vmovltq_s16(s));
    for (int32_t j = 0; j < n; ++j) {
        const int32_t acc = sums[(j & 1) * 4 + j / 2];
        const int32_t avg = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        out[j] = (int8_t)fm_clamp_i32(avg, p->act_min, p->act_max);
    }
}

int fm_average_pool2d_s8(const fm_pool_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch;
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, depth = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w;
    const size_t row = (size_t)in_w * depth;
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * row;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const fm_window_t wy = fm_pool_window(oy, p->stride_h, p->pad_h, p->filter_h, in_h);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const fm_window_t wx = fm_pool_window(ox, p->stride_w, p->pad_w, p->filter_w, in_w);
                const int32_t count = (wy.end - wy.start) * (wx.end - wx.start);
                if (count <= 0) {
                    return FM_ERR_PARAM;
                }
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * depth;
                const int8_t *win = in_b + (size_t)(wy.origin + wy.start) * row
                                    + (size_t)(wx.origin + wx.start) * depth;
                const int32_t wh = wy.end - wy.start, ww = wx.end - wx.start;
                int32_t c = 0;
                if (count <= FM_HE_POOL_FLUSH) { /* 32 channels at a time: four int16 sums per window tap */
                    for (; c + 32 <= depth; c += 32) {
                        int16x8_t s0 = vdupq_n_s16(0), s1 = s0, s2 = s0, s3 = s0;
                        for (int32_t fy = 0; fy < wh; ++fy) {
                            const int8_t *src = win + (size_t)fy * row + c;
                            for (int32_t fx = 0; fx < ww; ++fx, src += depth) {
                                s0 = vaddq_s16(s0, vldrbq_s16(src));
                                s1 = vaddq_s16(s1, vldrbq_s16(src + 8));
                                s2 = vaddq_s16(s2, vldrbq_s16(src + 16));
                                s3 = vaddq_s16(s3, vldrbq_s16(src + 24));
                            }
                        }
                        fm_he_pool_out(s0, count, out_px + c, 8, p);
                        fm_he_pool_out(s1, count, out_px + c + 8, 8, p);
                        fm_he_pool_out(s2, count, out_px + c + 16, 8, p);
                        fm_he_pool_out(s3, count, out_px + c + 24, 8, p);
                    }
                }
                for (; c < depth; c += 8) {
                    const mve_pred16_t pred = vctp16q((uint32_t)(depth - c));
                    int32x4_t e = vdupq_n_s32(0), o = vdupq_n_s32(0);
                    int16x8_t s = vdupq_n_s16(0);
                    int32_t taps = 0;
                    for (int32_t fy = 0; fy < wh; ++fy) {
                        const int8_t *src = win + (size_t)fy * row + c;
                        for (int32_t fx = 0; fx < ww; ++fx) {
                            s = vaddq_s16(s, vldrbq_z_s16(src, pred));
                            src += depth;
                            if (++taps == FM_HE_POOL_FLUSH) {
                                e = vaddq_s32(e, vmovlbq_s16(s));
                                o = vaddq_s32(o, vmovltq_s16(s));
                                s = vdupq_n_s16(0);
                                taps = 0;
                            }
                        }
                    }
                    e = vaddq_s32(e, vmovlbq_s16(s));
                    o = vaddq_s32(o, vmovltq_s16(s));
                    int32_t sums[8];
                    vstrwq_s32(sums, e);
                    vstrwq_s32(sums + 4, o);
                    const int32_t n = fm_min_i32(8, depth - c);
                    for (int32_t j = 0; j < n; ++j) {
                        const int32_t acc = sums[(j & 1) * 4 + j / 2];
                        const int32_t avg = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                        out_px[c + j] = (int8_t)fm_clamp_i32(avg, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
    return FM_OK;
}
