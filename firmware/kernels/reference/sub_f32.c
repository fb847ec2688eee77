/* SUB float32 with broadcasting and fused-activation clamp (TFLM's SubWithActivation / BroadcastSubSlow). */
#include "fm_kernels_common.h"

int fm_sub_f32(const fm_binary_f32_params_t *p, const float *input1, const float *input2, float *output)
{
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < p->shape.flat_size; ++i) {
        const float a = p->shape.broadcast ? input1[it.off1] : input1[i];
        const float b = p->shape.broadcast ? input2[it.off2] : input2[i];
        output[i] = fm_clamp_f32(a - b, p->act_min, p->act_max);
        if (p->shape.broadcast) fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
