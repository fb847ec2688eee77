/* Frame codec: COBS, CRC-32 and the byte-at-a-time receiver. Every host byte is treated as hostile. */
#include "fm_frame.h"

/* CRC-32 (reflected, polynomial 0xEDB88320) with a 16-entry nibble table: 64 bytes of flash, fast enough
 * for a few hundred bytes per frame. Same result as zlib.crc32. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t fm_crc32(uint32_t crc, const uint8_t *data, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0xFu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0xFu];
    }
    return ~crc;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int fm_cobs_decode(uint8_t *buf, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        uint8_t code = buf[in++];
        if (code == 0) {
            return -1; /* a delimiter never appears inside an encoded frame */
        }
        size_t run = (size_t)code - 1u;
        if (run > n - in) {
            return -1; /* block claims more bytes than the frame has */
        }
        for (size_t k = 0; k < run; k++) {
            uint8_t b = buf[in++];
            if (b == 0) {
                return -1;
            }
            buf[out++] = b; /* out <= in - 1 always: in-place decoding is safe */
        }
        /* A zero follows every block except a 0xFF block and the last block. */
        if (code != 0xFFu && in < n) {
            buf[out++] = 0;
        }
    }
    return (int)out;
}

size_t fm_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0, i = 0;
    for (;;) {
        size_t run = 0;
        while (i + run < n && in[i + run] != 0 && run < 254u) {
            run++;
        }
        if (o + 1u + run > cap) {
            return 0;
        }
        out[o++] = (uint8_t)(run + 1u);
        for (size_t k = 0; k < run; k++) {
            out[o++] = in[i + k];
        }
        i += run;
        if (run == 254u) {
            if (i >= n) {
                break; /* a full block at the end needs no trailing empty block */
            }
            continue;  /* 0xFF block: no implicit zero */
        }
        if (i >= n) {
            break;
        }
        i++; /* skip the zero that ended this block */
        if (i == n) {
            /* the data ended with a zero: one more (empty) block encodes it */
            if (o + 1u > cap) {
                return 0;
            }
            out[o++] = 1;
            break;
        }
    }
    return o;
}

void fm_cobs_emit(const uint8_t *raw, size_t n, fm_put_fn put, void *ctx)
{
    static const uint8_t zero = 0;
    size_t i = 0;
    put(ctx, &zero, 1); /* leading delimiter ends any garbage the peer may hold */
    for (;;) {
        size_t run = 0;
        while (i + run < n && raw[i + run] != 0 && run < 254u) {
            run++;
        }
        uint8_t code = (uint8_t)(run + 1u);
        put(ctx, &code, 1);
        if (run) {
            put(ctx, raw + i, run);
        }
        i += run;
        if (run == 254u) {
            if (i >= n) {
                break;
            }
            continue;
        }
        if (i >= n) {
            break;
        }
        i++;
        if (i == n) {
            code = 1;
            put(ctx, &code, 1);
            break;
        }
    }
    put(ctx, &zero, 1);
}

size_t fm_frame_build(uint8_t *raw, size_t cap, uint8_t type, uint8_t seq, uint16_t counter,
                      const uint8_t *payload, size_t len)
{
    if (len > FM_MAX_PAYLOAD || cap < FM_HDR_BYTES + len + FM_CRC_BYTES) {
        return 0;
    }
    raw[0] = (uint8_t)FM_PROTO_VERSION;
    raw[1] = type;
    raw[2] = seq;
    raw[3] = 0;
    raw[4] = (uint8_t)(len & 0xFFu);
    raw[5] = (uint8_t)(len >> 8);
    raw[6] = (uint8_t)(counter & 0xFFu);
    raw[7] = (uint8_t)(counter >> 8);
    for (size_t i = 0; i < len; i++) {
        raw[FM_HDR_BYTES + i] = payload[i];
    }
    uint32_t crc = fm_crc32(0, raw, FM_HDR_BYTES + len);
    uint8_t *c = raw + FM_HDR_BYTES + len;
    c[0] = (uint8_t)crc;
    c[1] = (uint8_t)(crc >> 8);
    c[2] = (uint8_t)(crc >> 16);
    c[3] = (uint8_t)(crc >> 24);
    return FM_HDR_BYTES + len + FM_CRC_BYTES;
}

void fm_frame_rx_init(fm_frame_rx_t *rx)
{
    rx->n = 0;
    rx->overflow = 0;
}

fm_rx_status_t fm_frame_rx_push(fm_frame_rx_t *rx, uint8_t byte, fm_frame_t *out)
{
    if (byte != 0) {
        if (rx->n < FM_MAX_ENCODED) {
            rx->buf[rx->n++] = byte;
        } else {
            rx->overflow = 1; /* keep discarding until the next delimiter */
        }
        return FM_RX_NONE;
    }
    /* Delimiter: whatever we hold is one frame. */
    size_t n = rx->n;
    uint8_t overflow = rx->overflow;
    rx->n = 0;
    rx->overflow = 0;
    if (overflow) {
        return FM_RX_ERR_OVERSIZE;
    }
    if (n == 0) {
        return FM_RX_NONE; /* back-to-back delimiters are idle filler */
    }
    int dec = fm_cobs_decode(rx->buf, n);
    if (dec < 0) {
        return FM_RX_ERR_COBS;
    }
    size_t len = (size_t)dec;
    if (len < FM_HDR_BYTES + FM_CRC_BYTES) {
        return FM_RX_ERR_SHORT;
    }
    size_t body = len - FM_CRC_BYTES;
    if (fm_crc32(0, rx->buf, body) != rd32(rx->buf + body)) {
        return FM_RX_ERR_CRC;
    }
    out->version = rx->buf[0];
    out->type = rx->buf[1];
    out->seq = rx->buf[2];
    out->flags = rx->buf[3];
    out->len = rd16(rx->buf + 4);
    out->counter = rd16(rx->buf + 6);
    out->payload = rx->buf + FM_HDR_BYTES;
    if (out->version != FM_PROTO_VERSION) {
        return FM_RX_ERR_VERSION;
    }
    if ((size_t)out->len != body - FM_HDR_BYTES || out->len > FM_MAX_PAYLOAD) {
        return FM_RX_ERR_LENGTH;
    }
    return FM_RX_FRAME;
}
