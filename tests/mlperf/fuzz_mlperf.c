/*
 * Fuzz harness for the MLPerf DUT parser. With clang: libFuzzer
 *   clang -g -fsanitize=fuzzer,address,undefined -Ifirmware/mlperf tests/mlperf/fuzz_mlperf.c firmware/mlperf/fm_mlperf.c
 * With any compiler, -DFM_FUZZ_STANDALONE builds a driver that feeds N pseudo-random sessions (seeded, so a
 * failure reproduces) mixing valid commands, hex payloads and raw garbage. Checks on every input: the parser
 * never reads or writes out of bounds (sanitizers), every reply line starts with "m-" or "e-", and the line
 * buffer length never exceeds its bound.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm_mlperf.h"

static uint8_t g_input[490];
static int8_t g_output[12];
static uint32_t g_clock;
static char g_line[1024];
static size_t g_line_len;
static int g_at_line_start = 1;

static void check_char(char c) {
    /* every reply line must begin with m- or e- */
    if (g_at_line_start && c != '\r' && c != '\n') {
        g_line[g_line_len++] = c;
        if (g_line_len == 2) {
            if (!((g_line[0] == 'm' || g_line[0] == 'e') && g_line[1] == '-')) {
                fprintf(stderr, "reply line does not start with m- or e-: %.2s\n", g_line);
                abort();
            }
            g_at_line_start = 0;
        }
    }
    if (c == '\n') { g_at_line_start = 1; g_line_len = 0; }
}

static void uart_write(void *ctx, const char *data, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) check_char(data[i]);
}
static uint32_t timestamp_us(void *ctx) { (void)ctx; return g_clock += 13u; }
static uint8_t *input(void *ctx, size_t *bytes) { (void)ctx; *bytes = sizeof g_input; return g_input; }
static int invoke(void *ctx) {
    (void)ctx;
    g_output[g_input[0] % 12u] = 127;
    return g_input[1] == 0xEE ? -1 : 0; /* some inputs exercise the failure path */
}
static int output(void *ctx, int i, const uint8_t **data, size_t *bytes, int *dtype, float *scale, int32_t *zp) {
    (void)ctx;
    if (i != 0) return -1;
    *data = (const uint8_t *)g_output; *bytes = sizeof g_output; *dtype = 9; *scale = 1.0f / 256.0f; *zp = -128;
    return 0;
}

static const fm_mlperf_platform_t g_platform = {
    .ctx = NULL, .uart_write = uart_write, .timestamp_us = timestamp_us, .input = input, .invoke = invoke,
    .output = output, .name = "fuzz", .profile = "fuzz", .model = "fuzz",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static fm_mlperf_t s;
    fm_mlperf_init(&s, &g_platform, (size > 0 && (data[0] & 1u)) ? FM_MLPERF_MODE_ENERGY : FM_MLPERF_MODE_PERFORMANCE);
    /* feed in irregular chunks, like a UART delivering bytes in bursts */
    size_t i = 0;
    while (i < size) {
        size_t chunk = 1u + (data[i] % 17u);
        if (chunk > size - i) chunk = size - i;
        fm_mlperf_feed(&s, data + i, chunk);
        if (s.len > FM_MLPERF_LINE_MAX) abort();
        i += chunk;
    }
    return 0;
}

#ifdef FM_FUZZ_STANDALONE
static uint32_t rng_state;
static uint32_t rnd(void) { rng_state = rng_state * 1664525u + 1013904223u; return rng_state >> 8; }

static size_t append(uint8_t *buf, size_t n, size_t cap, const char *text) {
    size_t k = strlen(text);
    if (n + k > cap) k = cap - n;
    memcpy(buf + n, text, k);
    return n + k;
}

int main(int argc, char **argv) {
    uint32_t sessions = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 20000u;
    rng_state = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1u;
    static const char *pieces[] = {"name%", "profile%", "help%", "timestamp%", "results%", "infer 1 0%",
                                   "infer 3 1%", "infer 0%", "infer 99999999 1%", "infer x%", "db load 490%",
                                   "db load 491%", "db load 4%", "db load 0%", "db 00ff%", "db 0%", "db zz%",
                                   "db print%", "%", "%%", " \r\n", "db 0a0b0c0d%", "infer 2%", "db load 1%"};
    static uint8_t buf[4096];
    for (uint32_t k = 0; k < sessions; k++) {
        size_t n = 0;
        uint32_t parts = 1u + rnd() % 12u;
        for (uint32_t j = 0; j < parts && n < sizeof buf; j++) {
            uint32_t what = rnd() % 4u;
            if (what == 0u) {
                n = append(buf, n, sizeof buf, pieces[rnd() % (sizeof pieces / sizeof pieces[0])]);
            } else if (what == 1u) {
                uint32_t len = rnd() % 600u; /* raw garbage, sometimes longer than the line buffer */
                for (uint32_t b = 0; b < len && n < sizeof buf; b++) buf[n++] = (uint8_t)rnd();
            } else if (what == 2u) {
                n = append(buf, n, sizeof buf, "db ");
                uint32_t len = rnd() % 300u;
                for (uint32_t b = 0; b < len && n < sizeof buf; b++) buf[n++] = (uint8_t)"0123456789abcdefABCDEF "[rnd() % 23u];
                if (n < sizeof buf) buf[n++] = '%';
            } else {
                uint32_t len = rnd() % 400u; /* long line of printable text */
                for (uint32_t b = 0; b < len && n < sizeof buf; b++) buf[n++] = (uint8_t)(0x20u + rnd() % 95u);
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("ok %u sessions\n", sessions);
    return 0;
}
#endif
