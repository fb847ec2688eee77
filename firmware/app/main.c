/* Benchmark firmware entry point: bring up the board, announce ourselves, then serve the host forever. */
#if defined(__arm__)
#include "fm_app.h"
#include "fm_port.h"

int main(void)
{
    fm_port_init();
    fm_timer_init();
    fm_app_init();
    fm_app_boot_banner();
    for (;;) {
        uint8_t b;
        if (fm_port_uart_getc(&b)) {
            fm_app_rx_byte(b);
        }
    }
}
#endif
