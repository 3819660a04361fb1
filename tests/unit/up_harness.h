/* An in-process loopback upstream for the unit tests of upstream.c and
 * prober.c: a uv loop owned by the test and a tiny HTTP/1.1 server on
 * 127.0.0.1 (port 0) answering from a script, one step per request
 * received. Everything runs on the test's thread: the client (libcurl
 * driven by hx_upstream) and the server share the one loop. */
#ifndef HX_TEST_UP_HARNESS_H
#define HX_TEST_UP_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

/* What the server does once a whole request (head and body) arrived. */
typedef enum {
    UPH_REPLY = 0, /* writes `reply` and keeps the connection (keep-alive) */
    UPH_SILENT,    /* writes `reply` (may be empty), then nothing more */
    UPH_CLOSE,     /* closes the connection without a byte */
    UPH_REPLY_FIN, /* writes `reply`, then ends its side of the connection (FIN) */
} uph_action;

typedef struct {
    uph_action action;
    const char *reply; /* NULL = "" */
    size_t reply_len;  /* 0 = strlen(reply) */
} uph_step;

#define UPH_STEPS_MAX 8
#define UPH_REQ_MAX (256 * 1024)
#define UPH_CONNS_MAX 128

typedef struct uph_server uph_server;

typedef struct {
    uv_tcp_t tcp;
    uph_server *srv;
    char *in; /* bytes of the request being received */
    size_t in_len;
    bool open;
} uph_conn;

struct uph_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    uph_step steps[UPH_STEPS_MAX]; /* step i answers request i; the last one repeats */
    size_t nsteps;
    size_t requests;       /* whole requests received */
    size_t connections;    /* connections accepted */
    char last_head[1024];  /* the first line of the last request */
    size_t last_body_len;
    uph_conn conns[UPH_CONNS_MAX];
};

static inline void uph_on_closed(uv_handle_t *h)
{
    uph_conn *c = h->data;
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    c->open = false;
}

static inline void uph_close(uph_conn *c)
{
    if (c->open && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, uph_on_closed);
}

static inline void uph_on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static inline void uph_write(uph_conn *c, const char *data, size_t len)
{
    if (len == 0)
        return;
    uv_write_t *w = malloc(sizeof *w);
    assert_non_null(w);
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len); /* libuv only reads it */
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, uph_on_written) != 0)
        free(w);
}

/* The length of the first whole request in c->in, or 0 (not yet). */
static inline size_t uph_request_len(const uph_conn *c)
{
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= c->in_len && end == NULL; i++)
        if (memcmp(c->in + i, "\r\n\r\n", 4) == 0)
            end = c->in + i + 4;
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - c->in), body = 0;
    for (const char *p = c->in; p < end; p++)
        if ((p == c->in || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
            body = (size_t)strtoul(p + 15, NULL, 10);
    return c->in_len >= head + body ? head + body : 0;
}

static inline void uph_on_request(uph_conn *c, size_t len)
{
    uph_server *s = c->srv;
    const uph_step *st = &s->steps[s->requests < s->nsteps ? s->requests : s->nsteps - 1];
    size_t line = strcspn(c->in, "\r");
    snprintf(s->last_head, sizeof s->last_head, "%.*s", (int)line, c->in);
    const char *blank = strstr(c->in, "\r\n\r\n");
    s->last_body_len = len - (size_t)(blank + 4 - c->in);
    s->requests++;
    memmove(c->in, c->in + len, c->in_len - len);
    c->in_len -= len;
    if (st->action == UPH_CLOSE) {
        uph_close(c);
        return;
    }
    const char *r = st->reply ? st->reply : "";
    uph_write(c, r, st->reply_len ? st->reply_len : strlen(r));
    if (st->action == UPH_REPLY_FIN) {
        static uv_shutdown_t sd; /* one at a time in these tests */
        uv_shutdown(&sd, (uv_stream_t *)&c->tcp, NULL);
    }
}

static inline void uph_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    static char chunk[65536];
    *b = uv_buf_init(chunk, sizeof chunk);
}

static inline void uph_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    uph_conn *c = st->data;
    if (n < 0) {
        uph_close(c);
        return;
    }
    if (n == 0)
        return;
    assert_true(c->in_len + (size_t)n < UPH_REQ_MAX);
    if (c->in == NULL)
        c->in = malloc(UPH_REQ_MAX);
    assert_non_null(c->in);
    memcpy(c->in + c->in_len, b->base, (size_t)n);
    c->in_len += (size_t)n;
    c->in[c->in_len] = '\0';
    size_t len;
    while (c->open && !uv_is_closing((uv_handle_t *)&c->tcp) && (len = uph_request_len(c)) > 0)
        uph_on_request(c, len);
}

static inline void uph_on_connection(uv_stream_t *l, int status)
{
    uph_server *s = l->data;
    assert_int_equal(status, 0);
    uph_conn *c = NULL;
    for (size_t i = 0; i < UPH_CONNS_MAX && c == NULL; i++)
        if (!s->conns[i].open)
            c = &s->conns[i];
    assert_non_null(c);
    memset(c, 0, sizeof *c);
    c->srv = s;
    c->open = true;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    s->connections++;
    uv_read_start((uv_stream_t *)&c->tcp, uph_alloc, uph_on_read);
}

/* Starts listening on 127.0.0.1:0 (s->port tells where). */
/* Listens on ip (port 0); false when the address cannot be bound (no
 * IPv6 on the machine): the listener is closed again. */
static inline bool uph_start_at(uph_server *s, uv_loop_t *loop, const char *ip)
{
    s->loop = loop;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_storage a;
    if (uv_ip4_addr(ip, 0, (struct sockaddr_in *)&a) != 0)
        assert_int_equal(uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&a), 0);
    if (uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&s->listener, 128, uph_on_connection) != 0) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        return false;
    }
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
    s->port = ntohs(((struct sockaddr_in *)&got)->sin_port); /* sin6_port sits at the same place */
    return true;
}

static inline void uph_start(uph_server *s, uv_loop_t *loop)
{
    assert_true(uph_start_at(s, loop, "127.0.0.1"));
}

static inline void uph_script(uph_server *s, size_t n, const uph_step *steps)
{
    assert_true(n > 0 && n <= UPH_STEPS_MAX);
    memcpy(s->steps, steps, n * sizeof *steps);
    s->nsteps = n;
}

static inline void uph_stop(uph_server *s)
{
    for (size_t i = 0; i < UPH_CONNS_MAX; i++)
        uph_close(&s->conns[i]);
    uv_close((uv_handle_t *)&s->listener, NULL);
}

/* A port nothing listens on (bound, then closed): connecting is refused. */
static inline int uph_closed_port(uv_loop_t *loop)
{
    uph_server s = {0};
    uph_start(&s, loop);
    int port = s.port;
    uv_close((uv_handle_t *)&s.listener, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return port;
}

/* Runs the loop until *flag or a 10 s guard (a hang fails the test rather
 * than the suite's timeout). */
static inline void uph_guard_fired(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static inline void uph_run_until(uv_loop_t *loop, const bool *flag)
{
    bool expired = false;
    uv_timer_t guard;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, uph_guard_fired, 10000, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (!*flag)
        fail_msg("the loop ran 10 s without the awaited event");
}

/* Runs the loop until pred(ud) holds, checked every few milliseconds (for
 * state that changes inside the code under test, not in a callback of the
 * test's own). */
typedef struct {
    bool (*pred)(void *);
    void *ud;
    bool met;
} uph_wait_ctx;

static inline void uph_wait_tick(uv_timer_t *t)
{
    uph_wait_ctx *w = t->data;
    w->met = w->pred(w->ud);
}

static inline void uph_wait(uv_loop_t *loop, bool (*pred)(void *), void *ud)
{
    uph_wait_ctx w = {pred, ud, pred(ud)};
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    tick.data = &w;
    uv_timer_start(&tick, uph_wait_tick, 2, 2);
    uph_run_until(loop, &w.met);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Closes everything left and checks that no handle outlives the test. */
static inline void uph_loop_close(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

#endif
