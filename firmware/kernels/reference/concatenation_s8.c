/* CONCATENATION int8: interleave contiguous slices of each input per outer index. Like TFLM's int8 kernel
 * (EvalUnquantized), bytes are copied unchanged; TFLM and codegen require every input to share the output
 * quantization (the converter inserts QUANTIZE ops to ensure it). */
#include <string.h>

#include "fm_kernels.h"

int fm_concatenation_s8(const fm_concat_params_t *p, const int8_t *const *inputs, int8_t *output)
{
    if (p->num_inputs > FM_CONCAT_MAX_INPUTS) {
        return FM_ERR_PARAM;
    }
    for (int32_t o = 0; o < p->outer_size; ++o) {
        for (int32_t i = 0; i < p->num_inputs; ++i) {
            const size_t n = (size_t)p->copy_size[i];
            memcpy(output, inputs[i] + (size_t)o * n, n);
            output += n;
        }
    }
    return FM_OK;
}
