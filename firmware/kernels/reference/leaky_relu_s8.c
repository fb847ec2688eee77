/* LEAKY_RELU int8 (TFLM reference_ops::QuantizeLeakyRelu): x - zp >= 0 is rescaled by input/output scale, below
 * zero by alpha * input/output scale (one multiplier each, alpha may be negative or above 1), then offset and
 * clamped to int8 (fm_activations_extra.h). Reads element i before writing it: may run in place. */
#include "fm_activations_extra.h"

int fm_leaky_relu_s8(const fm_leaky_relu_s8_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = fm_leaky_relu_one_s8(p, input[i]);
    }
    return FM_OK;
}
