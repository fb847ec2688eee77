/* SOFTMAX int8 -> int8: tflite::reference_ops::Softmax (gemmlowp fixed point), as TFLM runs it for int8.
 * Scaled differences are Q5.26 (kScaledDiffIntegerBits = 5), the sum of exps Q12.19. */
#include "fm_kernels.h"

#define FM_SOFTMAX_DIFF_INT_BITS 5
#define FM_SOFTMAX_ACCUM_INT_BITS 12

int fm_softmax_s8(const fm_softmax_s8_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t depth = p->depth;
    for (int32_t i = 0; i < p->outer_size; ++i) {
        const int8_t *in = input + (size_t)i * depth;
        int8_t *out = output + (size_t)i * depth;
        int32_t max_in_row = -128;
        for (int32_t c = 0; c < depth; ++c) {
            max_in_row = fm_max_i32(max_in_row, in[c]);
        }
        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = fm_mbqm_greater_than_one(diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = fm_exp_on_negative_values(scaled, FM_SOFTMAX_DIFF_INT_BITS);
                sum_of_exps = fm_wrap_add(sum_of_exps, fm_rescale(e, 0, FM_SOFTMAX_ACCUM_INT_BITS));
            }
        }
        int num_bits_over_unit = 0;
        const int32_t shifted_scale = fm_get_reciprocal(sum_of_exps, FM_SOFTMAX_ACCUM_INT_BITS, &num_bits_over_unit);
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = fm_mbqm_greater_than_one(diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = fm_exp_on_negative_values(scaled, FM_SOFTMAX_DIFF_INT_BITS);
                /* With a sum of exps >= 2^9 (>= 512 near-equal logits) the shift passes 31: TFLM aborts there
                 * (DCHECK in RoundingDivideByPOT); the exact result of shifting a non-negative Q0.31 value
                 * that far is 0, which also avoids an undefined shift. */
                const int exponent = num_bits_over_unit + 31 - 8;
                const int32_t unsat = exponent > 31 ? 0 : fm_rdbpot(fm_srdhm(shifted_scale, e), exponent);
                out[c] = (int8_t)fm_clamp_i32(unsat - 128, -128, 127);
            } else {
                out[c] = -128;
            }
        }
    }
    return FM_OK;
}
