/*
 * formicary wire format (docs/protocol.md): COBS-encoded frames separated by 0x00.
 *
 * Decoded frame = header (8 bytes) | payload (len bytes) | CRC-32 (4 bytes, little endian)
 *   header: version u8, type u8, seq u8, flags u8, len u16 LE, counter u16 LE
 *   CRC-32 is IEEE 802.3 (zlib's crc32) over header and payload.
 *
 * Pure C11 with no hardware or libc dependencies beyond <stdint.h>/<stddef.h>, so the same code is
 * built on the host with sanitizers for unit tests and fuzzing (tests/fuzz/).
 */
#ifndef FM_FRAME_H
#define FM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "fm_protocol_ids.h"

#ifdef __cplusplus
extern "C" {
#endif

/* FM_PROTO_VERSION, FM_HDR_BYTES, FM_CRC_BYTES, FM_MAX_PAYLOAD: fm_protocol_ids.h */
#define FM_MAX_RAW (FM_HDR_BYTES + FM_MAX_PAYLOAD + FM_CRC_BYTES)
/* COBS adds one code byte per started block of 254 data bytes. */
#define FM_MAX_ENCODED (FM_MAX_RAW + FM_MAX_RAW / 254u + 1u)

/* Result of feeding one byte to the receiver. Values >= FM_RX_ERR_FIRST are framing errors. */
typedef enum {
    FM_RX_NONE = 0,        /* frame not complete yet (or an empty frame, which is ignored) */
    FM_RX_FRAME = 1,       /* a valid frame is in *out */
    FM_RX_ERR_FIRST = FM_E_OVERSIZE,
    FM_RX_ERR_OVERSIZE = FM_E_OVERSIZE, /* more than FM_MAX_ENCODED bytes before a delimiter */
    FM_RX_ERR_COBS = FM_E_COBS,         /* invalid COBS code sequence */
    FM_RX_ERR_SHORT = FM_E_SHORT,       /* fewer bytes than header + CRC */
    FM_RX_ERR_CRC = FM_E_CRC,           /* CRC mismatch */
    FM_RX_ERR_LENGTH = FM_E_LENGTH,     /* header length field disagrees with the frame size */
    FM_RX_ERR_VERSION = FM_E_VERSION    /* CRC fine but another protocol version; out->seq/type are valid */
} fm_rx_status_t;

typedef struct {
    uint8_t version;
    uint8_t type;
    uint8_t seq;
    uint8_t flags;
    uint16_t len;
    uint16_t counter;
    const uint8_t *payload; /* points into the receiver's buffer; valid until the next push */
} fm_frame_t;

typedef struct {
    uint8_t buf[FM_MAX_ENCODED];
    uint16_t n;
    uint8_t overflow;
} fm_frame_rx_t;

uint32_t fm_crc32(uint32_t crc, const uint8_t *data, size_t n);

void fm_frame_rx_init(fm_frame_rx_t *rx);
/* Feed one received byte. Never reads or writes outside rx; any byte sequence is accepted. */
fm_rx_status_t fm_frame_rx_push(fm_frame_rx_t *rx, uint8_t byte, fm_frame_t *out);

/* COBS decode `n` bytes in place; returns the decoded length or -1 when the encoding is invalid. */
int fm_cobs_decode(uint8_t *buf, size_t n);
/* COBS encode into `out` (no trailing delimiter); returns bytes written or 0 when `cap` is too small. */
size_t fm_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* Build a raw frame (header + payload + CRC) into `raw`; returns its length or 0 when it does not fit. */
size_t fm_frame_build(uint8_t *raw, size_t cap, uint8_t type, uint8_t seq, uint16_t counter,
                      const uint8_t *payload, size_t len);

/* Encode a raw frame with COBS and emit it byte by byte with a leading and a trailing delimiter. */
typedef void (*fm_put_fn)(void *ctx, const uint8_t *data, size_t n);
void fm_cobs_emit(const uint8_t *raw, size_t n, fm_put_fn put, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
