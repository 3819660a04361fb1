/* Internals shared by the worker (server.c: threads, listeners, shutdown;
 * reload.c; accept.c) and the protocol adapters (h1.c: HTTP/1.1
 * connections). Not for use outside src/http/ (and its unit tests). */
#ifndef HX_HTTP_SERVER_INT_H
#define HX_HTTP_SERVER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <uv.h>

#include "config/config.h"
#include "http/proto.h"
#include "http/request.h"
#include "http/router.h"
#include "http/server.h"

/* Reads land in one per-worker buffer; each connection keeps only the bytes
 * it has not parsed yet, bounded by this while a request is being handled. */
#define HX_H1_READ_BUF (64 * 1024)
#define HX_H1_PENDING_MAX (64 * 1024)
/* Output queued per connection before writers are told to wait. */
#define HX_H1_HIGH_WATER (256 * 1024)
#define HX_H1_LOW_WATER (64 * 1024)
/* Output buffer capacity an idle connection keeps (a stream keeps what
 * it grew to until it ends: freeing after each write cost 5% of
 * streaming throughput). */
#define HX_H1_OBUF_KEEP (4 * 1024)
/* At shutdown_timeout, how long the requests ended by the force hook have
 * to write their last bytes before every connection is closed. */
#define HX_SHUTDOWN_FLUSH_MS 1000
/* How long a closing connection keeps reading (and discarding) so the
 * client sees our last response instead of a reset. */
#define HX_H1_LINGER_MS 2000
/* Bounds of the per-connection buffers (DESIGN 7). The input buffer holds
 * at most the pending bytes plus one read; the output buffer one whole
 * answer (the gateway relays bodies of up to 64 MiB in one piece) plus
 * what a stream queued past the high-water mark; a response head is
 * small. URL and header name/value buffers take server.max_header_bytes. */
#define HX_H1_IN_MAX (HX_H1_PENDING_MAX + HX_H1_READ_BUF)
#define HX_H1_OBUF_MAX (80 * 1024 * 1024)
#define HX_H1_HEAD_MAX (64 * 1024)

/* A listener that cannot take a connection (no descriptor, no memory)
 * leaves it pending, which stops libuv polling it, and retries after
 * this long: no busy loop, and never deaf for good. */
#define HX_ACCEPT_RETRY_MS 100
#define HX_ACCEPT_LOG_EVERY_MS 10000
/* Descriptors kept out of reach of client connections: stdio, log and
 * state files, config watch, and per worker its epoll, eventfd, listener,
 * spare descriptor and curl multi. Half of the rest is left for upstream
 * sockets (a proxied request holds one per client connection). */
#define HX_FD_RESERVE_BASE 32
#define HX_FD_RESERVE_PER_WORKER 8

/* A worker's listening sockets: server.port and server.tls.port. */
#define HX_LISTENERS_MAX 2
/* How often the main loop checks whether a certificate file was renewed. */
#define HX_TLS_POLL_MS 2000

typedef struct hx_server hx_server;
typedef struct h1_conn h1_conn;
typedef struct h2_conn h2_conn;
struct h3_worker;

typedef struct hx_worker {
    hx_server *srv;
    int id;
    uv_loop_t loop;
    hx_listener listeners[HX_LISTENERS_MAX]; /* plain, TLS; each names its adapter */
    int nlisteners;
    uv_async_t wake;
    uv_timer_t force_timer;  /* shutdown_timeout: the last flush, then close all */
    bool forcing;
    uv_thread_t thread;
    hx_config *cfg;          /* reference held; swapped by a reload */
    const hx_router *router;
    hx_config *next_cfg;     /* a reload waiting to be picked up (reload_mu) */
    const hx_router *next_router;
    void *app;               /* from the application's worker_init hook */
    size_t nconns;           /* live connections, every adapter */
    bool draining;
    bool stopped;
    /* HTTP/1.1 adapter state (h1.c, h1_out.c). An HTTP/2 adapter would
     * keep its own per-worker state next to it. */
    h1_conn *conns;          /* intrusive list of live connections */
    h1_conn *flush_head;     /* connections with output to write this turn */
    uv_check_t flush_check;
    uv_idle_t flush_idle;
    /* HTTP/2 adapter state (h2*.c): its connections and output batching. */
    h2_conn *h2_conns;
    h2_conn *h2_flush_head;
    uv_check_t h2_flush_check;
    uv_idle_t h2_flush_idle;
    /* HTTP/3 adapter state (h3*.c): its UDP socket (bound by the main
     * thread in worker order) and what lives on it. */
    int h3_fd;               /* -1 without HTTP/3 */
    struct h3_worker *h3;
    uv_timer_t accept_timer; /* retries a paused accept */
    bool accept_paused;      /* a connection waits in a listener */
    uint64_t pause_logged;   /* loop time of the last pause warning */
    int spare_fd;            /* given up at EMFILE so an accept can succeed; -1 when spent */
    char rbuf[HX_H1_READ_BUF];
    time_t date_sec;
    char date[40];           /* cached "Date" header value */
} hx_worker;

struct hx_server {
    hx_config *cfg;
    hx_router *router;
    int nworkers;
    hx_worker *workers;
    int port;
    atomic_long conns;        /* open client connections, all workers */
    long fd_conn_cap;         /* connections the fd limit allows (0 = no cap) */
    atomic_int stopping;      /* 1 = draining, 2 = forcing */
    atomic_int workers_done;
    uv_loop_t main_loop;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_timer_t shutdown_timer;
    uv_async_t main_wake;
    int signals_seen;
    atomic_int stop_asked;    /* hx_server_stop */
    hx_server_app app;        /* the application's hooks (copied) */
    const hx_proto *proto;    /* the adapter of the TCP listeners */
    int tls_port;             /* bound TLS port; 0 without TLS */
    int h3_port;              /* bound HTTP/3 (UDP) port; 0 without HTTP/3 */
    bool plain;               /* a plain listener on server.port */
    bool tls;                 /* a TLS listener (server.tls.enabled) */
    struct hx_tls_ctx *tls_ctx; /* of the running config (reload.c); NULL without TLS */
    uv_timer_t tls_poll;      /* certificate renewal on disk */
    uint64_t tls_failed_at;   /* main loop time of a failed renewal reload; 0 = none */
    /* reload (reload.c) */
    uv_mutex_t reload_mu;
    uv_signal_t sig_hup;
    uv_signal_t sig_usr1;     /* log rotation: reopen logging.file */
    uv_fs_event_t watch;
    uv_timer_t reload_timer;
    bool watching;
    char *cfg_dir;
    char *cfg_base;
    hx_router **retired;      /* routers of earlier configs: requests may point into them */
    size_t nretired;
};

/* reload.c: SIGHUP and config-file watching on the main loop. */
void hx_reload_start(hx_server *s);
void hx_reload_stop(hx_server *s);
/* On a worker's loop: switches to a pending config, if any. */
void hx_reload_worker_apply(hx_worker *w);
void hx_reload_free(hx_server *s);

/* accept.c: a stream listener's callback (any adapter), and the
 * per-worker state behind it. */
void hx_accept_on_connection(uv_stream_t *listener, int status);
void hx_accept_init(hx_worker *w);
/* Shutdown: no more retries (the listener closes). */
void hx_accept_stop(hx_worker *w);
void hx_accept_close(hx_worker *w);

/* h1.c: a connection for the listener's next client (NULL: no memory). */
h1_conn *hx_h1_conn_new(hx_worker *w, bool tls);
uv_stream_t *hx_h1_conn_stream(h1_conn *c);
/* The accept failed: closes the connection. */
void hx_h1_conn_discard(h1_conn *c);
/* Accepted: starts reading, or answers 503 past `max_conns`. */
void hx_h1_conn_start(h1_conn *c, long max_conns);
/* Out of descriptors: closes a lingering, else an idle connection.
 * Returns false when there is none. */
bool hx_h1_shed_one(hx_worker *w);
/* Output batching handles of a worker (created before it runs, closed
 * after it stopped). */
void hx_h1_worker_init(hx_worker *w);
void hx_h1_worker_close(hx_worker *w);
/* Connections RLIMIT_NOFILE leaves room for with `nworkers` workers
 * (the reserve and upstream half taken off); at least 1. */
long hx_fd_conn_cap(unsigned long nofile, int nworkers);
/* Shutdown: close idle connections, let busy ones finish and then close. */
void hx_h1_drain(hx_worker *w);
/* Shutdown timeout: close every connection now. */
void hx_h1_close_all(hx_worker *w);
/* h1_rules.c. RFC 9110 5.6.2: a field name is a token (http-parser lets
 * a space through: "Content-Length : 5" was read as Content-Length). */
bool hx_h1_is_token(const char *at, size_t n);
/* What RFC 9112 forbids in a request head and http-parser accepts: a
 * version other than 1.0 / 1.1 (505), a missing Host on 1.1, two Host,
 * Transfer-Encoding on 1.0 (400). HX_ERR__COUNT when the head is fine. */
hx_err hx_h1_framing_error(int major, int minor, bool chunked, const hx_headers *h);
/* Sets r->path and r->query from the request target; an absolute-form
 * target ("http://host/p") keeps only its path. Returns 0 or -1. */
int hx_h1_set_target(hx_req *r, const char *url, size_t len);
/* h2.c: h1's h2c hand-off: the client sent the HTTP/2 connection
 * preface on the cleartext port. Takes `fd` (a duplicate; h1 closes its
 * own handle), the bytes read so far and the connection slot (`counted`).
 * Returns 0 once fd and the slot are the HTTP/2 connection's (which may
 * already have failed and closed), or -1 (no memory): both stay the
 * caller's. */
int hx_h2_adopt(hx_worker *w, int fd, const char *data, size_t len, const char *peer_ip, int peer_port,
                bool counted);
struct hx_io;
/* h2.c: ALPN h2 on a TLS connection whose handshake h1 ran: h2 takes `io`
 * (its own allocation, the TLS session in it) and the slot. 0, or -1 with
 * io untouched (the caller still owns it). */
int hx_h2_adopt_io(hx_worker *w, struct hx_io *io, const char *peer_ip, int peer_port, bool counted);
/* h1_rules.c, for the stream protocols (HTTP/2, HTTP/3). A request head
 * is whole: HX_ERR__COUNT when it goes on, else the error to answer (431
 * past the header limit, 400 without :method or :path, 413 when its
 * content-length is past max_body); sets head_only and the request id. */
hx_err hx_stream_head_verdict(hx_req *r, bool too_large, int64_t max_body);
/* Before an error answer to a request whose head was cut short: a path
 * and a request id for the answer and the access log. */
void hx_stream_error_prep(hx_req *r);
/* Fields HTTP/2 and HTTP/3 answers never carry (connection-specific). */
bool hx_header_hop_by_hop(const char *name);
/* h1_rules.c: the static method string of an HTTP/2 or HTTP/3 :method
 * (hx_req.method is never freed); NULL for a method we do not know. */
const char *hx_method_name(const uint8_t *v, size_t n);
/* h3_server.c, h3_udp.c: the HTTP/3 adapter as the worker sees it. */
int hx_h3_server_init(const hx_config *cfg, hx_replay_add_fn add, hx_replay_shared_fn shared, void *add_ud, char *err,
                      size_t errlen);
void hx_h3_server_free(void);
/* The HTTP/3 certificate on a reload or a renewal on disk: a context
 * built from cfg (NULL and a reason: the reload fails, the running one
 * stays), then installed for new connections (takes the reference). */
struct hx_tls_ctx *hx_h3_tls_build(const hx_config *cfg, char *err, size_t errlen);
void hx_h3_tls_install(struct hx_tls_ctx *ctx);
bool hx_h3_tls_files_changed(void);
struct hx_tls_ctx *hx_h3_tls_current(void);
int hx_h3_bind(hx_server *s, char *err, size_t errlen);
int hx_h3_worker_open(hx_worker *w);
void hx_h3_worker_drain(hx_worker *w);
void hx_h3_worker_close_all(hx_worker *w);
void hx_h3_worker_close(hx_worker *w);
void hx_h3_worker_free(hx_worker *w);
/* server.c: called when a worker's last connection is gone while draining. */
void hx_worker_maybe_stop(hx_worker *w);

#endif
