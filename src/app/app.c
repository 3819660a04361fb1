#include "app/app.h"

#include <stdio.h>
#include <string.h>

#include "cache/cache.h"
#include "gateway/gateway.h"
#include "gateway/handlers.h"
#include "http/server.h"
#include "middleware/middleware.h"
#include "obs/crash.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "state/cluster.h"
#include "state/snapshot.h"
#include "state/store.h"
#include "upstream/upstream.h"
#include "util/alloc.h"

/* What the hooks share; lives for the whole run. */
typedef struct {
    hx_config *cfg;        /* the start config: the listen address and state file */
} app_ctx;

hx_router *hx_app_routes(const hx_config *cfg, void *ud, char *err, size_t errlen)
{
    (void)ud;
    return hx_router_build(cfg, hx_handlers_lookup, hx_middleware_lookup, err, errlen);
}

static void apply_logging(const hx_config *cfg)
{
    int lvl = hx_log_level_parse(cfg->logging.level);
    hx_log_set_level(lvl < 0 ? HX_LOG_INFO : (hx_log_level)lvl);
    hx_log_set_json(strcmp(cfg->logging.format, "text") != 0);
    hx_log_set_file(cfg->logging.file); /* a reload may move the log */
}

/* The operator opted in to serving without client keys beyond loopback:
 * say so at every start, where it cannot be missed. */
static void warn_exposure(const hx_config *cfg)
{
    if (!cfg->server.allow_unauthenticated || hx_config_host_is_loopback(cfg->server.host) ||
        !hx_config_serves_unauthenticated(cfg))
        return;
    HX_LOG_WARN("serving without client authentication on a non-loopback address: anyone who can "
                "connect may spend the provider keys and read /metrics",
                HX_F_STR("event", "security"), HX_F_STR("host", cfg->server.host),
                HX_F_STR("setting", "server.allow_unauthenticated"));
}

/* A reloaded config, on the main thread before workers switch to it. */
static int on_reload(hx_config *cfg, void *ud, char *err, size_t errlen)
{
    /* The listener keeps the address it was started on (server.host needs
     * a restart): a reload that turns auth off while that address is not
     * loopback would expose the providers just as a start would. */
    const char *listening = ((app_ctx *)ud)->cfg->server.host;
    if (!cfg->server.allow_unauthenticated && !hx_config_host_is_loopback(listening) &&
        hx_config_serves_unauthenticated(cfg)) {
        snprintf(err, errlen,
                 "still listening on %.64s (host changes need a restart) with client auth off: configure "
                 "auth keys or set server.allow_unauthenticated: true",
                 listening);
        return -1;
    }
    hx_gateway *prev = hx_gateway_current();
    hx_gateway *gw = hx_gateway_new(cfg, prev, err, errlen);
    hx_gateway_unref(prev);
    if (gw == NULL)
        return -1;
    hx_gateway_publish(gw);
    hx_gateway_unref(gw);
    apply_logging(cfg);
    hx_middleware_reconfigure(cfg);
    hx_cluster_reconfigure(cfg);
    hx_cache_reconfigure(cfg);
    return 0;
}

/* The single-use register of 0-RTT tickets (server.http3): the state
 * store, in memory (issue 15 puts it in Redis when instances share). A
 * full store refuses early data: never accepted twice, at worst not at
 * all. */
#define REPLAY_MAX_ENTRIES 200000
#define REPLAY_MAX_BYTES (32u << 20)

static void on_replay_reply(void *ud, const hx_store_reply *r)
{
    *(hx_store_rc *)ud = r->rc;
}

static hx_replay_rc replay_register(void *ud, const char *key, int64_t ttl_ms)
{
    hx_store *s = ud;
    hx_store_rc rc = HX_STORE_UNAVAILABLE;
    if (s == NULL || s->vt->add_once(s, key, ttl_ms, on_replay_reply, &rc) != 0)
        return HX_REPLAY_ERROR;
    return rc == HX_STORE_OK ? HX_REPLAY_NEW : rc == HX_STORE_EXISTS ? HX_REPLAY_SEEN : HX_REPLAY_ERROR;
}

/* With instances sharing state, the register is shared too: the local one
 * answers GnuTLS at once (it must), Redis answers whether another
 * instance saw the first flight, and the connection's early requests wait
 * for that (a Redis round trip, far shorter than the client's). */
typedef struct {
    hx_replay_done_fn done;
    void *arg;
} shared_ask;

static void on_shared_reply(void *ud, const hx_store_reply *r)
{
    shared_ask *a = ud;
    hx_replay_rc rc = r->rc == HX_STORE_OK ? HX_REPLAY_NEW : r->rc == HX_STORE_EXISTS ? HX_REPLAY_SEEN : HX_REPLAY_ERROR;
    if (rc == HX_REPLAY_ERROR) {
        hx_cluster_note_fallback();
        if (!hx_cluster_deny())
            rc = HX_REPLAY_NEW; /* on_failure local: this instance's register decided */
    }
    a->done(a->arg, rc);
    hx_free(a);
}

static int replay_shared(void *ud, const char *key, int64_t ttl_ms, hx_replay_done_fn done, void *arg)
{
    (void)ud;
    hx_store *s = hx_cluster_store();
    shared_ask *a = hx_malloc(sizeof *a);
    if (a == NULL) {
        done(arg, HX_REPLAY_ERROR);
        return 0;
    }
    *a = (shared_ask){done, arg};
    if (s == NULL) {
        on_shared_reply(a, &(hx_store_reply){.rc = HX_STORE_UNAVAILABLE});
        return 0;
    }
    if (s->vt->add_once(s, key, ttl_ms, on_shared_reply, a) != 0) {
        hx_free(a);
        done(arg, HX_REPLAY_ERROR);
    }
    return 0;
}

/* The state file lives on the main loop, off the request path. */
static void on_main_start(void *loop, void *ud)
{
    const hx_config *cfg = ((app_ctx *)ud)->cfg;
    if (*cfg->queue.state_path &&
        hx_snapshot_start(loop, cfg->queue.state_path, cfg->queue.save_interval) != 0)
        HX_LOG_WARN("cannot start saving the state file", HX_F_STR("state_path", cfg->queue.state_path));
}

static void on_main_stop(void *ud)
{
    (void)ud;
    hx_snapshot_stop();
}

/* Metrics, providers, middleware: what the workers' requests use. */
static int app_start(hx_config *cfg)
{
    char err[256];
    hx_gateway *gw = NULL;
    if (hx_metrics_init() != 0 || hx_gw_metrics_collectors() != 0 || hx_log_metrics_register() != 0) {
        HX_LOG_ERROR("cannot start", HX_F_STR("error", "metrics initialisation failed"));
        return -1;
    }
    if (hx_upstream_global_init() != 0 || (gw = hx_gateway_new(cfg, NULL, err, sizeof err)) == NULL) {
        HX_LOG_ERROR("cannot start", HX_F_STR("error", "provider initialisation failed"));
        return -1;
    }
    hx_gateway_publish(gw);
    hx_gateway_unref(gw);
    if (hx_cluster_init(cfg) != 0 || hx_cache_init(cfg) != 0) {
        hx_gateway_publish(NULL);
        return -1;
    }
    if (hx_cluster_enabled())
        hx_gateway_shared_init();
    if (hx_middleware_init(cfg) != 0 || hx_gateway_state_register() != 0) {
        hx_gateway_publish(NULL);
        return -1;
    }
    if (*cfg->queue.state_path)
        hx_snapshot_restore(cfg->queue.state_path);
    return 0;
}

int hx_app_run(hx_config *cfg, const char *config_path)
{
    apply_logging(cfg);
    warn_exposure(cfg);
    hx_crash_install();
    if (app_start(cfg) != 0)
        return 1;
    app_ctx ctx = {.cfg = cfg}; /* cfg outlives the server */
    hx_store *replay = NULL;
    if (cfg->server.http3.enabled && cfg->server.http3.enable_0rtt) {
        const hx_store_limits lim = {REPLAY_MAX_ENTRIES, REPLAY_MAX_BYTES};
        if ((replay = hx_store_memory_new(&lim)) == NULL) {
            HX_LOG_ERROR("cannot start", HX_F_STR("error", "out of memory"));
            return 1;
        }
    }
    const hx_server_app app = {
        .routes = hx_app_routes,
        .worker_init = hx_gateway_worker_init,
        .worker_fini = hx_gateway_worker_fini,
        .worker_drain = hx_gateway_worker_drain,
        .worker_force = hx_gateway_worker_force,
        .worker_reloaded = hx_gateway_worker_reloaded,
        .reload = on_reload,
        .main_start = on_main_start,
        .main_stop = on_main_stop,
        .replay_add = replay_register,
        .replay_shared = hx_cluster_enabled() ? replay_shared : NULL,
        .replay_ud = replay,
        .ud = &ctx,
    };
    char err[256];
    int rc = 1;
    hx_server *srv = hx_server_new(cfg, &app, err, sizeof err);
    if (srv == NULL) {
        HX_LOG_ERROR("cannot start", HX_F_STR("error", err), HX_F_STR("config", config_path));
        goto done;
    }
    hx_req_set_done_hook(hx_gw_request_done); /* the access-log line */
    /* From here on no loop writes a log line itself: a writer thread does. */
    if (hx_log_start(cfg->logging.file, err, sizeof err) != 0) {
        HX_LOG_ERROR("cannot start", HX_F_STR("error", err), HX_F_STR("config", config_path));
        goto done;
    }
    HX_LOG_INFO("starting hapax", HX_F_STR("version", HX_VERSION), HX_F_STR("config", config_path));
    rc = hx_server_run(srv);
    hx_server_free(srv);
    srv = NULL;
    hx_middleware_shutdown();
    hx_cluster_shutdown();
    hx_cache_shutdown();
    hx_gateway_publish(NULL);
    hx_metrics_shutdown();
    hx_log_stop(HX_LOG_EXIT_WAIT_MS);
    if (replay)
        replay->vt->destroy(replay);
    return rc;
done:
    hx_server_free(srv);
    if (replay)
        replay->vt->destroy(replay);
    hx_middleware_shutdown();
    hx_cluster_shutdown();
    hx_cache_shutdown();
    hx_gateway_publish(NULL);
    return rc;
}
