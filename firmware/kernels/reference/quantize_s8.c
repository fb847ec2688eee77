/* QUANTIZE: float32 -> int8 (TFLM AffineQuantize: round half away from zero of x / scale in float) and
 * int8 -> int8 (TFLM Requantize: one multiplier on the zero-point-free value). */
#include "fm_kernels.h"
#include "fm_kernels_common.h"

int fm_quantize_f32_s8(const fm_quantize_f32_s8_params_t *p, const float *input, int8_t *output)
{
    return fm_quantize_f32_s8_common(p, input, output);
}

int fm_requantize_s8(const fm_requantize_s8_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = fm_mbqm((int32_t)input[i] - p->input_zero_point, p->multiplier, p->shift) +
                          p->output_zero_point;
        output[i] = (int8_t)fm_clamp_i32(v, INT8_MIN, INT8_MAX);
    }
    return FM_OK;
}
