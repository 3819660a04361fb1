/* The application: composes hapax from its layers. It says which routes,
 * handlers and middleware exist (the router's lookups), creates the
 * per-worker gateway context, and plugs both into the protocol-neutral
 * server (http/server.h) as hooks, so src/http/ depends on nothing above
 * it. main.c only reads the command line and the config. */
#ifndef HX_APP_APP_H
#define HX_APP_APP_H

#include <stddef.h>

#include "config/config.h"
#include "http/router.h"

/* The route table of cfg with hapax's handlers and middleware. */
hx_router *hx_app_routes(const hx_config *cfg, void *ud, char *err, size_t errlen);

/* Starts logging, metrics, the gateway and middleware, serves until
 * shutdown, and tears down. `config_path` is only logged. Returns the
 * process exit code. */
int hx_app_run(hx_config *cfg, const char *config_path);

#endif
