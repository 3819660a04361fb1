/* The TLS side of the I/O layer as the worker sees it: building the
 * listener's context (io_tls.c). Only the worker (server.c, reload.c)
 * includes this; adapters see io.h alone. */
#ifndef HX_HTTP_IO_TLS_H
#define HX_HTTP_IO_TLS_H

#include <stdbool.h>

#include "config/config.h"
#include "tls/tls.h"

/* hx_tls_ctx_new offering only the ALPN protocols an adapter serves
 * (hx_alpn_proto), "h2" only when `h2` (server.http2.enabled). NULL with
 * a reason in err. */
hx_tls_ctx *hx_io_tls_ctx_new(const hx_cfg_tls *t, bool h2, char *err, size_t errlen);

#endif
