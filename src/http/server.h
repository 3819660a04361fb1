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
/* Runs on each worker's loop when shutdown starts (before connections
 * drain), with that worker's context: work that would wait (a retry
 * backoff) should finish now. */
void hx_server_set_drain(hx_server *s, hx_worker_fini_fn drain);
/* Runs on each worker's loop when server.shutdown_timeout is reached,
 * before its connections are closed: requests still being answered end
 * now, visibly (a stream gets an error event and its final chunk). Their
 * output gets HX_SHUTDOWN_FLUSH_MS to reach the clients. */
void hx_server_set_force(hx_server *s, hx_worker_fini_fn force);
/* Runs on each worker's loop right after it switched to a reloaded
 * config, with that worker's context (e.g. to restart background work
 * that depends on the config). */
void hx_server_set_worker_reload(hx_server *s, hx_worker_fini_fn reloaded);

/* Reload: SIGHUP or a change of the config file (also its replacement by
 * rename) loads the file again. An invalid file is logged and the running
 * config kept. A valid one goes to `fn` on the main thread first (the
 * application rebuilds what depends on it; -1 refuses the new config with
 * a reason in err), then every worker switches to it for new requests;
 * requests in flight keep the config they started with. Changes to
 * server.host, server.port and server.workers need a restart (logged). */
typedef int (*hx_reload_fn)(hx_config *cfg, void *ud, char *err, size_t errlen);
void hx_server_set_reload(hx_server *s, hx_reload_fn fn, void *ud);
/* Reloads now; `why` is logged ("signal", "file"). Main thread only.
 * Returns 0 when the new config was applied. */
int hx_server_reload(hx_server *s, const char *why);

/* Main-loop hooks: `start` runs on the main thread's loop (a uv_loop_t)
 * before workers start, `stop` after every worker has stopped, while that
 * loop still runs (handles closed there are finished). For work off the
 * request path such as saving the state file. */
typedef void (*hx_main_start_fn)(void *loop, void *ud);
typedef void (*hx_main_stop_fn)(void *ud);
void hx_server_set_main_hooks(hx_server *s, hx_main_start_fn start, hx_main_stop_fn stop, void *ud);

/* Runs until shutdown: starts the workers, handles signals on the calling
 * thread, drains. Returns the process exit code (0 after a clean stop). */
int hx_server_run(hx_server *s);

/* The TCP port actually bound (useful with port 0). */
int hx_server_port(const hx_server *s);

void hx_server_free(hx_server *s);

#endif
