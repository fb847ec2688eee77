/*
 * Reset handler and vector table for formicary firmware on any Cortex-M core, in C: the 16 system vectors,
 * then FM_EXTERNAL_IRQS external ones. External IRQ n calls FM_IRQ<n>_Handler, a weak alias of
 * Default_Handler until a port defines it (firmware/port/cortexm/fm_cortexm.h: FM_IRQ_HANDLER). The ports
 * use one: the UART receive interrupt that wakes an idle core from WFI.
 */
#include <stdint.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern int main(void);
extern void __libc_init_array(void);

void Reset_Handler(void);
void Default_Handler(void);

void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SecureFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

/* 96 covers the UART receive IRQs of every family (the highest: STM32L4+ LPUART1, 70). */
#define FM_EXTERNAL_IRQS 96

#define FM_IRQ_WEAK(n) void FM_IRQ##n##_Handler(void) __attribute__((weak, alias("Default_Handler")));
#define FM_IRQ_SLOT(n) FM_IRQ##n##_Handler,
#define FM_IRQ_TENS(X, t) X(t##0) X(t##1) X(t##2) X(t##3) X(t##4) X(t##5) X(t##6) X(t##7) X(t##8) X(t##9)
#define FM_IRQS(X)                                                                                          \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) FM_IRQ_TENS(X, 1) FM_IRQ_TENS(X, 2) FM_IRQ_TENS(X, 3) \
    FM_IRQ_TENS(X, 4) FM_IRQ_TENS(X, 5) FM_IRQ_TENS(X, 6) FM_IRQ_TENS(X, 7) FM_IRQ_TENS(X, 8)             \
    X(90) X(91) X(92) X(93) X(94) X(95)

FM_IRQS(FM_IRQ_WEAK)

typedef void (*vector_t)(void);

/* VTOR needs the table aligned to its size rounded up to a power of two (112 words: 512 bytes). */
__attribute__((section(".isr_vector"), used, aligned(512))) const vector_t fm_vector_table[] = {
    (vector_t)(uintptr_t)&__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    SecureFault_Handler,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    FM_IRQS(FM_IRQ_SLOT)
};
_Static_assert(sizeof fm_vector_table / sizeof fm_vector_table[0] == 16 + FM_EXTERNAL_IRQS, "one slot per IRQ");

void Reset_Handler(void)
{
    uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0;
    }
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* CPACR: full access to CP10/CP11 (FPU, and Helium on Armv8.1-M) before any float instruction. */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm volatile("dsb 0xF\n isb 0xF" ::: "memory");
#endif
    /* VTOR: point at our table (it may not be at address 0, e.g. the STM32 flash at 0x08000000). */
    *(volatile uint32_t *)0xE000ED08u = (uint32_t)(uintptr_t)fm_vector_table;
    __libc_init_array();
    (void)main();
    for (;;) {
    }
}

void Default_Handler(void)
{
    for (;;) {
    }
}
