/*
 * nRF52840 UART0 in legacy (non-DMA) mode, polled: TX on P0.06, RX on P0.08 (nRF52840-DK VCOM). An idle core
 * sleeps in WFI until the RXDRDY interrupt, which is enabled only while it sleeps.
 * The 64 MHz crystal oscillator is started so that DWT cycle counts and the baud rate are accurate.
 */
#if defined(FM_PORT_NRF52)
#include "fm_port.h"

#include "../cortexm/fm_cortexm.h"

#define REG32(a) (*(volatile uint32_t *)(a))

#define CLOCK_TASKS_HFCLKSTART REG32(0x40000000u)
#define CLOCK_EVENTS_HFCLKSTARTED REG32(0x40000100u)

#define UART_TASKS_STARTRX REG32(FM_UART_BASE + 0x000u)
#define UART_TASKS_STARTTX REG32(FM_UART_BASE + 0x008u)
#define UART_EVENTS_RXDRDY REG32(FM_UART_BASE + 0x108u)
#define UART_EVENTS_TXDRDY REG32(FM_UART_BASE + 0x11Cu)
#define UART_EVENTS_ERROR REG32(FM_UART_BASE + 0x124u)
#define UART_INTENSET REG32(FM_UART_BASE + 0x304u)
#define UART_INTENCLR REG32(FM_UART_BASE + 0x308u)
#define UART_ERRORSRC REG32(FM_UART_BASE + 0x480u)
#define UART_ENABLE REG32(FM_UART_BASE + 0x500u)
#define UART_PSEL_TXD REG32(FM_UART_BASE + 0x50Cu)
#define UART_PSEL_RXD REG32(FM_UART_BASE + 0x514u)
#define UART_RXD REG32(FM_UART_BASE + 0x518u)
#define UART_TXD REG32(FM_UART_BASE + 0x51Cu)
#define UART_BAUDRATE REG32(FM_UART_BASE + 0x524u)
#define GPIO_P0_OUTSET REG32(0x50000508u)
#define GPIO_P0_PIN_CNF(n) REG32(0x50000700u + 4u * (n))

#define INT_RXDRDY (1u << 2)

#if !defined(FM_UART_IRQ)
#if FM_UART_BASE == 0x40002000u
#define FM_UART_IRQ 2 /* UARTE0_UART0 */
#else
#error "unknown nRF52 UART base: pass -DFM_UART_IRQ=<its IRQ>"
#endif
#endif

#define TX_PIN 6u
#define RX_PIN 8u

static uint8_t tx_started;

static uint32_t baud_register(uint32_t baud)
{
    /* Values from the nRF52840 product specification, UART BAUDRATE register. */
    switch (baud) {
    case 9600u: return 0x00275000u;
    case 57600u: return 0x00EBF000u;
    case 230400u: return 0x03AFB000u;
    case 460800u: return 0x075F7000u;
    case 921600u: return 0x0EBED000u;
    case 1000000u: return 0x10000000u;
    default: return 0x01D7E000u; /* 115200 */
    }
}

void fm_port_init(void)
{
    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1;
    for (uint32_t i = 0; i < 1000000u && !CLOCK_EVENTS_HFCLKSTARTED; i++) {
    }
    GPIO_P0_OUTSET = (1u << TX_PIN);
    GPIO_P0_PIN_CNF(TX_PIN) = 1u;  /* output */
    GPIO_P0_PIN_CNF(RX_PIN) = 0u;  /* input, buffer connected */
    UART_PSEL_TXD = TX_PIN;
    UART_PSEL_RXD = RX_PIN;
    UART_BAUDRATE = baud_register(FM_UART_BAUD);
    UART_ENABLE = 4u; /* UART (legacy), not UARTE */
    UART_EVENTS_RXDRDY = 0;
    UART_TASKS_STARTRX = 1;
    fm_nvic_enable(FM_UART_IRQ);
}

int fm_port_uart_getc(uint8_t *byte)
{
    if (UART_EVENTS_ERROR) {
        UART_EVENTS_ERROR = 0;
        UART_ERRORSRC = UART_ERRORSRC; /* write-1-to-clear; the frame CRC reports the damage */
    }
    if (UART_EVENTS_RXDRDY) {
        UART_EVENTS_RXDRDY = 0;
        *byte = (uint8_t)UART_RXD;
        return 1;
    }
    return 0;
}

void fm_port_uart_wait(void)
{
    /* Masked from the check to the WFI, so a byte arriving in between still ends the WFI. */
    fm_irq_disable();
    UART_INTENSET = INT_RXDRDY;
    if (!UART_EVENTS_RXDRDY) {
        fm_wfi();
    }
    UART_INTENCLR = INT_RXDRDY; /* the event stays set for fm_port_uart_getc */
    fm_nvic_clear_pending(FM_UART_IRQ);
    fm_irq_enable();
}

/* Not taken in normal operation (fm_port_uart_wait disables the request first). */
FM_IRQ_HANDLER(FM_UART_IRQ) { UART_INTENCLR = INT_RXDRDY; }

void fm_port_uart_write(const uint8_t *data, size_t n)
{
    if (!tx_started) {
        UART_TASKS_STARTTX = 1;
        tx_started = 1;
    }
    for (size_t i = 0; i < n; i++) {
        UART_EVENTS_TXDRDY = 0;
        UART_TXD = data[i];
        for (uint32_t k = 0; k < 1000000u && !UART_EVENTS_TXDRDY; k++) {
        }
    }
}

void fm_port_uart_flush(void) {}
#endif
