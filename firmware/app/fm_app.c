/*
 * Command dispatch for the benchmark firmware. Every field from the host is checked before use: payload
 * lengths are exact, indices and offsets are range-checked without overflow, and state errors (RUN before
 * the inputs are loaded, READ_OUTPUT before a run) get an error frame instead of undefined behaviour.
 */
#include "fm_app.h"

#include "fm_frame.h"
#include "fm_port.h"
#include "model_glue.h"

/* The energy-monitor sync line (docs/power.md): a real pin with -DFM_SYNC_PIN, nothing otherwise. */
#if defined(FM_SYNC_PIN)
#define SYNC_LINE(level) fm_port_sync(level)
#else
#define SYNC_LINE(level) ((void)0)
#endif

#define FM_APP_NAME "formicary"

#ifndef FM_MAX_WARMUP
#define FM_MAX_WARMUP 1000000u
#endif

static fm_frame_rx_t rx;
static uint8_t tx_raw[FM_MAX_RAW];
static uint8_t resp[FM_MAX_PAYLOAD];
static uint16_t tx_counter;

static uint32_t input_loaded[FM_GLUE_MAX_TENSORS]; /* contiguous bytes loaded from offset 0 */
static uint8_t outputs_valid;                      /* a run finished since the inputs last changed */
static uint32_t run_ticks[FM_MAX_RUNS];
static uint32_t run_count;
static uint8_t layers_valid;

/* RUN is the one command that is not idempotent: a retry with the same seq gets the cached answer. */
static uint8_t last_run_valid;
static uint8_t last_run_seq;
static uint8_t last_run_args[9];
static uint8_t last_run_resp[16];
static uint16_t last_run_resp_len;

static volatile uint8_t profiling;
static uint32_t op_start;

/* ---- power samples (builds with -DFM_POWER_INA=219|226 only) -------------------------------------
 * During the measured part of a RUN the app reads the sensor between inferences (and between layers with
 * RUN flag bit 1), never faster than FM_POWER_INTERVAL_US apart, into a fixed ring of FM_POWER_RECORDS: when
 * it is full the oldest record is overwritten and counted in power_dropped. READ_POWER pages them out. */
#if defined(FM_POWER_INA)
#define FM_RUN_FLAGS_KNOWN (FM_RUN_FLAG_PROFILE | FM_RUN_FLAG_POWER_LAYERS)
#ifndef FM_POWER_RECORDS
#define FM_POWER_RECORDS 512u
#endif
#ifndef FM_POWER_INTERVAL_US
#define FM_POWER_INTERVAL_US 1000u /* about one INA conversion: reading faster gives the same value again */
#endif
#if FM_POWER_RECORDS < 2 || FM_POWER_RECORDS > 65535
#error "FM_POWER_RECORDS must be 2..65535"
#endif
typedef struct {
    uint32_t t;
    uint16_t bus;
    int16_t shunt;
    int16_t current;
    uint16_t power;
} power_rec_t;
static power_rec_t power_ring[FM_POWER_RECORDS];
static uint32_t power_head;    /* next slot to write */
static uint32_t power_count;   /* records held, <= FM_POWER_RECORDS */
static uint32_t power_dropped; /* oldest records overwritten because the ring was full */
static uint32_t power_errors;  /* sensor reads that failed (bus error, timeout) */
static uint32_t power_interval_ticks;
static uint32_t power_last_t;
static uint8_t power_have_last;
static volatile uint8_t power_sampling; /* only during measured inferences of a RUN */
static volatile uint8_t power_layers;
static uint32_t run_start[FM_MAX_RUNS]; /* timer value when each measured inference started */

static void power_reset(void)
{
    power_head = 0;
    power_count = 0;
    power_dropped = 0;
    power_errors = 0;
    power_have_last = 0;
}

/* One sample now unless the last one is younger than the interval (force: always, to bracket the run). */
static void power_poll(int force)
{
    if (!power_sampling) {
        return;
    }
    uint32_t now = fm_timer_now();
    if (!force && power_have_last && now - power_last_t < power_interval_ticks) {
        return;
    }
    fm_power_sample_t s;
    power_last_t = now;
    power_have_last = 1;
    if (fm_port_power_sample(&s) != 0) {
        power_errors++;
        return;
    }
    power_rec_t *r = &power_ring[power_head];
    r->t = now;
    r->bus = s.raw_bus;
    r->shunt = s.raw_shunt;
    r->current = s.raw_current;
    r->power = s.raw_power;
    power_head = power_head + 1u == FM_POWER_RECORDS ? 0u : power_head + 1u;
    if (power_count < FM_POWER_RECORDS) {
        power_count++;
    } else {
        power_dropped++;
    }
}
#else
#define FM_RUN_FLAGS_KNOWN FM_RUN_FLAG_PROFILE
#endif

/* ---- little-endian helpers and a bounded writer ------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    uint8_t overflow;
} writer_t;

static void w_bytes(writer_t *w, const void *src, size_t n)
{
    if (w->overflow || n > w->cap - w->n) {
        w->overflow = 1;
        return;
    }
    const uint8_t *s = (const uint8_t *)src;
    for (size_t i = 0; i < n; i++) {
        w->p[w->n + i] = s[i];
    }
    w->n += n;
}
static void w_u8(writer_t *w, uint32_t v)
{
    uint8_t b = (uint8_t)v;
    w_bytes(w, &b, 1);
}
static void w_u16(writer_t *w, uint32_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    w_bytes(w, b, 2);
}
static void w_u32(writer_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    w_bytes(w, b, 4);
}
static void w_f32(writer_t *w, float f)
{
    union {
        float f;
        uint32_t u;
    } c;
    c.f = f;
    w_u32(w, c.u);
}
/* Strings: u8 length then bytes, truncated to `max` characters. */
static void w_str(writer_t *w, const char *s, size_t max)
{
    size_t n = 0;
    while (s[n] && n < max && n < 255u) {
        n++;
    }
    w_u8(w, (uint32_t)n);
    w_bytes(w, s, n);
}

static uint16_t r16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t r32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ---- sending ------------------------------------------------------------------------------------- */

static void put_uart(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    fm_port_uart_write(data, n);
}

static void send(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len)
{
    size_t n = fm_frame_build(tx_raw, sizeof tx_raw, type, seq, tx_counter, payload, len);
    if (n == 0) {
        return; /* cannot happen: every payload is built with a writer bounded by FM_MAX_PAYLOAD */
    }
    tx_counter++;
    fm_cobs_emit(tx_raw, n, put_uart, 0);
}

static void send_error(uint8_t seq, uint8_t req_type, uint8_t code, uint32_t detail, const char *msg)
{
    uint8_t buf[80];
    writer_t w = {buf, 0, sizeof buf, 0};
    w_u8(&w, code);
    w_u8(&w, req_type);
    w_u32(&w, detail);
    w_str(&w, msg, 64);
    send(FM_MSG_ERROR, seq, buf, w.n);
}

static void send_writer(uint8_t type, uint8_t seq, const writer_t *w)
{
    if (w->overflow) {
        send_error(seq, (uint8_t)(type & 0x7Fu), FM_E_INTERNAL, (uint32_t)w->cap, "response too large");
        return;
    }
    send(type, seq, w->p, w->n);
}

/* ---- commands ------------------------------------------------------------------------------------ */

static void put_tensor(writer_t *w, const fm_glue_tensor_t *t)
{
    w_u8(w, t->dtype);
    w_u8(w, t->ndim);
    for (int d = 0; d < t->ndim; d++) {
        w_u32(w, (uint32_t)t->dims[d]);
    }
    w_f32(w, t->scale);
    w_u32(w, (uint32_t)t->zero_point);
    w_u32(w, t->bytes);
}

/* HELLO capability bits: 0 = a power sensor answered at boot, 1 = this firmware was built for one. */
static uint32_t capabilities(void)
{
#if defined(FM_POWER_INA)
    fm_power_info_t pi;
    fm_port_power_info(&pi);
    return (pi.present ? 1u : 0u) | 2u;
#else
    return 0u;
#endif
}

static void cmd_hello(const fm_frame_t *f)
{
    if (f->len != 0) {
        send_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "HELLO takes no payload");
        return;
    }
    writer_t w = {resp, 0, sizeof resp, 0};
    int n_in = fm_glue_num_inputs(), n_out = fm_glue_num_outputs();
    w_u8(&w, FM_PROTO_VERSION);
    w_u8(&w, (uint32_t)n_in);
    w_u8(&w, (uint32_t)n_out);
    w_u8(&w, fm_timer_kind());
    w_u32(&w, fm_timer_hz());
    w_u32(&w, FM_CLOCK_HZ);
    w_u32(&w, fm_glue_arena_bytes());
    w_u16(&w, fm_glue_num_ops());
    w_u16(&w, FM_MAX_PAYLOAD);
    w_u16(&w, FM_MAX_RUNS);
#if defined(FM_VIRTUAL)
    w_u8(&w, 1);
#else
    w_u8(&w, 0);
#endif
    w_u8(&w, capabilities());
    w_str(&w, FM_BOARD_NAME, 32);
    w_str(&w, fm_glue_runtime_version(), 32);
    w_str(&w, fm_glue_model_hash(), 64);
    fm_glue_tensor_t t;
    for (int i = 0; i < n_in; i++) {
        if (fm_glue_input(i, &t) == 0) {
            put_tensor(&w, &t);
        }
    }
    for (int i = 0; i < n_out; i++) {
        if (fm_glue_output(i, &t) == 0) {
            put_tensor(&w, &t);
        }
    }
    send_writer(FM_MSG_HELLO | FM_MSG_RESPONSE, f->seq, &w);
}

static void cmd_load_input(const fm_frame_t *f)
{
    if (f->len < 5) {
        send_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "LOAD_INPUT needs index u8, offset u32, data");
        return;
    }
    uint32_t index = f->payload[0];
    uint32_t offset = r32(f->payload + 1);
    uint32_t n = (uint32_t)f->len - 5u;
    fm_glue_tensor_t t;
    if (fm_glue_input((int)index, &t) != 0) {
        send_error(f->seq, f->type, FM_E_RANGE, index, "no such input");
        return;
    }
    if (n > t.bytes || offset > t.bytes - n) {
        send_error(f->seq, f->type, FM_E_RANGE, offset, "chunk outside the input tensor");
        return;
    }
    /* offset 0 starts a new input; any other chunk must touch what is already loaded (no gaps). */
    uint32_t loaded = offset == 0 ? 0 : input_loaded[index];
    if (offset > loaded) {
        send_error(f->seq, f->type, FM_E_SEQUENCE, loaded, "chunk leaves a gap");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        t.data[offset + i] = f->payload[5 + i];
    }
    if (offset + n > loaded) {
        loaded = offset + n;
    }
    input_loaded[index] = loaded;
    outputs_valid = 0;
    layers_valid = 0;
    last_run_valid = 0;
    writer_t w = {resp, 0, sizeof resp, 0};
    w_u8(&w, index);
    w_u32(&w, loaded);
    w_u32(&w, t.bytes);
    send_writer(FM_MSG_LOAD_INPUT | FM_MSG_RESPONSE, f->seq, &w);
}

static int same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

static void cmd_run(const fm_frame_t *f)
{
    if (f->len != 9) {
        send_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "RUN needs runs u32, warmup u32, flags u8");
        return;
    }
    uint32_t runs = r32(f->payload), warmup = r32(f->payload + 4);
    uint8_t flags = f->payload[8];
    if (last_run_valid && f->seq == last_run_seq && same_bytes(f->payload, last_run_args, 9)) {
        /* The host did not see our answer and asked again: resend it, do not run twice. */
        send(FM_MSG_RUN | FM_MSG_RESPONSE, f->seq, last_run_resp, last_run_resp_len);
        return;
    }
    if (runs == 0 || runs > FM_MAX_RUNS || warmup > FM_MAX_WARMUP) {
        send_error(f->seq, f->type, FM_E_RANGE, runs, "runs must be 1..256, warmup <= FM_MAX_WARMUP");
        return;
    }
    if (flags & ~FM_RUN_FLAGS_KNOWN) {
        send_error(f->seq, f->type, FM_E_BAD_FLAGS, flags, "unknown RUN flags");
        return;
    }
    int n_in = fm_glue_num_inputs();
    for (int i = 0; i < n_in && i < FM_GLUE_MAX_TENSORS; i++) {
        fm_glue_tensor_t t;
        if (fm_glue_input(i, &t) == 0 && input_loaded[i] != t.bytes) {
            send_error(f->seq, f->type, FM_E_STATE, (uint32_t)i, "input not fully loaded");
            return;
        }
    }
    last_run_valid = 0;
    outputs_valid = 0;
    layers_valid = 0;
    run_count = 0;
    uint32_t total = runs + warmup;
    {
        /* Accepted: say so at once, so the host can tell a lost RUN from a long inference. */
        uint8_t buf[10];
        writer_t w = {buf, 0, sizeof buf, 0};
        w_u8(&w, FM_PROGRESS_ACCEPTED);
        w_u32(&w, total);
        w_u32(&w, 0);
        send(FM_MSG_RUN_PROGRESS, f->seq, buf, w.n);
    }
#if defined(FM_POWER_INA)
    power_reset();
#endif
    SYNC_LINE(1);
    for (uint32_t k = 0; k < total; k++) {
        fm_glue_prepare();
#if defined(FM_POWER_INA)
        /* Sample only around measured inferences; the first one is bracketed whatever the interval. */
        power_sampling = k >= warmup;
        power_poll(k == warmup);
        power_layers = (uint8_t)((flags & FM_RUN_FLAG_POWER_LAYERS) != 0u);
#endif
        profiling = (uint8_t)(flags & FM_RUN_FLAG_PROFILE);
        fm_timer_sync();
        uint32_t t0 = fm_timer_now();
        int status = fm_glue_invoke();
        uint32_t t1 = fm_timer_now();
        profiling = 0;
#if defined(FM_POWER_INA)
        power_layers = 0;
        if (k >= warmup) {
            run_start[run_count] = t0;
            power_poll(k + 1u == total); /* the last inference is bracketed too */
        }
        power_sampling = 0;
#endif
        if (status != 0) {
            SYNC_LINE(0);
            send_error(f->seq, f->type, FM_E_INVOKE, (uint32_t)status, "model invoke failed");
            return;
        }
        uint32_t ticks = t1 - t0;
        uint8_t measured = k >= warmup;
        if (measured) {
            run_ticks[run_count++] = ticks;
        }
        uint8_t buf[10];
        writer_t w = {buf, 0, sizeof buf, 0};
        w_u8(&w, measured);
        w_u32(&w, measured ? k - warmup : k);
        w_u32(&w, ticks);
        send(FM_MSG_RUN_PROGRESS, f->seq, buf, w.n);
    }
    SYNC_LINE(0);
    outputs_valid = 1;
    layers_valid = (uint8_t)(flags & FM_RUN_FLAG_PROFILE);
    writer_t w = {last_run_resp, 0, sizeof last_run_resp, 0};
    w_u32(&w, runs);
    w_u32(&w, warmup);
    w_u8(&w, flags);
    w_u32(&w, fm_timer_kind());
    last_run_resp_len = (uint16_t)w.n;
    for (int i = 0; i < 9; i++) {
        last_run_args[i] = f->payload[i];
    }
    last_run_seq = f->seq;
    last_run_valid = 1;
    send(FM_MSG_RUN | FM_MSG_RESPONSE, f->seq, last_run_resp, last_run_resp_len);
}

static void cmd_read_timings(const fm_frame_t *f)
{
    if (f->len != 6) {
        send_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "READ_TIMINGS needs first u32, count u16");
        return;
    }
    uint32_t first = r32(f->payload), count = r16(f->payload + 4);
    if (!outputs_valid) {
        send_error(f->seq, f->type, FM_E_STATE, 0, "no completed RUN");
        return;
    }
    if (first > run_count || count > run_count - first) {
        send_error(f->seq, f->type, FM_E_RANGE, run_count, "timings out of range");
        return;
    }
    writer_t w = {resp, 0, sizeof resp, 0};
    uint32_t fit = (uint32_t)((sizeof resp - 6u) / 4u);
    if (count > fit) {
        count = fit;
    }
    w_u32(&w, first);
    w_u16(&w, count);
    for (uint32_t i = 0; i < count; i++) {
        w_u32(&w, run_ticks[first + i]);
    }
    send_writer(FM_MSG_READ_TIMINGS | FM_MSG_RESPONSE, f->seq, &w);
}

static void cmd_read_output(const fm_frame_t *f)
{
    if (f->len != 7) {
        send_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "READ_OUTPUT needs index u8, offset u32, length u16");
        return;
    }
    uint32_t index = f->payload[0], offset = r32(f->payload + 1), length = r16(f->payload + 5);
    fm_glue_tensor_t t;
    if (fm_glue_output((int)index, &t) != 0) {
        send_error(f->seq, f->type, FM_E_RANGE, index, "no such output");
        return;
    }
    if (!outputs_valid) {
        send_error(f->seq, f->type, FM_E_STATE, index, "no output: RUN after loading the inputs");
        return;
    }
    if (length > FM_MAX_PAYLOAD - 5u || offset > t.bytes || length > t.bytes - offset) {
        send_error(f->seq, f->type, FM_E_RANGE, offset, "read outside the output tensor");
        return;
    }
    writer_t w = {resp, 0, sizeof resp, 0};
    w_u8(&w, index);
    w_u32(&w, offset);
    w_bytes(&w, t.data + offset, length);
    send_writer(FM_MSG_READ_OUTPUT | FM_MSG_RESPONSE, f->seq, &w);
}

static void cmd_read_layers(const fm_frame_t *f)
{
    if (f->len != 4) {
        send_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "READ_LAYER_TIMINGS needs first u16, count u16");
        return;
    }
    uint32_t first = r16(f->payload), count = r16(f->payload + 2), n_ops = fm_glue_num_ops();
    if (!layers_valid) {
        send_error(f->seq, f->type, FM_E_STATE, 0, "no profiled RUN (set the profile flag)");
        return;
    }
    if (first > n_ops || count > n_ops - first) {
        send_error(f->seq, f->type, FM_E_RANGE, n_ops, "ops out of range");
        return;
    }
    writer_t w = {resp, 0, sizeof resp, 0};
    w_u16(&w, first);
    size_t count_at = w.n;
    w_u16(&w, 0);
    const uint32_t *ticks = fm_glue_op_ticks();
    uint32_t done = 0;
    for (; done < count; done++) {
        const char *name, *op_type;
        uint32_t macs;
        if (fm_glue_op((int)(first + done), &name, &op_type, &macs) != 0) {
            break;
        }
        size_t before = w.n;
        w_u32(&w, ticks[first + done]);
        w_u32(&w, macs);
        w_str(&w, op_type, 24);
        w_str(&w, name, 48);
        if (w.overflow) { /* page full: send what fits, the host asks for the rest */
            w.overflow = 0;
            w.n = before;
            break;
        }
    }
    resp[count_at] = (uint8_t)done;
    resp[count_at + 1] = (uint8_t)(done >> 8);
    send_writer(FM_MSG_READ_LAYER_TIMINGS | FM_MSG_RESPONSE, f->seq, &w);
}

/*
 * READ_POWER: kind u8 (0 samples, 1 start ticks of the measured inferences), first u32, count u16.
 * Answer: kind u8, first u32, count u16, total u32, dropped u32, errors u32, chip u16, current_lsb_pa u32,
 * then per item: kind 0 -> ticks u32, bus u16, shunt i16, current i16, power u16; kind 1 -> ticks u32.
 */
static void cmd_read_power(const fm_frame_t *f)
{
    if (f->len != 7) {
        send_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "READ_POWER needs kind u8, first u32, count u16");
        return;
    }
    uint32_t kind = f->payload[0], first = r32(f->payload + 1), count = r16(f->payload + 5);
    if (kind > 1u) {
        send_error(f->seq, f->type, FM_E_RANGE, kind, "READ_POWER kind must be 0 (samples) or 1 (starts)");
        return;
    }
#if !defined(FM_POWER_INA)
    (void)first;
    (void)count;
    send_error(f->seq, f->type, FM_E_STATE, 0, "no power sensor in this firmware (build with FM_POWER_INA)");
#else
    fm_power_info_t pi;
    fm_port_power_info(&pi);
    if (!pi.present) {
        send_error(f->seq, f->type, FM_E_STATE, (uint32_t)(uint8_t)pi.init_error,
                   "the power sensor did not answer at boot");
        return;
    }
    if (!outputs_valid) {
        send_error(f->seq, f->type, FM_E_STATE, 0, "no completed RUN");
        return;
    }
    uint32_t total = kind == 0u ? power_count : run_count;
    if (first > total || count > total - first) {
        send_error(f->seq, f->type, FM_E_RANGE, total, "power records out of range");
        return;
    }
    uint32_t item = kind == 0u ? FM_POWER_REC_BYTES : 4u;
    uint32_t fit = (uint32_t)((sizeof resp - FM_POWER_HDR_BYTES) / item);
    if (count > fit) {
        count = fit;
    }
    writer_t w = {resp, 0, sizeof resp, 0};
    w_u8(&w, kind);
    w_u32(&w, first);
    w_u16(&w, count);
    w_u32(&w, total);
    w_u32(&w, power_dropped);
    w_u32(&w, power_errors);
    w_u16(&w, pi.chip);
    w_u32(&w, pi.current_lsb_pa);
    /* index 0 is the oldest record still held */
    uint32_t oldest = power_count < FM_POWER_RECORDS ? 0u : power_head;
    for (uint32_t i = 0; i < count; i++) {
        if (kind == 1u) {
            w_u32(&w, run_start[first + i]);
            continue;
        }
        uint32_t slot = oldest + first + i; /* < 2 * FM_POWER_RECORDS: no overflow */
        if (slot >= FM_POWER_RECORDS) {
            slot -= FM_POWER_RECORDS;
        }
        const power_rec_t *r = &power_ring[slot];
        w_u32(&w, r->t);
        w_u16(&w, r->bus);
        w_u16(&w, (uint16_t)r->shunt);
        w_u16(&w, (uint16_t)r->current);
        w_u16(&w, r->power);
    }
    send_writer(FM_MSG_READ_POWER | FM_MSG_RESPONSE, f->seq, &w);
#endif
}

static void dispatch(const fm_frame_t *f)
{
    switch (f->type) {
    case FM_MSG_HELLO: cmd_hello(f); break;
    case FM_MSG_LOAD_INPUT: cmd_load_input(f); break;
    case FM_MSG_RUN: cmd_run(f); break;
    case FM_MSG_READ_TIMINGS: cmd_read_timings(f); break;
    case FM_MSG_READ_OUTPUT: cmd_read_output(f); break;
    case FM_MSG_READ_LAYER_TIMINGS: cmd_read_layers(f); break;
    case FM_MSG_READ_POWER: cmd_read_power(f); break;
    case FM_MSG_RESET:
        if (f->len != 0) {
            send_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "RESET takes no payload");
            break;
        }
        send(FM_MSG_RESET | FM_MSG_RESPONSE, f->seq, 0, 0);
        fm_system_reset();
        break;
    default: send_error(f->seq, f->type, FM_E_UNKNOWN_COMMAND, f->type, "unknown command"); break;
    }
}

/* ---- entry points -------------------------------------------------------------------------------- */

/* The model glue's op listener: runs inside the timed region, between ops. */
static void on_op(int op_index, int phase)
{
    if (profiling) {
        uint32_t now = fm_timer_now();
        if (phase == 0) {
            op_start = now;
        } else if (op_index >= 0 && op_index < (int)fm_glue_num_ops()) {
            fm_glue_op_ticks()[op_index] = now - op_start;
        }
    }
#if defined(FM_POWER_INA)
    /* After the op's time is taken and before the next op starts its own: per-layer timings stay clean,
       the inference total includes the I2C reads (docs/power.md). */
    if (power_layers && phase == 1) {
        power_poll(0);
    }
#endif
}

void fm_app_init(void)
{
    fm_frame_rx_init(&rx);
    tx_counter = 0;
    for (int i = 0; i < FM_GLUE_MAX_TENSORS; i++) {
        input_loaded[i] = 0;
    }
    outputs_valid = 0;
    layers_valid = 0;
    last_run_valid = 0;
    run_count = 0;
    fm_glue_set_op_listener(on_op);
#if defined(FM_POWER_INA)
    power_reset();
    power_sampling = 0;
    power_layers = 0;
    (void)fm_port_power_init(); /* a missing sensor is reported by HELLO, not fatal */
    power_interval_ticks = (uint32_t)(((uint64_t)FM_POWER_INTERVAL_US * fm_timer_hz()) / 1000000u);
#endif
#if defined(FM_SYNC_PIN)
    fm_port_sync_init();
#endif
}

void fm_app_boot_banner(void)
{
    writer_t w = {resp, 0, sizeof resp, 0};
    w_u8(&w, FM_PROTO_VERSION);
    w_str(&w, FM_APP_NAME, 16);
    w_str(&w, FM_BOARD_NAME, 32);
    w_str(&w, fm_glue_model_hash(), 64);
    send_writer(FM_MSG_BOOT, 0, &w);
}

void fm_app_rx_byte(uint8_t byte)
{
    fm_frame_t f;
    fm_rx_status_t st = fm_frame_rx_push(&rx, byte, &f);
    if (st == FM_RX_FRAME) {
        if (f.type & FM_MSG_RESPONSE) {
            send_error(f.seq, f.type, FM_E_UNKNOWN_COMMAND, f.type, "device-to-host type sent to device");
            return;
        }
        dispatch(&f);
    } else if (st == FM_RX_ERR_VERSION) {
        send_error(f.seq, f.type, (uint8_t)st, f.version, "protocol version mismatch");
    } else if (st >= FM_RX_ERR_FIRST) {
        /* seq is not trustworthy in a damaged frame: report it with seq 0 */
        send_error(0, 0, (uint8_t)st, 0, "bad frame");
    }
}
