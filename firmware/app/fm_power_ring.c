#include "fm_power_ring.h"

#if defined(FM_POWER_INA)
#include "fm_port.h"
#include "fm_protocol_ids.h"

#ifndef FM_POWER_RECORDS
#define FM_POWER_RECORDS 512u
#endif
#ifndef FM_POWER_INTERVAL_US
#define FM_POWER_INTERVAL_US 1000u /* about one INA conversion: reading faster gives the same value again */
#endif
#if FM_POWER_RECORDS < 2 || FM_POWER_RECORDS > 65535
#error "FM_POWER_RECORDS must be 2..65535"
#endif

static fm_power_rec_t ring[FM_POWER_RECORDS];
static uint32_t head;    /* next slot to write */
static uint32_t count;   /* records held, <= FM_POWER_RECORDS */
static uint32_t dropped;
static uint32_t errors;
static uint32_t interval_ticks;
static uint32_t last_t;
static uint8_t have_last;
static volatile uint8_t sampling; /* only during measured inferences of a RUN */
volatile uint8_t fm_power_ring_layers;
static uint32_t run_start[FM_MAX_RUNS];

void fm_power_ring_start_run(void)
{
    head = 0;
    count = 0;
    dropped = 0;
    errors = 0;
    have_last = 0;
}

void fm_power_ring_init(void)
{
    fm_power_ring_start_run();
    sampling = 0;
    fm_power_ring_layers = 0;
    (void)fm_port_power_init();
    interval_ticks = (uint32_t)(((uint64_t)FM_POWER_INTERVAL_US * fm_timer_hz()) / 1000000u);
}

/* One sample now unless the last one is younger than the interval (force: always). */
static void poll(int force)
{
    if (!sampling) {
        return;
    }
    uint32_t now = fm_timer_now();
    if (!force && have_last && now - last_t < interval_ticks) {
        return;
    }
    fm_power_sample_t s;
    last_t = now;
    have_last = 1;
    if (fm_port_power_sample(&s) != 0) {
        errors++;
        return;
    }
    fm_power_rec_t *r = &ring[head];
    r->t = now;
    r->bus = s.raw_bus;
    r->shunt = s.raw_shunt;
    r->current = s.raw_current;
    r->power = s.raw_power;
    head = head + 1u == FM_POWER_RECORDS ? 0u : head + 1u;
    if (count < FM_POWER_RECORDS) {
        count++;
    } else {
        dropped++;
    }
}

void fm_power_ring_before(int measured, int bracket, int layers)
{
    sampling = (uint8_t)(measured != 0);
    poll(bracket);
    fm_power_ring_layers = (uint8_t)(layers != 0);
}

void fm_power_ring_after(int measured, uint32_t index, uint32_t start_ticks, int bracket)
{
    fm_power_ring_layers = 0;
    if (measured && index < FM_MAX_RUNS) {
        run_start[index] = start_ticks;
        poll(bracket);
    }
    sampling = 0;
}

void fm_power_ring_poll_layer(void) { poll(0); }

uint32_t fm_power_ring_count(void) { return count; }
uint32_t fm_power_ring_dropped(void) { return dropped; }
uint32_t fm_power_ring_errors(void) { return errors; }

const fm_power_rec_t *fm_power_ring_record(uint32_t i)
{
    uint32_t oldest = count < FM_POWER_RECORDS ? 0u : head;
    uint32_t slot = oldest + (i < FM_POWER_RECORDS ? i : 0u); /* < 2 * FM_POWER_RECORDS: no overflow */
    if (slot >= FM_POWER_RECORDS) {
        slot -= FM_POWER_RECORDS;
    }
    return &ring[slot];
}

uint32_t fm_power_ring_start(uint32_t i) { return run_start[i < FM_MAX_RUNS ? i : 0u]; }

#else
typedef int fm_power_ring_unused_t; /* ISO C: a translation unit must not be empty */
#endif
