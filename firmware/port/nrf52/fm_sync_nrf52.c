/*
 * Energy-monitor sync line (-DFM_SYNC_PIN, docs/power.md) on nRF52840-DK: Arduino D7 = P1.08, held high while a
 * RUN's inferences execute. Written from the nRF52840 PS v1.7 (GPIO); not run on hardware here.
 */
#if defined(FM_PORT_NRF52) && defined(FM_SYNC_PIN)
#include "fm_port.h"

#define REG32(a) (*(volatile uint32_t *)(a))
#define P1_BASE 0x50000300u
#define PIN 8u

void fm_port_sync_init(void)
{
    REG32(P1_BASE + 0x50Cu) = 1u << PIN;     /* OUTCLR */
    REG32(P1_BASE + 0x700u + 4u * PIN) = 3u; /* PIN_CNF: DIR output, input buffer disconnected */
}

void fm_port_sync(int level) { REG32(P1_BASE + (level ? 0x508u : 0x50Cu)) = 1u << PIN; }
#endif
