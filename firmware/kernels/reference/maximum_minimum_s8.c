/* MAXIMUM and MINIMUM int8 with broadcasting: TFLM's MaximumMinimumBroadcastSlow with
 * MaximumOp (a > b ? a : b) and MinimumOp (a < b ? a : b), operand order kept so ties and NaN pick as TFLM does.
 * Raw int8 values are compared: codegen requires inputs and output to share one quantization. */
#include "fm_kernels.h"

int fm_maximum_s8(const fm_binary_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < p->shape.flat_size; ++i) {
        const int8_t a = p->shape.broadcast ? input1[it.off1] : input1[i];
        const int8_t b = p->shape.broadcast ? input2[it.off2] : input2[i];
        output[i] = a > b ? a : b;
        if (p->shape.broadcast) fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}

int fm_minimum_s8(const fm_binary_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < p->shape.flat_size; ++i) {
        const int8_t a = p->shape.broadcast ? input1[it.off1] : input1[i];
        const int8_t b = p->shape.broadcast ? input2[it.off2] : input2[i];
        output[i] = a < b ? a : b;
        if (p->shape.broadcast) fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
