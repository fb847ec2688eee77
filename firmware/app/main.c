/* Benchmark firmware entry point: bring up the board, announce ourselves, then serve the host forever. */
#if defined(__arm__)
#include "fm_app.h"
#include "fm_port.h"
#if defined(FM_MLPERF) && FM_MLPERF
#include "fm_mlperf.h"
#endif
#if defined(FM_KCHECK) && FM_KCHECK
/* Kernel-check firmware (host/formicary/bench/kernel_check.py): generated into the project's src/, runs every
   case once, prints the outputs on the UART and idles. */
void fm_kcheck_main(void);
#endif

int main(void)
{
    fm_port_init();
    fm_timer_init();
#if defined(FM_MLPERF) && FM_MLPERF
    fm_mlperf_app_main(); /* MLPerf Tiny / EEMBC DUT mode: serves that protocol instead, never returns */
#endif
#if defined(FM_KCHECK) && FM_KCHECK
    fm_kcheck_main(); /* never returns */
#endif
    fm_app_init();
    fm_app_boot_banner();
    for (;;) {
        uint8_t b;
        if (fm_port_uart_getc(&b)) {
            fm_app_rx_byte(b);
        } else {
            fm_port_uart_wait(); /* sleep until the next byte (or any interrupt) instead of spinning */
        }
    }
}
#endif
