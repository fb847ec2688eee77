/* LOGISTIC int8 (TFLM reference_integer_ops::Logistic): the input is rescaled to gemmlowp Q4.27, the fixed-point
 * logistic gives Q0.31, which is rounded to Q0.7+1 steps of 1/256 around the fixed output zero point -128.
 * Inputs beyond +-input_range_radius saturate directly. */
#include "fm_kernels_common.h"

/* gemmlowp::logistic for FixedPoint<int32, 4>, raw Q0.31 result. */
static int32_t logistic_q4(int32_t a)
{
    if (a == 0) {
        return (int32_t)1 << 30; /* one half */
    }
    const int positive = a > 0;
    const int32_t abs_a = positive ? a : fm_wrap_sub(0, a);
    const int32_t pos = fm_one_over_one_plus_x_for_x_in_0_1(fm_exp_on_negative_values(fm_wrap_sub(0, abs_a), 4));
    return positive ? pos : fm_wrap_sub(INT32_MAX, pos);
}

int fm_logistic_s8(const fm_sigmoid_s8_params_t *p, const int8_t *input, int8_t *output)
{
    return fm_sigmoid_like_s8(p, input, output, logistic_q4, 8, -128); /* steps of 1/256, zero point -128 */
}
