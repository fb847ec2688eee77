/* HARD_SWISH int8 (TFLM reference_ops::HardSwish<int8_t>): element by element, the int16 fixed-point arithmetic
 * of fm_activations_extra.h. Reads element i before writing it: may run in place. */
#include "fm_activations_extra.h"

int fm_hard_swish_s8(const fm_hard_swish_s8_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = fm_hard_swish_one_s8(p, input[i]);
    }
    return FM_OK;
}
