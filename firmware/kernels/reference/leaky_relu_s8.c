/* LEAKY_RELU int8 (TFLM reference_ops::QuantizeLeakyRelu): x - zp >= 0 is rescaled by input/output scale, below
 * zero by alpha * input/output scale (one multiplier each, alpha may be negative or above 1), then offset and
 * clamped to int8. Reads element i before writing it: may run in place. */
#include "fm_kernels.h"

int fm_leaky_relu_s8(const fm_leaky_relu_s8_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        const int32_t scaled = x >= 0 ? fm_mbqm(x, p->identity_multiplier, p->identity_shift)
                                      : fm_mbqm(x, p->alpha_multiplier, p->alpha_shift);
        output[i] = (int8_t)fm_clamp_i32(fm_wrap_add(p->output_zero_point, scaled), INT8_MIN, INT8_MAX);
    }
    return FM_OK;
}
