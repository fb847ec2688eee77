/*
 * Power sensor glue for builds with -DFM_POWER_INA=219 or 226: fm_port_power_* on top of the INA219/INA226
 * driver (firmware/sensors/fm_ina.c) and the board family's I2C master (fm_port_i2c_bus(), e.g.
 * port/stm32f4/fm_i2c_stm32f4.c; the host tests provide a simulated one). A family without an I2C master has
 * the weak default bus (none): the sensor is then reported absent by HELLO.
 *
 * Settings (all compile-time, docs/power.md):
 *   FM_POWER_INA          219 or 226 (the chip)
 *   FM_POWER_INA_ADDR     7-bit I2C address, default 0x40 (A0 = A1 = GND on both chips)
 *   FM_POWER_SHUNT_UOHM   shunt resistor in micro-ohms, default 100000 (the 0.1 ohm "R100" of common modules)
 *   FM_POWER_MAX_UA       largest expected current in microamps, default 800000; Current_LSB = max / 2^15
 *   FM_POWER_INA_CONFIG   configuration register, default the chip's power-on value (continuous shunt + bus)
 */
#if defined(FM_POWER_INA)
#include "fm_ina.h"
#include "fm_port.h"

#if FM_POWER_INA != 219 && FM_POWER_INA != 226
#error "FM_POWER_INA must be 219 or 226"
#endif

#ifndef FM_POWER_INA_ADDR
#define FM_POWER_INA_ADDR 0x40u
#endif
#ifndef FM_POWER_SHUNT_UOHM
#define FM_POWER_SHUNT_UOHM 100000u
#endif
#ifndef FM_POWER_MAX_UA
#define FM_POWER_MAX_UA 800000u
#endif
#ifndef FM_POWER_INA_CONFIG
#if FM_POWER_INA == 219
#define FM_POWER_INA_CONFIG FM_INA219_CONFIG_DEFAULT
#else
#define FM_POWER_INA_CONFIG FM_INA226_CONFIG_DEFAULT
#endif
#endif

static fm_ina_t ina;
static uint8_t ina_present;
static int8_t ina_error = FM_INA_ENODEV; /* until fm_port_power_init() has run */

int fm_port_power_init(void)
{
    ina_present = 0;
    const fm_i2c_t *bus = fm_port_i2c_bus();
    if (bus == 0) {
        ina_error = FM_INA_EIO;
        return FM_INA_EIO;
    }
    int rc = fm_ina_init(&ina, bus, (uint8_t)FM_POWER_INA_ADDR, (fm_ina_chip_t)FM_POWER_INA,
                         (uint16_t)FM_POWER_INA_CONFIG);
    if (rc == FM_INA_OK) {
        rc = fm_ina_calibrate(&ina, FM_POWER_SHUNT_UOHM, FM_POWER_MAX_UA);
    }
    ina_error = (int8_t)rc;
    ina_present = rc == FM_INA_OK;
    return rc;
}

void fm_port_power_info(fm_power_info_t *info)
{
    info->chip = (uint16_t)FM_POWER_INA;
    info->present = ina_present;
    info->init_error = ina_error;
    info->current_lsb_pa = ina_present ? ina.current_lsb_pa : 0u;
}

int fm_port_power_sample(fm_power_sample_t *out)
{
    if (!ina_present) {
        return FM_POWER_NOT_AVAILABLE;
    }
    fm_ina_sample_t s;
    int rc = fm_ina_read_sample(&ina, &s);
    if (rc == FM_INA_EOVF) {
        /* INA219 math overflow: current/power are invalid. Read them anyway so the host sees the OVF bit in
           raw_bus and drops the sample (it is counted there), rather than losing the timestamp silently. */
        uint16_t v;
        s.raw_bus = 0;
        if (ina.bus->read_reg(ina.bus->ctx, ina.addr, FM_INA_REG_BUS, &v) != 0) return FM_INA_EIO;
        s.raw_bus = v;
        if (ina.bus->read_reg(ina.bus->ctx, ina.addr, FM_INA_REG_SHUNT, &v) != 0) return FM_INA_EIO;
        s.raw_shunt = (int16_t)v;
        if (ina.bus->read_reg(ina.bus->ctx, ina.addr, FM_INA_REG_CURRENT, &v) != 0) return FM_INA_EIO;
        s.raw_current = v;
        if (ina.bus->read_reg(ina.bus->ctx, ina.addr, FM_INA_REG_POWER, &v) != 0) return FM_INA_EIO;
        s.raw_power = v;
        s.bus_uv = 0;
        s.current_ua = 0;
    } else if (rc != FM_INA_OK) {
        return rc;
    }
    out->microvolts = s.bus_uv > 0 ? (uint32_t)s.bus_uv : 0u;
    out->microamps = s.current_ua > 0 ? (uint32_t)s.current_ua : 0u;
    out->raw_bus = s.raw_bus;
    out->raw_shunt = s.raw_shunt;
    out->raw_current = (int16_t)s.raw_current;
    out->raw_power = s.raw_power;
    return 0;
}
#endif
