/*
 * I2C1 master for STM32L4/L4+ (the "I2C v2" block with TIMINGR, RM0432 section 52 / RM0351 section 39),
 * polled, for the INA219/INA226 power sensor. Compiled only with -DFM_POWER_INA.
 *
 * Pins: I2C1 on PB8 (SCL) / PB9 (SDA), alternate function 4, open drain with the internal pull-ups (weak:
 * the sensor module's pull-ups do the real work). On the NUCLEO-L4R5ZI these are the Arduino (Zio) header's
 * D15 (SCL) and D14 (SDA), CN7 pins 2 and 4. -DFM_I2C_PB6_PB7 selects PB6 (SCL) / PB7 (SDA) instead.
 * Kernel clock: HSI16 (RCC_CCIPR.I2C1SEL = 10), so the timings do not depend on the PLL set-up. TIMINGR
 * values are the reference manual's for f_I2CCLK = 16 MHz: 100 kHz 0x30420F13, 400 kHz 0x10320309
 * (-DFM_I2C_HZ=100000|400000, default 400000).
 *
 * Every wait is bounded (FM_I2C_TIMEOUT_LOOPS polls, about 2 ms or more at any core clock). A NACK ends the
 * transfer (the peripheral sends the STOP itself); a bus error, lost arbitration or timeout also resets the
 * peripheral (PE = 0) and recovers the bus before the next transfer. Returns -1 on any of them.
 */
#if defined(FM_PORT_STM32L4) && defined(FM_POWER_INA)
#include "fm_port.h"

#include "fm_i2c.h"

#define REG32(a) (*(volatile uint32_t *)(a))

#ifndef FM_I2C_HZ
#define FM_I2C_HZ 400000u
#endif
#if FM_I2C_HZ == 400000
#define TIMINGR_VALUE 0x10320309u /* PRESC 1, SCLDEL 3, SDADEL 2, SCLH 3, SCLL 9 */
#elif FM_I2C_HZ == 100000
#define TIMINGR_VALUE 0x30420F13u /* PRESC 3, SCLDEL 4, SDADEL 2, SCLH 0x0F, SCLL 0x13 */
#else
#error "FM_I2C_HZ must be 100000 or 400000 on STM32L4"
#endif
#ifndef FM_I2C_TIMEOUT_LOOPS
#define FM_I2C_TIMEOUT_LOOPS (FM_CLOCK_HZ / 2000u)
#endif

#define RCC_BASE 0x40021000u
#define RCC_CR REG32(RCC_BASE + 0x00u)
#define RCC_APB1RSTR1 REG32(RCC_BASE + 0x38u)
#define RCC_AHB2ENR REG32(RCC_BASE + 0x4Cu)
#define RCC_APB1ENR1 REG32(RCC_BASE + 0x58u)
#define RCC_CCIPR REG32(RCC_BASE + 0x88u)
#define RCC_CR_HSION (1u << 8)
#define RCC_CR_HSIRDY (1u << 10)
#define RCC_GPIOBEN (1u << 1)
#define RCC_I2C1 (1u << 21)

#define FM_STM32_GPIOB_BASE 0x48000400u
#include "../stm32_common/fm_stm32_i2c_pins.h"

#define I2C1_BASE 0x40005400u
#define I2C_CR1 REG32(I2C1_BASE + 0x00u)
#define I2C_CR2 REG32(I2C1_BASE + 0x04u)
#define I2C_TIMINGR REG32(I2C1_BASE + 0x10u)
#define I2C_ISR REG32(I2C1_BASE + 0x18u)
#define I2C_ICR REG32(I2C1_BASE + 0x1Cu)
#define I2C_RXDR REG32(I2C1_BASE + 0x24u)
#define I2C_TXDR REG32(I2C1_BASE + 0x28u)
#define CR1_PE (1u << 0)
#define CR2_RD_WRN (1u << 10)
#define CR2_START (1u << 13)
#define CR2_AUTOEND (1u << 25)
#define CR2_NBYTES(n) ((uint32_t)(n) << 16)
#define ISR_TXE (1u << 0)
#define ISR_TXIS (1u << 1)
#define ISR_RXNE (1u << 2)
#define ISR_NACKF (1u << 4)
#define ISR_STOPF (1u << 5)
#define ISR_TC (1u << 6)
#define ISR_BERR (1u << 8)
#define ISR_ARLO (1u << 9)
#define ISR_BUSY (1u << 15)
#define ICR_ALL (0x3F38u) /* ADDRCF NACKCF STOPCF BERRCF ARLOCF OVRCF PECCF TIMOUTCF ALERTCF */

static uint8_t need_init = 1;

static void i2c_init(void)
{
    RCC_CR |= RCC_CR_HSION; /* the I2C kernel clock */
    for (uint32_t i = 0; i < FM_I2C_TIMEOUT_LOOPS && !(RCC_CR & RCC_CR_HSIRDY); i++) {
    }
    RCC_CCIPR = (RCC_CCIPR & ~(3u << 12)) | (2u << 12); /* I2C1SEL = HSI16 */
    RCC_AHB2ENR |= RCC_GPIOBEN;
    RCC_APB1ENR1 |= RCC_I2C1;
    fm_i2c_pins_init();

    RCC_APB1RSTR1 |= RCC_I2C1;
    RCC_APB1RSTR1 &= ~RCC_I2C1;
    I2C_CR1 = 0;               /* PE = 0: TIMINGR may only be written with the peripheral disabled */
    I2C_TIMINGR = TIMINGR_VALUE;
    I2C_CR1 = CR1_PE;          /* analog filter on, digital filter off, no interrupts */
    need_init = 0;
}

/* 0 once ISR has `mask`; -1 on NACK / bus error / lost arbitration / timeout. */
static int wait_isr(uint32_t mask)
{
    for (uint32_t i = 0; i < FM_I2C_TIMEOUT_LOOPS; i++) {
        uint32_t isr = I2C_ISR;
        if (isr & (ISR_NACKF | ISR_BERR | ISR_ARLO)) {
            return -1;
        }
        if (isr & mask) {
            return 0;
        }
    }
    return -1;
}

static int fail(void)
{
    uint32_t isr = I2C_ISR;
    if (isr & ISR_NACKF) {
        /* the hardware sends STOP after a NACK by itself: wait for it (bounded), then clear */
        for (uint32_t i = 0; i < FM_I2C_TIMEOUT_LOOPS && !(I2C_ISR & ISR_STOPF); i++) {
        }
    }
    if (!(isr & ISR_NACKF) || (I2C_ISR & ISR_BUSY)) {
        need_init = 1; /* bus error, arbitration lost, timeout or a stuck bus: reset and recover next time */
        I2C_CR1 = 0;
    }
    I2C_ICR = ICR_ALL;
    I2C_ISR = ISR_TXE; /* flush TXDR */
    return -1;
}

static int begin(void)
{
    if (need_init) {
        i2c_init();
    }
    for (uint32_t i = 0; i < FM_I2C_TIMEOUT_LOOPS; i++) {
        if (!(I2C_ISR & ISR_BUSY)) {
            I2C_ICR = ICR_ALL;
            return 0;
        }
    }
    return -1;
}

static int write_reg(void *ctx, uint8_t addr, uint8_t reg, uint16_t value)
{
    (void)ctx;
    if (begin()) {
        return fail();
    }
    I2C_CR2 = ((uint32_t)addr << 1) | CR2_NBYTES(3) | CR2_AUTOEND | CR2_START;
    const uint8_t bytes[3] = {reg, (uint8_t)(value >> 8), (uint8_t)value};
    for (int i = 0; i < 3; i++) {
        if (wait_isr(ISR_TXIS)) {
            return fail();
        }
        I2C_TXDR = bytes[i];
    }
    if (wait_isr(ISR_STOPF)) {
        return fail();
    }
    I2C_ICR = ICR_ALL;
    return 0;
}

static int read_reg(void *ctx, uint8_t addr, uint8_t reg, uint16_t *value)
{
    (void)ctx;
    if (begin()) {
        return fail();
    }
    /* register pointer without STOP (AUTOEND = 0: TC is set after the byte), then a repeated START read */
    I2C_CR2 = ((uint32_t)addr << 1) | CR2_NBYTES(1) | CR2_START;
    if (wait_isr(ISR_TXIS)) {
        return fail();
    }
    I2C_TXDR = reg;
    if (wait_isr(ISR_TC)) {
        return fail();
    }
    I2C_CR2 = ((uint32_t)addr << 1) | CR2_RD_WRN | CR2_NBYTES(2) | CR2_AUTOEND | CR2_START;
    uint32_t b[2];
    for (int i = 0; i < 2; i++) {
        if (wait_isr(ISR_RXNE)) {
            return fail();
        }
        b[i] = I2C_RXDR & 0xFFu;
    }
    if (wait_isr(ISR_STOPF)) {
        return fail();
    }
    I2C_ICR = ICR_ALL;
    *value = (uint16_t)((b[0] << 8) | b[1]); /* INA registers: MSB first */
    return 0;
}

static const fm_i2c_t bus = {0, write_reg, read_reg};

const struct fm_i2c_s *fm_port_i2c_bus(void)
{
    i2c_init();
    return &bus;
}
#endif
