/* Configuration reload: SIGHUP, or a change of the config file noticed by
 * watching its directory (editors and Kubernetes ConfigMaps replace the
 * file by rename, which a watch on the file itself would lose).
 *
 * The main thread loads and validates the new file, has the application
 * build its route table and rebuild what depends on it, then hands the
 * new config to each worker through its wake handle. A worker switches
 * between two requests; requests in flight keep the config they hold a
 * reference to. Old route tables are kept until the server is freed:
 * requests may still point into them and they are small. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "http/io_tls.h"
#include "http/server_int.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/sysload.h"
#include "util/alloc.h"

/* Several events arrive for one save (truncate, write, rename): wait for
 * them to settle before reading the file. */
#define HX_RELOAD_SETTLE_MS 150
/* A renewed certificate that failed to load (half written, expired) is
 * tried again after this long, not at every poll. */
#define HX_TLS_RETRY_MS 30000

static void count_reload(bool ok)
{
    hx_metrics_inc(HX_M_CONFIG_RELOADS, hx_metrics_series(HX_M_CONFIG_RELOADS, ok ? "success" : "failure"), 1);
}

static void log_failure(const char *why, const char *error)
{
    HX_LOG_ERROR("configuration reload failed, keeping the running configuration",
                 HX_F_STR("event", "config_reload"), HX_F_STR("result", "failure"),
                 HX_F_STR("trigger", why), HX_F_STR("error", error));
    count_reload(false);
}

static void warn_restart_only(const hx_config *old, const hx_config *cfg)
{
    if (strcmp(old->server.host, cfg->server.host) != 0 || old->server.port != cfg->server.port ||
        old->server.workers != cfg->server.workers)
        HX_LOG_WARN("server.host, server.port and server.workers take effect at the next restart",
                    HX_F_STR("event", "config_reload"));
    if (old->server.tls.enabled != cfg->server.tls.enabled || old->server.tls.port != cfg->server.tls.port)
        HX_LOG_WARN("server.tls.enabled and server.tls.port take effect at the next restart",
                    HX_F_STR("event", "config_reload"));
    if (strcmp(old->queue.state_path, cfg->queue.state_path) != 0 || old->queue.save_interval != cfg->queue.save_interval)
        HX_LOG_WARN("queue.state_path and queue.save_interval take effect at the next restart",
                    HX_F_STR("event", "config_reload"));
}

/* The HTTP/3 listener and its 0-RTT register are built once, at start: a
 * reload keeps the running server.http3 (so no request reads a value the
 * listener does not apply) and says so. Its certificate files are the
 * exception: they reload (hx_h3_tls_reload), as the TCP listener's do. */
static void keep_http3(const hx_config *old, hx_config *cfg)
{
    const hx_cfg_http3 *a = &old->server.http3;
    hx_cfg_http3 *b = &cfg->server.http3;
    bool same = a->enabled == b->enabled && a->port == b->port && a->idle_timeout == b->idle_timeout &&
                a->max_bi_streams_concurrent == b->max_bi_streams_concurrent &&
                a->max_uni_streams_concurrent == b->max_uni_streams_concurrent &&
                a->max_stream_receive_window == b->max_stream_receive_window &&
                a->max_connection_receive_window == b->max_connection_receive_window &&
                a->udp_receive_buffer_size == b->udp_receive_buffer_size && a->enable_0rtt == b->enable_0rtt &&
                a->max_0rtt_size == b->max_0rtt_size && a->allow_0rtt_replay == b->allow_0rtt_replay &&
                strcmp(a->address_validation, b->address_validation) == 0;
    if (same)
        return;
    HX_LOG_WARN("server.http3 takes effect at the next restart; the running values stay",
                HX_F_STR("event", "config_reload"));
    char *cert = b->tls_cert_file, *key = b->tls_key_file, *av = b->address_validation;
    *b = *a; /* the scalars; the strings stay the new config's own (freed with it) */
    b->tls_cert_file = cert;
    b->tls_key_file = key;
    b->address_validation = av;
}

static int retire_router(hx_server *s, hx_router *old)
{
    hx_router **p = hx_realloc(s->retired, (s->nretired + 1) * sizeof *p);
    if (p == NULL)
        return -1;
    s->retired = p;
    s->retired[s->nretired++] = old;
    return 0;
}

static void hand_to_workers(hx_server *s, hx_config *cfg, const hx_router *rt)
{
    for (int i = 0; i < s->nworkers; i++) {
        hx_worker *w = &s->workers[i];
        uv_mutex_lock(&s->reload_mu);
        if (w->next_cfg)
            hx_config_unref(w->next_cfg);
        w->next_cfg = hx_config_ref(cfg);
        w->next_router = rt;
        uv_mutex_unlock(&s->reload_mu);
        uv_async_send(&w->wake);
    }
}

int hx_server_reload(hx_server *s, const char *why)
{
    const char *path = s->cfg->source_path;
    if (path == NULL) {
        log_failure(why, "the configuration was not loaded from a file");
        return -1;
    }
    hx_config_errors errs = {0};
    hx_config *cfg = hx_config_load_file(path, &errs);
    if (cfg == NULL) {
        for (size_t i = 0; i < errs.n; i++)
            HX_LOG_ERROR("configuration error", HX_F_STR("event", "config_reload"), HX_F_STR("error", errs.items[i]));
        log_failure(why, errs.n ? errs.items[0] : "out of memory");
        hx_config_errors_free(&errs);
        return -1;
    }
    hx_config_errors_free(&errs);
    char err[256] = "";
    hx_router *rt = s->app.routes(cfg, s->app.ud, err, sizeof err);
    if (rt == NULL || retire_router(s, s->router) != 0) {
        log_failure(why, rt ? "out of memory" : err);
        hx_router_free(rt);
        hx_config_unref(cfg);
        return -1;
    }
    /* A new TLS context from the new certificates; new handshakes take
     * it, connections keep the one they started with. */
    hx_tls_ctx *tls = NULL;
    if (s->tls && cfg->server.tls.enabled && (tls = hx_io_tls_ctx_new(&cfg->server.tls, cfg->server.http2.enabled, err, sizeof err)) == NULL) {
        s->nretired--;
        log_failure(why, err);
        hx_router_free(rt);
        hx_config_unref(cfg);
        return -1;
    }
    /* The same for the HTTP/3 certificate (server.http3's paths). */
    hx_tls_ctx *h3tls = NULL;
    if (s->h3_port && cfg->server.http3.enabled && (h3tls = hx_h3_tls_build(cfg, err, sizeof err)) == NULL) {
        s->nretired--;
        log_failure(why, err);
        hx_tls_ctx_unref(tls);
        hx_router_free(rt);
        hx_config_unref(cfg);
        return -1;
    }
    if (s->app.reload && s->app.reload(cfg, s->app.ud, err, sizeof err) != 0) {
        s->nretired--; /* the running table stays in use */
        log_failure(why, err);
        hx_tls_ctx_unref(h3tls);
        hx_tls_ctx_unref(tls);
        hx_router_free(rt);
        hx_config_unref(cfg);
        return -1;
    }
    if (tls) {
        hx_tls_ctx_publish(tls);
        hx_tls_ctx_unref(s->tls_ctx);
        s->tls_ctx = tls;
        s->tls_failed_at = 0; /* the files it was built from are current */
    }
    warn_restart_only(s->cfg, cfg);
    keep_http3(s->cfg, cfg);
    if (h3tls)
        hx_h3_tls_install(h3tls); /* takes the reference */
    s->router = rt;
    hx_config *old = s->cfg;
    s->cfg = cfg; /* the reference from the loader moves here */
    hand_to_workers(s, cfg, rt);
    hx_sysload_reconfigure(cfg);
    hx_config_unref(old);
    HX_LOG_INFO("configuration reloaded", HX_F_STR("event", "config_reload"), HX_F_STR("result", "success"),
                HX_F_STR("trigger", why), HX_F_STR("config", path));
    count_reload(true);
    return 0;
}

void hx_reload_worker_apply(hx_worker *w)
{
    uv_mutex_lock(&w->srv->reload_mu);
    hx_config *cfg = w->next_cfg;
    const hx_router *rt = w->next_router;
    w->next_cfg = NULL;
    w->next_router = NULL;
    uv_mutex_unlock(&w->srv->reload_mu);
    if (cfg == NULL)
        return;
    hx_config_unref(w->cfg);
    w->cfg = cfg;
    w->router = rt;
    if (w->app && w->srv->app.worker_reloaded)
        w->srv->app.worker_reloaded(w->app);
}

/* ---- triggers ------------------------------------------------------------- */

static void on_hup(uv_signal_t *sig, int signum)
{
    (void)signum;
    hx_server_reload(sig->data, "signal");
}

/* logrotate renamed the log file: the writer thread opens it again. */
static void on_usr1(uv_signal_t *sig, int signum)
{
    (void)sig;
    (void)signum;
    hx_log_reopen();
}

/* certbot-style renewal: a certificate or key file replaced on disk
 * reloads the configuration (validated again: an expired certificate is
 * refused and the running one keeps serving). */
static void on_tls_poll(uv_timer_t *t)
{
    hx_server *s = t->data;
    uint64_t now = uv_now(t->loop);
    if (s->tls_failed_at && now - s->tls_failed_at < HX_TLS_RETRY_MS)
        return;
    bool tcp = s->tls_ctx && hx_tls_ctx_files_changed(s->tls_ctx);
    if (!tcp && !(s->h3_port && hx_h3_tls_files_changed()))
        return;
    s->tls_failed_at = hx_server_reload(s, "certificate") == 0 ? 0 : now;
}

static void on_settled(uv_timer_t *t)
{
    hx_server_reload(t->data, "file");
}

static void on_dir_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)events;
    hx_server *s = h->data;
    if (status < 0)
        return;
    /* Our file, or Kubernetes' "..data" symlink swap. */
    if (filename && strcmp(filename, s->cfg_base) != 0 && strncmp(filename, "..data", 6) != 0)
        return;
    uv_timer_start(&s->reload_timer, on_settled, HX_RELOAD_SETTLE_MS, 0);
}

static int split_path(hx_server *s, const char *path)
{
    const char *slash = strrchr(path, '/');
    s->cfg_dir = slash ? hx_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : hx_strdup(".");
    s->cfg_base = hx_strdup(slash ? slash + 1 : path);
    return s->cfg_dir && s->cfg_base ? 0 : -1;
}

void hx_reload_start(hx_server *s)
{
    uv_signal_init(&s->main_loop, &s->sig_hup);
    uv_timer_init(&s->main_loop, &s->reload_timer);
    uv_fs_event_init(&s->main_loop, &s->watch);
    s->sig_hup.data = s->reload_timer.data = s->watch.data = s;
    uv_signal_start(&s->sig_hup, on_hup, SIGHUP);
    uv_signal_init(&s->main_loop, &s->sig_usr1);
    s->sig_usr1.data = s;
    uv_signal_start(&s->sig_usr1, on_usr1, SIGUSR1);
    uv_timer_init(&s->main_loop, &s->tls_poll);
    s->tls_poll.data = s;
    if (s->tls || s->h3_port)
        uv_timer_start(&s->tls_poll, on_tls_poll, HX_TLS_POLL_MS, HX_TLS_POLL_MS);
    const char *path = s->cfg->source_path;
    if (path == NULL || split_path(s, path) != 0)
        return;
    int rc = uv_fs_event_start(&s->watch, on_dir_event, s->cfg_dir, 0);
    if (rc != 0)
        HX_LOG_WARN("cannot watch the configuration file; reload with SIGHUP",
                    HX_F_STR("dir", s->cfg_dir), HX_F_STR("error", uv_strerror(rc)));
    s->watching = rc == 0;
}

void hx_reload_stop(hx_server *s)
{
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    uv_close((uv_handle_t *)&s->sig_usr1, NULL);
    uv_close((uv_handle_t *)&s->reload_timer, NULL);
    uv_close((uv_handle_t *)&s->tls_poll, NULL);
    uv_close((uv_handle_t *)&s->watch, NULL);
}

void hx_reload_free(hx_server *s)
{
    for (size_t i = 0; i < s->nretired; i++)
        hx_router_free(s->retired[i]);
    hx_free(s->retired);
    for (int i = 0; s->workers && i < s->nworkers; i++)
        if (s->workers[i].next_cfg)
            hx_config_unref(s->workers[i].next_cfg);
    hx_free(s->cfg_dir);
    hx_free(s->cfg_base);
}
