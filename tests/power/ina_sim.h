/*
 * Simulated INA219 / INA226 register files behind fm_i2c_t, implementing the datasheet behaviour the driver
 * depends on: power-on/reset values, read-only and void bits, ADC codes from the analog inputs (shunt and bus
 * voltages set by the test) with PGA/full-scale clipping, current = shunt * cal / 4096 (INA219) or / 2048
 * (INA226), power = current * bus / 5000 (INA219) or / 20000 (INA226), the math-overflow flag, and the
 * conversion-ready flags: a conversion completes `conversion_reads` register reads after it was restarted
 * (config write, or reading the flag's clearing register); INA219 CNVR is cleared by reading Power, INA226
 * CVRF by reading Mask/Enable.
 */
#ifndef INA_SIM_H
#define INA_SIM_H

#include <stdint.h>

#include "fm_i2c.h"

typedef struct {
    int chip; /* 219 or 226 */
    uint8_t addr;
    uint16_t reg[256];
    double shunt_v; /* analog inputs */
    double bus_v;
    uint32_t conversion_reads; /* reads until a started conversion completes */
    uint32_t pending;          /* reads left for the running conversion, 0 = done */
    int nack;                  /* simulate a dead bus */
    uint32_t reads, writes;
} ina_sim_t;

void ina_sim_init(ina_sim_t *s, int chip, uint8_t addr);
void ina_sim_bus(ina_sim_t *s, fm_i2c_t *bus); /* fills bus with the simulator's callbacks */
void ina_sim_convert(ina_sim_t *s);            /* complete a conversion now */

#endif
