/* One call for the Python tests: driver + simulated chip -> a sample, so the host decoder can be checked
   against the C driver on the same raw registers. */
#include "fm_ina.h"
#include "ina_sim.h"

int ina_sample(int chip, double shunt_v, double bus_v, uint32_t shunt_uohm, uint32_t max_current_ua,
               fm_ina_sample_t *out, uint32_t *current_lsb_pa);
int ina_sample(int chip, double shunt_v, double bus_v, uint32_t shunt_uohm, uint32_t max_current_ua,
               fm_ina_sample_t *out, uint32_t *current_lsb_pa) {
    ina_sim_t sim;
    fm_i2c_t bus;
    fm_ina_t d;
    ina_sim_init(&sim, chip, 0x40);
    ina_sim_bus(&sim, &bus);
    fm_ina_chip_t c = chip == 219 ? FM_INA219 : FM_INA226;
    int rc = fm_ina_init(&d, &bus, 0x40, c, c == FM_INA219 ? FM_INA219_CONFIG_DEFAULT : FM_INA226_CONFIG_DEFAULT);
    if (rc) return rc;
    if ((rc = fm_ina_calibrate(&d, shunt_uohm, max_current_ua)) != 0) return rc;
    sim.shunt_v = shunt_v;
    sim.bus_v = bus_v;
    ina_sim_convert(&sim);
    *current_lsb_pa = d.current_lsb_pa;
    return fm_ina_read_sample(&d, out);
}
