#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/io_tls.h"
#include "http/server_int.h"
#include "obs/crash.h"
#include "obs/log.h"
#include "obs/sysload.h"
#include "util/alloc.h"

#define HX_LISTEN_BACKLOG 1024
/* A forced exit (second signal) waits this long for queued log lines. */
#define HX_FORCED_EXIT_LOG_WAIT_MS 500

/* One listening socket per worker, all in one SO_REUSEPORT group, so each
 * worker has its own accept queue and the kernel spreads connections.
 *
 * The group must not take in a second hapax (it would silently get half
 * the traffic, maybe with other keys). So the first socket is bound
 * WITHOUT SO_REUSEPORT and listens at once: that bind is exclusive and
 * atomic in the kernel (EADDRINUSE when anything listens there, reuseport
 * or not), and listening at once closes the SO_REUSEADDR loophole (two
 * bound but not yet listening sockets may share). Only then is
 * SO_REUSEPORT switched on for it, so the process's own later sockets can
 * join its group. Another hapax does the same exclusive first bind and
 * fails, however the two starts interleave: no probe-then-bind window. */
static int bind_listener(const char *host, int port, bool first, int *bound_port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto sys_fail;
    int one = 1;
    /* SO_REUSEADDR only lets a restart bind over TIME_WAIT leftovers; it
     * never shares a port that something listens on. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (!first && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0))
        goto sys_fail;
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
        goto sys_fail;
    if (first && (listen(fd, HX_LISTEN_BACKLOG) != 0 ||
                  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0))
        goto sys_fail;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss); /* the analyzer does not model getsockname() */
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(res);
    return fd;
sys_fail:
    if (errno == EADDRINUSE)
        snprintf(err, errlen, "cannot listen on %s:%d: address already in use (another hapax or another "
                 "program listens there)", host, port);
    else
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

/* Raises the soft descriptor limit to the hard one when allowed, then
 * keeps client connections below what it leaves room for: past it the
 * workers would meet EMFILE instead of answering 503. */
static void fd_limit_connections(hx_server *s, const hx_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = rl;
        up.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        return;
    s->fd_conn_cap = hx_fd_conn_cap((unsigned long)rl.rlim_cur, s->nworkers);
    if (cfg->server.max_connections > s->fd_conn_cap)
        HX_LOG_WARN("server.max_connections is above what the file-descriptor limit allows; using the lower value",
                    HX_F_INT("max_connections", cfg->server.max_connections),
                    HX_F_INT("effective_max_connections", s->fd_conn_cap),
                    HX_F_INT("rlimit_nofile", (int64_t)rl.rlim_cur));
}

/* server.tls.enabled: its own port, or TLS only on server.port when the
 * two are equal. The context is built and published before any worker
 * runs; a certificate that does not load stops the start. */
static int server_tls_init(hx_server *s, const hx_config *cfg, char *err, size_t errlen)
{
    const hx_cfg_tls *t = &cfg->server.tls;
    s->tls = t->enabled;
    s->plain = !t->enabled || t->port != cfg->server.port;
    if (!s->tls)
        return 0;
    hx_tls_ctx *ctx = hx_io_tls_ctx_new(t, cfg->server.http2.enabled, err, errlen);
    if (ctx == NULL)
        return -1;
    s->tls_ctx = ctx;
    hx_tls_ctx_publish(ctx);
    for (size_t i = 0; i < t->alpn.n; i++)
        if (!cfg->server.http2.enabled && strcmp(t->alpn.items[i], "h2") == 0)
            HX_LOG_INFO("server.tls.alpn names h2 but server.http2.enabled is false; not offered",
                        HX_F_STR("protocol", t->alpn.items[i]));
    return 0;
}

/* One more listener of `kind` for w; the first worker's bind is the
 * exclusive one of its port (bind_listener), later ones join its group. */
static int add_listener(hx_worker *w, hx_listen_kind kind, int *port, int *bound, char *err, size_t errlen)
{
    hx_listener *l = &w->listeners[w->nlisteners];
    l->kind = kind;
    l->proto = w->srv->proto; /* TLS: ALPN may pick another after the handshake (hx_alpn_proto) */
    l->fd = bind_listener(w->cfg->server.host, *port, w->id == 0, bound, err, errlen);
    if (l->fd < 0)
        return -1;
    w->nlisteners++;
    *port = *bound; /* port 0: every worker shares the first one's port */
    return 0;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

hx_server *hx_server_new(hx_config *cfg, const hx_server_app *app, char *err, size_t errlen)
{
    if (app == NULL || app->routes == NULL) {
        snprintf(err, errlen, "no route table: the application must set hx_server_app.routes");
        return NULL;
    }
    hx_server *s = hx_calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = hx_config_ref(cfg);
    s->app = *app;
    s->proto = &hx_h1_proto; /* the one TCP adapter today */
    uv_mutex_init(&s->reload_mu);
    s->nworkers = cfg->server.workers > 0 ? (int)cfg->server.workers : cpu_count();
    fd_limit_connections(s, cfg);
    s->router = s->app.routes(cfg, s->app.ud, err, errlen);
    if (s->router == NULL)
        goto fail;
    s->workers = hx_calloc((size_t)s->nworkers, sizeof *s->workers);
    if (s->workers == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (server_tls_init(s, cfg, err, errlen) != 0)
        goto fail;
    int port = (int)cfg->server.port, tls_port = (int)cfg->server.tls.port;
    for (int i = 0; i < s->nworkers; i++) {
        hx_worker *w = &s->workers[i];
        w->srv = s;
        w->id = i;
        w->cfg = hx_config_ref(cfg);
        w->router = s->router;
        w->h3_fd = -1;
        for (int k = 0; k < HX_LISTENERS_MAX; k++)
            w->listeners[k].fd = -1;
        if (s->plain && add_listener(w, HX_LISTEN_TCP, &port, &s->port, err, errlen) != 0)
            goto fail;
        if (s->tls && add_listener(w, HX_LISTEN_TLS, &tls_port, &s->tls_port, err, errlen) != 0)
            goto fail;
    }
    if (cfg->server.http3.enabled &&
        (hx_h3_server_init(cfg, app->replay_add, app->replay_shared, app->replay_ud, err, errlen) != 0 || hx_h3_bind(s, err, errlen) != 0))
        goto fail;
    if (s->proto->server_init)
        s->proto->server_init(cfg);
    return s;
fail:
    hx_server_free(s);
    return NULL;
}

int hx_server_port(const hx_server *s)
{
    return s->plain ? s->port : s->tls_port;
}

void hx_server_free(hx_server *s)
{
    if (s == NULL)
        return;
    for (int i = 0; s->workers && i < s->nworkers; i++) {
        hx_h3_worker_free(&s->workers[i]);
        if (s->workers[i].h3_fd >= 0)
            close(s->workers[i].h3_fd);
        for (int k = 0; k < s->workers[i].nlisteners; k++)
            if (s->workers[i].listeners[k].fd >= 0 && !s->workers[i].listeners[k].open)
                close(s->workers[i].listeners[k].fd);
        if (s->workers[i].cfg)
            hx_config_unref(s->workers[i].cfg);
    }
    hx_reload_free(s);
    if (s->cfg->server.http3.enabled)
        hx_h3_server_free();
    if (s->tls_ctx) {
        hx_tls_ctx_publish(NULL);
        hx_tls_ctx_unref(s->tls_ctx);
    }
    uv_mutex_destroy(&s->reload_mu);
    hx_free(s->workers);
    hx_router_free(s->router);
    hx_config_unref(s->cfg);
    hx_free(s);
}

/* ---- workers -------------------------------------------------------------- */

static void worker_close_listener(hx_worker *w)
{
    for (int k = 0; k < w->nlisteners; k++) {
        hx_listener *l = &w->listeners[k];
        if (l->open && !uv_is_closing((uv_handle_t *)&l->tcp))
            uv_close((uv_handle_t *)&l->tcp, NULL);
    }
}

void hx_worker_maybe_stop(hx_worker *w)
{
    if (!w->draining || w->stopped || w->nconns > 0)
        return;
    w->stopped = true;
    worker_close_listener(w);
    /* The wake handle stays open until the main thread has joined this
     * thread: the main thread may still uv_async_send to it. */
    uv_stop(&w->loop);
}

static void on_force_timer(uv_timer_t *t)
{
    hx_worker *w = t->data;
    w->srv->proto->close_all(w);
    hx_worker_maybe_stop(w);
}

/* The shutdown deadline: end what is still being answered, visibly, give
 * those last bytes a moment, then close everything. */
static void worker_force(hx_worker *w)
{
    if (w->forcing)
        return;
    w->forcing = true;
    if (w->app && w->srv->app.worker_force)
        w->srv->app.worker_force(w->app);
    w->srv->proto->drain(w); /* connections whose answer just ended close after it */
    if (uv_timer_start(&w->force_timer, on_force_timer, HX_SHUTDOWN_FLUSH_MS, 0) != 0)
        w->srv->proto->close_all(w);
}

/* Runs on the worker's loop when the main thread asks it to drain/force. */
static void on_worker_wake(uv_async_t *a)
{
    hx_worker *w = a->data;
    hx_reload_worker_apply(w);
    int stopping = atomic_load(&w->srv->stopping);
    if (stopping == 0 || w->stopped)
        return;
    if (!w->draining) {
        w->draining = true;
        hx_accept_stop(w);
        worker_close_listener(w);
        if (w->app && w->srv->app.worker_drain)
            w->srv->app.worker_drain(w->app);
        w->srv->proto->drain(w);
    }
    if (stopping >= 2)
        worker_force(w);
    hx_worker_maybe_stop(w);
}

static void worker_main(void *arg)
{
    hx_worker *w = arg;
    hx_crash_thread_init();
    const hx_server_app *app = &w->srv->app;
    if (app->worker_init && (w->app = app->worker_init(&w->loop, app->ud)) == NULL) {
        HX_LOG_ERROR("worker initialisation failed", HX_F_INT("worker", w->id));
        w->srv->proto->close_all(w);
        w->draining = true;
        hx_worker_maybe_stop(w);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    hx_req_pool_drain();
    atomic_fetch_add(&w->srv->workers_done, 1);
    uv_async_send(&w->srv->main_wake);
}

static int worker_start(hx_worker *w, char *err, size_t errlen)
{
    int rc = uv_loop_init(&w->loop);
    if (rc == 0) {
        hx_accept_init(w);
        w->srv->proto->worker_init(w);
        rc = uv_async_init(&w->loop, &w->wake, on_worker_wake);
    }
    if (rc == 0 && w->h3_fd >= 0 && hx_h3_worker_open(w) != 0)
        rc = UV_ENOMEM;
    if (rc == 0) {
        w->wake.data = w;
        rc = uv_timer_init(&w->loop, &w->force_timer);
        w->force_timer.data = w;
    }
    for (int k = 0; rc == 0 && k < w->nlisteners; k++) {
        hx_listener *l = &w->listeners[k];
        rc = uv_tcp_init(&w->loop, &l->tcp);
        if (rc == 0) {
            l->tcp.data = w;
            rc = uv_tcp_open(&l->tcp, l->fd);
        }
        if (rc == 0) {
            l->open = true;
            rc = uv_listen((uv_stream_t *)&l->tcp, HX_LISTEN_BACKLOG, hx_accept_on_connection);
        }
    }
    if (rc == 0)
        rc = uv_thread_create(&w->thread, worker_main, w);
    if (rc != 0)
        snprintf(err, errlen, "worker %d: %s", w->id, uv_strerror(rc));
    return rc;
}

/* ---- main thread: signals and shutdown ---------------------------------- */

static void wake_workers(hx_server *s)
{
    for (int i = 0; i < s->nworkers; i++)
        uv_async_send(&s->workers[i].wake);
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    hx_server *s = t->data;
    HX_LOG_WARN("shutdown timeout reached, closing remaining connections",
                HX_F_INT("shutdown_timeout_ms", s->cfg->server.shutdown_timeout));
    atomic_store(&s->stopping, 2);
    wake_workers(s);
}

/* Drain now; past server.shutdown_timeout, force. */
static void begin_shutdown(hx_server *s, const char *why)
{
    HX_LOG_INFO("shutting down", HX_F_STR("signal", why),
                HX_F_INT("shutdown_timeout_ms", s->cfg->server.shutdown_timeout));
    atomic_store(&s->stopping, 1);
    wake_workers(s);
    uint64_t ms = (uint64_t)(s->cfg->server.shutdown_timeout > 0 ? s->cfg->server.shutdown_timeout : 0);
    uv_timer_start(&s->shutdown_timer, on_shutdown_timeout, ms, 0);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    hx_server *s = sig->data;
    if (++s->signals_seen > 1) {
        HX_LOG_WARN("second signal, exiting immediately", HX_F_STR("signal", strsignal(signum)));
        /* Still save the state file (a few ms on the main thread, which
         * serves no requests) and write out the queued log lines. */
        if (s->app.main_stop)
            s->app.main_stop(s->app.ud);
        hx_log_flush(HX_FORCED_EXIT_LOG_WAIT_MS);
        _exit(1);
    }
    begin_shutdown(s, strsignal(signum));
}

void hx_server_stop(hx_server *s)
{
    atomic_store(&s->stop_asked, 1);
    uv_async_send(&s->main_wake);
}

static void on_main_wake(uv_async_t *a)
{
    hx_server *s = a->data;
    /* Asked by hx_server_stop, unless a signal already began it. */
    if (atomic_exchange(&s->stop_asked, 0) && atomic_load(&s->stopping) == 0 && s->signals_seen == 0) {
        s->signals_seen = 1; /* a signal after this one exits at once, as a second signal does */
        begin_shutdown(s, "request");
    }
    if (atomic_load(&s->workers_done) < s->nworkers)
        return;
    uv_close((uv_handle_t *)&s->main_wake, NULL);
    uv_close((uv_handle_t *)&s->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    hx_reload_stop(s);
    hx_sysload_stop();
}

int hx_server_run(hx_server *s)
{
    char err[256];
    int started = 0;
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&s->main_loop) != 0)
        return 1;
    uv_async_init(&s->main_loop, &s->main_wake, on_main_wake);
    uv_timer_init(&s->main_loop, &s->shutdown_timer);
    uv_signal_init(&s->main_loop, &s->sig_term);
    uv_signal_init(&s->main_loop, &s->sig_int);
    s->main_wake.data = s->shutdown_timer.data = s->sig_term.data = s->sig_int.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    hx_reload_start(s);
    if (hx_sysload_start(&s->main_loop, s->cfg) != 0)
        HX_LOG_WARN("cannot start system health sampling", HX_F_STR("event", "startup"));
    if (s->app.main_start)
        s->app.main_start(&s->main_loop, s->app.ud);

    for (; started < s->nworkers; started++) {
        if (worker_start(&s->workers[started], err, sizeof err) != 0) {
            HX_LOG_ERROR("cannot start worker", HX_F_STR("error", err));
            atomic_store(&s->stopping, 2);
            atomic_fetch_add(&s->workers_done, s->nworkers - started);
            for (int i = 0; i < started; i++)
                uv_async_send(&s->workers[i].wake);
            uv_async_send(&s->main_wake);
            break;
        }
    }
    if (started == s->nworkers && s->plain)
        HX_LOG_INFO("listening", HX_F_STR("host", s->cfg->server.host), HX_F_INT("port", s->port),
                    HX_F_INT("workers", s->nworkers), HX_F_STR("protocol", s->proto->name));
    if (started == s->nworkers && s->tls)
        HX_LOG_INFO("listening", HX_F_STR("host", s->cfg->server.host), HX_F_INT("port", s->tls_port),
                    HX_F_INT("workers", s->nworkers), HX_F_STR("protocol", "https"));
    if (started == s->nworkers && s->h3_port)
        HX_LOG_INFO("listening", HX_F_STR("host", s->cfg->server.host), HX_F_INT("port", s->h3_port),
                    HX_F_INT("workers", s->nworkers), HX_F_STR("protocol", "h3"));
    uv_run(&s->main_loop, UV_RUN_DEFAULT);
    for (int i = 0; i < started; i++) {
        hx_worker *w = &s->workers[i];
        uv_thread_join(&w->thread);
        /* Now nobody signals this loop any more: close what is left. */
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_close((uv_handle_t *)&w->force_timer, NULL);
        s->proto->worker_close(w);
        hx_accept_close(w);
        worker_close_listener(w);
        if (w->app && s->app.worker_fini)
            s->app.worker_fini(w->app);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&w->loop) != 0)
            HX_LOG_WARN("worker loop closed with handles still open", HX_F_INT("worker", w->id));
    }
    if (s->app.main_stop) {
        s->app.main_stop(s->app.ud);
        uv_run(&s->main_loop, UV_RUN_DEFAULT);
    }
    hx_req_pool_drain(); /* requests the final worker clean-ups finished here */
    uv_loop_close(&s->main_loop);
    if (started < s->nworkers)
        return 1;
    HX_LOG_INFO("stopped", HX_F_INT("connections_left", atomic_load(&s->conns)));
    return 0;
}
