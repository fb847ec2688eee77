/*
 * Energy-monitor sync line (-DFM_SYNC_PIN, docs/power.md) on NUCLEO-F446RE: Arduino D7 = PA8, held high while a
 * RUN's inferences execute. Written from RM0390 (GPIO); not run on hardware here.
 */
#if defined(FM_PORT_STM32F4) && defined(FM_SYNC_PIN)
#include "fm_port.h"

#define REG32(a) (*(volatile uint32_t *)(a))
#define RCC_AHB1ENR REG32(0x40023830u)
#define GPIO_BASE 0x40020000u /* GPIOA */
#define PIN 8u
#define MODER REG32(GPIO_BASE + 0x00u)
#define OTYPER REG32(GPIO_BASE + 0x04u)
#define BSRR REG32(GPIO_BASE + 0x18u)

void fm_port_sync_init(void)
{
    RCC_AHB1ENR |= 1u << 0;
    (void)MODER; /* the clock enable needs a bus cycle before the port answers */
    BSRR = 1u << (PIN + 16u);
    OTYPER &= ~(1u << PIN);
    MODER = (MODER & ~(3u << (2u * PIN))) | (1u << (2u * PIN)); /* output, push-pull */
}

void fm_port_sync(int level) { BSRR = level ? (1u << PIN) : (1u << (PIN + 16u)); }
#endif
