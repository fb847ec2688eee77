/* Sending frames to the host: every frame gets the next device frame counter (docs/protocol.md). */
#ifndef FM_TX_H
#define FM_TX_H

#include <stddef.h>
#include <stdint.h>

#include "fm_bytes.h"

void fm_tx_init(void); /* counter back to 0: the boot banner is frame 0 */
void fm_tx_send(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len);
void fm_tx_error(uint8_t seq, uint8_t req_type, uint8_t code, uint32_t detail, const char *msg);
/* The writer's bytes, or an FM_E_INTERNAL error when they overflowed it. */
void fm_tx_writer(uint8_t type, uint8_t seq, const fm_writer_t *w);

#endif
