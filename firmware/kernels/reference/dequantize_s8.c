/* DEQUANTIZE int8 -> float32 (TFLM reference_ops::Dequantize computes float(double(scale) * (q - zp))).
 * The exact product of a float and an integer below 2^9 fits in a double, so TFLM rounds the exact product
 * once to float; an IEEE float multiply rounds the same exact product once too, so plain float arithmetic
 * (fast on FPU-only-single-precision cores) gives identical bits. */
#include "fm_kernels.h"

int fm_dequantize_s8(const fm_dequantize_s8_params_t *p, const int8_t *input, float *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = p->scale * (float)((int32_t)input[i] - p->zero_point);
    }
    return FM_OK;
}
