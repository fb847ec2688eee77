/* TANH int8 (TFLM reference_integer_ops::Tanh): input rescaled to gemmlowp Q4.27; tanh computed as
 * (1 - e^(-2|x|)) / (1 + e^(-2|x|)) in fixed point; Q0.31 result rounded to steps of 1/128, zero point 0. */
#include "fm_kernels_common.h"

/* gemmlowp::one_minus_x_over_one_plus_x_for_x_in_0_1, Q0.31 in and out (Newton-Raphson in Q2.29). */
static int32_t one_minus_x_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = fm_rounding_half_sum(a, INT32_MAX);
    const int32_t one_q2 = (int32_t)1 << 29;
    int32_t x = fm_wrap_add(1515870810 /* 48/17 */, fm_srdhm(half_denominator, -1010580540 /* -32/17 */));
    for (int i = 0; i < 3; ++i) {
        const int32_t one_minus = fm_wrap_sub(one_q2, fm_srdhm(half_denominator, x));
        x = fm_wrap_add(x, fm_rescale(fm_srdhm(x, one_minus), 4, 2));
    }
    return fm_rescale(fm_wrap_sub(x, one_q2), 2, 0);
}

/* gemmlowp::tanh for FixedPoint<int32, 4>, raw Q0.31 result. */
static int32_t tanh_q4(int32_t a)
{
    if (a == 0) {
        return 0;
    }
    const int negative = a < 0;
    const int32_t n = negative ? a : fm_wrap_sub(0, a); /* -|a| */
    /* ExactMulByPot<1>: the same raw value read with 5 integer bits is 2n. */
    const int32_t t = one_minus_x_over_one_plus_x(fm_exp_on_negative_values(n, 5));
    return negative ? fm_wrap_sub(0, t) : t;
}

int fm_tanh_s8(const fm_sigmoid_s8_params_t *p, const int8_t *input, int8_t *output)
{
    return fm_sigmoid_like_s8(p, input, output, tanh_q4, 7, 0); /* steps of 1/128, zero point 0 */
}
