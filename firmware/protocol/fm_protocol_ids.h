/*
 * Every number of the wire protocol (docs/protocol.md) that both sides must agree on: message types, error
 * codes, flag and capability bits, record layouts. The host's copies live in host/formicary/device/frames.py;
 * tests/device/test_device_protocol_ids.py parses this file and fails on any difference, so change a value
 * here and there together (and bump FM_PROTO_VERSION when the wire format changes).
 *
 * Plain #defines only (one per line, integer or string literal): the test reads them without a C compiler.
 */
#ifndef FM_PROTOCOL_IDS_H
#define FM_PROTOCOL_IDS_H

/* Frame version: both sides drop frames of another version, so additions that old peers can ignore (a capability
   bit, a longer RUN_PROGRESS, a new request) keep it: routes (FM_CAP_ROUTES, READ_ROUTES) are such an addition. */
#define FM_PROTO_VERSION 2u /* 2: HELLO capabilities byte, READ_POWER; later in 2: routes */

/* Framing */
#define FM_HDR_BYTES 8u
#define FM_CRC_BYTES 4u
#define FM_MAX_PAYLOAD 512u

/* Message types: requests from the host; each response is request | FM_MSG_RESPONSE. */
#define FM_MSG_HELLO 0x01u
#define FM_MSG_LOAD_INPUT 0x02u
#define FM_MSG_RUN 0x03u
#define FM_MSG_READ_TIMINGS 0x04u
#define FM_MSG_READ_OUTPUT 0x05u
#define FM_MSG_READ_LAYER_TIMINGS 0x06u
#define FM_MSG_RESET 0x07u
#define FM_MSG_READ_POWER 0x08u
#define FM_MSG_READ_ROUTES 0x09u /* firmware with FM_CAP_ROUTES only */
#define FM_MSG_RESPONSE 0x80u
#define FM_MSG_RUN_PROGRESS 0xA3u /* one per inference while RUN executes */
#define FM_MSG_BOOT 0xFEu         /* unsolicited, first frame after every reset */
#define FM_MSG_ERROR 0xFFu

/* Error codes carried by FM_MSG_ERROR. */
#define FM_E_UNKNOWN_COMMAND 1u
#define FM_E_BAD_LENGTH 2u /* payload length wrong for the command */
#define FM_E_RANGE 3u      /* index, offset, count or size out of range */
#define FM_E_SEQUENCE 4u   /* input chunk would leave a gap */
#define FM_E_STATE 5u      /* command not valid now (e.g. RUN before all inputs are loaded) */
#define FM_E_INVOKE 6u     /* the model returned an error */
#define FM_E_INTERNAL 7u
#define FM_E_BAD_FLAGS 8u
/* Framing errors found by the receiver (fm_rx_status_t uses the same values). */
#define FM_E_OVERSIZE 16u
#define FM_E_COBS 17u
#define FM_E_SHORT 18u
#define FM_E_CRC 19u
#define FM_E_LENGTH 20u
#define FM_E_VERSION 21u

/* RUN: runs u32, warmup u32, flags u8 -> runs u32, warmup u32, flags u8, timer kind u32 */
#define FM_RUN_ARGS_LAYOUT "<IIB"
#define FM_RUN_ARGS_BYTES 9u
#define FM_RUN_RESP_LAYOUT "<IIBI"
#define FM_RUN_RESP_BYTES 13u
#define FM_MAX_RUNS 256u
#define FM_RUN_FLAG_PROFILE 0x01u      /* time every layer */
#define FM_RUN_FLAG_POWER_LAYERS 0x02u /* also sample power between layers (power firmware only) */

/* RUN_PROGRESS: kind u8, index u32, ticks u32; firmware with FM_CAP_ROUTES appends route u32 (the inference's
   fm_model_route() mask). A host reads the route only from a payload that long: older hosts ignore it. */
#define FM_PROGRESS_LAYOUT "<BII"
#define FM_PROGRESS_BYTES 9u
#define FM_PROGRESS_ROUTE_LAYOUT "<BIII"
#define FM_PROGRESS_ROUTE_BYTES 13u
#define FM_PROGRESS_WARMUP 0u
#define FM_PROGRESS_MEASURED 1u
#define FM_PROGRESS_ACCEPTED 2u

/* Request headers in front of data */
#define FM_LOAD_INPUT_HDR_LAYOUT "<BI" /* index u8, offset u32, then data */
#define FM_LOAD_INPUT_HDR_BYTES 5u
#define FM_LOAD_INPUT_RESP_LAYOUT "<BII" /* index u8, loaded u32, total u32 */
#define FM_LOAD_INPUT_RESP_BYTES 9u
#define FM_READ_OUTPUT_LAYOUT "<BIH" /* index u8, offset u32, length u16 */
#define FM_READ_OUTPUT_BYTES 7u
#define FM_READ_OUTPUT_RESP_HDR_LAYOUT "<BI" /* index u8, offset u32, then data */
#define FM_READ_OUTPUT_RESP_HDR_BYTES 5u
#define FM_READ_TIMINGS_LAYOUT "<IH"    /* first u32, count u16; the answer repeats it before the ticks */
#define FM_READ_TIMINGS_BYTES 6u
#define FM_READ_LAYERS_LAYOUT "<HH" /* first u16, count u16 */
#define FM_READ_LAYERS_BYTES 4u
#define FM_READ_ROUTES_LAYOUT "<IH" /* first u32, count u16; the answer repeats it before the routes (u32 each) */
#define FM_READ_ROUTES_BYTES 6u

/* HELLO capabilities byte */
#define FM_CAP_POWER_PRESENT 0x01u /* a power sensor answered at boot: READ_POWER works */
#define FM_CAP_POWER_BUILT 0x02u   /* the firmware was built with a power sensor (-DFM_POWER_INA) */
#define FM_CAP_ROUTES 0x04u        /* routes: RUN_PROGRESS carries each inference's route, READ_ROUTES reads them */

/* HELLO timer kind (fm_timer_kind()) */
#define FM_TIMER_KIND_SYSTICK 1u /* SysTick at the core clock; on QEMU with -icount shift=0: 1 ns per instr. */
#define FM_TIMER_KIND_DWT 2u     /* DWT CYCCNT: core clock cycles */

/* READ_POWER: kind u8, first u32, count u16 -> header, then count items of the kind */
#define FM_READ_POWER_LAYOUT "<BIH"
#define FM_READ_POWER_BYTES 7u
#define FM_POWER_KIND_SAMPLES 0u
#define FM_POWER_KIND_STARTS 1u
/* kind u8, first u32, count u16, total u32, dropped u32, errors u32, chip u16, Current_LSB (pA) u32 */
#define FM_POWER_HDR_LAYOUT "<BIHIIIHI"
#define FM_POWER_HDR_BYTES 25u
/* kind 0: timer ticks u32, then the INA registers as read: bus u16, shunt i16, current i16, power u16 */
#define FM_POWER_REC_LAYOUT "<IHhhH"
#define FM_POWER_REC_BYTES 12u
/* kind 1: timer ticks u32 at the start of each measured inference */
#define FM_POWER_START_LAYOUT "<I"
#define FM_POWER_START_BYTES 4u

#endif
