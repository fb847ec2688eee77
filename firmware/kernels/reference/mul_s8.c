/* MUL int8: (x1 - zp1) * (x2 - zp2) rescaled by s1*s2/s_out with one TFLM multiplier, then clamped. */
#include "fm_kernels.h"

static inline int8_t mul_one(const fm_mul_s8_params_t *p, int32_t x, int32_t y)
{
    const int32_t prod = (p->input1_offset + x) * (p->input2_offset + y);
    const int32_t raw = p->output_offset + fm_mbqm(prod, p->output_multiplier, p->output_shift);
    return (int8_t)fm_clamp_i32(raw, p->act_min, p->act_max);
}

int fm_mul_s8(const fm_mul_s8_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t n = p->shape.flat_size;
    if (!p->shape.broadcast) {
        for (int32_t i = 0; i < n; ++i) {
            output[i] = mul_one(p, input1[i], input2[i]);
        }
        return FM_OK;
    }
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < n; ++i) {
        output[i] = mul_one(p, input1[it.off1], input2[it.off2]);
        fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
