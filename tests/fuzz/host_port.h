#ifndef HOST_PORT_H
#define HOST_PORT_H
#include <stddef.h>
#include <stdint.h>
typedef void (*host_sink_fn)(void *ctx, const uint8_t *data, size_t n);
void host_port_set_sink(host_sink_fn fn, void *ctx);
extern int host_reset_requested;
#endif
