/*
 * libFuzzer harness for the firmware's receive path: arbitrary bytes go through the frame parser and the
 * command dispatcher exactly as on the device (fm_app_rx_byte). Build with tests/fuzz/build.sh (clang,
 * -fsanitize=fuzzer,address,undefined). Besides the sanitizers' checks it asserts that:
 *   - every frame the firmware sends back decodes cleanly (valid COBS, CRC, length, version);
 *   - the output per input is bounded (no runaway loops);
 *   - COBS encode/decode round-trips the fuzz input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fm_app.h"
#include "fm_frame.h"
#include "fm_port.h"
#include "host_port.h"

static fm_frame_rx_t check_rx;
static size_t out_bytes;

static void sink(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    out_bytes += n;
    for (size_t i = 0; i < n; i++) {
        fm_frame_t f;
        fm_rx_status_t st = fm_frame_rx_push(&check_rx, data[i], &f);
        if (st >= FM_RX_ERR_FIRST) {
            abort(); /* the firmware produced a frame its own parser rejects */
        }
    }
}

static uint8_t enc[2 * FM_MAX_ENCODED + 8];
static uint8_t dec[2 * FM_MAX_ENCODED + 8];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1. Whole receive path. */
    fm_frame_rx_init(&check_rx);
    out_bytes = 0;
    host_port_set_sink(sink, 0);
    fm_timer_init();
    fm_app_init();
    for (size_t i = 0; i < size; i++) {
        fm_app_rx_byte(data[i]);
        if (host_reset_requested) {
            host_reset_requested = 0;
            fm_app_init();
        }
    }
    /* Each input byte can complete at most one request; a response carries at most a few frames per
     * inference, and RUN is capped at 256 runs + FM_MAX_WARMUP warm-ups. */
    if (out_bytes > (size + 1) * 2u * (FM_MAX_ENCODED + 2u) * 270u) {
        abort();
    }

    /* 2. COBS round trip on the raw input. */
    if (size <= FM_MAX_ENCODED) {
        size_t n = fm_cobs_encode(data, size, enc, sizeof enc);
        if (n == 0) {
            abort();
        }
        for (size_t i = 0; i < n; i++) {
            if (enc[i] == 0) {
                abort();
            }
        }
        memcpy(dec, enc, n);
        int m = fm_cobs_decode(dec, n);
        if (m < 0 || (size_t)m != size || memcmp(dec, data, size) != 0) {
            abort();
        }
    }
    /* 3. Decoding arbitrary bytes in place never fails unsafely. */
    if (size <= sizeof dec) {
        memcpy(dec, data, size);
        (void)fm_cobs_decode(dec, size);
    }
    return 0;
}
