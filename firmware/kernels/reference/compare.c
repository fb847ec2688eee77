/* Comparisons (TFLM comparisons.cc for int32/float32): out[i] = a[i] OP b[i] as a bool byte (0/1), with
 * NumPy broadcasting walked by fm_bcast_next. Float compares follow IEEE (NaN compares false but for !=). */
#include "fm_kernels.h"

#define FM_COMPARE_BODY(T)                                                                  \
    fm_bcast_iter_t it = {{0}, 0, 0};                                                       \
    for (int32_t i = 0; i < p->shape.flat_size; ++i) {                                      \
        const T a = p->shape.broadcast ? input1[it.off1] : input1[i];                       \
        const T b = p->shape.broadcast ? input2[it.off2] : input2[i];                       \
        int r;                                                                              \
        switch (p->op) {                                                                    \
        case FM_CMP_LESS: r = a < b; break;                                                 \
        case FM_CMP_LESS_EQUAL: r = a <= b; break;                                          \
        case FM_CMP_GREATER: r = a > b; break;                                              \
        case FM_CMP_GREATER_EQUAL: r = a >= b; break;                                       \
        case FM_CMP_EQUAL: r = a == b; break;                                               \
        case FM_CMP_NOT_EQUAL: r = a != b; break;                                           \
        default: return FM_ERR_PARAM;                                                       \
        }                                                                                   \
        output[i] = (uint8_t)r;                                                             \
        if (p->shape.broadcast) fm_bcast_next(&p->shape, &it);                              \
    }                                                                                       \
    return FM_OK

int fm_compare_i32(const fm_compare_params_t *p, const int32_t *input1, const int32_t *input2, uint8_t *output)
{
    FM_COMPARE_BODY(int32_t);
}

int fm_compare_f32(const fm_compare_params_t *p, const float *input1, const float *input2, uint8_t *output)
{
    FM_COMPARE_BODY(float);
}
