/* QUANTIZE of the dsp set. float32 -> int8 as the reference (TFLM AffineQuantize: round half away from zero of
 * x / scale in float). int8 -> int8 (TFLM Requantize, what a mixture of experts runs at an expert's input when
 * its scale differs from the stem's): fm_dsp_mbqm (SMULL + shifts, exact for TFLM's multipliers) instead of the
 * portable 64-bit division, and with more values than int8 has, a 256-entry table built once per call so each
 * value costs one load. */
#include "fm_dsp_requant.h"
#include "fm_kernels.h"
#include "fm_kernels_common.h"

int fm_quantize_f32_s8(const fm_quantize_f32_s8_params_t *p, const float *input, int8_t *output)
{
    return fm_quantize_f32_s8_common(p, input, output);
}

static inline int8_t requant_one(const fm_requantize_s8_params_t *p, int32_t q, int fast)
{
    const int32_t x = q - p->input_zero_point;
    const int32_t m = fast ? fm_dsp_mbqm(x, p->multiplier, p->shift) : fm_mbqm(x, p->multiplier, p->shift);
    return (int8_t)fm_clamp_i32(m + p->output_zero_point, INT8_MIN, INT8_MAX);
}

int fm_requantize_s8(const fm_requantize_s8_params_t *p, const int8_t *input, int8_t *output)
{
    /* fm_dsp_mbqm needs multiplier != INT32_MIN and a right shift of at most 31 */
    const int fast = p->multiplier != INT32_MIN && p->shift >= -31 && p->shift <= 31;
    if (p->size > 256) {
        int8_t table[256];
        for (int32_t q = -128; q < 128; ++q) {
            table[q + 128] = requant_one(p, q, fast);
        }
        for (int32_t i = 0; i < p->size; ++i) {
            output[i] = table[(int32_t)input[i] + 128];
        }
        return FM_OK;
    }
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = requant_one(p, input[i], fast);
    }
    return FM_OK;
}
