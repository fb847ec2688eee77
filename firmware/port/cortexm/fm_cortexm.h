/* Cortex-M core helpers for the board families: interrupt masking, WFI, NVIC, and the vector slot names. */
#ifndef FM_CORTEXM_H
#define FM_CORTEXM_H

#include <stdint.h>

/* The vector table (boards/platform/startup/startup_cortexm.c) calls FM_IRQ<n>_Handler for external IRQ n;
   each is a weak alias of the default handler until a port defines it: FM_IRQ_HANDLER(FM_UART_RX_IRQ). */
#define FM_IRQ_HANDLER_NAME_(n) FM_IRQ##n##_Handler
#define FM_IRQ_HANDLER_NAME(n) FM_IRQ_HANDLER_NAME_(n)
#define FM_IRQ_HANDLER(n)                  \
    void FM_IRQ_HANDLER_NAME(n)(void);     \
    void FM_IRQ_HANDLER_NAME(n)(void)

#define FM_NVIC_ISER(irq) (*(volatile uint32_t *)(0xE000E100u + 4u * ((uint32_t)(irq) / 32u)))
#define FM_NVIC_ICPR(irq) (*(volatile uint32_t *)(0xE000E280u + 4u * ((uint32_t)(irq) / 32u)))

static inline void fm_irq_disable(void) { __asm volatile("cpsid i" ::: "memory"); }
static inline void fm_irq_enable(void) { __asm volatile("cpsie i" ::: "memory"); }
/* With PRIMASK set, a pending interrupt still ends WFI; it is taken once fm_irq_enable() runs. */
static inline void fm_wfi(void) { __asm volatile("dsb 0xF\n wfi" ::: "memory"); }

static inline void fm_nvic_enable(uint32_t irq) { FM_NVIC_ISER(irq) = 1u << (irq % 32u); }
static inline void fm_nvic_clear_pending(uint32_t irq) { FM_NVIC_ICPR(irq) = 1u << (irq % 32u); }

#endif
