/* The HTTP server: `server.workers` threads, each with its own uv loop and
 * its own SO_REUSEPORT listener; graceful shutdown on SIGTERM/SIGINT. */
#ifndef HX_HTTP_SERVER_H
#define HX_HTTP_SERVER_H

#include <stddef.h>

#include "config/config.h"

typedef struct hx_server hx_server;

/* Builds the route table and binds every worker's listener, so that a bad
 * address or a busy port is reported before anything starts. Takes its own
 * reference on cfg. Returns NULL and a reason in err on failure. */
hx_server *hx_server_new(hx_config *cfg, char *err, size_t errlen);

/* Per-worker application context: `init` runs on each worker's thread
 * before it accepts (its result becomes hx_req.app of that worker's
 * requests), `fini` runs once the worker has stopped, on the same loop.
 * Call before hx_server_run. */
typedef void *(*hx_worker_init_fn)(void *loop, void *app);
typedef void (*hx_worker_fini_fn)(void *ctx);
void hx_server_set_app(hx_server *s, hx_worker_init_fn init, hx_worker_fini_fn fini, void *app);

/* Runs until shutdown: starts the workers, handles signals on the calling
 * thread, drains. Returns the process exit code (0 after a clean stop). */
int hx_server_run(hx_server *s);

/* The TCP port actually bound (useful with port 0). */
int hx_server_port(const hx_server *s);

void hx_server_free(hx_server *s);

#endif
