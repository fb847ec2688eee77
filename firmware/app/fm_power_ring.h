/*
 * Power samples during RUN (firmware built with -DFM_POWER_INA=219|226, docs/power.md). During the measured
 * inferences of a RUN the sensor is read between inferences (and between layers with RUN flag
 * FM_RUN_FLAG_POWER_LAYERS), never faster than FM_POWER_INTERVAL_US apart, into a fixed ring of
 * FM_POWER_RECORDS: when it is full the oldest record is overwritten and counted as dropped. READ_POWER pages
 * the records out, oldest first. Without FM_POWER_INA every call below is an empty inline and the ring takes
 * no RAM.
 */
#ifndef FM_POWER_RING_H
#define FM_POWER_RING_H

#include <stdint.h>

typedef struct {
    uint32_t t; /* fm_timer_now() when the sample was taken */
    uint16_t bus;
    int16_t shunt;
    int16_t current;
    uint16_t power;
} fm_power_rec_t;

#if defined(FM_POWER_INA)

#define FM_POWER_RING_BUILT 1

void fm_power_ring_init(void);      /* brings the sensor up; a missing one is reported by HELLO, not fatal */
void fm_power_ring_start_run(void); /* empties the ring and the counters */
/* Around inference k of a RUN (measured: k >= warmup). `bracket` forces a sample whatever the interval, so
   the first and the last measured inference are always covered. */
void fm_power_ring_before(int measured, int bracket, int layers);
void fm_power_ring_after(int measured, uint32_t index, uint32_t start_ticks, int bracket);
void fm_power_ring_poll_layer(void);

/* Read inline by the op listener, so a RUN without layer sampling makes no call per op. */
extern volatile uint8_t fm_power_ring_layers;
static inline void fm_power_ring_op(int phase)
{
    /* after the op's time is taken and before the next op starts its own: per-layer timings stay clean, the
       inference total includes the I2C reads (docs/power.md) */
    if (fm_power_ring_layers && phase == 1) {
        fm_power_ring_poll_layer();
    }
}

uint32_t fm_power_ring_count(void);   /* records held */
uint32_t fm_power_ring_dropped(void); /* oldest records overwritten because the ring was full */
uint32_t fm_power_ring_errors(void);  /* sensor reads that failed */
/* Record i, 0 the oldest held; i < fm_power_ring_count(). */
const fm_power_rec_t *fm_power_ring_record(uint32_t i);
/* Timer value at the start of measured inference i of the last RUN; i < the RUN's run count. */
uint32_t fm_power_ring_start(uint32_t i);

#else

#define FM_POWER_RING_BUILT 0

static inline void fm_power_ring_init(void) {}
static inline void fm_power_ring_start_run(void) {}
static inline void fm_power_ring_before(int measured, int bracket, int layers)
{
    (void)measured;
    (void)bracket;
    (void)layers;
}
static inline void fm_power_ring_after(int measured, uint32_t index, uint32_t start_ticks, int bracket)
{
    (void)measured;
    (void)index;
    (void)start_ticks;
    (void)bracket;
}
static inline void fm_power_ring_op(int phase) { (void)phase; }
static inline uint32_t fm_power_ring_count(void) { return 0; }
static inline uint32_t fm_power_ring_dropped(void) { return 0; }
static inline uint32_t fm_power_ring_errors(void) { return 0; }
static inline const fm_power_rec_t *fm_power_ring_record(uint32_t i)
{
    static const fm_power_rec_t none;
    (void)i;
    return &none;
}
static inline uint32_t fm_power_ring_start(uint32_t i)
{
    (void)i;
    return 0;
}

#endif
#endif
