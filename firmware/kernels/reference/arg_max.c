/* ARG_MAX over one axis of a tensor viewed as [outer, axis, inner] (TFLM reference_ops::ArgMinMax): for each
 * (outer, inner) the first index holding the largest value; a value replaces the best only when strictly
 * greater, so ties keep the lowest index and NaN never wins (as std::greater). int32 indices out. */
#include "fm_kernels.h"

#define FM_ARG_MAX_BODY(T)                                                              \
    for (int32_t o = 0; o < p->outer_size; ++o) {                                       \
        for (int32_t i = 0; i < p->inner_size; ++i) {                                   \
            const T *row = input + (size_t)o * p->axis_size * p->inner_size + i;         \
            T best = row[0];                                                            \
            int32_t best_index = 0;                                                     \
            for (int32_t a = 1; a < p->axis_size; ++a) {                                \
                const T v = row[(size_t)a * p->inner_size];                              \
                if (v > best) {                                                         \
                    best = v;                                                           \
                    best_index = a;                                                     \
                }                                                                       \
            }                                                                           \
            output[(size_t)o * p->inner_size + i] = best_index;                         \
        }                                                                               \
    }                                                                                   \
    return FM_OK

int fm_arg_max_s8(const fm_arg_max_params_t *p, const int8_t *input, int32_t *output)
{
    if (p->axis_size < 1) return FM_ERR_PARAM;
    FM_ARG_MAX_BODY(int8_t);
}

int fm_arg_max_f32(const fm_arg_max_params_t *p, const float *input, int32_t *output)
{
    if (p->axis_size < 1) return FM_ERR_PARAM;
    FM_ARG_MAX_BODY(float);
}

int fm_arg_max_i32(const fm_arg_max_params_t *p, const int32_t *input, int32_t *output)
{
    if (p->axis_size < 1) return FM_ERR_PARAM;
    FM_ARG_MAX_BODY(int32_t);
}
