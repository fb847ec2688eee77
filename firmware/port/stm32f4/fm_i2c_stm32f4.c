/*
 * I2C1 master for STM32F4 (F405/F407/F446: the "I2C v1" block, RM0390 section 27 / RM0090 section 27), polled,
 * for the INA219/INA226 power sensor. Compiled only with -DFM_POWER_INA.
 *
 * Pins: I2C1 on PB8 (SCL) / PB9 (SDA), alternate function 4, open drain with the internal pull-ups (weak:
 * the sensor module's own pull-ups do the real work). On the NUCLEO-F446RE these are the Arduino header's
 * D15 (SCL) and D14 (SDA), CN5 pins 10 and 9. -DFM_I2C_PB6_PB7 selects PB6 (SCL) / PB7 (SDA) instead
 * (Morpho CN10 pins 17 and 21; PB6 is also Arduino D10).
 * Speed: -DFM_I2C_HZ=100000 (standard mode) or 400000 (fast mode, default; both INAs support it).
 *
 * Every wait is bounded (FM_I2C_TIMEOUT_LOOPS polls, about 2 ms or more at any core clock); a NACK, bus
 * error, lost arbitration or timeout ends the transfer with a STOP, returns -1 and makes the next transfer
 * start from a reset peripheral and a recovered bus (9 SCL pulses if a slave holds SDA low).
 * On QEMU (FM_VIRTUAL) I2C1 is an unimplemented region that reads 0: every transfer times out and the
 * sensor is reported absent, which is exactly the "never hang" path.
 */
#if defined(FM_PORT_STM32F4) && defined(FM_POWER_INA)
#include "fm_port.h"

#include "fm_i2c.h"

#define REG32(a) (*(volatile uint32_t *)(a))

#ifndef FM_I2C_HZ
#define FM_I2C_HZ 400000u
#endif
#if FM_I2C_HZ != 100000 && FM_I2C_HZ != 400000
#error "FM_I2C_HZ must be 100000 or 400000 on STM32F4"
#endif
#ifndef FM_I2C_TIMEOUT_LOOPS
#define FM_I2C_TIMEOUT_LOOPS (FM_CLOCK_HZ / 2000u) /* >= 4 cycles per poll: >= 2 ms */
#endif

#define RCC_APB1RSTR REG32(0x40023820u)
#define RCC_AHB1ENR REG32(0x40023830u)
#define RCC_APB1ENR REG32(0x40023840u)
#define RCC_GPIOBEN (1u << 1)
#define RCC_I2C1 (1u << 21)

#define FM_STM32_GPIOB_BASE 0x40020400u
#include "../stm32_common/fm_stm32_i2c_pins.h"

#define I2C1_BASE 0x40005400u
#define I2C_CR1 REG32(I2C1_BASE + 0x00u)
#define I2C_CR2 REG32(I2C1_BASE + 0x04u)
#define I2C_DR REG32(I2C1_BASE + 0x10u)
#define I2C_SR1 REG32(I2C1_BASE + 0x14u)
#define I2C_SR2 REG32(I2C1_BASE + 0x18u)
#define I2C_CCR REG32(I2C1_BASE + 0x1Cu)
#define I2C_TRISE REG32(I2C1_BASE + 0x20u)
#define CR1_PE (1u << 0)
#define CR1_START (1u << 8)
#define CR1_STOP (1u << 9)
#define CR1_ACK (1u << 10)
#define CR1_POS (1u << 11)
#define CR1_SWRST (1u << 15)
#define SR1_SB (1u << 0)
#define SR1_ADDR (1u << 1)
#define SR1_BTF (1u << 2)
#define SR1_TXE (1u << 7)
#define SR1_BERR (1u << 8)
#define SR1_ARLO (1u << 9)
#define SR1_AF (1u << 10)
#define SR1_OVR (1u << 11)
#define SR1_ERRORS (SR1_BERR | SR1_ARLO | SR1_AF | SR1_OVR)
#define SR2_BUSY (1u << 1)
#define CCR_FS (1u << 15)

uint32_t fm_port_stm32f4_pclk1_hz(void); /* fm_port_stm32f4.c: APB1 clock after the clock set-up */

static uint8_t need_init = 1;

static void i2c_init(void)
{
    RCC_AHB1ENR |= RCC_GPIOBEN;
    RCC_APB1ENR |= RCC_I2C1;
    fm_i2c_pins_init();

    RCC_APB1RSTR |= RCC_I2C1; /* a clean peripheral, whatever state the last failure left */
    RCC_APB1RSTR &= ~RCC_I2C1;
    I2C_CR1 = CR1_SWRST;
    I2C_CR1 = 0;
    uint32_t pclk = fm_port_stm32f4_pclk1_hz();
    uint32_t mhz = pclk / 1000000u;
    if (mhz < 2u) mhz = 2u; /* FREQ is 2..50 MHz (RM0390 27.6.2) */
    if (mhz > 50u) mhz = 50u;
    I2C_CR2 = mhz;
    uint32_t ccr;
    if (FM_I2C_HZ > 100000u) {
        /* fast mode, DUTY = 0: T_high = CCR * T_pclk, T_low = 2 * CCR * T_pclk; round up: never above 400 kHz */
        ccr = (pclk + 3u * FM_I2C_HZ - 1u) / (3u * FM_I2C_HZ);
        if (ccr < 1u) ccr = 1u;
        I2C_CCR = CCR_FS | (ccr & 0xFFFu);
        I2C_TRISE = mhz * 300u / 1000u + 1u; /* 300 ns maximum rise time */
    } else {
        ccr = (pclk + 2u * FM_I2C_HZ - 1u) / (2u * FM_I2C_HZ); /* T_high = T_low = CCR * T_pclk */
        if (ccr < 4u) ccr = 4u;
        I2C_CCR = ccr & 0xFFFu;
        I2C_TRISE = mhz + 1u; /* 1000 ns */
    }
    I2C_CR1 = CR1_PE;
    need_init = 0;
}

/* 0 once SR1 has `mask`; -1 on NACK / bus error / lost arbitration / timeout. */
static int wait_sr1(uint32_t mask)
{
    for (uint32_t i = 0; i < FM_I2C_TIMEOUT_LOOPS; i++) {
        uint32_t sr1 = I2C_SR1;
        if (sr1 & SR1_ERRORS) {
            return -1;
        }
        if (sr1 & mask) {
            return 0;
        }
    }
    return -1;
}

static int wait_stop_sent(void)
{
    for (uint32_t i = 0; i < FM_I2C_TIMEOUT_LOOPS; i++) {
        if (!(I2C_CR1 & CR1_STOP)) {
            return 0;
        }
    }
    return -1;
}

static int fail(void)
{
    I2C_CR1 = (I2C_CR1 & ~(CR1_POS | CR1_ACK)) | CR1_STOP;
    I2C_SR1 = ~SR1_ERRORS & 0xFFFFu; /* error flags are rc_w0; the others are read-only */
    need_init = 1;                   /* next transfer: reset the peripheral and recover the bus */
    return -1;
}

static int begin(uint8_t addr, uint32_t rw)
{
    if (need_init) {
        i2c_init();
    }
    uint32_t i = 0;
    while ((I2C_SR2 & SR2_BUSY) && i < FM_I2C_TIMEOUT_LOOPS) {
        i++;
    }
    if (i == FM_I2C_TIMEOUT_LOOPS) {
        return -1;
    }
    I2C_CR1 |= CR1_START;
    if (wait_sr1(SR1_SB)) {
        return -1;
    }
    I2C_DR = ((uint32_t)addr << 1) | rw; /* reading SR1 (in wait_sr1) then writing DR clears SB */
    if (wait_sr1(SR1_ADDR)) {
        return -1; /* AF: nobody acknowledged the address */
    }
    return 0;
}

static int write_reg(void *ctx, uint8_t addr, uint8_t reg, uint16_t value)
{
    (void)ctx;
    if (begin(addr, 0u)) {
        return fail();
    }
    (void)I2C_SR2; /* SR1 then SR2 read: ADDR cleared */
    const uint8_t bytes[3] = {reg, (uint8_t)(value >> 8), (uint8_t)value};
    for (int i = 0; i < 3; i++) {
        I2C_DR = bytes[i];
        if (wait_sr1(i < 2 ? SR1_TXE : SR1_BTF)) {
            return fail();
        }
    }
    I2C_CR1 |= CR1_STOP;
    return wait_stop_sent() ? fail() : 0;
}

static int read_reg(void *ctx, uint8_t addr, uint8_t reg, uint16_t *value)
{
    (void)ctx;
    if (begin(addr, 0u)) {
        return fail();
    }
    (void)I2C_SR2;
    I2C_DR = reg; /* register pointer */
    if (wait_sr1(SR1_BTF)) {
        return fail();
    }
    /* repeated START, then the two-byte reception of RM0390 27.3.3: POS = 1 and ACK = 0 before ADDR is
       cleared, so the second byte gets the NACK; wait for BTF (both bytes in), STOP, then read DR twice. */
    I2C_CR1 |= CR1_START;
    if (wait_sr1(SR1_SB)) {
        return fail();
    }
    I2C_DR = ((uint32_t)addr << 1) | 1u;
    if (wait_sr1(SR1_ADDR)) {
        return fail();
    }
    I2C_CR1 = (I2C_CR1 & ~CR1_ACK) | CR1_POS;
    (void)I2C_SR2;
    if (wait_sr1(SR1_BTF)) {
        return fail();
    }
    I2C_CR1 |= CR1_STOP;
    uint32_t hi = I2C_DR & 0xFFu;
    uint32_t lo = I2C_DR & 0xFFu;
    I2C_CR1 &= ~CR1_POS;
    if (wait_stop_sent()) {
        return fail();
    }
    *value = (uint16_t)((hi << 8) | lo); /* INA registers: MSB first */
    return 0;
}

static const fm_i2c_t bus = {0, write_reg, read_reg};

const struct fm_i2c_s *fm_port_i2c_bus(void)
{
    i2c_init();
    return &bus;
}
#endif
