/* The benchmark firmware's protocol handler: bytes in, frames out (docs/protocol.md). Host-buildable. */
#ifndef FM_APP_H
#define FM_APP_H

#include <stdint.h>

#include "fm_protocol_ids.h"

#ifdef __cplusplus
extern "C" {
#endif

void fm_app_init(void); /* also registers the app's op listener with the model glue */
void fm_app_boot_banner(void);
void fm_app_rx_byte(uint8_t byte);

#ifdef __cplusplus
}
#endif
#endif
