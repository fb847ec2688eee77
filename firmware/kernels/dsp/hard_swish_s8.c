/* HARD_SWISH int8 of the dsp set: the output depends on the int8 input value alone, so past 256 elements the
 * reference's per-value arithmetic (fm_activations_extra.h, ~70-100 instructions on a Cortex-M4) runs once per
 * int8 value into a 256-byte table on the stack and each element costs one lookup. Bit-exact with the reference
 * by construction; reads element i before writing it, so it may run in place. */
#include "fm_activations_extra.h"

int fm_hard_swish_s8(const fm_hard_swish_s8_params_t *p, const int8_t *input, int8_t *output)
{
    if (p->size <= 256) {
        for (int32_t i = 0; i < p->size; ++i) {
            output[i] = fm_hard_swish_one_s8(p, input[i]);
        }
        return FM_OK;
    }
    int8_t table[256];
    for (int32_t q = -128; q < 128; ++q) {
        table[q + 128] = fm_hard_swish_one_s8(p, (int8_t)q);
    }
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = table[(int32_t)input[i] + 128];
    }
    return FM_OK;
}
