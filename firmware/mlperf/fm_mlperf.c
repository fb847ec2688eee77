/*
 * MLPerf Tiny / EEMBC DUT protocol: see fm_mlperf.h. Replies follow the EEMBC reference firmware's strings so
 * the MLCommons runner and EEMBC EnergyRunner parse them unchanged.
 */
#include "fm_mlperf.h"

#include <string.h>

#define MAX_COUNT 10000000u /* largest N or W accepted by "infer" and largest "db load" */
#define DEFAULT_WARMUPS 10u /* "infer N" without W: the EEMBC reference firmware's default */
#define DB_PRINT_PER_LINE 8u /* "db print": bytes per m-buffer- line, dash-separated, as the reference prints */

static void out(fm_mlperf_t *s, const char *text) { s->p->uart_write(s->p->ctx, text, strlen(text)); }

static void out_u32(fm_mlperf_t *s, uint32_t v) {
    char buf[11];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + (v % 10u));
        v /= 10u;
    } while (v != 0u);
    s->p->uart_write(s->p->ctx, buf + i, sizeof buf - i);
}

/* Echo of untrusted text inside an error message: printable ASCII only, at most 32 characters. */
static void out_sanitised(fm_mlperf_t *s, const char *text, size_t n) {
    char buf[32];
    size_t k = n < sizeof buf ? n : sizeof buf;
    for (size_t i = 0; i < k; i++) {
        char c = text[i];
        buf[i] = (c >= 0x20 && c < 0x7f && c != '[' && c != ']') ? c : '?';
    }
    s->p->uart_write(s->p->ctx, buf, k);
    if (n > k) out(s, "...");
}

static void error(fm_mlperf_t *s, const char *msg) {
    s->errors++;
    out(s, "e-[");
    out(s, msg);
    out(s, "]\r\n");
}

/* Fixed-point print with three decimals, no printf("%f") needed. */
static void out_milli(fm_mlperf_t *s, float v) {
    if (v != v) { out(s, "nan"); return; }
    if (v < 0.0f) { out(s, "-"); v = -v; }
    if (v > 4.0e6f) { out(s, "inf"); return; }
    uint32_t milli = (uint32_t)(v * 1000.0f + 0.5f);
    out_u32(s, milli / 1000u);
    char frac[4] = {(char)('0' + (milli / 100u) % 10u), (char)('0' + (milli / 10u) % 10u),
                    (char)('0' + milli % 10u), 0};
    out(s, ".");
    out(s, frac);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Next whitespace-separated token of cmd[*pos..n); returns its length (0 at the end). */
static size_t token(const char *cmd, size_t n, size_t *pos, const char **tok) {
    size_t i = *pos;
    while (i < n && is_space(cmd[i])) i++;
    size_t start = i;
    while (i < n && !is_space(cmd[i])) i++;
    *tok = cmd + start;
    *pos = i;
    return i - start;
}

static int tok_is(const char *tok, size_t len, const char *word) {
    size_t wl = strlen(word);
    return len == wl && memcmp(tok, word, wl) == 0;
}

/* Decimal u32 in [0, MAX_COUNT]; -1 on anything else. */
static int parse_count(const char *tok, size_t len, uint32_t *v) {
    if (len == 0u || len > 8u) return -1;
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        if (tok[i] < '0' || tok[i] > '9') return -1;
        acc = acc * 10u + (uint32_t)(tok[i] - '0');
    }
    if (acc > MAX_COUNT) return -1;
    *v = acc;
    return 0;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void timestamp(fm_mlperf_t *s) {
    if (s->mode == FM_MLPERF_MODE_ENERGY && s->p->timestamp_pulse) {
        s->p->timestamp_pulse(s->p->ctx);
        return;
    }
    out(s, "m-lap-us-");
    out_u32(s, s->p->timestamp_us(s->p->ctx));
    out(s, "\r\n");
}

static void print_value(fm_mlperf_t *s, const uint8_t *d, int dtype, float scale, int32_t zp) {
    float v;
    switch (dtype) {
    case 0: { float f; memcpy(&f, d, 4); v = f; break; }
    case 9: v = ((float)(int8_t)d[0] - (float)zp) * scale; break;
    case 3: v = ((float)d[0] - (float)zp) * scale; break;
    case 7: { int16_t q; memcpy(&q, d, 2); v = ((float)q - (float)zp) * scale; break; }
    default: v = 0.0f; break;
    }
    out_milli(s, v);
}

static void results(fm_mlperf_t *s) {
    out(s, "m-results-[");
    uint32_t printed = 0;
    int truncated = 0, bad = 0;
    for (int i = 0; i < 8; i++) {
        const uint8_t *data; size_t bytes; int dtype; float scale; int32_t zp;
        if (s->p->output(s->p->ctx, i, &data, &bytes, &dtype, &scale, &zp) != 0) break;
        size_t width = dtype == 0 ? 4u : dtype == 7 ? 2u : (dtype == 9 || dtype == 3) ? 1u : 0u;
        if (width == 0u) { bad = 1; continue; }
        for (size_t k = 0; k + width <= bytes; k += width) {
            if (printed == FM_MLPERF_MAX_OUTPUTS) { truncated = 1; break; }
            if (printed++) out(s, ",");
            print_value(s, data + k, dtype, scale, zp);
        }
    }
    out(s, "]\r\n");
    if (truncated) error(s, "results truncated");
    if (bad) error(s, "unsupported output type");
}

static int run(fm_mlperf_t *s, uint32_t n) {
    while (n--) {
        if (s->p->invoke(s->p->ctx) != 0) return -1;
    }
    return 0;
}

static void infer(fm_mlperf_t *s, const char *cmd, size_t n, size_t pos) {
    uint32_t count = 1, warmup = DEFAULT_WARMUPS;
    const char *tok;
    size_t len = token(cmd, n, &pos, &tok);
    if (len && parse_count(tok, len, &count) != 0) { error(s, "infer: N must be a number 1..10000000"); return; }
    len = token(cmd, n, &pos, &tok);
    if (len && parse_count(tok, len, &warmup) != 0) { error(s, "infer: W must be a number 0..10000000"); return; }
    if (token(cmd, n, &pos, &tok) != 0u) { error(s, "infer: usage infer N W"); return; }
    if (count == 0u) { error(s, "infer: N must be at least 1"); return; }
    out(s, "m-warmup-start-"); out_u32(s, warmup); out(s, "\r\n");
    if (run(s, warmup) != 0) { error(s, "invoke failed"); return; }
    out(s, "m-warmup-done\r\n");
    out(s, "m-infer-start-"); out_u32(s, count); out(s, "\r\n");
    timestamp(s);
    int rc = run(s, count);
    timestamp(s);
    if (rc != 0) { error(s, "invoke failed"); return; }
    out(s, "m-infer-done\r\n");
    results(s);
}

static void db(fm_mlperf_t *s, const char *cmd, size_t n, size_t pos) {
    const char *tok;
    size_t len = token(cmd, n, &pos, &tok);
    size_t cap = 0;
    uint8_t *buf = s->p->input(s->p->ctx, &cap);
    if (tok_is(tok, len, "load")) {
        uint32_t want;
        len = token(cmd, n, &pos, &tok);
        if (parse_count(tok, len, &want) != 0 || want == 0u || token(cmd, n, &pos, &tok) != 0u) {
            error(s, "db load: usage db load N");
            return;
        }
        if (buf == NULL || want > cap) {
            s->db_expected = 0;
            s->db_size = 0;
            error(s, "db load: larger than the model input");
            return;
        }
        s->db_size = want;
        s->db_expected = want;
        s->db_loaded = 0;
        s->db_half = 0;
        out(s, "m-[Expecting "); out_u32(s, want); out(s, " bytes]\r\n");
        return;
    }
    if (tok_is(tok, len, "print")) {
        /* the buffer announced by the last "db load", 8 bytes a line: "m-buffer-01-02-...-08" */
        static const char digits[] = "0123456789abcdef";
        size_t size = buf != NULL && s->db_size <= cap ? s->db_size : 0u;
        for (size_t i = 0; i < size; i++) {
            if (i % DB_PRINT_PER_LINE == 0u) out(s, "m-buffer-");
            char h[2] = {digits[buf[i] >> 4], digits[buf[i] & 15u]};
            s->p->uart_write(s->p->ctx, h, 2);
            out(s, (i + 1u) % DB_PRINT_PER_LINE == 0u || i + 1u == size ? "\r\n" : "-");
        }
        return;
    }
    if (s->db_expected == 0u) { error(s, "db: no db load pending"); return; }
    /* Hex payload: everything after "db", spaces allowed between byte pairs; validate before storing so a
       bad line changes nothing. */
    size_t digits_seen = 0;
    for (size_t i = pos - len; i < n; i++) {
        if (is_space(cmd[i])) continue;
        if (hex_value(cmd[i]) < 0) { error(s, "db: not a hex byte string"); return; }
        digits_seen++;
    }
    size_t room_digits = 2u * (s->db_expected - s->db_loaded) - (s->db_half ? 1u : 0u);
    if (digits_seen > room_digits) { error(s, "db: more bytes than announced by db load"); return; }
    for (size_t i = pos - len; i < n; i++) {
        int v = hex_value(cmd[i]);
        if (v < 0) continue;
        if (s->db_half) {
            buf[s->db_loaded++] = (uint8_t)((s->db_nibble << 4) | (uint8_t)v);
            s->db_half = 0;
        } else {
            s->db_nibble = (uint8_t)v;
            s->db_half = 1;
        }
    }
    if (s->db_loaded == s->db_expected) {
        s->db_expected = 0;
        out(s, "m-load-done\r\n");
    }
}

static void help(fm_mlperf_t *s) {
    out(s, "m-help-[name%        device name]\r\n");
    out(s, "m-help-[profile%     benchmark profile and model]\r\n");
    out(s, "m-help-[timestamp%   microsecond timestamp]\r\n");
    out(s, "m-help-[db load N%   expect N input bytes]\r\n");
    out(s, "m-help-[db HEX%      input bytes as hex]\r\n");
    out(s, "m-help-[db print%    print the loaded input]\r\n");
    out(s, "m-help-[infer N W%   N inferences after W warm-ups (N=1, W=10)]\r\n");
    out(s, "m-help-[results%     print the last outputs]\r\n");
}

void fm_mlperf_execute(fm_mlperf_t *s, const char *cmd, size_t n) {
    size_t pos = 0;
    const char *tok;
    size_t len = token(cmd, n, &pos, &tok);
    s->commands++;
    if (len == 0u) {
        /* empty command (e.g. a stray '%' after garbage): only the prompt */
    } else if (tok_is(tok, len, "name")) {
        out(s, "m-name-dut-["); out(s, s->p->name ? s->p->name : "formicary"); out(s, "]\r\n");
    } else if (tok_is(tok, len, "profile")) {
        out(s, "m-profile-["); out(s, s->p->profile ? s->p->profile : "formicary"); out(s, "]\r\n");
        out(s, "m-model-["); out(s, s->p->model ? s->p->model : "unknown"); out(s, "]\r\n");
        if (s->p->model_hash) { out(s, "m-model-hash-["); out(s, s->p->model_hash); out(s, "]\r\n"); }
    } else if (tok_is(tok, len, "help")) {
        help(s);
    } else if (tok_is(tok, len, "timestamp")) {
        timestamp(s);
    } else if (tok_is(tok, len, "db")) {
        db(s, cmd, n, pos);
    } else if (tok_is(tok, len, "infer")) {
        infer(s, cmd, n, pos);
    } else if (tok_is(tok, len, "results")) {
        results(s);
    } else {
        s->errors++;
        out(s, "e-[Unknown command: ");
        out_sanitised(s, tok, len);
        out(s, "]\r\n");
    }
    out(s, "m-ready\r\n");
}

void fm_mlperf_init(fm_mlperf_t *s, const fm_mlperf_platform_t *p, fm_mlperf_mode_t mode) {
    memset(s, 0, sizeof *s);
    s->p = p;
    s->mode = mode;
    out(s, mode == FM_MLPERF_MODE_ENERGY ? "m-timestamp-mode-energy\r\n" : "m-timestamp-mode-performance\r\n");
    out(s, "m-init-done\r\n");
    out(s, "m-ready\r\n");
}

void fm_mlperf_feed(fm_mlperf_t *s, const uint8_t *data, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = (char)data[i];
        if (c == '%') {
            if (s->overflow) {
                error(s, "Command too long");
                out(s, "m-ready\r\n");
            } else {
                fm_mlperf_execute(s, s->line, s->len);
            }
            s->len = 0;
            s->overflow = 0;
        } else if (s->overflow) {
            /* discard until the '%' that ends the over-long command */
        } else if (s->len == FM_MLPERF_LINE_MAX) {
            s->overflow = 1;
        } else if (s->len == 0u && is_space(c)) {
            /* newlines some terminals add after '%' are not part of the next command */
        } else {
            s->line[s->len++] = c;
            s->line[s->len] = '\0';
        }
    }
}
