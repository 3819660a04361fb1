/* An in-process loopback harness for the HTTP/1.1 connection: a worker's
 * uv loop inside the test, the real listener and accept path on
 * 127.0.0.1 port 0, a router whose every route runs one stub handler,
 * and a plain non-blocking client socket on the other end.
 *
 *     lh_loop h;
 *     lh_init(&h, "server:\n  max_body_bytes: 1KB\n", my_handler);
 *     int fd = lh_connect(&h);
 *     lh_send(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
 *     hx_buf got; hx_buf_init(&got, 0);
 *     lh_run_until_read(&h, fd, &got, "body", 1);  // what the server wrote
 *     ... check got, lh_conn(&h)->state ...
 *     lh_fini(&h);
 *
 * The loop only turns when the test turns it (lh_turn); every wait is
 * bounded by a number of turns, never by a clock the test asserts on. */
#ifndef HX_TEST_LOOP_HARNESS_H
#define HX_TEST_LOOP_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "http/h1_int.h"
#include "http/router.h"
#include "http/server_int.h"
#include "util/buf.h"

/* Turns a wait may take before the test gives up (each turn sleeps up to
 * 1 ms when nothing happened, so a lost event fails in seconds). */
#define LH_MAX_TURNS 3000

typedef struct {
    hx_server srv;
    hx_worker *w;
    hx_router *rt;
    int port;
} lh_loop;

static hx_handler_def lh_def;

/* Every handler name of the config maps to the stub. */
static inline const hx_handler_def *lh_lookup(const char *name)
{
    (void)name;
    return &lh_def;
}

/* `yaml` NULL: the default config (its default routes). Returns 0 or -1. */
static inline int lh_init(lh_loop *h, const char *yaml, hx_handler_fn handler)
{
    memset(h, 0, sizeof *h);
    lh_def = (hx_handler_def){handler, NULL, NULL, 0};
    hx_config *cfg;
    if (yaml) {
        hx_config_errors errs = {0};
        cfg = hx_config_load_string(yaml, strlen(yaml), "loop-harness.yaml", &errs);
        hx_config_errors_free(&errs);
    } else {
        cfg = hx_config_default();
    }
    char err[128];
    h->rt = cfg ? hx_router_build(cfg, lh_lookup, NULL, err, sizeof err) : NULL;
    h->w = calloc(1, sizeof *h->w);
    if (cfg == NULL || h->rt == NULL || h->w == NULL)
        return -1;
    hx_worker *w = h->w;
    h->srv.cfg = cfg;
    h->srv.router = h->rt;
    h->srv.nworkers = 1;
    h->srv.workers = w;
    w->srv = &h->srv;
    w->cfg = cfg;
    w->router = h->rt;
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    hx_accept_init(w);
    hx_h1_proto.worker_init(w); /* h1's and h2's per-worker handles */
    w->listeners[0].proto = &hx_h1_proto;
    w->nlisteners = 1;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    struct sockaddr_in got;
    int len = sizeof got;
    if (uv_tcp_init(&w->loop, &w->listeners[0].tcp) != 0)
        return -1;
    w->listeners[0].tcp.data = w;
    if (uv_tcp_bind(&w->listeners[0].tcp, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&w->listeners[0].tcp, 16, hx_accept_on_connection) != 0 ||
        uv_tcp_getsockname(&w->listeners[0].tcp, (struct sockaddr *)&got, &len) != 0)
        return -1;
    h->port = ntohs(got.sin_port);
    return 0;
}

/* One turn of the loop; sleeps 1 ms first so a peer's bytes can land. */
static inline void lh_turn(lh_loop *h)
{
    usleep(1000);
    uv_run(&h->w->loop, UV_RUN_NOWAIT);
}

/* Turns the loop until cond(ud) holds or LH_MAX_TURNS pass. */
static inline bool lh_run_until(lh_loop *h, bool (*cond)(lh_loop *h, void *ud), void *ud)
{
    for (int i = 0; i < LH_MAX_TURNS; i++) {
        if (cond(h, ud))
            return true;
        lh_turn(h);
    }
    return cond(h, ud);
}

static inline bool lh_cond_no_conns(lh_loop *h, void *ud)
{
    (void)ud;
    return h->w->nconns == 0;
}

/* The worker's only (newest) connection, or NULL. */
static inline h1_conn *lh_conn(lh_loop *h)
{
    return h->w->conns;
}

/* A non-blocking client socket, accepted by the worker on return. */
static inline int lh_connect(lh_loop *h)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t before = h->w->nconns;
    for (int i = 0; i < LH_MAX_TURNS && h->w->nconns == before; i++)
        lh_turn(h);
    return fd;
}

/* Writes all of `len` bytes (loopback takes them at once). */
static inline bool lh_sendn(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        s += n;
        len -= (size_t)n;
    }
    return true;
}

static inline bool lh_send(int fd, const char *s)
{
    return lh_sendn(fd, s, strlen(s));
}

/* Appends what the server has written so far to `got`. Returns true at
 * EOF (or a reset): the server closed. */
static inline bool lh_read(int fd, hx_buf *got)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0)
            return true;
        if (n < 0)
            return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
        if (hx_buf_append(got, buf, (size_t)n) != 0)
            return true;
    }
}

/* Number of (possibly overlapping) occurrences of `needle` in `got`. */
static inline int lh_count(const hx_buf *got, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    for (const char *p = got->data, *end = got->data + got->len;
         p && (size_t)(end - p) >= nl && (p = memmem(p, (size_t)(end - p), needle, nl)) != NULL; p++)
        n++;
    return n;
}

/* Turns the loop, reading, until `got` holds `times` copies of `needle`.
 * Returns whether it did. */
static inline bool lh_run_until_read(lh_loop *h, int fd, hx_buf *got, const char *needle, int times)
{
    for (int i = 0; i < LH_MAX_TURNS; i++) {
        bool eof = lh_read(fd, got);
        if (lh_count(got, needle) >= times)
            return true;
        if (eof)
            return false;
        lh_turn(h);
    }
    return false;
}

/* Turns the loop, reading, until the server closes. Returns whether it did. */
static inline bool lh_run_until_eof(lh_loop *h, int fd, hx_buf *got)
{
    for (int i = 0; i < LH_MAX_TURNS; i++) {
        if (lh_read(fd, got))
            return true;
        lh_turn(h);
    }
    return false;
}

static inline void lh_fini(lh_loop *h)
{
    hx_worker *w = h->w;
    if (w) {
        hx_h1_proto.close_all(w);
        uv_close((uv_handle_t *)&w->listeners[0].tcp, NULL);
        hx_h1_proto.worker_close(w);
        hx_accept_close(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        free(w);
    }
    hx_router_free(h->rt);
    hx_config_unref(h->srv.cfg);
    memset(h, 0, sizeof *h);
}

#endif
