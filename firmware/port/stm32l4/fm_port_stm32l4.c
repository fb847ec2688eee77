/*
 * STM32L4+ (L4R5) LPUART1/USART, polled; an idle core sleeps in WFI until the receive interrupt, which is
 * enabled only while it sleeps. The L4 U(S)ART register map differs from the F4 one: CR1 at +0
 * (UE is bit 0), BRR at +0x0C, ISR at +0x1C, ICR at +0x20, RDR at +0x24, TDR at +0x28.
 * Clock: MSI 4 MHz at reset -> HSI16 -> PLL (M=2, N=30, R=2) = 120 MHz in range-1 boost mode, 5 wait states.
 * NUCLEO-L4R5ZI: LPUART1 on PG7 (TX) / PG8 (RX), AF8; port G is powered from VDDIO2, enabled through PWR_CR2.IOSV.
 */
#if defined(FM_PORT_STM32L4)
#include "fm_port.h"

#include "../cortexm/fm_cortexm.h"

#define REG32(a) (*(volatile uint32_t *)(a))

#define U_CR1 REG32(FM_UART_BASE + 0x00u)
#define U_BRR REG32(FM_UART_BASE + 0x0Cu)
#define U_ISR REG32(FM_UART_BASE + 0x1Cu)
#define U_ICR REG32(FM_UART_BASE + 0x20u)
#define U_RDR REG32(FM_UART_BASE + 0x24u)
#define U_TDR REG32(FM_UART_BASE + 0x28u)
#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TC (1u << 6)
#define ISR_TXE (1u << 7)
#define CR1_UE (1u << 0)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_RXNEIE (1u << 5)

#define RCC_BASE 0x40021000u
#define RCC_CR REG32(RCC_BASE + 0x00u)
#define RCC_CFGR REG32(RCC_BASE + 0x08u)
#define RCC_PLLCFGR REG32(RCC_BASE + 0x0Cu)
#define RCC_AHB2ENR REG32(RCC_BASE + 0x4Cu)
#define RCC_APB1ENR1 REG32(RCC_BASE + 0x58u)
#define RCC_APB1ENR2 REG32(RCC_BASE + 0x5Cu)
#define RCC_APB2ENR REG32(RCC_BASE + 0x60u)
#define PWR_CR2 REG32(0x40007004u)
#define PWR_CR5 REG32(0x40007080u)
#define FLASH_ACR REG32(0x40022000u)
#define GPIOG_BASE 0x48001800u
#define LPUART1_BASE 0x40008000u

/* IRQ of the U(S)ART at FM_UART_BASE (-DFM_UART_IRQ=n for another one). */
#if !defined(FM_UART_IRQ)
#if FM_UART_BASE == 0x40008000u
#define FM_UART_IRQ 70 /* LPUART1 */
#elif FM_UART_BASE == 0x40013800u
#define FM_UART_IRQ 37 /* USART1 */
#elif FM_UART_BASE == 0x40004400u
#define FM_UART_IRQ 38 /* USART2 */
#else
#error "unknown STM32L4 U(S)ART base: pass -DFM_UART_IRQ=<its IRQ>"
#endif
#endif

static uint32_t sysclk_hz = 4000000u;

static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    for (uint32_t i = 0; i < 1000000u; i++) {
        if ((*reg & mask) == want) {
            return 1;
        }
    }
    return 0;
}

static void clock_init(void)
{
    RCC_APB1ENR1 |= (1u << 28); /* PWREN */
    RCC_CR |= (1u << 8);        /* HSION */
    if (!wait_set(&RCC_CR, 1u << 10, 1u << 10)) {
        return;
    }
    RCC_CFGR = (RCC_CFGR & ~3u) | 1u; /* SYSCLK = HSI16 */
    if (!wait_set(&RCC_CFGR, 0xCu, 0x4u)) {
        return;
    }
    sysclk_hz = 16000000u;
    if (FM_CLOCK_HZ <= 16000000u) {
        return;
    }
    PWR_CR5 &= ~(1u << 8);                          /* R1MODE = 0: range 1 boost, needed above 80 MHz */
    FLASH_ACR = (FLASH_ACR & ~0xFu) | 5u;           /* 5 wait states for 120 MHz */
    RCC_PLLCFGR = 2u | (1u << 4) | (30u << 8) | (1u << 24); /* src HSI16, M=/2, N=30, R=/2 enabled (PLLREN) */
    RCC_CR |= (1u << 24);                           /* PLLON */
    if (!wait_set(&RCC_CR, 1u << 25, 1u << 25)) {
        return;
    }
    /* Boost transition: run AHB at /2 for at least 1 us before switching to full speed. */
    RCC_CFGR = (RCC_CFGR & ~(0xFu << 4)) | (8u << 4);
    RCC_CFGR = (RCC_CFGR & ~3u) | 3u; /* SYSCLK = PLL */
    if (!wait_set(&RCC_CFGR, 0xCu, 0xCu)) {
        return;
    }
    for (volatile uint32_t i = 0; i < 200u; i++) {
    }
    RCC_CFGR &= ~(0xFu << 4); /* AHB /1; APB1 and APB2 stay /1 */
    sysclk_hz = FM_CLOCK_HZ;
}

void fm_port_init(void)
{
    clock_init();
    uint32_t brr;
    if (FM_UART_BASE == LPUART1_BASE) {
        RCC_APB1ENR1 |= (1u << 28); /* PWREN, for IOSV */
        PWR_CR2 |= (1u << 9);       /* IOSV: VDDIO2 valid, PG[15:2] usable */
        RCC_AHB2ENR |= (1u << 6);   /* GPIOG */
        RCC_APB1ENR2 |= 1u;         /* LPUART1 */
        volatile uint32_t *moder = (volatile uint32_t *)(GPIOG_BASE + 0x00u);
        volatile uint32_t *afrl = (volatile uint32_t *)(GPIOG_BASE + 0x20u);
        volatile uint32_t *afrh = (volatile uint32_t *)(GPIOG_BASE + 0x24u);
        *moder = (*moder & ~((3u << 14) | (3u << 16))) | (2u << 14) | (2u << 16); /* PG7, PG8: alternate */
        *afrl = (*afrl & ~(0xFu << 28)) | (8u << 28);                              /* PG7 AF8 */
        *afrh = (*afrh & ~0xFu) | 8u;                                              /* PG8 AF8 */
        /* LPUART: BRR = 256 * f_ck / baud, valid from 0x300 to 2^20. */
        brr = (uint32_t)(((uint64_t)sysclk_hz * 256u + FM_UART_BAUD / 2u) / FM_UART_BAUD);
    } else {
        RCC_APB2ENR |= (1u << 14); /* USART1 */
        brr = (sysclk_hz + FM_UART_BAUD / 2u) / FM_UART_BAUD;
    }
    U_CR1 = 0;
    U_BRR = brr;
    U_CR1 = CR1_TE | CR1_RE;
    U_CR1 |= CR1_UE;
    fm_nvic_enable(FM_UART_IRQ);
}

static volatile int16_t rx_held = -1; /* a byte the interrupt handler had to take out of RDR */

int fm_port_uart_getc(uint8_t *byte)
{
    if (rx_held >= 0) {
        *byte = (uint8_t)rx_held;
        rx_held = -1;
        return 1;
    }
    uint32_t isr = U_ISR;
    if (isr & ISR_ORE) {
        U_ICR = ISR_ORE; /* overrun: bytes were lost; the frame CRC reports it to the host */
    }
    if (isr & ISR_RXNE) {
        *byte = (uint8_t)U_RDR;
        return 1;
    }
    return 0;
}

void fm_port_uart_wait(void)
{
    /* Masked from the check to the WFI, so a byte arriving in between still ends the WFI. */
    fm_irq_disable();
    U_CR1 |= CR1_RXNEIE; /* with RXNE it also requests on overrun (ORE) */
    if (!(U_ISR & (ISR_RXNE | ISR_ORE))) {
        fm_wfi();
    }
    U_CR1 &= ~CR1_RXNEIE;
    fm_nvic_clear_pending(FM_UART_IRQ);
    fm_irq_enable(); /* another interrupt, if it woke us, is taken here */
}

/* Not taken in normal operation (fm_port_uart_wait disables the request first). If it is, keep the byte. */
FM_IRQ_HANDLER(FM_UART_IRQ)
{
    U_CR1 &= ~CR1_RXNEIE;
    uint32_t isr = U_ISR;
    if (isr & ISR_ORE) {
        U_ICR = ISR_ORE;
    }
    if (isr & ISR_RXNE) {
        uint32_t d = U_RDR;
        if (rx_held < 0) {
            rx_held = (int16_t)(d & 0xFFu);
        }
    }
}

void fm_port_uart_write(const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (!(U_ISR & ISR_TXE)) {
        }
        U_TDR = data[i];
    }
}

void fm_port_uart_flush(void)
{
    for (uint32_t i = 0; i < 2000000u && !(U_ISR & ISR_TC); i++) {
    }
}
#endif
