/* AVERAGE_POOL_2D int8: tflite::reference_integer_ops::AveragePool. The average counts only the window
 * positions inside the image and rounds half away from zero with C integer division, as TFLM does. */
#include "fm_kernels_common.h"

int fm_average_pool2d_s8(const fm_pool_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch; /* the reference kernels need no scratch memory */
    const int32_t in_h = p->input_dims.h, in_w = p->input_dims.w, depth = p->input_dims.c;
    const int32_t out_h = p->output_dims.h, out_w = p->output_dims.w;
    for (int32_t b = 0; b < p->output_dims.n; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * depth;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const fm_window_t wy = fm_pool_window(oy, p->stride_h, p->pad_h, p->filter_h, in_h);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const fm_window_t wx = fm_pool_window(ox, p->stride_w, p->pad_w, p->filter_w, in_w);
                int8_t *out_px = output + (((size_t)b * out_h + oy) * out_w + ox) * depth;
                for (int32_t c = 0; c < depth; ++c) {
                    int32_t acc = 0;
                    int32_t count = 0;
                    for (int32_t fy = wy.start; fy < wy.end; ++fy) {
                        for (int32_t fx = wx.start; fx < wx.end; ++fx) {
                            acc += in_b[((size_t)(wy.origin + fy) * in_w + (wx.origin + fx)) * depth + c];
                            ++count;
                        }
                    }
                    if (count == 0) {
                        return FM_ERR_PARAM;
                    }
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    out_px[c] = (int8_t)fm_clamp_i32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
    return FM_OK;
}
