/*
 * The power-sensor half of the host port for -DFM_POWER_INA builds of the host device: fm_port_i2c_bus() is
 * the simulated INA219/INA226 register file of tests/power/ina_sim.c, so firmware/port/power/fm_power_ina.c,
 * firmware/sensors/fm_ina.c and the app's sampling run unchanged on top of it.
 *
 * The analog side comes from the environment, so one binary serves every test:
 *   FM_SIM_INA_AMPS   load current in amperes (default 0.05)      FM_SIM_INA_VOLTS  bus voltage (default 3.3)
 *   FM_SIM_INA_SHUNT  shunt in ohms the simulated chip sees (default 0.1, = FM_POWER_SHUNT_UOHM's default)
 *   FM_SIM_INA_ABSENT set: nothing answers at the address          FM_SIM_INA_FAIL_EVERY  N: every Nth read NACKs
 * The chip converts continuously; a sample (which reads the bus register first) sees a fresh conversion.
 */
#include <stdlib.h>

#include "fm_ina.h"
#include "fm_port.h"
#include "ina_sim.h"

static ina_sim_t sim;
static fm_i2c_t sim_bus;
static fm_i2c_t wrapped;
static double amps = 0.05, volts = 3.3, shunt_ohm = 0.1;
static unsigned long fail_every, reads;

static double env_double(const char *name, double fallback)
{
    const char *v = getenv(name);
    return v && *v ? strtod(v, 0) : fallback;
}

static int wrapped_write(void *ctx, uint8_t addr, uint8_t reg, uint16_t value)
{
    (void)ctx;
    return sim_bus.write_reg(sim_bus.ctx, addr, reg, value);
}

static int wrapped_read(void *ctx, uint8_t addr, uint8_t reg, uint16_t *value)
{
    (void)ctx;
    reads++;
    if (fail_every && reads % fail_every == 0) {
        return -1;
    }
    if (reg == FM_INA_REG_BUS && sim.reg[FM_INA_REG_CAL] != 0) {
        sim.shunt_v = amps * shunt_ohm;
        sim.bus_v = volts;
        ina_sim_convert(&sim);
    }
    return sim_bus.read_reg(sim_bus.ctx, addr, reg, value);
}

const struct fm_i2c_s *fm_port_i2c_bus(void)
{
    ina_sim_init(&sim, FM_POWER_INA, 0x40);
    sim.nack = getenv("FM_SIM_INA_ABSENT") != 0;
    amps = env_double("FM_SIM_INA_AMPS", 0.05);
    volts = env_double("FM_SIM_INA_VOLTS", 3.3);
    shunt_ohm = env_double("FM_SIM_INA_SHUNT", 0.1);
    fail_every = (unsigned long)env_double("FM_SIM_INA_FAIL_EVERY", 0);
    reads = 0;
    ina_sim_bus(&sim, &sim_bus);
    wrapped.ctx = 0;
    wrapped.write_reg = wrapped_write;
    wrapped.read_reg = wrapped_read;
    return &wrapped;
}
