/*
 * Host stand-in for firmware/port: lets the firmware's protocol handler (firmware/app + fm_frame.c) run as a
 * normal process for unit tests (tests/device/host_device.c) and fuzzing (fuzz_app.c), with sanitizers.
 * The "timer" advances by a fixed step per reading so timings are deterministic.
 */
#include <stdint.h>
#include <stdio.h>

#include "fm_port.h"
#include "host_port.h"

static host_sink_fn sink;
static void *sink_ctx;
static uint32_t now_ticks;
int host_reset_requested;

void host_port_set_sink(host_sink_fn fn, void *ctx)
{
    sink = fn;
    sink_ctx = ctx;
}

void fm_port_init(void) {}
int fm_port_uart_getc(uint8_t *byte)
{
    (void)byte;
    return 0;
}
void fm_port_uart_write(const uint8_t *data, size_t n)
{
    if (sink) {
        sink(sink_ctx, data, n);
    }
}
void fm_port_uart_flush(void) {}
/* the optional parts (power sensor, sync pin, UART wait) are firmware/port/fm_port_defaults.c's */

void fm_timer_init(void) { now_ticks = 0; }
uint32_t fm_timer_now(void) { return now_ticks += 1000u; }
void fm_timer_sync(void) {}
uint32_t fm_timer_kind(void) { return FM_TIMER_KIND_SYSTICK; }
uint32_t fm_timer_hz(void) { return FM_CLOCK_HZ; }
void fm_system_reset(void) { host_reset_requested = 1; }
