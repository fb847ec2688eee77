/* SPLIT, SPLIT_V and UNPACK: the input is [outer][sum over outputs of copy_bytes]; output i takes its contiguous
 * run of every outer step (TFLM SplitImpl / UnpackImpl write the same bytes; here one output is filled at a time,
 * so the loop over outer steps is a plain strided copy). Bytes are copied unchanged: one kernel serves every type. */
#include "fm_kernels_common.h"

int fm_split(const fm_split_params_t *p, const void *input, void *const *outputs)
{
    size_t row = 0; /* input bytes per outer step */
    for (int32_t i = 0; i < p->num_outputs; ++i) row += (size_t)p->copy_bytes[i];
    const uint8_t *in = (const uint8_t *)input;
    for (int32_t i = 0; i < p->num_outputs; ++i) {
        const size_t n = (size_t)p->copy_bytes[i];
        uint8_t *out = (uint8_t *)outputs[i];
        if (n) {
            for (int32_t k = 0; k < p->outer_size; ++k) fm_copy_bytes(out + (size_t)k * n, in + (size_t)k * row, n);
        }
        in += n;
    }
    return FM_OK;
}
