/*
 * INA219 and INA226 current/power monitors (Texas Instruments) over fm_i2c_t. C11, no malloc, integer maths.
 *
 * Calibration follows the datasheets exactly:
 *   INA219 (SBOS448): Current_LSB = max_current / 2^15, Cal = trunc(0.04096 / (Current_LSB * R_shunt)),
 *                     Power_LSB = 20 * Current_LSB; shunt LSB 10 uV, bus LSB 4 mV (register bits 15..3),
 *                     bus register bit 1 CNVR (conversion ready), bit 0 OVF (math overflow).
 *   INA226 (SBOS547): Current_LSB = max_current / 2^15, Cal = trunc(0.00512 / (Current_LSB * R_shunt)),
 *                     Power_LSB = 25 * Current_LSB; shunt LSB 2.5 uV, bus LSB 1.25 mV,
 *                     Mask/Enable bit 3 CVRF (conversion ready), bit 2 OVF.
 * Current_LSB is kept in picoamps (rounded up so the full scale covers max_current), so the register maths is
 * exact in 64-bit integers: Cal = 4.096e16 / (lsb_pA * R_uohm) (INA219), 5.12e15 / (lsb_pA * R_uohm) (INA226).
 * The INA219 ignores calibration bit 0 and the INA226 bit 15; the drivers store the value the chip will use.
 */
#ifndef FM_INA_H
#define FM_INA_H

#include <stdint.h>

#include "fm_i2c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FM_INA_OK 0
#define FM_INA_EIO (-1)      /* bus error */
#define FM_INA_EINVAL (-2)   /* bad argument */
#define FM_INA_ERANGE (-3)   /* calibration does not fit the register for this shunt / current */
#define FM_INA_ENODEV (-4)   /* wrong manufacturer/die id (INA226) */
#define FM_INA_EOVF (-5)     /* the chip flagged a math overflow: current/power invalid */
#define FM_INA_ETIMEOUT (-6) /* no conversion ready within the polls allowed */

typedef enum { FM_INA219 = 219, FM_INA226 = 226 } fm_ina_chip_t;

/* register map */
#define FM_INA_REG_CONFIG 0x00u
#define FM_INA_REG_SHUNT 0x01u
#define FM_INA_REG_BUS 0x02u
#define FM_INA_REG_POWER 0x03u
#define FM_INA_REG_CURRENT 0x04u
#define FM_INA_REG_CAL 0x05u
#define FM_INA226_REG_MASK 0x06u
#define FM_INA226_REG_ALERT 0x07u
#define FM_INA226_REG_MANUFACTURER 0xFEu
#define FM_INA226_REG_DIE 0xFFu

#define FM_INA219_CONFIG_DEFAULT 0x399Fu /* 32 V range, PGA /8 (+-320 mV), 12-bit, continuous shunt+bus */
#define FM_INA226_CONFIG_DEFAULT 0x4127u /* 1 sample, 1.1 ms conversions, continuous shunt+bus */
#define FM_INA226_MANUFACTURER_ID 0x5449u
#define FM_INA226_DIE_ID 0x2260u

typedef struct {
    const fm_i2c_t *bus;
    uint8_t addr;
    fm_ina_chip_t chip;
    uint16_t config;
    uint16_t cal;            /* value written to the calibration register (as the chip keeps it) */
    uint32_t current_lsb_pa; /* Current_LSB in picoamps; 0 until calibrated */
} fm_ina_t;

typedef struct {
    int32_t bus_uv;     /* bus voltage, microvolts */
    int32_t shunt_nv;   /* shunt voltage, nanovolts */
    int32_t current_ua; /* current from the current register, microamps */
    uint32_t power_uw;  /* power from the power register, microwatts */
    uint16_t raw_bus, raw_current, raw_power; /* registers as read, for streaming to the host */
    int16_t raw_shunt;
} fm_ina_sample_t;

/* Resets the chip, checks it answers (INA226: ids), writes `config`. */
int fm_ina_init(fm_ina_t *d, const fm_i2c_t *bus, uint8_t addr, fm_ina_chip_t chip, uint16_t config);
/* Pure: the datasheet calibration for a chip, shunt (micro-ohms) and max expected current (microamps). */
int fm_ina_calibration(fm_ina_chip_t chip, uint32_t shunt_uohm, uint32_t max_current_ua, uint16_t *cal,
                       uint32_t *current_lsb_pa);
/* Computes and writes the calibration register. */
int fm_ina_calibrate(fm_ina_t *d, uint32_t shunt_uohm, uint32_t max_current_ua);
int fm_ina_read_bus_uv(fm_ina_t *d, int32_t *bus_uv);
int fm_ina_read_shunt_nv(fm_ina_t *d, int32_t *shunt_nv);
int fm_ina_read_current_ua(fm_ina_t *d, int32_t *current_ua);
int fm_ina_read_power_uw(fm_ina_t *d, uint32_t *power_uw);
/* 1 when a new conversion is ready (INA219: CNVR; INA226: CVRF, cleared by this read), 0 when not. */
int fm_ina_conversion_ready(fm_ina_t *d);
/* Polls conversion_ready up to max_polls times; FM_INA_ETIMEOUT when none came. */
int fm_ina_wait_ready(fm_ina_t *d, uint32_t max_polls);
/* Bus, shunt, current and power in one go (power read last: on the INA219 that clears CNVR). */
int fm_ina_read_sample(fm_ina_t *d, fm_ina_sample_t *s);

#ifdef __cplusplus
}
#endif
#endif
