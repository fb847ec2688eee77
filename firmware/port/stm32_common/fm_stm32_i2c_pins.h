/*
 * I2C1 on GPIOB for the STM32 families (port/stm32f4, port/stm32l4): they share the GPIO block (other base
 * address), so pin set-up and bus recovery live here once. Not a family itself: nothing here is compiled unless
 * a family's I2C master includes it. Define FM_STM32_GPIOB_BASE before including.
 * Pins: PB8 = SCL, PB9 = SDA (Arduino D15/D14 on the NUCLEO boards), AF4; -DFM_I2C_PB6_PB7 for PB6/PB7.
 */
#ifndef FM_STM32_I2C_PINS_H
#define FM_STM32_I2C_PINS_H

#include <stdint.h>

#define FM_GPIOB(off) (*(volatile uint32_t *)(FM_STM32_GPIOB_BASE + (off)))
#define FM_GPIOB_MODER FM_GPIOB(0x00u)
#define FM_GPIOB_OTYPER FM_GPIOB(0x04u)
#define FM_GPIOB_OSPEEDR FM_GPIOB(0x08u)
#define FM_GPIOB_PUPDR FM_GPIOB(0x0Cu)
#define FM_GPIOB_IDR FM_GPIOB(0x10u)
#define FM_GPIOB_BSRR FM_GPIOB(0x18u)
#define FM_GPIOB_AFRL FM_GPIOB(0x20u)
#define FM_GPIOB_AFRH FM_GPIOB(0x24u)
#if defined(FM_I2C_PB6_PB7)
#define SCL_PIN 6u
#define SDA_PIN 7u
#else
#define SCL_PIN 8u
#define SDA_PIN 9u
#endif

static void fm_i2c_short_delay(void)
{
    /* about half an SCL period at 100 kHz or more: 5 us at any core clock up to 200 MHz */
    for (volatile uint32_t i = 0; i < FM_CLOCK_HZ / 800000u + 1u; i++) {
    }
}

static void fm_i2c_pin_mode(uint32_t pin, uint32_t mode)
{
    FM_GPIOB_MODER = (FM_GPIOB_MODER & ~(3u << (2u * pin))) | (mode << (2u * pin));
}

/* A slave reset mid-transfer can hold SDA low forever: clock SCL until it lets go, then send a STOP. */
static void fm_i2c_bus_recover(void)
{
    FM_GPIOB_BSRR = (1u << SCL_PIN) | (1u << SDA_PIN); /* release both (open drain high) */
    fm_i2c_pin_mode(SCL_PIN, 1u);                      /* general-purpose output */
    fm_i2c_pin_mode(SDA_PIN, 1u);
    fm_i2c_short_delay();
    for (int i = 0; i < 9 && !(FM_GPIOB_IDR & (1u << SDA_PIN)); i++) {
        FM_GPIOB_BSRR = 1u << (SCL_PIN + 16u);
        fm_i2c_short_delay();
        FM_GPIOB_BSRR = 1u << SCL_PIN;
        fm_i2c_short_delay();
    }
    FM_GPIOB_BSRR = 1u << (SDA_PIN + 16u); /* STOP: SDA low -> high while SCL is high */
    fm_i2c_short_delay();
    FM_GPIOB_BSRR = 1u << SDA_PIN;
    fm_i2c_short_delay();
}

/* Open drain, pull-ups, bus recovery, then hand both pins to I2C1 (AF4). GPIOB's clock must be on. */
static void fm_i2c_pins_init(void)
{
    FM_GPIOB_OTYPER |= (1u << SCL_PIN) | (1u << SDA_PIN);
    FM_GPIOB_OSPEEDR |= (3u << (2u * SCL_PIN)) | (3u << (2u * SDA_PIN)); /* very high speed */
    FM_GPIOB_PUPDR = (FM_GPIOB_PUPDR & ~((3u << (2u * SCL_PIN)) | (3u << (2u * SDA_PIN)))) |
                     (1u << (2u * SCL_PIN)) | (1u << (2u * SDA_PIN));   /* pull-up */
    fm_i2c_bus_recover();
#if defined(FM_I2C_PB6_PB7)
    FM_GPIOB_AFRL = (FM_GPIOB_AFRL & ~((0xFu << 24) | (0xFu << 28))) | (4u << 24) | (4u << 28);
#else
    FM_GPIOB_AFRH = (FM_GPIOB_AFRH & ~0xFFu) | 0x44u;
#endif
    fm_i2c_pin_mode(SCL_PIN, 2u);
    fm_i2c_pin_mode(SDA_PIN, 2u);
}

#endif
