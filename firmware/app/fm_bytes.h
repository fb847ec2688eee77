/* Little-endian encoding into a bounded buffer, and little-endian reads from received payloads. */
#ifndef FM_BYTES_H
#define FM_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* Writes past `cap` are dropped and set `overflow`; the bytes before it stay valid. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    uint8_t overflow;
} fm_writer_t;

static inline fm_writer_t fm_writer(uint8_t *buf, size_t cap)
{
    fm_writer_t w = {buf, 0, cap, 0};
    return w;
}

void fm_w_bytes(fm_writer_t *w, const void *src, size_t n);
void fm_w_u8(fm_writer_t *w, uint32_t v);
void fm_w_u16(fm_writer_t *w, uint32_t v);
void fm_w_u32(fm_writer_t *w, uint32_t v);
void fm_w_f32(fm_writer_t *w, float f);
/* u8 length then the bytes, cut to `max` (and 255) characters. */
void fm_w_str(fm_writer_t *w, const char *s, size_t max);

/* Callers check the payload length before reading. */
static inline uint16_t fm_r16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t fm_r32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#endif
