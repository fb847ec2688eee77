/*
 * Weak defaults for the optional parts of a port (fm_port.h): a family that has the part defines the function
 * and the linker takes that one. Builds that never call a default drop it (--gc-sections).
 */
#include "fm_port.h"

#define FM_WEAK __attribute__((weak))

FM_WEAK void fm_port_uart_wait(void) {}

FM_WEAK int fm_port_power_sample(fm_power_sample_t *out)
{
    (void)out;
    return FM_POWER_NOT_AVAILABLE;
}

FM_WEAK int fm_port_power_init(void) { return FM_POWER_NOT_AVAILABLE; }

FM_WEAK void fm_port_power_info(fm_power_info_t *info)
{
    info->chip = 0;
    info->present = 0;
    info->init_error = FM_POWER_NOT_AVAILABLE;
    info->current_lsb_pa = 0;
}

FM_WEAK const struct fm_i2c_s *fm_port_i2c_bus(void) { return 0; }

FM_WEAK void fm_port_sync_init(void) {}

FM_WEAK void fm_port_sync(int level) { (void)level; }
