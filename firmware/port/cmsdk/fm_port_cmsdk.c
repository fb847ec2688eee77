/* Arm CMSDK APB UART (MPS2 AN386/AN500, MPS3 AN547). Polled: no interrupts, so timing stays deterministic. */
#if defined(FM_PORT_CMSDK)
#include "fm_port.h"

#define UART_DATA (*(volatile uint32_t *)(FM_UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(FM_UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(FM_UART_BASE + 0x08u))
#define UART_INTCLEAR (*(volatile uint32_t *)(FM_UART_BASE + 0x0Cu))
#define UART_BAUDDIV (*(volatile uint32_t *)(FM_UART_BASE + 0x10u))

#define STATE_TX_FULL 1u
#define STATE_RX_FULL 2u

void fm_port_init(void)
{
    UART_CTRL = 0;
    UART_BAUDDIV = FM_CLOCK_HZ / FM_UART_BAUD; /* >= 16 on the FPGA; QEMU ignores it */
    UART_INTCLEAR = 0xFu;
    UART_CTRL = 3u; /* TX and RX enabled, no interrupts (without TX enable QEMU drops output silently) */
}

int fm_port_uart_getc(uint8_t *byte)
{
    if (UART_STATE & STATE_RX_FULL) {
        *byte = (uint8_t)UART_DATA;
        return 1;
    }
    return 0;
}

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
