/* PRELU int8 (TFLM reference_ops::BroadcastPrelu4DSlow): the output is walked in row-major order with the input's
 * and alpha's element offsets (broadcast dims have stride 0). x - zp >= 0 is rescaled by input/output scale, else
 * (x - zp) * (alpha - alpha_zp) by input*alpha/output scale; then offset and clamped to int8. Alpha is read only
 * for negative inputs, as in TFLM. Element i of a full-shaped input is read before output i is written. */
#include "fm_kernels.h"

static inline int8_t prelu_one(const fm_prelu_s8_params_t *p, int32_t x, const int8_t *alpha)
{
    const int32_t v = p->input_offset + x;
    int32_t y;
    if (v >= 0) {
        y = fm_mbqm(v, p->multiplier_1, p->shift_1);
    } else {
        const int32_t a = p->alpha_offset + (int32_t)*alpha;
        y = fm_mbqm(v * a, p->multiplier_2, p->shift_2); /* |v * a| <= 255 * 255 */
    }
    return (int8_t)fm_clamp_i32(fm_wrap_add(y, p->output_offset), INT8_MIN, INT8_MAX);
}

int fm_prelu_s8(const fm_prelu_s8_params_t *p, const int8_t *input, const int8_t *alpha, int8_t *output)
{
    const int32_t n = p->shape.flat_size;
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < n; ++i) {
        output[i] = prelu_one(p, input[it.off1], &alpha[it.off2]);
        fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
