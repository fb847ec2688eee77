/* The benchmark firmware's protocol handler: bytes in, frames out (docs/protocol.md). Host-buildable. */
#ifndef FM_APP_H
#define FM_APP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Message types (requests from the host; responses are request | 0x80). */
enum {
    FM_MSG_HELLO = 0x01,
    FM_MSG_LOAD_INPUT = 0x02,
    FM_MSG_RUN = 0x03,
    FM_MSG_READ_TIMINGS = 0x04,
    FM_MSG_READ_OUTPUT = 0x05,
    FM_MSG_READ_LAYER_TIMINGS = 0x06,
    FM_MSG_RESET = 0x07,
    FM_MSG_READ_POWER = 0x08,
    FM_MSG_RESPONSE = 0x80,
    FM_MSG_RUN_PROGRESS = 0xA3, /* one per inference while RUN executes */
    FM_MSG_BOOT = 0xFE,         /* unsolicited, first frame after every reset */
    FM_MSG_ERROR = 0xFF
};

/* Error codes carried by FM_MSG_ERROR (framing errors reuse fm_rx_status_t values 16..21). */
enum {
    FM_E_UNKNOWN_COMMAND = 1,
    FM_E_BAD_LENGTH = 2, /* payload length wrong for the command */
    FM_E_RANGE = 3,      /* index, offset, count or size out of range */
    FM_E_SEQUENCE = 4,   /* input chunk would leave a gap */
    FM_E_STATE = 5,      /* command not valid now (e.g. RUN before all inputs are loaded) */
    FM_E_INVOKE = 6,     /* the model returned an error */
    FM_E_INTERNAL = 7,
    FM_E_BAD_FLAGS = 8
};

#define FM_MAX_RUNS 256u

void fm_app_init(void);
void fm_app_boot_banner(void);
void fm_app_rx_byte(uint8_t byte);

#ifdef __cplusplus
}
#endif
#endif
