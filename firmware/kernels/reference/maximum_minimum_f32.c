/* MAXIMUM and MINIMUM float32 with broadcasting: TFLM's MaximumMinimumBroadcastSlow with
 * MaximumOp (a > b ? a : b) and MinimumOp (a < b ? a : b), operand order kept so ties and NaN pick as TFLM does. */
#include "fm_kernels.h"

int fm_maximum_f32(const fm_binary_params_t *p, const float *input1, const float *input2, float *output)
{
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < p->shape.flat_size; ++i) {
        const float a = p->shape.broadcast ? input1[it.off1] : input1[i];
        const float b = p->shape.broadcast ? input2[it.off2] : input2[i];
        output[i] = a > b ? a : b;
        if (p->shape.broadcast) fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}

int fm_minimum_f32(const fm_binary_params_t *p, const float *input1, const float *input2, float *output)
{
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < p->shape.flat_size; ++i) {
        const float a = p->shape.broadcast ? input1[it.off1] : input1[i];
        const float b = p->shape.broadcast ? input2[it.off2] : input2[i];
        output[i] = a < b ? a : b;
        if (p->shape.broadcast) fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
