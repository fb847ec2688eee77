/* PAD int8: copy the input into the output at offset `before`, fill the rest with the pad value (the output
 * zero point, as TFLM uses when PAD has no constant_values input). */
#include <string.h>

#include "fm_kernels.h"

int fm_pad_s8(const fm_pad_params_t *p, const int8_t *input, int8_t *output)
{
    const fm_dims4_t *o = &p->output_dims;
    const fm_dims4_t *in = &p->input_dims;
    memset(output, (int8_t)p->pad_value, (size_t)o->n * o->h * o->w * o->c);
    for (int32_t b = 0; b < in->n; ++b) {
        for (int32_t y = 0; y < in->h; ++y) {
            for (int32_t x = 0; x < in->w; ++x) {
                const int8_t *src = input + (((size_t)b * in->h + y) * in->w + x) * in->c;
                int8_t *dst = output + ((((size_t)b + p->before[0]) * o->h + y + p->before[1]) * o->w + x +
                                        p->before[2]) * o->c + p->before[3];
                memcpy(dst, src, (size_t)in->c);
            }
        }
    }
    return FM_OK;
}
