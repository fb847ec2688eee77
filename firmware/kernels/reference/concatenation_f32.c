/* CONCATENATION float32: see concatenation_s8.c. */
#include <string.h>

#include "fm_kernels.h"

int fm_concatenation_f32(const fm_concat_params_t *p, const float *const *inputs, float *output)
{
    if (p->num_inputs > FM_CONCAT_MAX_INPUTS) {
        return FM_ERR_PARAM;
    }
    for (int32_t o = 0; o < p->outer_size; ++o) {
        for (int32_t i = 0; i < p->num_inputs; ++i) {
            const size_t n = (size_t)p->copy_size[i];
            memcpy(output, inputs[i] + (size_t)o * n, n * sizeof(float));
            output += n;
        }
    }
    return FM_OK;
}
