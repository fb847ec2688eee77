/*
 * AVERAGE_POOL_2D int8 for Armv7E-M DSP, bit-exact with tflite::reference_integer_ops::AveragePool: the sum over
 * the window positions inside the image (padding never counts), rounded half away from zero by C division.
 *
 * Vectorized across channels: 8 (then 4) channels per tap, 4 per 32-bit load, summed by SXTAB16 / SXTAB16-ROR8 into two words of
 * 16-bit lanes (channels 0, 2 and 1, 3). A lane holds at most 255 taps (255 * 128 < 2^15); a window with more is
 * summed a row at a time and the lanes flushed into 32-bit totals after each row (rows wider than 255 taps, and
 * the last 1-3 channels, take a scalar loop). No scratch.
 */
#include "fm_kernels_common.h"
#include "fm_acle.h"

#define AP_LANE_TAPS 255

/* TFLM's rounding division of the window sum, then the fused-activation clamp. */
FM_INLINE int32_t ap_average(int32_t sum, int32_t count, int32_t lo, int32_t hi)
{
    const int32_t avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
    return fm_clamp_i32(avg, lo, hi);
}

int fm_average_pool2d_s8(const fm_pool_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch;
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, depth = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w;
    const int32_t lo = p->act_min, hi = p->act_max;
    const size_t in_row = (size_t)in_w * depth;
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_row;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const fm_window_t wy = fm_pool_window(oy, p->stride_h, p->pad_h, p->filter_h, in_h);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const fm_window_t wx = fm_pool_window(ox, p->stride_w, p->pad_w, p->filter_w, in_w);
                const int32_t rows = wy.end - wy.start, cols = wx.end - wx.start;
                if (rows <= 0 || cols <= 0) {
                    return FM_ERR_PARAM;
                }
                const int32_t count = rows * cols;
                const int8_t *win = in_b + (size_t)(wy.origin + wy.start) * in_row +
                                    (size_t)(wx.origin + wx.start) * depth;
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * depth;
                /* Lanes flushed once at the end when the whole window fits, else after every row. */
                const int32_t rows_per_flush = count <= AP_LANE_TAPS ? rows : 1;
                int32_t c = 0;
                if (cols <= AP_LANE_TAPS) {
                    for (; c + 8 <= depth; c += 8) { /* 8 channels per tap: half the loop overhead per channel */
                        int32_t sum[8] = {0};
                        const int8_t *row = win + c;
                        for (int32_t r = 0; r < rows;) {
                            uint32_t e0 = 0, o0 = 0, e1 = 0, o1 = 0;
                            const int32_t r_end = r + rows_per_flush;
                            for (; r < r_end; ++r, row += in_row) {
                                const int8_t *q = row;
                                for (int32_t k = cols; k > 0; --k, q += depth) {
                                    const uint32_t x = fm_load_u32(q), y = fm_load_u32(q + 4);
                                    e0 = fm_sxtab16(e0, x);
                                    o0 = fm_sxtab16_ror8(o0, x);
                                    e1 = fm_sxtab16(e1, y);
                                    o1 = fm_sxtab16_ror8(o1, y);
                                }
                            }
                            sum[0] += fm_lo16(e0);
                            sum[1] += fm_lo16(o0);
                            sum[2] += fm_hi16(e0);
                            sum[3] += fm_hi16(o0);
                            sum[4] += fm_lo16(e1);
                            sum[5] += fm_lo16(o1);
                            sum[6] += fm_hi16(e1);
                            sum[7] += fm_hi16(o1);
                        }
                        for (int32_t j = 0; j < 8; ++j) {
                            out_px[c + j] = (int8_t)ap_average(sum[j], count, lo, hi);
                        }
                    }
                    for (; c + 4 <= depth; c += 4) {
                        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                        const int8_t *row = win + c;
                        for (int32_t r = 0; r < rows;) {
                            uint32_t even = 0, odd = 0;
                            const int32_t r_end = r + rows_per_flush;
                            for (; r < r_end; ++r, row += in_row) {
                                const int8_t *q = row;
                                for (int32_t k = 0; k < cols; ++k, q += depth) {
                                    const uint32_t x = fm_load_u32(q);
                                    even = fm_sxtab16(even, x);
                                    odd = fm_sxtab16_ror8(odd, x);
                                }
                            }
                            s0 += fm_lo16(even);
                            s2 += fm_hi16(even);
                            s1 += fm_lo16(odd);
                            s3 += fm_hi16(odd);
                        }
                        const uint32_t packed = (uint32_t)(uint8_t)ap_average(s0, count, lo, hi) |
                                                (uint32_t)(uint8_t)ap_average(s1, count, lo, hi) << 8 |
                                                (uint32_t)(uint8_t)ap_average(s2, count, lo, hi) << 16 |
                                                (uint32_t)(uint8_t)ap_average(s3, count, lo, hi) << 24;
                        fm_store_u32(out_px + c, packed);
                    }
                }
                for (; c < depth; ++c) {
                    int32_t sum = 0;
                    const int8_t *row = win + c;
                    for (int32_t r = 0; r < rows; ++r, row += in_row) {
                        for (int32_t k = 0; k < cols; ++k) {
                            sum += row[(size_t)k * depth];
                        }
                    }
                    out_px[c] = (int8_t)ap_average(sum, count, lo, hi);
                }
            }
        }
    }
    return FM_OK;
}
