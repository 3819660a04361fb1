/* The server: `server.workers` threads, each with its own uv loop and its
 * own SO_REUSEPORT listener whose protocol adapter (proto.h) takes the
 * connections; config reload; graceful shutdown on SIGTERM/SIGINT. It
 * knows no handler or middleware: the application (src/app/) passes
 * them in as hooks. */
#ifndef HX_HTTP_SERVER_H
#define HX_HTTP_SERVER_H

#include <stddef.h>

#include "config/config.h"
#include "tls/antireplay.h"

typedef struct hx_server hx_server;
typedef struct hx_router hx_router;

/* Per-worker application context: `init` runs on each worker's thread
 * before it accepts (its result becomes hx_req.app of that worker's
 * requests; NULL fails the start), `fini` runs once the worker has
 * stopped, on the same loop. */
typedef void *(*hx_worker_init_fn)(void *loop, void *ud);
typedef void (*hx_worker_fini_fn)(void *ctx);
/* Builds the route table for cfg: which handlers and middleware exist is
 * the application's to say (src/app/). NULL and a reason in err refuses
 * the config. */
typedef hx_router *(*hx_routes_fn)(const hx_config *cfg, void *ud, char *err, size_t errlen);
/* A reloaded config, on the main thread before the workers switch to it:
 * the application rebuilds what depends on it; -1 refuses it with a
 * reason in err. */
typedef int (*hx_reload_fn)(hx_config *cfg, void *ud, char *err, size_t errlen);
typedef void (*hx_main_start_fn)(void *loop, void *ud);
typedef void (*hx_main_stop_fn)(void *ud);

/* What the application plugs into the protocol-neutral worker. Only
 * `routes` is required; every hook gets `ud` or its worker's context. */
typedef struct hx_server_app {
    hx_routes_fn routes;
    hx_worker_init_fn worker_init;
    hx_worker_fini_fn worker_fini;
    /* On each worker's loop when shutdown starts (before connections
     * drain): work that would wait (a retry backoff) should finish now. */
    hx_worker_fini_fn worker_drain;
    /* On each worker's loop when server.shutdown_timeout is reached,
     * before its connections are closed: requests still being answered
     * end now, visibly (a stream gets an error event and its final
     * chunk). Their output gets HX_SHUTDOWN_FLUSH_MS to reach clients. */
    hx_worker_fini_fn worker_force;
    /* On each worker's loop right after it switched to a reloaded config
     * (e.g. to restart background work that depends on the config). */
    hx_worker_fini_fn worker_reloaded;
    hx_reload_fn reload;
    /* `main_start` runs on the main thread's loop (a uv_loop_t) before
     * workers start, `main_stop` after every worker has stopped, while
     * that loop still runs (handles closed there are finished). For work
     * off the request path such as saving the state file. */
    hx_main_start_fn main_start;
    hx_main_stop_fn main_stop;
    /* The single-use register of 0-RTT tickets (server.http3.enable_0rtt
     * without allow_0rtt_replay): the application's state store. Called
     * on worker threads, synchronously; replay_ud is its argument. */
    hx_replay_add_fn replay_add;
    void *replay_ud;
    /* The shared register of the instances, or NULL (see antireplay.h):
     * early requests of a connection wait for its verdict. */
    hx_replay_shared_fn replay_shared;
    void *ud;
} hx_server_app;

/* Builds the route table (app->routes) and binds every worker's listener,
 * so that a bad address or a busy port is reported before anything
 * starts. Takes its own reference on cfg and a copy of *app. Returns NULL
 * and a reason in err on failure. */
hx_server *hx_server_new(hx_config *cfg, const hx_server_app *app, char *err, size_t errlen);

/* Reload: SIGHUP or a change of the config file (also its replacement by
 * rename) loads the file again. An invalid file is logged and the running
 * config kept. A valid one gets its route table (app.routes), then goes to
 * app.reload on the main thread, then every worker switches to it for new
 * requests; requests in flight keep the config they started with. Changes
 * to server.host, server.port and server.workers need a restart (logged).
 * hx_server_reload reloads now; `why` is logged ("signal", "file"). Main
 * thread only. Returns 0 when the new config was applied. */
int hx_server_reload(hx_server *s, const char *why);

/* Begins a graceful shutdown, as the first SIGTERM does. Any thread, once
 * hx_server_run has called app.main_start (for embedding and tests). */
void hx_server_stop(hx_server *s);

/* Runs until shutdown: starts the workers, handles signals on the calling
 * thread, drains. Returns the process exit code (0 after a clean stop). */
int hx_server_run(hx_server *s);

/* The TCP port actually bound (useful with port 0). */
int hx_server_port(const hx_server *s);

void hx_server_free(hx_server *s);

#endif
