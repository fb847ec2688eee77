/* QUANTIZE: float32 -> int8 (TFLM AffineQuantize: round half away from zero of x / scale in float) and
 * int8 -> int8 (TFLM Requantize: one multiplier on the zero-point-free value). */
#include "fm_kernels.h"

/* std::round on a float (half away from zero) without libm: truncate, then look at the exact remainder. */
static inline int64_t round_half_away(float x)
{
    if (x != x) return INT32_MIN; /* NaN: what the x86 conversion in TFLM yields */
    if (x >= 2147483520.0f) return INT32_MAX;
    if (x <= -2147483520.0f) return INT32_MIN;
    const int32_t t = (int32_t)x;      /* truncation toward zero; exact for |x| < 2^31 */
    const float frac = x - (float)t;   /* exact: x and t share the exponent range */
    return (int64_t)t + (frac >= 0.5f ? 1 : (frac <= -0.5f ? -1 : 0));
}

int fm_quantize_f32_s8(const fm_quantize_f32_s8_params_t *p, const float *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        /* TFLM AffineQuantize: int32(TfLiteRound(x / scale)) + zero_point, division in float. */
        const int64_t v = round_half_away(input[i] / p->scale) + p->zero_point;
        output[i] = (int8_t)(v < INT8_MIN ? INT8_MIN : (v > INT8_MAX ? INT8_MAX : v));
    }
    return FM_OK;
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
