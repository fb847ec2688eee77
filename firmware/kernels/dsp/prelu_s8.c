/* PRELU int8 of the dsp set: TFLM's BroadcastPrelu4DSlow arithmetic with fm_dsp_mbqm's SMULL and shifts (same
 * result as the portable 64-bit division for QuantizeMultiplier's multipliers; shifts split once per call) and
 * the broadcast walked a row of the innermost dimension at a time (its input / alpha strides are 0 or 1), so the
 * 6-dim iterator runs once per row instead of once per element. The parameters live in locals: int8 stores may
 * alias the struct, which would reload it per element. Alpha is read only for negative inputs, as in TFLM. Output
 * element i is written after input element i is read (a full-shaped input may share the output's memory). */
#include "fm_dsp_requant.h"
#include "fm_kernels.h"

static int prelu_portable(const fm_prelu_s8_params_t *p, const int8_t *input, const int8_t *alpha, int8_t *output)
{
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < p->shape.flat_size; ++i) {
        const int32_t v = p->input_offset + (int32_t)input[it.off1];
        const int32_t y = v >= 0 ? fm_mbqm(v, p->multiplier_1, p->shift_1)
                                 : fm_mbqm(v * (p->alpha_offset + (int32_t)alpha[it.off2]), p->multiplier_2,
                                           p->shift_2);
        output[i] = (int8_t)fm_clamp_i32(fm_wrap_add(y, p->output_offset), INT8_MIN, INT8_MAX);
        fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}

int fm_prelu_s8(const fm_prelu_s8_params_t *p, const int8_t *input, const int8_t *alpha, int8_t *output)
{
#if FM_SINGLE_ROUNDING
    return prelu_portable(p, input, alpha, output); /* the split shifts below are the double-rounding form */
#endif
    /* fm_dsp_mbqm's arithmetic needs multiplier != INT32_MIN and a right shift of at most 31 */
    if (p->multiplier_1 == INT32_MIN || p->multiplier_2 == INT32_MIN || p->shift_1 < -31 || p->shift_1 > 31 ||
        p->shift_2 < -31 || p->shift_2 > 31) {
        return prelu_portable(p, input, alpha, output);
    }
    const int last = FM_BCAST_DIMS - 1;
    const int32_t inner = p->shape.out_dims[last];
    if (inner <= 0 || p->shape.flat_size <= 0) {
        return FM_OK;
    }
    const int32_t s1 = p->shape.in1_strides[last], s2 = p->shape.in2_strides[last];
    const int32_t in_off = p->input_offset, a_off = p->alpha_offset, out_off = p->output_offset;
    const int32_t m1 = p->multiplier_1, m2 = p->multiplier_2;
    const int32_t l1 = p->shift_1 > 0 ? p->shift_1 : 0, r1 = l1 - p->shift_1;
    const int32_t l2 = p->shift_2 > 0 ? p->shift_2 : 0, r2 = l2 - p->shift_2;
    fm_broadcast_t rows = p->shape; /* the same walk with the innermost dimension collapsed: one step per row */
    rows.out_dims[last] = 1;
    fm_bcast_iter_t it = {{0}, 0, 0};
    int8_t *out = output;
    for (int32_t r = p->shape.flat_size / inner; r > 0; --r) {
        const int8_t *in = input + it.off1;
        const int8_t *al = alpha + it.off2;
        for (int32_t c = 0; c < inner; ++c) {
            const int32_t v = in_off + (int32_t)in[c * s1];
            int32_t y;
            if (v >= 0) {
                y = fm_dsp_rdbpot(fm_dsp_srdhm(fm_wrap_shl(v, l1), m1), r1);
            } else {
                const int32_t prod = v * (a_off + (int32_t)al[c * s2]); /* |v * a| <= 255 * 255 */
                y = fm_dsp_rdbpot(fm_dsp_srdhm(fm_wrap_shl(prod, l2), m2), r2);
            }
            *out++ = (int8_t)fm_clamp_i32(fm_wrap_add(y, out_off), INT8_MIN, INT8_MAX);
        }
        fm_bcast_next(&rows, &it);
    }
    return FM_OK;
}
