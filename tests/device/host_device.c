/*
 * The firmware's protocol handler as a host process speaking the wire protocol on stdin/stdout, built with
 * -fsanitize=address,undefined by tests/device/hostbuild.py. Python talks to it through the same Session
 * class it uses for real boards, so protocol behaviour is tested in milliseconds without QEMU.
 * RESET restarts the app and sends a new boot banner, like a real reset.
 */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "fm_app.h"
#include "fm_port.h"
#include "host_port.h"

static void to_stdout(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    while (n) {
        ssize_t w = write(1, data, n);
        if (w <= 0) {
            _exit(3);
        }
        data += w;
        n -= (size_t)w;
    }
}

int main(void)
{
    host_port_set_sink(to_stdout, 0);
    fm_timer_init();
    fm_app_init();
    fm_app_boot_banner();
    uint8_t buf[256];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n <= 0) {
            return 0;
        }
        for (ssize_t i = 0; i < n; i++) {
            fm_app_rx_byte(buf[i]);
            if (host_reset_requested) {
                host_reset_requested = 0;
                fm_timer_init();
                fm_app_init();
                fm_app_boot_banner();
            }
        }
    }
}
