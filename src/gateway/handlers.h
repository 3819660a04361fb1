/* The gateway's request handlers, by the names used in `routes[].handler`. */
#ifndef HX_GATEWAY_HANDLERS_H
#define HX_GATEWAY_HANDLERS_H

#include "http/router.h"

/* Returns the handler for a config name, or NULL when the name is unknown. */
const hx_handler_def *hx_handlers_lookup(const char *name);

#endif
