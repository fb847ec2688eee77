/*
 * The MLPerf DUT parser (firmware/mlperf) as a host program with a fake model, for tests:
 * bytes on stdin are fed to the parser, replies go to stdout. The fake model is deterministic so tests can
 * predict every reply:
 *   input: INPUT_BYTES bytes (argv[1], default 490 like the KWS model)
 *   output: 12 int8 values, scale 1/256, zero point -128; class (sum of input bytes) % 12 is 127, others -128
 *   timestamp_us: a virtual clock advancing LAP_US (argv[2], default 1000) per invoke and 7 us per timestamp read
 * argv[3] = "fail" makes every invoke fail (error path tests).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fm_mlperf.h"

#define MAX_INPUT 65536

typedef struct {
    uint8_t input[MAX_INPUT];
    size_t input_bytes;
    int8_t output[12];
    uint32_t clock_us;
    uint32_t lap_us;
    int fail;
} fake_t;

static void uart_write(void *ctx, const char *data, size_t n) {
    (void)ctx;
    fwrite(data, 1, n, stdout);
}

static uint32_t timestamp_us(void *ctx) {
    fake_t *f = ctx;
    f->clock_us += 7u;
    return f->clock_us;
}

static uint8_t *input(void *ctx, size_t *bytes) {
    fake_t *f = ctx;
    *bytes = f->input_bytes;
    return f->input;
}

static int invoke(void *ctx) {
    fake_t *f = ctx;
    if (f->fail) return -1;
    uint32_t sum = 0;
    for (size_t i = 0; i < f->input_bytes; i++) sum += f->input[i];
    for (int k = 0; k < 12; k++) f->output[k] = (int8_t)((uint32_t)k == sum % 12u ? 127 : -128);
    f->clock_us += f->lap_us;
    return 0;
}

static int output(void *ctx, int i, const uint8_t **data, size_t *bytes, int *dtype, float *scale,
                  int32_t *zero_point) {
    fake_t *f = ctx;
    if (i != 0) return -1;
    *data = (const uint8_t *)f->output;
    *bytes = sizeof f->output;
    *dtype = 9;
    *scale = 1.0f / 256.0f;
    *zero_point = -128;
    return 0;
}

int main(int argc, char **argv) {
    static fake_t fake;
    fake.input_bytes = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 490u;
    if (fake.input_bytes == 0 || fake.input_bytes > MAX_INPUT) return 2;
    fake.lap_us = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1000u;
    fake.fail = argc > 3 && strcmp(argv[3], "fail") == 0;
    for (int k = 0; k < 12; k++) fake.output[k] = -128;
    fm_mlperf_platform_t p = {
        .ctx = &fake, .uart_write = uart_write, .timestamp_us = timestamp_us, .timestamp_pulse = NULL,
        .input = input, .invoke = invoke, .output = output,
        .name = "formicary-host", .profile = "MLPerf Tiny formicary-rt", .model = "fake-kws", .model_hash = "0123abcd",
    };
    static fm_mlperf_t s;
    fm_mlperf_init(&s, &p, FM_MLPERF_MODE_PERFORMANCE);
    fflush(stdout);
    uint8_t buf[512];
    for (;;) {
        ssize_t got = read(0, buf, sizeof buf);
        if (got <= 0) break;
        fm_mlperf_feed(&s, buf, (size_t)got);
        fflush(stdout);
    }
    return 0;
}
