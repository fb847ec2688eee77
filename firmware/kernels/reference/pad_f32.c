/* PAD float32: as pad_s8.c with a float pad value (0.0f for PAD). */
#include <string.h>

#include "fm_kernels.h"

int fm_pad_f32(const fm_pad_params_t *p, const float *input, float *output)
{
    const fm_dims4_t *o = &p->output_dims;
    const fm_dims4_t *in = &p->input_dims;
    const size_t total = (size_t)o->n * o->h * o->w * o->c;
    for (size_t i = 0; i < total; ++i) {
        output[i] = p->pad_value_f;
    }
    for (int32_t b = 0; b < in->n; ++b) {
        for (int32_t y = 0; y < in->h; ++y) {
            for (int32_t x = 0; x < in->w; ++x) {
                const float *src = input + (((size_t)b * in->h + y) * in->w + x) * in->c;
                float *dst = output + ((((size_t)b + p->before[0]) * o->h + y + p->before[1]) * o->w + x +
                                       p->before[2]) * o->c + p->before[3];
                memcpy(dst, src, (size_t)in->c * sizeof(float));
            }
        }
    }
    return FM_OK;
}
