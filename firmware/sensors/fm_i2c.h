/*
 * The abstract I2C bus the sensor drivers use: two function pointers and a context, provided by the board port.
 * Registers of the INA2xx family are 16 bits, sent MSB first on the wire; the port assembles them, so
 * read_reg/write_reg deal in host-order uint16_t. Both return 0 on success and non-zero on a bus error (NACK,
 * timeout). addr is the 7-bit device address.
 */
#ifndef FM_I2C_H
#define FM_I2C_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fm_i2c_s {
    void *ctx;
    int (*write_reg)(void *ctx, uint8_t addr, uint8_t reg, uint16_t value);
    int (*read_reg)(void *ctx, uint8_t addr, uint8_t reg, uint16_t *value);
} fm_i2c_t;

#ifdef __cplusplus
}
#endif
#endif
