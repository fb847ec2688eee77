/* STRIDED_SLICE as a 5-deep loop nest over the output (TFLM reference_ops::StridedSlice after its
 * StartForAxis/StopForAxis, which codegen evaluates ahead of time into begin/stride/count per dimension).
 * Elements are copied by size with memcpy, so one kernel serves every type and never reads unaligned words. */
#include <string.h>

#include "fm_kernels.h"

int fm_strided_slice(const fm_strided_slice_params_t *p, const void *input, void *output)
{
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    const size_t eb = (size_t)p->element_bytes;
    int32_t idx[FM_SLICE_DIMS] = {0, 0, 0, 0, 0};
    for (int d = 0; d < FM_SLICE_DIMS; ++d) {
        if (p->count[d] <= 0) return FM_OK; /* empty output */
    }
    for (;;) {
        int32_t off = 0;
        for (int d = 0; d < FM_SLICE_DIMS; ++d) {
            off += (p->begin[d] + idx[d] * p->stride[d]) * p->in_strides[d];
        }
        memcpy(out, in + (size_t)off * eb, eb);
        out += eb;
        int d = FM_SLICE_DIMS - 1;
        while (d >= 0 && ++idx[d] == p->count[d]) {
            idx[d] = 0;
            --d;
        }
        if (d < 0) return FM_OK;
    }
}
