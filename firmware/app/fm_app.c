/*
 * Command dispatch for the benchmark firmware. Every field from the host is checked before use: payload
 * lengths are exact, indices and offsets are range-checked without overflow, and state errors (RUN before
 * the inputs are loaded, READ_OUTPUT before a run) get an error frame instead of undefined behaviour.
 */
#include "fm_app.h"

#include "fm_bytes.h"
#include "fm_frame.h"
#include "fm_port.h"
#include "fm_power_ring.h"
#include "fm_profiler.h"
#include "fm_tx.h"
#include "model_glue.h"

#define FM_APP_NAME "formicary"

#ifndef FM_MAX_WARMUP
#define FM_MAX_WARMUP 1000000u
#endif

#if defined(FM_VIRTUAL)
#define FM_APP_VIRTUAL 1u
#else
#define FM_APP_VIRTUAL 0u
#endif

#define FM_RUN_FLAGS_KNOWN (FM_RUN_FLAG_PROFILE | (FM_POWER_RING_BUILT ? FM_RUN_FLAG_POWER_LAYERS : 0u))

static fm_frame_rx_t rx;
static uint8_t resp[FM_MAX_PAYLOAD];

static uint32_t input_loaded[FM_GLUE_MAX_TENSORS]; /* contiguous bytes loaded from offset 0 */
static uint8_t outputs_valid;                      /* a run finished since the inputs last changed */
static uint32_t run_ticks[FM_MAX_RUNS];
static uint32_t run_routes[FM_MAX_RUNS]; /* fm_model_route() after each measured inference */
static uint32_t run_count;
static uint8_t layers_valid;

/* RUN is the one command that is not idempotent: a retry with the same seq gets the cached answer. */
static uint8_t last_run_valid;
static uint8_t last_run_seq;
static uint8_t last_run_args[FM_RUN_ARGS_BYTES];
static uint8_t last_run_resp[FM_RUN_RESP_BYTES];
static uint16_t last_run_resp_len;

/* ---- commands ------------------------------------------------------------------------------------ */

static void put_tensor(fm_writer_t *w, const fm_glue_tensor_t *t)
{
    fm_w_u8(w, t->dtype);
    fm_w_u8(w, t->ndim);
    for (int d = 0; d < t->ndim; d++) {
        fm_w_u32(w, (uint32_t)t->dims[d]);
    }
    fm_w_f32(w, t->scale);
    fm_w_u32(w, (uint32_t)t->zero_point);
    fm_w_u32(w, t->bytes);
}

static uint32_t capabilities(void)
{
    fm_power_info_t pi;
    fm_port_power_info(&pi);
    return (pi.present ? FM_CAP_POWER_PRESENT : 0u) | (FM_POWER_RING_BUILT ? FM_CAP_POWER_BUILT : 0u) |
           FM_CAP_ROUTES;
}

static void cmd_hello(const fm_frame_t *f)
{
    if (f->len != 0) {
        fm_tx_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "HELLO takes no payload");
        return;
    }
    fm_writer_t w = fm_writer(resp, sizeof resp);
    int n_in = fm_glue_num_inputs(), n_out = fm_glue_num_outputs();
    fm_w_u8(&w, FM_PROTO_VERSION);
    fm_w_u8(&w, (uint32_t)n_in);
    fm_w_u8(&w, (uint32_t)n_out);
    fm_w_u8(&w, fm_timer_kind());
    fm_w_u32(&w, fm_timer_hz());
    fm_w_u32(&w, FM_CLOCK_HZ);
    fm_w_u32(&w, fm_glue_arena_bytes());
    fm_w_u16(&w, fm_glue_num_ops());
    fm_w_u16(&w, FM_MAX_PAYLOAD);
    fm_w_u16(&w, FM_MAX_RUNS);
    fm_w_u8(&w, FM_APP_VIRTUAL);
    fm_w_u8(&w, capabilities());
    fm_w_str(&w, FM_BOARD_NAME, 32);
    fm_w_str(&w, fm_glue_runtime_version(), 32);
    fm_w_str(&w, fm_glue_model_hash(), 64);
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
    fm_tx_writer(FM_MSG_HELLO | FM_MSG_RESPONSE, f->seq, &w);
}

static void cmd_load_input(const fm_frame_t *f)
{
    if (f->len < FM_LOAD_INPUT_HDR_BYTES) {
        fm_tx_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "LOAD_INPUT needs index u8, offset u32, data");
        return;
    }
    uint32_t index = f->payload[0];
    uint32_t offset = fm_r32(f->payload + 1);
    uint32_t n = (uint32_t)f->len - FM_LOAD_INPUT_HDR_BYTES;
    fm_glue_tensor_t t;
    if (fm_glue_input((int)index, &t) != 0) {
        fm_tx_error(f->seq, f->type, FM_E_RANGE, index, "no such input");
        return;
    }
    if (n > t.bytes || offset > t.bytes - n) {
        fm_tx_error(f->seq, f->type, FM_E_RANGE, offset, "chunk outside the input tensor");
        return;
    }
    /* offset 0 starts a new input; any other chunk must touch what is already loaded (no gaps). */
    uint32_t loaded = offset == 0 ? 0 : input_loaded[index];
    if (offset > loaded) {
        fm_tx_error(f->seq, f->type, FM_E_SEQUENCE, loaded, "chunk leaves a gap");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        t.data[offset + i] = f->payload[FM_LOAD_INPUT_HDR_BYTES + i];
    }
    if (offset + n > loaded) {
        loaded = offset + n;
    }
    input_loaded[index] = loaded;
    outputs_valid = 0;
    layers_valid = 0;
    last_run_valid = 0;
    fm_writer_t w = fm_writer(resp, sizeof resp);
    fm_w_u8(&w, index);
    fm_w_u32(&w, loaded);
    fm_w_u32(&w, t.bytes);
    fm_tx_writer(FM_MSG_LOAD_INPUT | FM_MSG_RESPONSE, f->seq, &w);
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
    if (f->len != FM_RUN_ARGS_BYTES) {
        fm_tx_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "RUN needs runs u32, warmup u32, flags u8");
        return;
    }
    uint32_t runs = fm_r32(f->payload), warmup = fm_r32(f->payload + 4);
    uint8_t flags = f->payload[8];
    if (last_run_valid && f->seq == last_run_seq && same_bytes(f->payload, last_run_args, FM_RUN_ARGS_BYTES)) {
        /* The host did not see our answer and asked again: resend it, do not run twice. */
        fm_tx_send(FM_MSG_RUN | FM_MSG_RESPONSE, f->seq, last_run_resp, last_run_resp_len);
        return;
    }
    if (runs == 0 || runs > FM_MAX_RUNS || warmup > FM_MAX_WARMUP) {
        fm_tx_error(f->seq, f->type, FM_E_RANGE, runs, "runs must be 1..256, warmup <= FM_MAX_WARMUP");
        return;
    }
    if (flags & ~FM_RUN_FLAGS_KNOWN) {
        fm_tx_error(f->seq, f->type, FM_E_BAD_FLAGS, flags, "unknown RUN flags");
        return;
    }
    int n_in = fm_glue_num_inputs();
    for (int i = 0; i < n_in && i < FM_GLUE_MAX_TENSORS; i++) {
        fm_glue_tensor_t t;
        if (fm_glue_input(i, &t) == 0 && input_loaded[i] != t.bytes) {
            fm_tx_error(f->seq, f->type, FM_E_STATE, (uint32_t)i, "input not fully loaded");
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
        uint8_t buf[FM_PROGRESS_BYTES];
        fm_writer_t w = fm_writer(buf, sizeof buf);
        fm_w_u8(&w, FM_PROGRESS_ACCEPTED);
        fm_w_u32(&w, total);
        fm_w_u32(&w, 0);
        fm_tx_send(FM_MSG_RUN_PROGRESS, f->seq, buf, w.n);
    }
    fm_power_ring_start_run();
    fm_port_sync(1);
    for (uint32_t k = 0; k < total; k++) {
        fm_glue_prepare();
        /* power: sample only around measured inferences; the first and the last are always bracketed */
        fm_power_ring_before(k >= warmup, k == warmup, (flags & FM_RUN_FLAG_POWER_LAYERS) != 0u);
        if (flags & FM_RUN_FLAG_PROFILE) {
            fm_glue_clear_op_ticks(); /* the profile is this inference's: ops its route skipped read 0 */
        }
        fm_profiler_arm((uint8_t)(flags & FM_RUN_FLAG_PROFILE));
        fm_timer_sync();
        uint32_t t0 = fm_timer_now();
        int status = fm_glue_invoke();
        uint32_t t1 = fm_timer_now();
        fm_profiler_arm(0);
        fm_power_ring_after(k >= warmup, run_count, t0, k + 1u == total);
        if (status != 0) {
            fm_port_sync(0);
            fm_tx_error(f->seq, f->type, FM_E_INVOKE, (uint32_t)status, "model invoke failed");
            return;
        }
        uint32_t ticks = t1 - t0;
        uint32_t route = fm_glue_route(); /* read after the timed region: costs the measurement nothing */
        uint8_t measured = k >= warmup;
        if (measured) {
            run_routes[run_count] = route;
            run_ticks[run_count++] = ticks;
        }
        uint8_t buf[FM_PROGRESS_ROUTE_BYTES];
        fm_writer_t w = fm_writer(buf, sizeof buf);
        fm_w_u8(&w, measured ? FM_PROGRESS_MEASURED : FM_PROGRESS_WARMUP);
        fm_w_u32(&w, measured ? k - warmup : k);
        fm_w_u32(&w, ticks);
        fm_w_u32(&w, route);
        fm_tx_send(FM_MSG_RUN_PROGRESS, f->seq, buf, w.n);
    }
    fm_port_sync(0);
    outputs_valid = 1;
    layers_valid = (uint8_t)(flags & FM_RUN_FLAG_PROFILE);
    fm_writer_t w = fm_writer(last_run_resp, sizeof last_run_resp);
    fm_w_u32(&w, runs);
    fm_w_u32(&w, warmup);
    fm_w_u8(&w, flags);
    fm_w_u32(&w, fm_timer_kind());
    last_run_resp_len = (uint16_t)w.n;
    for (uint32_t i = 0; i < FM_RUN_ARGS_BYTES; i++) {
        last_run_args[i] = f->payload[i];
    }
    last_run_seq = f->seq;
    last_run_valid = 1;
    fm_tx_send(FM_MSG_RUN | FM_MSG_RESPONSE, f->seq, last_run_resp, last_run_resp_len);
}

/* A page of one u32 per measured inference of the last RUN (READ_TIMINGS: ticks, READ_ROUTES: routes): request
 * first u32, count u16; answer first, count and as many values as fit in one frame. Both requests are 6 bytes. */
_Static_assert(FM_READ_TIMINGS_BYTES == FM_READ_ROUTES_BYTES, "one page layout for timings and routes");

static void send_run_page(const fm_frame_t *f, const uint32_t *values, uint8_t response, const char *bad_length,
                          const char *out_of_range)
{
    if (f->len != FM_READ_TIMINGS_BYTES) {
        fm_tx_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, bad_length);
        return;
    }
    uint32_t first = fm_r32(f->payload), count = fm_r16(f->payload + 4);
    if (!outputs_valid) {
        fm_tx_error(f->seq, f->type, FM_E_STATE, 0, "no completed RUN");
        return;
    }
    if (first > run_count || count > run_count - first) {
        fm_tx_error(f->seq, f->type, FM_E_RANGE, run_count, out_of_range);
        return;
    }
    fm_writer_t w = fm_writer(resp, sizeof resp);
    uint32_t fit = (uint32_t)((sizeof resp - FM_READ_TIMINGS_BYTES) / 4u);
    if (count > fit) {
        count = fit;
    }
    fm_w_u32(&w, first);
    fm_w_u16(&w, count);
    for (uint32_t i = 0; i < count; i++) {
        fm_w_u32(&w, values[first + i]);
    }
    fm_tx_writer(response, f->seq, &w);
}

static void cmd_read_timings(const fm_frame_t *f)
{
    send_run_page(f, run_ticks, FM_MSG_READ_TIMINGS | FM_MSG_RESPONSE, "READ_TIMINGS needs first u32, count u16",
                  "timings out of range");
}

/* READ_ROUTES: like READ_TIMINGS, the route (fm_model_route() mask) of each measured inference of the last RUN. */
static void cmd_read_routes(const fm_frame_t *f)
{
    send_run_page(f, run_routes, FM_MSG_READ_ROUTES | FM_MSG_RESPONSE, "READ_ROUTES needs first u32, count u16",
                  "routes out of range");
}

static void cmd_read_output(const fm_frame_t *f)
{
    if (f->len != FM_READ_OUTPUT_BYTES) {
        fm_tx_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "READ_OUTPUT needs index u8, offset u32, length u16");
        return;
    }
    uint32_t index = f->payload[0], offset = fm_r32(f->payload + 1), length = fm_r16(f->payload + 5);
    fm_glue_tensor_t t;
    if (fm_glue_output((int)index, &t) != 0) {
        fm_tx_error(f->seq, f->type, FM_E_RANGE, index, "no such output");
        return;
    }
    if (!outputs_valid) {
        fm_tx_error(f->seq, f->type, FM_E_STATE, index, "no output: RUN after loading the inputs");
        return;
    }
    if (length > FM_MAX_PAYLOAD - FM_READ_OUTPUT_RESP_HDR_BYTES || offset > t.bytes || length > t.bytes - offset) {
        fm_tx_error(f->seq, f->type, FM_E_RANGE, offset, "read outside the output tensor");
        return;
    }
    fm_writer_t w = fm_writer(resp, sizeof resp);
    fm_w_u8(&w, index);
    fm_w_u32(&w, offset);
    fm_w_bytes(&w, t.data + offset, length);
    fm_tx_writer(FM_MSG_READ_OUTPUT | FM_MSG_RESPONSE, f->seq, &w);
}

static void cmd_read_layers(const fm_frame_t *f)
{
    if (f->len != FM_READ_LAYERS_BYTES) {
        fm_tx_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "READ_LAYER_TIMINGS needs first u16, count u16");
        return;
    }
    uint32_t first = fm_r16(f->payload), count = fm_r16(f->payload + 2), n_ops = fm_glue_num_ops();
    if (!layers_valid) {
        fm_tx_error(f->seq, f->type, FM_E_STATE, 0, "no profiled RUN (set the profile flag)");
        return;
    }
    if (first > n_ops || count > n_ops - first) {
        fm_tx_error(f->seq, f->type, FM_E_RANGE, n_ops, "ops out of range");
        return;
    }
    fm_writer_t w = fm_writer(resp, sizeof resp);
    fm_w_u16(&w, first);
    size_t count_at = w.n;
    fm_w_u16(&w, 0);
    const uint32_t *ticks = fm_glue_op_ticks();
    uint32_t done = 0;
    for (; done < count; done++) {
        const char *name, *op_type;
        uint32_t macs;
        if (fm_glue_op((int)(first + done), &name, &op_type, &macs) != 0) {
            break;
        }
        size_t before = w.n;
        fm_w_u32(&w, ticks[first + done]);
        fm_w_u32(&w, macs);
        fm_w_str(&w, op_type, 24);
        fm_w_str(&w, name, 48);
        if (w.overflow) { /* page full: send what fits, the host asks for the rest */
            w.overflow = 0;
            w.n = before;
            break;
        }
    }
    resp[count_at] = (uint8_t)done;
    resp[count_at + 1] = (uint8_t)(done >> 8);
    fm_tx_writer(FM_MSG_READ_LAYER_TIMINGS | FM_MSG_RESPONSE, f->seq, &w);
}

/* READ_POWER: item layouts FM_POWER_REC_LAYOUT (samples) and FM_POWER_START_LAYOUT (inference starts). */
static void cmd_read_power(const fm_frame_t *f)
{
    if (f->len != FM_READ_POWER_BYTES) {
        fm_tx_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "READ_POWER needs kind u8, first u32, count u16");
        return;
    }
    uint32_t kind = f->payload[0], first = fm_r32(f->payload + 1), count = fm_r16(f->payload + 5);
    if (kind != FM_POWER_KIND_SAMPLES && kind != FM_POWER_KIND_STARTS) {
        fm_tx_error(f->seq, f->type, FM_E_RANGE, kind, "READ_POWER kind must be 0 (samples) or 1 (starts)");
        return;
    }
    if (!FM_POWER_RING_BUILT) {
        fm_tx_error(f->seq, f->type, FM_E_STATE, 0, "no power sensor in this firmware (build with FM_POWER_INA)");
        return;
    }
    fm_power_info_t pi;
    fm_port_power_info(&pi);
    if (!pi.present) {
        fm_tx_error(f->seq, f->type, FM_E_STATE, (uint32_t)(uint8_t)pi.init_error,
                    "the power sensor did not answer at boot");
        return;
    }
    if (!outputs_valid) {
        fm_tx_error(f->seq, f->type, FM_E_STATE, 0, "no completed RUN");
        return;
    }
    uint32_t total = kind == FM_POWER_KIND_SAMPLES ? fm_power_ring_count() : run_count;
    if (first > total || count > total - first) {
        fm_tx_error(f->seq, f->type, FM_E_RANGE, total, "power records out of range");
        return;
    }
    uint32_t item = kind == FM_POWER_KIND_SAMPLES ? FM_POWER_REC_BYTES : FM_POWER_START_BYTES;
    uint32_t fit = (uint32_t)((sizeof resp - FM_POWER_HDR_BYTES) / item);
    if (count > fit) {
        count = fit;
    }
    fm_writer_t w = fm_writer(resp, sizeof resp);
    fm_w_u8(&w, kind);
    fm_w_u32(&w, first);
    fm_w_u16(&w, count);
    fm_w_u32(&w, total);
    fm_w_u32(&w, fm_power_ring_dropped());
    fm_w_u32(&w, fm_power_ring_errors());
    fm_w_u16(&w, pi.chip);
    fm_w_u32(&w, pi.current_lsb_pa);
    for (uint32_t i = 0; i < count; i++) {
        if (kind == FM_POWER_KIND_STARTS) {
            fm_w_u32(&w, fm_power_ring_start(first + i));
            continue;
        }
        const fm_power_rec_t *r = fm_power_ring_record(first + i);
        fm_w_u32(&w, r->t);
        fm_w_u16(&w, r->bus);
        fm_w_u16(&w, (uint16_t)r->shunt);
        fm_w_u16(&w, (uint16_t)r->current);
        fm_w_u16(&w, r->power);
    }
    fm_tx_writer(FM_MSG_READ_POWER | FM_MSG_RESPONSE, f->seq, &w);
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
    case FM_MSG_READ_ROUTES: cmd_read_routes(f); break;
    case FM_MSG_RESET:
        if (f->len != 0) {
            fm_tx_error(f->seq, f->type, FM_E_BAD_LENGTH, f->len, "RESET takes no payload");
            break;
        }
        fm_tx_send(FM_MSG_RESET | FM_MSG_RESPONSE, f->seq, 0, 0);
        fm_system_reset();
        break;
    default: fm_tx_error(f->seq, f->type, FM_E_UNKNOWN_COMMAND, f->type, "unknown command"); break;
    }
}

/* ---- entry points -------------------------------------------------------------------------------- */

/* Runs inside the timed region, between ops: firmware without a power sensor registers the profiler alone,
   which saves a call per op. */
static void on_op(int op_index, int phase)
{
    fm_profiler_op(op_index, phase);
    fm_power_ring_op(phase);
}

void fm_app_init(void)
{
    fm_frame_rx_init(&rx);
    fm_tx_init();
    for (int i = 0; i < FM_GLUE_MAX_TENSORS; i++) {
        input_loaded[i] = 0;
    }
    outputs_valid = 0;
    layers_valid = 0;
    last_run_valid = 0;
    run_count = 0;
    fm_profiler_arm(0);
    fm_glue_set_op_listener(FM_POWER_RING_BUILT ? on_op : fm_profiler_op);
    fm_power_ring_init();
    fm_port_sync_init();
}

void fm_app_boot_banner(void)
{
    fm_writer_t w = fm_writer(resp, sizeof resp);
    fm_w_u8(&w, FM_PROTO_VERSION);
    fm_w_str(&w, FM_APP_NAME, 16);
    fm_w_str(&w, FM_BOARD_NAME, 32);
    fm_w_str(&w, fm_glue_model_hash(), 64);
    fm_tx_writer(FM_MSG_BOOT, 0, &w);
}

void fm_app_rx_byte(uint8_t byte)
{
    fm_frame_t f;
    fm_rx_status_t st = fm_frame_rx_push(&rx, byte, &f);
    if (st == FM_RX_FRAME) {
        if (f.type & FM_MSG_RESPONSE) {
            fm_tx_error(f.seq, f.type, FM_E_UNKNOWN_COMMAND, f.type, "device-to-host type sent to device");
            return;
        }
        dispatch(&f);
    } else if (st == FM_RX_ERR_VERSION) {
        fm_tx_error(f.seq, f.type, (uint8_t)st, f.version, "protocol version mismatch");
    } else if (st >= FM_RX_ERR_FIRST) {
        /* seq is not trustworthy in a damaged frame: report it with seq 0 */
        fm_tx_error(0, 0, (uint8_t)st, 0, "bad frame");
    }
}
