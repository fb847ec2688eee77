/* Timing and reset shared by every Cortex-M port: SysTick (virtual boards, M0+) or DWT CYCCNT. */
#if defined(__arm__) && defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
#include "fm_port.h"

#define REG32(addr) (*(volatile uint32_t *)(addr))

#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SCB_AIRCR REG32(0xE000ED0Cu)
#define DEMCR REG32(0xE000EDFCu)
#define DWT_CTRL REG32(0xE0001000u)
#define DWT_CYCCNT REG32(0xE0001004u)
#define DWT_LAR REG32(0xE0001FB0u)

#if defined(FM_TIMER_DWT)

void fm_timer_init(void)
{
    DEMCR |= (1u << 24); /* TRCENA */
    DWT_LAR = 0xC5ACCE55u; /* Cortex-M7 locks the DWT until this key is written; ignored elsewhere */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u; /* CYCCNTENA */
}

uint32_t fm_timer_now(void) { return DWT_CYCCNT; }
uint32_t fm_timer_kind(void) { return FM_TIMER_KIND_DWT; }
void fm_timer_sync(void) {}

#else /* SysTick, extended to 32 bits by counting wraps in its exception */

static volatile uint32_t systick_wraps;

void SysTick_Handler(void);
void SysTick_Handler(void) { systick_wraps++; }

void fm_timer_init(void)
{
    SYST_CSR = 0;
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* core clock, exception on wrap, enable */
}

uint32_t fm_timer_now(void)
{
    uint32_t hi, lo;
    do {
        hi = systick_wraps;
        lo = SYST_CVR;
    } while (hi != systick_wraps);
    return (hi << 24) + (0x00FFFFFFu - (lo & 0x00FFFFFFu));
}

void fm_timer_sync(void)
{
    /* Writing CVR restarts SysTick's tick grid at this instruction (QEMU's ptimer re-anchors on the write),
     * and the reload comes exactly one period later. Under -icount the instructions from here on do not
     * depend on when the host's command arrived, so the count is identical run after run even when a tick
     * is not a whole number of instructions (168 MHz: 5.95 ns). Spinning until the reload keeps readings
     * monotonic: a cleared CVR reads 0 until then. */
    SYST_CVR = 0;
    while (SYST_CVR == 0) {
    }
}

uint32_t fm_timer_kind(void) { return FM_TIMER_KIND_SYSTICK; }

#endif

uint32_t fm_timer_hz(void) { return FM_CLOCK_HZ; }

void fm_system_reset(void)
{
    fm_port_uart_flush();
    __asm volatile("dsb 0xF" ::: "memory");
    SCB_AIRCR = (0x05FAu << 16) | (1u << 2); /* VECTKEY | SYSRESETREQ */
    __asm volatile("dsb 0xF" ::: "memory");
    for (;;) {
    }
}

/* Any fault resets the board; the host sees the boot banner and reports a device reset. */
void HardFault_Handler(void);
void HardFault_Handler(void) { fm_system_reset(); }

#endif
