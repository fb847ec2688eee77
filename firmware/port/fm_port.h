/*
 * The porting layer. A board family lives in firmware/port/<family>/ and is chosen by one preprocessor symbol
 * from the board definition (FM_PORT_<FAMILY>, e.g. FM_PORT_CMSDK); FM_UART_BASE, FM_UART_BAUD and FM_CLOCK_HZ
 * come from boards/<board>.toml too. FM_VIRTUAL marks a QEMU board (no clock tree to set up, SysTick under
 * -icount). Timing, reset and the fault handler are common to every Cortex-M core (firmware/port/cortexm/).
 *
 * Required from a family: fm_port_init, fm_port_uart_getc, fm_port_uart_write, fm_port_uart_flush.
 * Optional: everything marked "weak default" below; fm_port_defaults.c holds those defaults, and a family
 * overrides one by defining the function.
 */
#ifndef FM_PORT_H
#define FM_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "fm_protocol_ids.h" /* FM_TIMER_KIND_* */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- per board family ---- */
void fm_port_init(void);                                /* clocks, pins, UART at FM_UART_BAUD */
int fm_port_uart_getc(uint8_t *byte);                   /* non-blocking: 1 and *byte when a byte waits */
void fm_port_uart_write(const uint8_t *data, size_t n); /* blocking */
void fm_port_uart_flush(void);                          /* wait until the last byte has left the pin */
/* Weak default: returns at once (the caller then polls). Families sleep (WFI) until a byte may have arrived
   or another interrupt fired; it may return early, and never leaves a UART interrupt enabled behind it, so
   nothing but the timer interrupts a measurement. */
void fm_port_uart_wait(void);

#define FM_POWER_NOT_AVAILABLE (-1)
typedef struct {
    uint32_t microvolts;
    uint32_t microamps;   /* clamped at 0 (a reversed shunt reads negative: see raw_current) */
    /* The sensor's registers as read (INA219/INA226 builds), streamed to the host as they are. */
    uint16_t raw_bus;
    int16_t raw_shunt;
    int16_t raw_current;
    uint16_t raw_power;
} fm_power_sample_t;
/* 0, or FM_POWER_NOT_AVAILABLE (the weak default) / a negative error */
int fm_port_power_sample(fm_power_sample_t *out);

/*
 * Power sensor builds (-DFM_POWER_INA=219|226, see docs/power.md): port/power/fm_power_ina.c implements the
 * three power functions below on top of firmware/sensors and the family's I2C master (fm_port_i2c_bus()).
 * Weak defaults: no sensor (present 0, chip 0), and no I2C bus (0), which a power build reports as an absent
 * sensor.
 */
typedef struct {
    uint16_t chip;           /* 219 or 226 */
    uint8_t present;         /* 1: the sensor answered and is calibrated */
    int8_t init_error;       /* FM_INA_* code of the failed bring-up, 0 when present */
    uint32_t current_lsb_pa; /* Current_LSB in picoamps (what the host decodes raw registers with) */
} fm_power_info_t;
int fm_port_power_init(void);                   /* bring up I2C and the sensor; 0 when present */
void fm_port_power_info(fm_power_info_t *info);
struct fm_i2c_s;
const struct fm_i2c_s *fm_port_i2c_bus(void);   /* the family's I2C master (initialised on first call) */

/* Energy-monitor sync line: high during a RUN. Families drive a pin in -DFM_SYNC_PIN builds
   (port/<family>/fm_sync_<family>.c); weak default: no-op. */
void fm_port_sync_init(void);
void fm_port_sync(int level);

/* ---- common to all Cortex-M cores (port/cortexm) ---- */
void fm_timer_init(void);
uint32_t fm_timer_now(void);    /* free-running 32-bit tick count, wraps */
void fm_timer_sync(void);       /* spin until the next tick edge so measurements start in phase */
uint32_t fm_timer_kind(void);  /* FM_TIMER_KIND_SYSTICK or FM_TIMER_KIND_DWT */
uint32_t fm_timer_hz(void);
void fm_system_reset(void);

#ifdef __cplusplus
}
#endif
#endif
