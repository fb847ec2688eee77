#include "fm_bytes.h"

void fm_w_bytes(fm_writer_t *w, const void *src, size_t n)
{
    if (w->overflow || n > w->cap - w->n) {
        w->overflow = 1;
        return;
    }
    const uint8_t *s = (const uint8_t *)src;
    for (size_t i = 0; i < n; i++) {
        w->p[w->n + i] = s[i];
    }
    w->n += n;
}

void fm_w_u8(fm_writer_t *w, uint32_t v)
{
    uint8_t b = (uint8_t)v;
    fm_w_bytes(w, &b, 1);
}

void fm_w_u16(fm_writer_t *w, uint32_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    fm_w_bytes(w, b, 2);
}

void fm_w_u32(fm_writer_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    fm_w_bytes(w, b, 4);
}

void fm_w_f32(fm_writer_t *w, float f)
{
    union {
        float f;
        uint32_t u;
    } c;
    c.f = f;
    fm_w_u32(w, c.u);
}

void fm_w_str(fm_writer_t *w, const char *s, size_t max)
{
    size_t n = 0;
    while (s[n] && n < max && n < 255u) {
        n++;
    }
    fm_w_u8(w, (uint32_t)n);
    fm_w_bytes(w, s, n);
}
