/* LOGISTIC float32 (TFLM reference_ops::Logistic): 1 / (1 + e^-x) with TFLM's saturation cut-offs. */
#include <math.h>

#include "fm_kernels.h"

int fm_logistic_f32(const fm_unary_f32_params_t *p, const float *input, float *output)
{
    const float cutoff_upper = 16.619047164916992188f;
    const float cutoff_lower = -9.0f;
    for (int32_t i = 0; i < p->size; ++i) {
        const float x = input[i];
        float y;
        if (x > cutoff_upper) {
            y = 1.0f;
        } else if (x < cutoff_lower) {
            y = expf(x);
        } else {
            y = 1.0f / (1.0f + expf(-x));
        }
        output[i] = y;
    }
    return FM_OK;
}
