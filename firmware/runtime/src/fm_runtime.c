/*
 * gemmlowp fixed-point transcendental helpers used by TFLM's integer SOFTMAX / LOGISTIC / TANH reference
 * kernels, re-implemented on raw int32 values. Constants and step order follow gemmlowp/fixedpoint.h exactly,
 * since any reordering changes the rounding.
 */
#include "fm_runtime.h"

int32_t fm_exp_on_interval_neg_quarter_0(int32_t a)
{
    const int32_t constant_term = 1895147668;    /* exp(-1/8) in Q0.31 */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 in Q0.31 */
    /* Taylor expansion around -1/8: x = a + 1/8 (1 << 28 in Q0.31). */
    int32_t x = fm_wrap_add(a, (int32_t)1 << 28);
    int32_t x2 = fm_srdhm(x, x);
    int32_t x3 = fm_srdhm(x2, x);
    int32_t x4 = fm_srdhm(x2, x2);
    int32_t x4_over_4 = fm_srmbpot(x4, -2);
    int32_t poly = fm_srmbpot(fm_wrap_add(fm_srdhm(fm_wrap_add(x4_over_4, x3), constant_1_over_3), x2), -1);
    return fm_wrap_add(constant_term, fm_srdhm(constant_term, fm_wrap_add(x, poly)));
}

int32_t fm_exp_on_negative_values(int32_t a, int integer_bits)
{
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    int32_t a_mod_quarter_minus_one_quarter = fm_wrap_sub(a & mask, one_quarter);
    int32_t result = fm_exp_on_interval_neg_quarter_0(fm_rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0));
    int32_t remainder = fm_wrap_sub(a_mod_quarter_minus_one_quarter, a);
    /* Barrel shifter: multiply by exp(-2^e) for each set bit e of the remainder, e = -2 .. 4. */
    for (int e = -2; e <= 4; ++e) {
        if (integer_bits > e) {
            int shift = fractional_bits + e;
            if ((uint32_t)remainder & ((uint32_t)1 << shift)) {
                result = fm_srdhm(result, multipliers[e + 2]);
            }
        }
    }
    if (integer_bits > 5) {
        int clamp_b = 36 - integer_bits;
        int32_t clamp = -((int32_t)1 << clamp_b);
        if (a < clamp) {
            result = 0;
        }
    }
    if (a == 0) {
        result = INT32_MAX;
    }
    return result;
}

int32_t fm_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    /* Newton-Raphson on the half denominator, in Q2.29. */
    int32_t half_denominator = fm_rounding_half_sum(a, INT32_MAX);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t one_q2 = (int32_t)1 << 29;
    int32_t x = fm_wrap_add(constant_48_over_17, fm_srdhm(half_denominator, constant_neg_32_over_17));
    for (int i = 0; i < 3; ++i) {
        int32_t half_denominator_times_x = fm_srdhm(half_denominator, x);
        int32_t one_minus = fm_wrap_sub(one_q2, half_denominator_times_x);
        x = fm_wrap_add(x, fm_rescale(fm_srdhm(x, one_minus), 4, 2));
    }
    /* ExactMulByPot<-1> keeps the raw value (Q2 -> Q1), then Rescale<0>. */
    return fm_rescale(x, 1, 0);
}

int32_t fm_get_reciprocal(int32_t x, int x_integer_digits, int *num_bits_over_unit)
{
    int headroom_plus_one = fm_clz_u32((uint32_t)x);
    *num_bits_over_unit = x_integer_digits - headroom_plus_one;
    uint32_t shifted = headroom_plus_one >= 32 ? 0u : ((uint32_t)x << headroom_plus_one);
    int32_t shifted_sum_minus_one = (int32_t)(shifted - ((uint32_t)1 << 31));
    return fm_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
}
