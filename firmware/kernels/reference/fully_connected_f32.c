/* FULLY_CONNECTED float32 (TFLM reference_ops::FullyConnected): out[b][o] = sum_d in[b][d] * w[o][d] + bias[o]. */
#include "fm_kernels_common.h"

int fm_fully_connected_f32(const fm_fully_connected_f32_params_t *p, const float *input, float *output, void *scratch)
{
    (void)scratch; /* the reference kernels need no scratch memory */
    for (int32_t b = 0; b < p->batches; ++b) {
        const float *x = input + (size_t)b * p->accum_depth;
        for (int32_t o = 0; o < p->output_depth; ++o) {
            const float *w = p->filter + (size_t)o * p->accum_depth;
            float acc = 0.0f;
            for (int32_t d = 0; d < p->accum_depth; ++d) {
                acc += x[d] * w[d];
            }
            FM_CONV_OUTPUT_F32(output[(size_t)b * p->output_depth + o], acc, p, o);
        }
    }
    return FM_OK;
}
