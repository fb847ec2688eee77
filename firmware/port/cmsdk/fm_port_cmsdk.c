/*
 * Arm CMSDK APB UART (MPS2 AN386/AN500, MPS3 AN547). Bytes are read by polling; an idle core sleeps in WFI
 * until the receive interrupt, which is enabled only while it sleeps, so timing stays deterministic.
 */
#if defined(FM_PORT_CMSDK)
#include "fm_port.h"

#include "../cortexm/fm_cortexm.h"

#define UART_DATA (*(volatile uint32_t *)(FM_UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(FM_UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(FM_UART_BASE + 0x08u))
#define UART_INTCLEAR (*(volatile uint32_t *)(FM_UART_BASE + 0x0Cu))
#define UART_BAUDDIV (*(volatile uint32_t *)(FM_UART_BASE + 0x10u))

#define STATE_TX_FULL 1u
#define STATE_RX_FULL 2u
#define CTRL_TX_RX 3u /* without TX enable QEMU drops output silently */
#define CTRL_RX_INT 8u
#define INT_RX 2u

/* Receive IRQ of the UART at FM_UART_BASE (-DFM_UART_RX_IRQ=n for another one). */
#if !defined(FM_UART_RX_IRQ)
#if FM_UART_BASE == 0x40004000u
#define FM_UART_RX_IRQ 0 /* MPS2 (AN386, AN500) UART0 */
#elif FM_UART_BASE == 0x59303000u || FM_UART_BASE == 0x49303000u
#define FM_UART_RX_IRQ 33 /* MPS3 AN547 UART0 (Secure / Non-secure alias) */
#else
#error "unknown CMSDK UART base: pass -DFM_UART_RX_IRQ=<its receive IRQ>"
#endif
#endif

void fm_port_init(void)
{
    UART_CTRL = 0;
    UART_BAUDDIV = FM_CLOCK_HZ / FM_UART_BAUD; /* >= 16 on the FPGA; QEMU ignores it */
    UART_INTCLEAR = 0xFu;
    UART_CTRL = CTRL_TX_RX;
    fm_nvic_enable(FM_UART_RX_IRQ);
}

int fm_port_uart_getc(uint8_t *byte)
{
    if (UART_STATE & STATE_RX_FULL) {
        *byte = (uint8_t)UART_DATA;
        return 1;
    }
    return 0;
}

/* The RX interrupt status latches until written to INTCLEAR: without that the IRQ would fire forever. */
static void rx_irq_off(void)
{
    UART_CTRL = CTRL_TX_RX;
    UART_INTCLEAR = INT_RX;
    fm_nvic_clear_pending(FM_UART_RX_IRQ);
}

void fm_port_uart_wait(void)
{
    /* Masked from the check to the WFI, so a byte arriving in between still ends the WFI. */
    fm_irq_disable();
    UART_CTRL = CTRL_TX_RX | CTRL_RX_INT;
    if (!(UART_STATE & STATE_RX_FULL)) {
        fm_wfi();
    }
    rx_irq_off();
    fm_irq_enable(); /* the timer's interrupt, if it woke us, is taken here */
}

/* Not taken in normal operation (fm_port_uart_wait clears the request first); here in case it ever is. */
FM_IRQ_HANDLER(FM_UART_RX_IRQ) { rx_irq_off(); }

void fm_port_uart_write(const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (UART_STATE & STATE_TX_FULL) {
        }
        UART_DATA = data[i];
    }
}

void fm_port_uart_flush(void)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
}
#endif
