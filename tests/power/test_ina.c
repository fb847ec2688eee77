/*
 * INA219/INA226 driver (firmware/sensors/fm_ina.c) against the simulated register files (ina_sim.c).
 * Built with -fsanitize=address,undefined by tests/power/test_ina_driver.py; prints "ok N checks".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fm_ina.h"
#include "ina_sim.h"

static int checks;
#define CHECK(cond)                                                                    \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static void datasheet_examples(void) {
    uint16_t cal;
    uint32_t lsb;
    /* INA219 datasheet example: 0.1 ohm, Current_LSB 100 uA -> Cal 4096 */
    CHECK(fm_ina_calibration(FM_INA219, 100000u, 3276800u, &cal, &lsb) == FM_INA_OK);
    CHECK(lsb == 100000000u && cal == 4096u);
    /* INA226 datasheet example: 2 mohm, Current_LSB 1 mA -> CAL 2560 */
    CHECK(fm_ina_calibration(FM_INA226, 2000u, 32768000u, &cal, &lsb) == FM_INA_OK);
    CHECK(lsb == 1000000000u && cal == 2560u);
    /* rejections */
    CHECK(fm_ina_calibration(FM_INA219, 0u, 1000u, &cal, &lsb) == FM_INA_EINVAL);
    CHECK(fm_ina_calibration(FM_INA226, 1000u, 0u, &cal, &lsb) == FM_INA_EINVAL);
    CHECK(fm_ina_calibration(FM_INA226, 100u, 1000u, &cal, &lsb) == FM_INA_ERANGE);  /* cal far above 0x7FFF */
    CHECK(fm_ina_calibration(FM_INA219, 4000000000u, 4000000000u, &cal, &lsb) == FM_INA_ERANGE); /* cal 0 */
}

/* Cal against the datasheet formula in long double over a grid of shunts and currents. */
static void calibration_grid(void) {
    static const uint32_t shunts[] = {1000u, 2000u, 10000u, 50000u, 100000u, 500000u, 1000000u};
    static const uint32_t currents[] = {1000u, 10000u, 100000u, 400000u, 1000000u, 2000000u, 3200000u, 15000000u};
    for (int chip = 0; chip < 2; chip++) {
        fm_ina_chip_t c = chip ? FM_INA226 : FM_INA219;
        long double k = chip ? 0.00512L : 0.04096L;
        long double reg_max = chip ? 32767.0L : 65534.0L;
        for (size_t i = 0; i < sizeof shunts / sizeof shunts[0]; i++) {
            for (size_t j = 0; j < sizeof currents / sizeof currents[0]; j++) {
                uint16_t cal;
                uint32_t lsb;
                long double lsb_a = ceill((long double)currents[j] * 1e-6L / 32768.0L * 1e12L) * 1e-12L;
                long double exact = k / (lsb_a * (long double)shunts[i] * 1e-6L);
                long double want = floorl(exact + 1e-9L);
                if (!chip) want = 2.0L * floorl(want / 2.0L);
                int rc = fm_ina_calibration(c, shunts[i], currents[j], &cal, &lsb);
                if (want < 1.0L || want > reg_max) {
                    CHECK(rc == FM_INA_ERANGE);
                } else {
                    CHECK(rc == FM_INA_OK);
                    CHECK((long double)cal == want);
                    /* full scale of the current register covers the requested maximum */
                    CHECK((long double)lsb * 1e-12L * 32768.0L >= (long double)currents[j] * 1e-6L);
                }
            }
        }
    }
}

static void readings(int chip_no) {
    fm_ina_chip_t chip = chip_no == 219 ? FM_INA219 : FM_INA226;
    ina_sim_t sim;
    fm_i2c_t bus;
    fm_ina_t d;
    ina_sim_init(&sim, chip_no, 0x40);
    ina_sim_bus(&sim, &bus);
    uint16_t config = chip == FM_INA219 ? FM_INA219_CONFIG_DEFAULT : FM_INA226_CONFIG_DEFAULT;
    CHECK(fm_ina_init(&d, &bus, 0x40, chip, config) == FM_INA_OK);
    int32_t ua;
    CHECK(fm_ina_read_current_ua(&d, &ua) == FM_INA_EINVAL); /* not calibrated yet */
    /* INA226: 81.92 mV full scale, so a 20 mohm shunt for 2 A; INA219: 0.1 ohm (320 mV range) */
    uint32_t shunt_uohm = chip == FM_INA219 ? 100000u : 20000u;
    CHECK(fm_ina_calibrate(&d, shunt_uohm, 3000000u) == FM_INA_OK);
    double lsb_a = d.current_lsb_pa * 1e-12;
    const double currents[] = {1.234, 0.0123, -0.5, 0.0, 2.9};
    for (size_t i = 0; i < sizeof currents / sizeof currents[0]; i++) {
        double amps = currents[i];
        sim.shunt_v = amps * shunt_uohm * 1e-6;
        sim.bus_v = 4.98;
        ina_sim_convert(&sim);
        int32_t buv, snv;
        uint32_t uw;
        CHECK(fm_ina_read_bus_uv(&d, &buv) == FM_INA_OK);
        double bus_lsb = chip == FM_INA219 ? 4e-3 : 1.25e-3;
        CHECK(fabs(buv * 1e-6 - 4.98) <= bus_lsb / 2 + 1e-9);
        CHECK(fm_ina_read_shunt_nv(&d, &snv) == FM_INA_OK);
        double shunt_lsb = chip == FM_INA219 ? 10e-6 : 2.5e-6;
        CHECK(fabs(snv * 1e-9 - sim.shunt_v) <= shunt_lsb / 2 + 1e-12);
        CHECK(fm_ina_read_current_ua(&d, &ua) == FM_INA_OK);
        /* shunt quantisation + calibration truncation: within 2 current LSBs + 0.5 % */
        CHECK(fabs(ua * 1e-6 - amps) <= 2 * lsb_a + 0.005 * fabs(amps));
        CHECK(fm_ina_read_power_uw(&d, &uw) == FM_INA_OK);
        double power_lsb = (chip == FM_INA219 ? 20 : 25) * lsb_a;
        CHECK(fabs(uw * 1e-6 - fabs(amps) * 4.98) <= 2 * power_lsb + 0.01 * fabs(amps) * 4.98);
        fm_ina_sample_t s;
        ina_sim_convert(&sim);
        CHECK(fm_ina_read_sample(&d, &s) == FM_INA_OK);
        CHECK(s.current_ua == ua && s.bus_uv == buv && s.power_uw == uw && s.shunt_nv == snv);
    }
}

static void conversion_ready(int chip_no) {
    fm_ina_chip_t chip = chip_no == 219 ? FM_INA219 : FM_INA226;
    ina_sim_t sim;
    fm_i2c_t bus;
    fm_ina_t d;
    ina_sim_init(&sim, chip_no, 0x41);
    ina_sim_bus(&sim, &bus);
    sim.conversion_reads = 6;
    CHECK(fm_ina_init(&d, &bus, 0x41, chip, chip == FM_INA219 ? 0x399Fu : 0x4127u) == FM_INA_OK);
    CHECK(fm_ina_calibrate(&d, 100000u, 400000u) == FM_INA_OK);
    sim.shunt_v = 0.0123;
    sim.bus_v = 3.3;
    /* the config write restarted the conversion: not ready yet, then ready within the polls */
    CHECK(fm_ina_conversion_ready(&d) == 0);
    CHECK(fm_ina_wait_ready(&d, 20) == FM_INA_OK);
    if (chip == FM_INA219) {
        /* CNVR stays set until Power is read */
        CHECK(fm_ina_conversion_ready(&d) == 1);
        uint32_t uw;
        CHECK(fm_ina_read_power_uw(&d, &uw) == FM_INA_OK);
        CHECK(fm_ina_conversion_ready(&d) == 0);
    } else {
        /* CVRF is cleared by the Mask/Enable read that reported it */
        CHECK(fm_ina_conversion_ready(&d) == 0);
    }
    int32_t ua;
    CHECK(fm_ina_read_current_ua(&d, &ua) == FM_INA_OK);
    CHECK(abs(ua - 123000) < 200);
    sim.conversion_reads = 1000;
    sim.pending = 1000;
    CHECK(fm_ina_wait_ready(&d, 10) == FM_INA_ETIMEOUT);
}

static void faults(void) {
    ina_sim_t sim;
    fm_i2c_t bus;
    fm_ina_t d;
    /* overflow: INA219 calibrated for 0.4 A carrying 3 A */
    ina_sim_init(&sim, 219, 0x40);
    ina_sim_bus(&sim, &bus);
    CHECK(fm_ina_init(&d, &bus, 0x40, FM_INA219, FM_INA219_CONFIG_DEFAULT) == FM_INA_OK);
    CHECK(fm_ina_calibrate(&d, 100000u, 400000u) == FM_INA_OK);
    sim.shunt_v = 0.3;
    sim.bus_v = 12.0;
    ina_sim_convert(&sim);
    int32_t ua;
    uint32_t uw;
    fm_ina_sample_t s;
    CHECK(fm_ina_read_current_ua(&d, &ua) == FM_INA_EOVF);
    CHECK(fm_ina_read_power_uw(&d, &uw) == FM_INA_EOVF);
    CHECK(fm_ina_read_sample(&d, &s) == FM_INA_EOVF);
    /* dead bus */
    sim.nack = 1;
    CHECK(fm_ina_read_bus_uv(&d, &ua) == FM_INA_EIO);
    CHECK(fm_ina_calibrate(&d, 100000u, 400000u) == FM_INA_EIO);
    /* wrong chip or address */
    ina_sim_init(&sim, 226, 0x40);
    ina_sim_bus(&sim, &bus);
    CHECK(fm_ina_init(&d, &bus, 0x40, FM_INA219, FM_INA219_CONFIG_DEFAULT) == FM_INA_ENODEV);
    CHECK(fm_ina_init(&d, &bus, 0x45, FM_INA226, FM_INA226_CONFIG_DEFAULT) == FM_INA_EIO);
    ina_sim_init(&sim, 219, 0x40);
    ina_sim_bus(&sim, &bus);
    CHECK(fm_ina_init(&d, &bus, 0x40, FM_INA226, FM_INA226_CONFIG_DEFAULT) != FM_INA_OK);
    CHECK(fm_ina_init(&d, &bus, 0x80, FM_INA219, FM_INA219_CONFIG_DEFAULT) == FM_INA_EINVAL);
    /* init leaves RST clear and the requested config in place */
    CHECK(fm_ina_init(&d, &bus, 0x40, FM_INA219, 0x9FFFu) == FM_INA_OK);
    CHECK(sim.reg[0] == 0x1FFFu);
}

int main(void) {
    datasheet_examples();
    calibration_grid();
    readings(219);
    readings(226);
    conversion_ready(219);
    conversion_ready(226);
    faults();
    printf("ok %d checks\n", checks);
    return 0;
}
