/* FULLY_CONNECTED int8: tflite::reference_integer_ops::FullyConnected / FullyConnectedPerChannel. */
#include "fm_kernels_common.h"

int fm_fully_connected_s8(const fm_fully_connected_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch; /* the reference kernels need no scratch memory */
    if (p->filter == NULL) {
        return FM_ERR_PARAM; /* packed for another kernel set */
    }
    const int32_t depth = p->accum_depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_row = input + (size_t)b * depth;
        for (int32_t oc = 0; oc < p->output_depth; ++oc) {
            const int8_t *w = p->filter + (size_t)oc * depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < depth; ++d) {
                acc += ((int32_t)w[d] + p->filter_offset) * ((int32_t)in_row[d] + p->input_offset);
            }
            FM_CONV_OUTPUT_S8(output[(size_t)b * p->output_depth + oc], acc, p, oc, p->per_channel ? oc : 0);
        }
    }
    return FM_OK;
}
