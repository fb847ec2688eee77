/* INA219 / INA226 driver: see fm_ina.h for the datasheet formulas. */
#include "fm_ina.h"

#include <stddef.h>

static int rd(fm_ina_t *d, uint8_t reg, uint16_t *v) {
    return d->bus->read_reg(d->bus->ctx, d->addr, reg, v) == 0 ? FM_INA_OK : FM_INA_EIO;
}

static int wr(fm_ina_t *d, uint8_t reg, uint16_t v) {
    return d->bus->write_reg(d->bus->ctx, d->addr, reg, v) == 0 ? FM_INA_OK : FM_INA_EIO;
}

int fm_ina_init(fm_ina_t *d, const fm_i2c_t *bus, uint8_t addr, fm_ina_chip_t chip, uint16_t config) {
    if (d == NULL || bus == NULL || bus->read_reg == NULL || bus->write_reg == NULL || addr > 0x7Fu ||
        (chip != FM_INA219 && chip != FM_INA226))
        return FM_INA_EINVAL;
    d->bus = bus;
    d->addr = addr;
    d->chip = chip;
    d->cal = 0;
    d->current_lsb_pa = 0;
    int rc = wr(d, FM_INA_REG_CONFIG, 0x8000u); /* RST: registers back to power-on values */
    if (rc) return rc;
    if (chip == FM_INA226) {
        uint16_t man, die;
        if ((rc = rd(d, FM_INA226_REG_MANUFACTURER, &man)) != 0) return rc;
        if ((rc = rd(d, FM_INA226_REG_DIE, &die)) != 0) return rc;
        if (man != FM_INA226_MANUFACTURER_ID || die != FM_INA226_DIE_ID) return FM_INA_ENODEV;
    } else {
        uint16_t cfg;
        if ((rc = rd(d, FM_INA_REG_CONFIG, &cfg)) != 0) return rc;
        if (cfg != FM_INA219_CONFIG_DEFAULT) return FM_INA_ENODEV; /* not an INA219 after reset */
    }
    config &= 0x7FFFu; /* never leave RST set */
    d->config = config;
    return wr(d, FM_INA_REG_CONFIG, config);
}

int fm_ina_calibration(fm_ina_chip_t chip, uint32_t shunt_uohm, uint32_t max_current_ua, uint16_t *cal,
                       uint32_t *current_lsb_pa) {
    if (shunt_uohm == 0u || max_current_ua == 0u || cal == NULL || current_lsb_pa == NULL) return FM_INA_EINVAL;
    /* Current_LSB = max / 2^15, in pA, rounded up so max_current stays within range. */
    uint64_t lsb = ((uint64_t)max_current_ua * 1000000u + 32767u) / 32768u;
    if (lsb > 0xFFFFFFFFu) return FM_INA_ERANGE;
    uint64_t numerator;
    uint64_t reg_max;
    if (chip == FM_INA219) {
        numerator = 40960000000000000ull; /* 0.04096 / (1e-12 * 1e-6) */
        reg_max = 0xFFFEu;                /* bit 0 is void */
    } else if (chip == FM_INA226) {
        numerator = 5120000000000000ull; /* 0.00512 / (1e-12 * 1e-6) */
        reg_max = 0x7FFFu;               /* bit 15 reserved */
    } else {
        return FM_INA_EINVAL;
    }
    uint64_t c = numerator / (lsb * (uint64_t)shunt_uohm);
    if (chip == FM_INA219) c &= ~(uint64_t)1u;
    if (c == 0u || c > reg_max) return FM_INA_ERANGE;
    *cal = (uint16_t)c;
    *current_lsb_pa = (uint32_t)lsb;
    return FM_INA_OK;
}

int fm_ina_calibrate(fm_ina_t *d, uint32_t shunt_uohm, uint32_t max_current_ua) {
    uint16_t cal;
    uint32_t lsb;
    int rc = fm_ina_calibration(d->chip, shunt_uohm, max_current_ua, &cal, &lsb);
    if (rc) return rc;
    if ((rc = wr(d, FM_INA_REG_CAL, cal)) != 0) return rc;
    d->cal = cal;
    d->current_lsb_pa = lsb;
    return FM_INA_OK;
}

static int bus_raw(fm_ina_t *d, uint16_t *raw) { return rd(d, FM_INA_REG_BUS, raw); }

static int32_t bus_uv_from_raw(fm_ina_chip_t chip, uint16_t raw) {
    if (chip == FM_INA219) return (int32_t)(raw >> 3) * 4000; /* 4 mV LSB in bits 15..3 */
    return (int32_t)(raw & 0x7FFFu) * 1250;                     /* 1.25 mV LSB */
}

int fm_ina_read_bus_uv(fm_ina_t *d, int32_t *bus_uv) {
    uint16_t raw;
    int rc = bus_raw(d, &raw);
    if (rc) return rc;
    *bus_uv = bus_uv_from_raw(d->chip, raw);
    return FM_INA_OK;
}

static int32_t shunt_nv_from_raw(fm_ina_chip_t chip, int16_t raw) {
    return chip == FM_INA219 ? (int32_t)raw * 10000 : (int32_t)raw * 2500; /* 10 uV / 2.5 uV LSB */
}

int fm_ina_read_shunt_nv(fm_ina_t *d, int32_t *shunt_nv) {
    uint16_t raw;
    int rc = rd(d, FM_INA_REG_SHUNT, &raw);
    if (rc) return rc;
    *shunt_nv = shunt_nv_from_raw(d->chip, (int16_t)raw);
    return FM_INA_OK;
}

static int32_t current_ua_from_raw(const fm_ina_t *d, int16_t raw) {
    int64_t pa = (int64_t)raw * (int64_t)d->current_lsb_pa;
    return (int32_t)(pa / 1000000);
}

static uint32_t power_uw_from_raw(const fm_ina_t *d, uint16_t raw) {
    uint64_t mult = d->chip == FM_INA219 ? 20u : 25u; /* Power_LSB = 20 (25) x Current_LSB */
    return (uint32_t)((uint64_t)raw * mult * d->current_lsb_pa / 1000000u);
}

/* INA219: OVF lives in the bus register; INA226: in Mask/Enable (reading it clears CVRF, so don't here). */
static int check_overflow(fm_ina_t *d) {
    if (d->chip != FM_INA219) return FM_INA_OK;
    uint16_t raw;
    int rc = bus_raw(d, &raw);
    if (rc) return rc;
    return (raw & 1u) ? FM_INA_EOVF : FM_INA_OK;
}

int fm_ina_read_current_ua(fm_ina_t *d, int32_t *current_ua) {
    if (d->current_lsb_pa == 0u) return FM_INA_EINVAL; /* not calibrated: the register reads 0 */
    uint16_t raw;
    int rc = check_overflow(d);
    if (rc) return rc;
    if ((rc = rd(d, FM_INA_REG_CURRENT, &raw)) != 0) return rc;
    *current_ua = current_ua_from_raw(d, (int16_t)raw);
    return FM_INA_OK;
}

int fm_ina_read_power_uw(fm_ina_t *d, uint32_t *power_uw) {
    if (d->current_lsb_pa == 0u) return FM_INA_EINVAL;
    uint16_t raw;
    int rc = check_overflow(d);
    if (rc) return rc;
    if ((rc = rd(d, FM_INA_REG_POWER, &raw)) != 0) return rc;
    *power_uw = power_uw_from_raw(d, raw);
    return FM_INA_OK;
}

int fm_ina_conversion_ready(fm_ina_t *d) {
    uint16_t raw;
    int rc;
    if (d->chip == FM_INA219) {
        if ((rc = bus_raw(d, &raw)) != 0) return rc;
        return (raw >> 1) & 1u;
    }
    if ((rc = rd(d, FM_INA226_REG_MASK, &raw)) != 0) return rc;
    return (raw >> 3) & 1u;
}

int fm_ina_wait_ready(fm_ina_t *d, uint32_t max_polls) {
    for (uint32_t i = 0; i < max_polls; i++) {
        int r = fm_ina_conversion_ready(d);
        if (r < 0) return r;
        if (r == 1) return FM_INA_OK;
    }
    return FM_INA_ETIMEOUT;
}

int fm_ina_read_sample(fm_ina_t *d, fm_ina_sample_t *s) {
    if (d->current_lsb_pa == 0u || s == NULL) return FM_INA_EINVAL;
    uint16_t bus, shunt, cur, pwr;
    int rc;
    if ((rc = bus_raw(d, &bus)) != 0) return rc;
    if (d->chip == FM_INA219 && (bus & 1u)) return FM_INA_EOVF;
    if ((rc = rd(d, FM_INA_REG_SHUNT, &shunt)) != 0) return rc;
    if ((rc = rd(d, FM_INA_REG_CURRENT, &cur)) != 0) return rc;
    if ((rc = rd(d, FM_INA_REG_POWER, &pwr)) != 0) return rc;
    s->raw_bus = bus;
    s->raw_shunt = (int16_t)shunt;
    s->raw_current = cur;
    s->raw_power = pwr;
    s->bus_uv = bus_uv_from_raw(d->chip, bus);
    s->shunt_nv = shunt_nv_from_raw(d->chip, (int16_t)shunt);
    s->current_ua = current_ua_from_raw(d, (int16_t)cur);
    s->power_uw = power_uw_from_raw(d, pwr);
    return FM_INA_OK;
}
