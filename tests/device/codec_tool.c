/*
 * Test helper around firmware/protocol/fm_frame.c.
 *   codec_tool decode < bytes   -> one line per event: "FRAME type seq counter payloadhex" or "ERR code"
 *   codec_tool encode TYPE SEQ COUNTER PAYLOADHEX -> the wire bytes (delimiters included) on stdout
 *   codec_tool cobs < bytes     -> COBS encoding of stdin (no delimiters) on stdout
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm_frame.h"

static void put_stdout(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    fwrite(data, 1, n, stdout);
}

static int hexval(int c) { return c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1); }

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "decode") == 0) {
        fm_frame_rx_t rx;
        fm_frame_rx_init(&rx);
        int c;
        while ((c = getchar()) != EOF) {
            fm_frame_t f;
            fm_rx_status_t st = fm_frame_rx_push(&rx, (uint8_t)c, &f);
            if (st == FM_RX_FRAME) {
                printf("FRAME %u %u %u ", f.type, f.seq, f.counter);
                for (unsigned i = 0; i < f.len; i++) {
                    printf("%02x", f.payload[i]);
                }
                printf("\n");
            } else if (st != FM_RX_NONE) {
                printf("ERR %d\n", (int)st);
            }
        }
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "encode") == 0) {
        static uint8_t payload[FM_MAX_PAYLOAD + 1], raw[FM_MAX_RAW];
        size_t hl = strlen(argv[5]);
        if (hl % 2 || hl / 2 > FM_MAX_PAYLOAD) {
            return 2;
        }
        for (size_t i = 0; i < hl / 2; i++) {
            int hi = hexval(argv[5][2 * i]), lo = hexval(argv[5][2 * i + 1]);
            if (hi < 0 || lo < 0) {
                return 2;
            }
            payload[i] = (uint8_t)(hi * 16 + lo);
        }
        size_t n = fm_frame_build(raw, sizeof raw, (uint8_t)atoi(argv[2]), (uint8_t)atoi(argv[3]),
                                  (uint16_t)atoi(argv[4]), payload, hl / 2);
        if (n == 0) {
            return 1;
        }
        fm_cobs_emit(raw, n, put_stdout, 0);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "cobs") == 0) {
        static uint8_t in[4096], out[4200];
        size_t n = fread(in, 1, sizeof in, stdin);
        size_t m = fm_cobs_encode(in, n, out, sizeof out);
        fwrite(out, 1, m, stdout);
        return m ? 0 : 1;
    }
    fprintf(stderr, "usage: codec_tool decode | encode TYPE SEQ COUNTER HEX | cobs\n");
    return 2;
}
