/*
 * MLPerf Tiny / EEMBC EnergyRunner device-under-test (DUT) UART protocol.
 *
 * A byte-at-a-time parser: feed every received byte to fm_mlperf_feed(); a command ends at '%'. Replies are
 * text lines ending in "\r\n"; every command is answered and followed by "m-ready". Every byte is treated as
 * hostile: the line buffer is bounded, an over-long line is answered with an "e-[...]" error once its '%'
 * arrives (the parser resynchronises there), the input buffer never overflows.
 *
 * The parser knows nothing about the board or the model: it calls the function pointers in fm_mlperf_platform_t
 * (UART output, microsecond timestamp, model input/output, invoke), so it builds and is tested on the host.
 * No malloc, no printf (newlib-nano has no %f): all formatting is done here with integers.
 */
#ifndef FM_MLPERF_H
#define FM_MLPERF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef FM_MLPERF_LINE_MAX
#define FM_MLPERF_LINE_MAX 256u /* EEMBC runners send <= 80 characters per command; hex lines stay short */
#endif
#define FM_MLPERF_BAUD_DEFAULT 115200u
#define FM_MLPERF_MAX_OUTPUTS 64u /* values printed by m-results (more are truncated, with an e- line) */

typedef enum {
    FM_MLPERF_MODE_PERFORMANCE = 0, /* "timestamp" prints m-lap-us-<us> */
    FM_MLPERF_MODE_ENERGY = 1       /* "timestamp" pulses the timestamp GPIO (EnergyRunner), prints nothing */
} fm_mlperf_mode_t;

typedef struct {
    void *ctx;
    void (*uart_write)(void *ctx, const char *data, size_t n);
    uint32_t (*timestamp_us)(void *ctx);         /* free-running microseconds, may wrap */
    void (*timestamp_pulse)(void *ctx);          /* optional (energy mode): pulse the timestamp GPIO */
    uint8_t *(*input)(void *ctx, size_t *bytes); /* the model's input tensor and its size */
    int (*invoke)(void *ctx);                    /* 0 on success */
    /* output tensor i as raw bytes, with dtype (TFLite numbering: 0 float32, 9 int8, 3 uint8, 7 int16),
       scale and zero point for dequantisation; returns 0, or -1 when i is out of range */
    int (*output)(void *ctx, int i, const uint8_t **data, size_t *bytes, int *dtype, float *scale,
                  int32_t *zero_point);
    const char *name;    /* m-name-dut-[name] */
    const char *profile; /* m-profile-[profile] */
    const char *model;      /* m-model-[model]: the EEMBC model id (kws01, vww01, ic01, ad01, or the user's), which
                               the MLCommons runner uses as the key into its test scripts */
    const char *model_hash; /* m-model-hash-[sha256]: the generated model, so formicary can tell what runs */
} fm_mlperf_platform_t;

typedef struct {
    const fm_mlperf_platform_t *p;
    fm_mlperf_mode_t mode;
    char line[FM_MLPERF_LINE_MAX + 1];
    size_t len;
    int overflow;           /* the current line exceeded FM_MLPERF_LINE_MAX: discard until '%' */
    size_t db_size;         /* bytes announced by the last "db load N" (what "db print" prints) */
    size_t db_expected;     /* bytes announced by the pending "db load N" (0 when none is pending) */
    size_t db_loaded;       /* bytes received since */
    int db_half;            /* a dangling high nibble across "db" commands (hex split mid-byte) */
    uint8_t db_nibble;
    uint32_t commands;      /* statistics, handy in tests */
    uint32_t errors;
} fm_mlperf_t;

/* Sets up the parser and prints the boot banner, as the EEMBC reference firmware does:
   "m-timestamp-mode-...", "m-init-done", "m-ready". */
void fm_mlperf_init(fm_mlperf_t *s, const fm_mlperf_platform_t *p, fm_mlperf_mode_t mode);
/* Feed received bytes; commands are executed as soon as their '%' arrives. */
void fm_mlperf_feed(fm_mlperf_t *s, const uint8_t *data, size_t n);
/* Execute one command line (without the '%'); exposed for tests. */
void fm_mlperf_execute(fm_mlperf_t *s, const char *cmd, size_t n);

/* Firmware built with -DFM_MLPERF=1 (mlperf/fm_mlperf_app.c): binds the parser to the board port and the
   generated model and serves the DUT protocol forever. Called by app/main.c instead of the formicary loop. */
void fm_mlperf_app_main(void);

#ifdef __cplusplus
}
#endif
#endif
