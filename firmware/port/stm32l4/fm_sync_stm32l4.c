/*
 * Energy-monitor sync line (-DFM_SYNC_PIN, docs/power.md) on NUCLEO-L4R5ZI: Arduino D7 = PF13, held high while
 * a RUN's inferences execute. Written from RM0432 (GPIO); not run on hardware here.
 */
#if defined(FM_PORT_STM32L4) && defined(FM_SYNC_PIN)
#include "fm_port.h"

#define REG32(a) (*(volatile uint32_t *)(a))
#define RCC_AHB2ENR REG32(0x4002104Cu)
#define GPIO_BASE 0x48001400u /* GPIOF */
#define PIN 13u
#define MODER REG32(GPIO_BASE + 0x00u)
#define OTYPER REG32(GPIO_BASE + 0x04u)
#define BSRR REG32(GPIO_BASE + 0x18u)

void fm_port_sync_init(void)
{
    RCC_AHB2ENR |= 1u << 5;
    (void)MODER; /* the clock enable needs a bus cycle before the port answers */
    BSRR = 1u << (PIN + 16u);
    OTYPER &= ~(1u << PIN);
    MODER = (MODER & ~(3u << (2u * PIN))) | (1u << (2u * PIN)); /* output, push-pull */
}

void fm_port_sync(int level) { BSRR = level ? (1u << PIN) : (1u << (PIN + 16u)); }
#endif
