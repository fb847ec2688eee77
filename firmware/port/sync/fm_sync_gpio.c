/*
 * Energy-monitor sync line (build with -DFM_SYNC_PIN): a GPIO held high while a RUN's inferences execute, so a
 * Joulescope (IN0) or a PPK2 (D0) finds the inference windows in its own time base, as the MLPerf Tiny
 * EnergyRunner's timestamp line does. One pulse per RUN command, covering its warm-ups and timed inferences.
 *
 * Pins are the Arduino header's D7 on each board, so the same jumper works everywhere:
 *   NUCLEO-F446RE (STM32F4 family)  D7 = PA8      NUCLEO-L4R5ZI (STM32L4 family)  D7 = PF13
 *   nRF52840-DK   (nRF52 family)    D7 = P1.08    QEMU / CMSDK boards: no pin (nothing to measure)
 * Written from the reference manuals (RM0390, RM0432, nRF52840 PS v1.7 GPIO); not run on hardware here.
 */
#include "fm_port.h"

#if defined(FM_SYNC_PIN)
#define REG32(a) (*(volatile uint32_t *)(a))

#if defined(FM_PORT_STM32F4)
#define RCC_AHB1ENR REG32(0x40023830u)
#define GPIO_BASE 0x40020000u /* GPIOA */
#define PIN 8u
static void enable_clock(void) { RCC_AHB1ENR |= 1u << 0; }
#elif defined(FM_PORT_STM32L4)
#define RCC_AHB2ENR REG32(0x4002104Cu)
#define GPIO_BASE 0x48001400u /* GPIOF */
#define PIN 13u
static void enable_clock(void) { RCC_AHB2ENR |= 1u << 5; }
#elif defined(FM_PORT_NRF52)
#define P1_BASE 0x50000300u
#define PIN 8u
#endif

#if defined(GPIO_BASE) /* STM32: MODER output, push-pull; BSRR sets/resets atomically */
#define MODER REG32(GPIO_BASE + 0x00u)
#define OTYPER REG32(GPIO_BASE + 0x04u)
#define BSRR REG32(GPIO_BASE + 0x18u)
void fm_port_sync_init(void)
{
    enable_clock();
    (void)MODER; /* the clock enable needs a bus cycle before the port answers */
    BSRR = 1u << (PIN + 16u);
    OTYPER &= ~(1u << PIN);
    MODER = (MODER & ~(3u << (2u * PIN))) | (1u << (2u * PIN));
}
void fm_port_sync(int level) { BSRR = level ? (1u << PIN) : (1u << (PIN + 16u)); }
#elif defined(P1_BASE) /* nRF52: OUTSET/OUTCLR, PIN_CNF DIR=output, input buffer disconnected */
void fm_port_sync_init(void)
{
    REG32(P1_BASE + 0x50Cu) = 1u << PIN;
    REG32(P1_BASE + 0x700u + 4u * PIN) = 3u; /* DIR output, INPUT disconnect */
}
void fm_port_sync(int level) { REG32(P1_BASE + (level ? 0x508u : 0x50Cu)) = 1u << PIN; }
#else /* a board without a sync pin (virtual boards): the calls cost nothing */
void fm_port_sync_init(void) {}
void fm_port_sync(int level) { (void)level; }
#endif
#endif /* FM_SYNC_PIN */
