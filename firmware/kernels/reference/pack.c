/* PACK: input i fills slot i of the output viewed as [outer][num_inputs][copy_bytes], one contiguous run per
 * outer step (TFLM PackImpl, same loop order). Bytes are copied unchanged, so one kernel serves every type. */
#include "fm_kernels_common.h"

int fm_pack(const fm_pack_params_t *p, const void *const *inputs, void *output)
{
    uint8_t *out = (uint8_t *)output;
    const size_t n = (size_t)p->copy_bytes;
    const size_t row = n * (size_t)p->num_inputs;
    for (int32_t i = 0; i < p->num_inputs; ++i) {
        const uint8_t *in = (const uint8_t *)inputs[i];
        for (int32_t k = 0; k < p->outer_size; ++k) {
            fm_copy_bytes(out + (size_t)k * row + (size_t)i * n, in + (size_t)k * n, n);
        }
    }
    return FM_OK;
}
