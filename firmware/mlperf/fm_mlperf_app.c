/*
 * MLPerf Tiny firmware mode: binds the DUT protocol parser (fm_mlperf.c) to the board port (fm_port.h) and the
 * generated model (app/model_glue.h). app/main.c calls fm_mlperf_app_main() instead of its own loop when the
 * firmware is built with -DFM_MLPERF=1 (`formicary build --firmware mlperf`, docs/mlperf.md).
 */
#if defined(FM_MLPERF) && FM_MLPERF

#include <stdint.h>

#include "fm_mlperf.h"
#include "fm_port.h"
#include "model_glue.h"

#ifndef FM_MLPERF_NAME
#define FM_MLPERF_NAME "formicary"
#endif
/* The EEMBC model id the DUT reports in m-model-[...] (kws01, vww01, ic01, ad01 for the reference models): the
   MLCommons runner looks its test script up by it. `formicary` passes it with -DFM_MLPERF_MODEL_ID="..."
   (formicary.mlperf.model_id); the generated model's hash goes on its own line, m-model-hash-[...]. */
#ifndef FM_MLPERF_MODEL_ID
#define FM_MLPERF_MODEL_ID "unknown"
#endif

/* Energy mode: the EnergyRunner's timestamp line. With -DFM_SYNC_PIN it is the sync pin (Arduino D7,
 * port/<family>/fm_sync_<family>.c): idle high, and a low pulse marks each timestamp (the EnergyRunner triggers on the
 * falling edge). Without a pin the timestamp is a no-op and energy mode cannot be measured. */
#if defined(FM_SYNC_PIN)
static void timestamp_line_init(void)
{
    fm_port_sync_init();
    fm_port_sync(1);
}
static void timestamp_line_pulse(void)
{
    fm_port_sync(0);
    for (volatile uint32_t i = 0; i < 200u; i++) { /* >= 1 us low even at 480 MHz */
    }
    fm_port_sync(1);
}
#else
static void timestamp_line_init(void) {}
static void timestamp_line_pulse(void) {}
#endif

typedef struct {
    uint32_t last_ticks;
    uint64_t ticks; /* 64-bit extension of the 32-bit timer: valid while timestamps come < one wrap apart */
} clock_ctx_t;

static clock_ctx_t g_clock;

static void uart_write(void *ctx, const char *data, size_t n) {
    (void)ctx;
    fm_port_uart_write((const uint8_t *)data, n);
}

static uint32_t timestamp_us(void *ctx) {
    clock_ctx_t *c = ctx;
    uint32_t now = fm_timer_now();
    c->ticks += (uint32_t)(now - c->last_ticks);
    c->last_ticks = now;
    uint32_t hz = fm_timer_hz();
    return (uint32_t)(c->ticks * 1000000u / (hz ? hz : 1u));
}

static void timestamp_pulse(void *ctx) {
    (void)ctx;
    timestamp_line_pulse();
}

static uint8_t *input(void *ctx, size_t *bytes) {
    (void)ctx;
    fm_glue_tensor_t t;
    if (fm_glue_input(0, &t) != 0) {
        *bytes = 0;
        return 0;
    }
    *bytes = t.bytes;
    return t.data;
}

static int invoke(void *ctx) {
    (void)ctx;
    /* a model generated without preserved inputs reuses its input bytes as scratch: restore them from the
       staging copy that "db" filled (inside the timed loop). `formicary build` preserves inputs: a no-op. */
    fm_glue_prepare();
    return fm_glue_invoke();
}

static int output(void *ctx, int i, const uint8_t **data, size_t *bytes, int *dtype, float *scale,
                  int32_t *zero_point) {
    (void)ctx;
    fm_glue_tensor_t t;
    if (fm_glue_output(i, &t) != 0) return -1;
    *data = t.data;
    *bytes = t.bytes;
    *dtype = t.dtype;
    *scale = t.scale;
    *zero_point = t.zero_point;
    return 0;
}

void fm_mlperf_app_main(void) {
    static fm_mlperf_platform_t platform = {
        .ctx = &g_clock, .uart_write = uart_write, .timestamp_us = timestamp_us,
        .timestamp_pulse = timestamp_pulse, .input = input, .invoke = invoke, .output = output,
        .name = FM_MLPERF_NAME, .profile = "MLPerf Tiny v1.0 / formicary-rt", .model = FM_MLPERF_MODEL_ID,
        .model_hash = 0,
    };
    platform.model_hash = fm_glue_model_hash();
    static fm_mlperf_t parser;
    timestamp_line_init();
    g_clock.last_ticks = fm_timer_now();
#if defined(FM_MLPERF_ENERGY) && FM_MLPERF_ENERGY
    fm_mlperf_init(&parser, &platform, FM_MLPERF_MODE_ENERGY);
#else
    fm_mlperf_init(&parser, &platform, FM_MLPERF_MODE_PERFORMANCE);
#endif
    for (;;) {
        uint8_t b;
        if (fm_port_uart_getc(&b)) {
            fm_mlperf_feed(&parser, &b, 1);
        } else {
            fm_port_uart_wait();
        }
    }
}

#endif
