/*
 * STM32F4 (F405/F407/F446) USART, polled; an idle core sleeps in WFI until the receive interrupt, which is
 * enabled only while it sleeps. On silicon (NUCLEO-F446RE) the clock tree is brought to FM_CLOCK_HZ
 * from the 16 MHz HSI through the PLL (with over-drive above 168 MHz) and USART2 is routed to PA2/PA3. On the
 * QEMU netduinoplus2 model (FM_VIRTUAL) RCC/flash/GPIO registers read as 0, so that set-up is skipped; the USART
 * register map is the same, so this driver is what runs under QEMU.
 */
#if defined(FM_PORT_STM32F4)
#include "fm_port.h"

#include "../cortexm/fm_cortexm.h"

#define REG32(a) (*(volatile uint32_t *)(a))

#define USART_SR REG32(FM_UART_BASE + 0x00u)
#define USART_DR REG32(FM_UART_BASE + 0x04u)
#define USART_BRR REG32(FM_UART_BASE + 0x08u)
#define USART_CR1 REG32(FM_UART_BASE + 0x0Cu)
#define SR_RXNE (1u << 5)
#define SR_TC (1u << 6)
#define SR_TXE (1u << 7)
#define SR_ORE (1u << 3)
#define CR1_UE (1u << 13)
#define CR1_TE (1u << 3)
#define CR1_RE (1u << 2)
#define CR1_RXNEIE (1u << 5)
#define CR1_ON (CR1_UE | CR1_TE | CR1_RE)

/* USART IRQ of the USART at FM_UART_BASE (-DFM_UART_IRQ=n for another one). */
#if !defined(FM_UART_IRQ)
#if FM_UART_BASE == 0x40011000u
#define FM_UART_IRQ 37 /* USART1 */
#elif FM_UART_BASE == 0x40004400u
#define FM_UART_IRQ 38 /* USART2 */
#elif FM_UART_BASE == 0x40011400u
#define FM_UART_IRQ 71 /* USART6 */
#else
#error "unknown STM32F4 USART base: pass -DFM_UART_IRQ=<its IRQ>"
#endif
#endif

#if !defined(FM_VIRTUAL)
#define RCC_BASE 0x40023800u
#define RCC_CR REG32(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG32(RCC_BASE + 0x04u)
#define RCC_CFGR REG32(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG32(RCC_BASE + 0x30u)
#define RCC_APB1ENR REG32(RCC_BASE + 0x40u)
#define RCC_APB2ENR REG32(RCC_BASE + 0x44u)
#define PWR_CR REG32(0x40007000u)
#define PWR_CSR REG32(0x40007004u)
#define FLASH_ACR REG32(0x40023C00u)
#define GPIOA_MODER REG32(0x40020000u)
#define GPIOA_AFRL REG32(0x40020020u)
#define SCB_CPACR REG32(0xE000ED88u)

/* Wait for a ready bit, but never forever: a board whose PLL does not lock keeps running on HSI. */
static int wait_set(volatile uint32_t *reg, uint32_t mask)
{
    for (uint32_t i = 0; i < 1000000u; i++) {
        if (*reg & mask) {
            return 1;
        }
    }
    return 0;
}

static uint32_t apb1_hz = 16000000u;
static uint32_t apb2_hz = 16000000u;

static void clock_init(void)
{
    /* PLL from HSI: VCO in = 16 MHz / 8 = 2 MHz, VCO = 2 MHz * N, SYSCLK = VCO / 2. */
    const uint32_t pll_n = (FM_CLOCK_HZ / 1000000u); /* 180 MHz -> N = 180, 168 MHz -> N = 168 */
    RCC_APB1ENR |= (1u << 28);                        /* PWREN */
    PWR_CR |= (3u << 14);                             /* VOS = scale 1 */
    RCC_PLLCFGR = 8u | (pll_n << 6) | (0u << 16) | (0u << 22) | (7u << 24); /* M=8, N, P=2, src HSI, Q=7 */
    RCC_CR |= (1u << 24); /* PLLON */
    if (!wait_set(&RCC_CR, 1u << 25)) {
        return;
    }
    if (FM_CLOCK_HZ > 168000000u) { /* F446 above 168 MHz needs over-drive */
        PWR_CR |= (1u << 16);         /* ODEN */
        if (!wait_set(&PWR_CSR, 1u << 16)) {
            return;
        }
        PWR_CR |= (1u << 17);         /* ODSWEN */
        if (!wait_set(&PWR_CSR, 1u << 17)) {
            return;
        }
    }
    FLASH_ACR = 5u | (1u << 8) | (1u << 9) | (1u << 10); /* 5 wait states, prefetch, I- and D-cache */
    RCC_CFGR = (RCC_CFGR & ~0xFCF0u) | (5u << 10) | (4u << 13); /* AHB /1, APB1 /4, APB2 /2 */
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u;                           /* SYSCLK = PLL */
    for (uint32_t i = 0; i < 1000000u && (RCC_CFGR & 0xCu) != 0x8u; i++) {
    }
    if ((RCC_CFGR & 0xCu) == 0x8u) {
        apb1_hz = FM_CLOCK_HZ / 4u;
        apb2_hz = FM_CLOCK_HZ / 2u;
    }
}
#endif

void fm_port_init(void)
{
    uint32_t pclk;
#if defined(FM_VIRTUAL)
    pclk = FM_CLOCK_HZ; /* QEMU ignores BRR; any sane value will do */
#else
    SCB_CPACR |= (0xFu << 20); /* the startup code does this too; harmless twice */
    clock_init();
    RCC_AHB1ENR |= 1u;         /* GPIOA */
    if (FM_UART_BASE == 0x40004400u) {
        RCC_APB1ENR |= (1u << 17); /* USART2 */
        /* PA2 (TX), PA3 (RX): alternate function 7 */
        GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 4)) | (0xAu << 4);
        GPIOA_AFRL = (GPIOA_AFRL & ~(0xFFu << 8)) | (0x77u << 8);
        pclk = apb1_hz;
    } else {
        RCC_APB2ENR |= (1u << 4); /* USART1: PA9/PA10 AF7 */
        GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 18)) | (0xAu << 18);
        REG32(0x40020024u) = (REG32(0x40020024u) & ~(0xFFu << 4)) | (0x77u << 4);
        pclk = apb2_hz;
    }
#endif
    USART_CR1 = 0;
    USART_BRR = (pclk + FM_UART_BAUD / 2u) / FM_UART_BAUD; /* oversampling by 16: mantissa.fraction */
    USART_CR1 = CR1_ON;
    fm_nvic_enable(FM_UART_IRQ);
}

static volatile int16_t rx_held = -1; /* a byte the interrupt handler had to take out of DR */

int fm_port_uart_getc(uint8_t *byte)
{
    if (rx_held >= 0) {
        *byte = (uint8_t)rx_held;
        rx_held = -1;
        return 1;
    }
    uint32_t sr = USART_SR;
    if (sr & (SR_RXNE | SR_ORE)) {
        /* Reading DR after SR clears RXNE and an overrun; an overrun loses bytes, which the CRC then catches. */
        uint32_t d = USART_DR;
        if (sr & SR_RXNE) {
            *byte = (uint8_t)d;
            return 1;
        }
    }
    return 0;
}

void fm_port_uart_wait(void)
{
    /* Masked from the check to the WFI, so a byte arriving in between still ends the WFI. */
    fm_irq_disable();
    USART_CR1 = CR1_ON | CR1_RXNEIE;
    if (!(USART_SR & (SR_RXNE | SR_ORE))) {
        fm_wfi();
    }
    USART_CR1 = CR1_ON;
    fm_nvic_clear_pending(FM_UART_IRQ);
    fm_irq_enable(); /* the timer's interrupt, if it woke us, is taken here */
}

/* Not taken in normal operation (fm_port_uart_wait disables the request first). If it is, reading DR is what
   drops the request line, so keep the byte for fm_port_uart_getc. */
FM_IRQ_HANDLER(FM_UART_IRQ)
{
    USART_CR1 = CR1_ON;
    uint32_t sr = USART_SR;
    if (sr & (SR_RXNE | SR_ORE)) {
        uint32_t d = USART_DR;
        if ((sr & SR_RXNE) && rx_held < 0) {
            rx_held = (int16_t)(d & 0xFFu);
        }
    }
}

void fm_port_uart_write(const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (!(USART_SR & SR_TXE)) {
        }
        USART_DR = data[i];
    }
}

void fm_port_uart_flush(void)
{
    for (uint32_t i = 0; i < 2000000u && !(USART_SR & SR_TC); i++) {
    }
}

uint32_t fm_port_stm32f4_pclk1_hz(void); /* for the I2C master (fm_i2c_stm32f4.c) */
uint32_t fm_port_stm32f4_pclk1_hz(void)
{
#if defined(FM_VIRTUAL)
    return FM_CLOCK_HZ;
#else
    return apb1_hz;
#endif
}
#endif
