/* HARD_SWISH float32 as TFLM's reference_ops::HardSwish<float>: in * min(6, max(0, in + 3)) / 6, with std::max /
 * std::min's comparison order (a NaN in + 3 gives 0). */
#include "fm_kernels.h"

int fm_hard_swish_f32(const fm_unary_f32_params_t *p, const float *input, float *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const float in = input[i];
        float r = in + 3.0f;
        r = 0.0f < r ? r : 0.0f;
        r = r < 6.0f ? r : 6.0f;
        output[i] = in * r / 6.0f;
    }
    return FM_OK;
}
