#include "ina_sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void reset(ina_sim_t *s) {
    memset(s->reg, 0, sizeof s->reg);
    if (s->chip == 219) {
        s->reg[0x00] = 0x399Fu;
    } else {
        s->reg[0x00] = 0x4127u;
        s->reg[0xFE] = 0x5449u;
        s->reg[0xFF] = 0x2260u;
    }
    s->pending = s->conversion_reads;
}

void ina_sim_init(ina_sim_t *s, int chip, uint8_t addr) {
    memset(s, 0, sizeof *s);
    s->chip = chip;
    s->addr = addr;
    s->conversion_reads = 0;
    reset(s);
}

static long clampl(long v, long lo, long hi) { return v < lo ? lo : v > hi ? hi : v; }

void ina_sim_convert(ina_sim_t *s) {
    long shunt, bus;
    int ovf = 0;
    if (s->chip == 219) {
        /* PGA bits 12:11 -> +-40/80/160/320 mV, 10 uV LSB; BRNG bit 13: 16 V or 32 V */
        long fs = 4000L << ((s->reg[0] >> 11) & 3u);
        shunt = clampl(lround(s->shunt_v / 10e-6), -fs, fs);
        double brng = (s->reg[0] & (1u << 13)) ? 32.0 : 16.0;
        bus = clampl(lround((s->bus_v < brng ? s->bus_v : brng) / 4e-3), 0, 8191);
        long cal = s->reg[5] & 0xFFFEu;
        long current = (shunt * cal) / 4096;
        long power = (labs(current) * bus) / 5000;
        if (current > 32767 || current < -32768 || power > 65535) ovf = 1;
        s->reg[1] = (uint16_t)(int16_t)shunt;
        s->reg[4] = (uint16_t)(int16_t)clampl(current, -32768, 32767);
        s->reg[3] = (uint16_t)clampl(power, 0, 65535);
        s->reg[2] = (uint16_t)((bus << 3) | (1u << 1) | (ovf ? 1u : 0u)); /* CNVR set */
    } else {
        shunt = clampl(lround(s->shunt_v / 2.5e-6), -32768, 32767); /* +-81.92 mV */
        bus = clampl(lround(s->bus_v / 1.25e-3), 0, 0x7FFF);        /* 0..40.96 V */
        long cal = s->reg[5] & 0x7FFFu;
        long current = (shunt * cal) / 2048;
        long power = (labs(current) * bus) / 20000;
        if (current > 32767 || current < -32768 || power > 65535) ovf = 1;
        s->reg[1] = (uint16_t)(int16_t)shunt;
        s->reg[2] = (uint16_t)bus;
        s->reg[4] = (uint16_t)(int16_t)clampl(current, -32768, 32767);
        s->reg[3] = (uint16_t)clampl(power, 0, 65535);
        s->reg[6] = (uint16_t)((s->reg[6] & ~0x000Cu) | (1u << 3) | (ovf ? 1u << 2 : 0u)); /* CVRF, OVF */
    }
    s->pending = 0;
}

static int sim_write(void *ctx, uint8_t addr, uint8_t reg, uint16_t value) {
    ina_sim_t *s = ctx;
    if (s->nack || addr != s->addr) return -1;
    s->writes++;
    if (reg == 0x00) {
        if (value & 0x8000u) { reset(s); return 0; } /* RST self-clears */
        s->reg[0] = s->chip == 226 ? (uint16_t)(value | 0x4000u) : value; /* INA226 bit 14 reads 1 */
        s->reg[2] &= (uint16_t)~2u;  /* INA219: CNVR cleared by a config write */
        s->reg[6] &= (uint16_t)~8u;  /* INA226: CVRF likewise */
        s->pending = s->conversion_reads;
        if (s->pending == 0) ina_sim_convert(s);
        return 0;
    }
    if (reg == 0x05) {
        s->reg[5] = s->chip == 219 ? (uint16_t)(value & 0xFFFEu) : (uint16_t)(value & 0x7FFFu);
        return 0;
    }
    if (s->chip == 226 && (reg == 0x06 || reg == 0x07)) {
        s->reg[reg] = reg == 0x06 ? (uint16_t)((value & 0xFC03u) | (s->reg[6] & 0x001Cu)) : value;
        return 0;
    }
    return -1; /* read-only or absent register: the real chips NACK nothing, but a driver must never do this */
}

/* continuous mode: once a conversion has completed and its flag is consumed, the next one starts; a running
   conversion is not restarted by reads */
static void restart(ina_sim_t *s) {
    if (s->pending != 0) return;
    s->pending = s->conversion_reads;
    if (s->pending == 0) ina_sim_convert(s);
}

static int sim_read(void *ctx, uint8_t addr, uint8_t reg, uint16_t *value) {
    ina_sim_t *s = ctx;
    if (s->nack || addr != s->addr) return -1;
    s->reads++;
    if (s->pending > 0 && --s->pending == 0) ina_sim_convert(s);
    int valid = reg <= 0x05 || (s->chip == 226 && (reg == 0x06 || reg == 0x07 || reg == 0xFE || reg == 0xFF));
    if (!valid) return -1;
    *value = s->reg[reg];
    if (s->chip == 219 && reg == 0x03) { /* reading Power clears CNVR and starts the next conversion */
        s->reg[2] &= (uint16_t)~2u;
        restart(s);
    }
    if (s->chip == 226 && reg == 0x06) {
        s->reg[6] &= (uint16_t)~8u;
        restart(s);
    }
    return 0;
}

void ina_sim_bus(ina_sim_t *s, fm_i2c_t *bus) {
    bus->ctx = s;
    bus->write_reg = sim_write;
    bus->read_reg = sim_read;
}
