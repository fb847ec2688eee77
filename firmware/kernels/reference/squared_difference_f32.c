/* SQUARED_DIFFERENCE float32 with broadcasting: d = a - b, then d * d (TFLM's SquaredDifference<float>). */
#include "fm_kernels.h"

int fm_squared_difference_f32(const fm_binary_params_t *p, const float *input1, const float *input2,
                              float *output)
{
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < p->shape.flat_size; ++i) {
        const float a = p->shape.broadcast ? input1[it.off1] : input1[i];
        const float b = p->shape.broadcast ? input2[it.off2] : input2[i];
        const float d = a - b;
        output[i] = d * d;
        if (p->shape.broadcast) fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
