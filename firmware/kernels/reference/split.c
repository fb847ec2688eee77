/* SPLIT, SPLIT_V and UNPACK: the input is [outer][sum over outputs of copy_bytes]; per outer step each output
 * takes its contiguous run in turn (TFLM SplitImpl / UnpackImpl, same loop order). Bytes are copied unchanged,
 * so one kernel serves every type. */
#include <string.h>

#include "fm_kernels.h"

int fm_split(const fm_split_params_t *p, const void *input, void *const *outputs)
{
    const uint8_t *in = (const uint8_t *)input;
    for (int32_t k = 0; k < p->outer_size; ++k) {
        for (int32_t i = 0; i < p->num_outputs; ++i) {
            const size_t n = (size_t)p->copy_bytes[i];
            memcpy((uint8_t *)outputs[i] + (size_t)k * n, in, n);
            in += n;
        }
    }
    return FM_OK;
}
