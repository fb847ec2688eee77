#include "fm_tx.h"

#include "fm_frame.h"
#include "fm_port.h"

static uint8_t tx_raw[FM_MAX_RAW];
static uint16_t tx_counter;

static void put_uart(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    fm_port_uart_write(data, n);
}

void fm_tx_init(void) { tx_counter = 0; }

void fm_tx_send(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len)
{
    size_t n = fm_frame_build(tx_raw, sizeof tx_raw, type, seq, tx_counter, payload, len);
    if (n == 0) {
        return; /* cannot happen: every payload is built with a writer bounded by FM_MAX_PAYLOAD */
    }
    tx_counter++;
    fm_cobs_emit(tx_raw, n, put_uart, 0);
}

void fm_tx_error(uint8_t seq, uint8_t req_type, uint8_t code, uint32_t detail, const char *msg)
{
    uint8_t buf[80];
    fm_writer_t w = fm_writer(buf, sizeof buf);
    fm_w_u8(&w, code);
    fm_w_u8(&w, req_type);
    fm_w_u32(&w, detail);
    fm_w_str(&w, msg, 64);
    fm_tx_send(FM_MSG_ERROR, seq, buf, w.n);
}

void fm_tx_writer(uint8_t type, uint8_t seq, const fm_writer_t *w)
{
    if (w->overflow) {
        fm_tx_error(seq, (uint8_t)(type & 0x7Fu), FM_E_INTERNAL, (uint32_t)w->cap, "response too large");
        return;
    }
    fm_tx_send(type, seq, w->p, w->n);
}
