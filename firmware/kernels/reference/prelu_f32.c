/* PRELU float32 (TFLM BroadcastPrelu4DSlowFloat): in >= 0 ? in : in * alpha, alpha broadcast against the input;
 * the output is walked in row-major order with both inputs' offsets. */
#include "fm_kernels.h"

int fm_prelu_f32(const fm_prelu_f32_params_t *p, const float *input, const float *alpha, float *output)
{
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < p->shape.flat_size; ++i) {
        const float v = input[it.off1];
        output[i] = v >= 0.0f ? v : v * alpha[it.off2];
        fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
