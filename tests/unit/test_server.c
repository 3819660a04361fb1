/* The protocol-neutral worker (server.c) with the HTTP/1.1 adapter, in
 * process: hx_server_run on a thread, a real listener on 127.0.0.1:0,
 * the application's hooks (routes, per-worker context, drain) stubbed by
 * the test as src/app/ plugs in the real ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>

#include "config/config.h"
#include "http/router.h"
#include "util/alloc.h"
#include "worker_harness.h"

#define CTX_MAGIC 0x5e7e

typedef struct {
    wh_server h; /* first: the harness's main_start gets this */
    atomic_int inits, finis, drains;
    atomic_int in_flight;   /* the slow request reached its handler */
    uv_sem_t slow_seen;
    hx_config *cfg;
    hx_buf b;               /* the client's last answer */
} fixture;

/* The per-worker application context. */
typedef struct {
    int magic;
    fixture *f;
    uv_timer_t later;
    hx_req *pending; /* the slow request, answered once the drain began */
} worker_ctx;

static void stub_handler(hx_req *r);
static const hx_handler_def stub_def = {.fn = stub_handler};

static const hx_handler_def *stub_lookup(const char *name)
{
    (void)name;
    return &stub_def;
}

static hx_router *stub_routes(const hx_config *cfg, void *ud, char *err, size_t errlen)
{
    (void)ud;
    return hx_router_build(cfg, stub_lookup, NULL, err, errlen);
}

/* GET /health answers at once; POST /v1/chat/completions waits. */
static void stub_handler(hx_req *r)
{
    worker_ctx *ctx = hx_req_ctx(r, HX_REQ_CTX_APP);
    if (ctx == NULL || ctx->magic != CTX_MAGIC) {
        hx_res_send(r, 500, "text/plain", "no ctx", 6);
        return;
    }
    if (strcmp(r->path, "/v1/chat/completions") != 0) {
        hx_res_send(r, 200, "text/plain", "ok", 2);
        return;
    }
    ctx->pending = hx_req_ref(r);
    uv_sem_post(&ctx->f->slow_seen);
}

static void *stub_worker_init(void *loop, void *ud)
{
    fixture *f = ud;
    worker_ctx *ctx = hx_calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return NULL;
    ctx->magic = CTX_MAGIC;
    ctx->f = f;
    uv_timer_init(loop, &ctx->later);
    ctx->later.data = ctx;
    atomic_fetch_add(&f->inits, 1);
    return ctx;
}

static void free_ctx(uv_handle_t *h)
{
    hx_free(h->data);
}

static void stub_worker_fini(void *p)
{
    worker_ctx *ctx = p;
    atomic_fetch_add(&ctx->f->finis, 1);
    uv_close((uv_handle_t *)&ctx->later, free_ctx);
}

static void answer_pending(uv_timer_t *t)
{
    worker_ctx *ctx = t->data;
    hx_req *r = ctx->pending;
    ctx->pending = NULL;
    hx_res_send(r, 200, "text/plain", "finished", 8);
    hx_req_unref(r);
}

/* Shutdown began: the slow request is answered on a later loop turn,
 * after the adapter's drain has seen its connection busy. */
static void stub_worker_drain(void *p)
{
    worker_ctx *ctx = p;
    atomic_fetch_add(&ctx->f->drains, 1);
    if (ctx->pending)
        uv_timer_start(&ctx->later, answer_pending, 0, 0);
}

static hx_config *test_config(const char *extra)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, "server:\n  host: 127.0.0.1\n  port: 0\n  workers: 1\n%s", extra);
    hx_config_errors e = {0};
    hx_config *cfg = hx_config_load_string(yaml, strlen(yaml), "test.yaml", &e);
    for (size_t i = 0; i < e.n; i++)
        print_message("config error: %s\n", e.items[i]);
    hx_config_errors_free(&e);
    assert_non_null(cfg);
    return cfg;
}

static void start(fixture *f, hx_config *cfg)
{
    f->h.app = (hx_server_app){
        .routes = stub_routes,
        .worker_init = stub_worker_init,
        .worker_fini = stub_worker_fini,
        .worker_drain = stub_worker_drain,
        .ud = f,
    };
    uv_sem_init(&f->slow_seen, 0);
    char err[256] = "";
    if (wh_start(&f->h, cfg, err, sizeof err) != 0)
        fail_msg("cannot start: %s", err);
}

static void stop(fixture *f)
{
    hx_server_stop(f->h.srv);
    assert_int_equal(wh_join(&f->h), 0);
    uv_sem_destroy(&f->slow_seen);
}

static const char health_req[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";

/* Starts f on a config with `extra` server lines and connects a client;
 * fixture_free ends what this made. */
static int start_client(fixture *f, const char *extra)
{
    f->cfg = test_config(extra);
    hx_buf_init(&f->b, WH_RESPONSE_MAX);
    start(f, f->cfg);
    int fd = wh_connect(&f->h);
    assert_true(fd >= 0);
    return fd;
}

static void fixture_free(fixture *f)
{
    hx_buf_free(&f->b);
    hx_config_unref(f->cfg);
}

/* Sends req on fd; the answer in b, its status returned. */
static int ask(int fd, const char *req, hx_buf *b)
{
    assert_int_equal(wh_send(fd, req), 0);
    return wh_read_response(fd, b);
}

/* One request through the worker: the listener's adapter parsed it, the
 * application's router ran the stub with the worker's context, and the
 * context was made and freed on that worker. */
static void test_one_request(void **state)
{
    (void)state;
    fixture f = {0};
    int fd = start_client(&f, "");
    assert_int_equal(ask(fd, health_req, &f.b), 200);
    assert_string_equal(wh_body(&f.b), "ok");
    close(fd);
    stop(&f);
    assert_int_equal(atomic_load(&f.inits), 1);
    assert_int_equal(atomic_load(&f.finis), 1);
    assert_int_equal(atomic_load(&f.drains), 1);
    fixture_free(&f);
}

/* A graceful stop lets the request in flight finish: its answer arrives
 * whole, says the connection closes, and the server then stops cleanly. */
static void test_drain_finishes_in_flight(void **state)
{
    (void)state;
    fixture f = {0};
    int fd = start_client(&f, "");
    assert_int_equal(wh_send(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"), 0);
    uv_sem_wait(&f.slow_seen);
    hx_server_stop(f.h.srv);
    assert_int_equal(wh_read_response(fd, &f.b), 200);
    assert_string_equal(wh_body(&f.b), "finished");
    assert_non_null(strcasestr(f.b.data, "connection: close"));
    assert_true(wh_peer_closed(fd));
    close(fd);
    assert_int_equal(wh_join(&f.h), 0);
    uv_sem_destroy(&f.slow_seen);
    assert_int_equal(atomic_load(&f.drains), 1);
    assert_int_equal(atomic_load(&f.finis), 1);
    fixture_free(&f);
}

/* A graceful stop closes a keep-alive connection that waits for its next
 * request, and the server stops with it still open on the client side. */
static void test_drain_closes_idle(void **state)
{
    (void)state;
    fixture f = {0};
    int fd = start_client(&f, "");
    assert_int_equal(ask(fd, health_req, &f.b), 200);
    assert_null(strcasestr(f.b.data, "connection: close"));
    hx_server_stop(f.h.srv);
    assert_true(wh_peer_closed(fd));
    assert_int_equal(wh_join(&f.h), 0);
    uv_sem_destroy(&f.slow_seen);
    close(fd);
    fixture_free(&f);
}

/* Load shedding: past server.max_connections a new client gets a 503
 * instead of a connection that would starve the others. */
static void test_shed_past_max_connections(void **state)
{
    (void)state;
    fixture f = {0};
    int a = start_client(&f, "  max_connections: 1\n");
    /* Answered: the first connection is counted and stays open. */
    assert_int_equal(ask(a, health_req, &f.b), 200);
    int c = wh_connect(&f.h);
    assert_true(c >= 0);
    assert_int_equal(wh_read_response(c, &f.b), 503);
    assert_true(wh_peer_closed(c));
    close(c);
    /* The one admitted is still served. */
    assert_int_equal(ask(a, health_req, &f.b), 200);
    close(a);
    stop(&f);
    fixture_free(&f);
}

static hx_router *refusing_routes(const hx_config *cfg, void *ud, char *err, size_t errlen)
{
    (void)cfg;
    (void)ud;
    snprintf(err, errlen, "no routes today");
    return NULL;
}

/* The route table is the application's: when it refuses, nothing binds
 * and its reason comes back. */
static void test_routes_refused(void **state)
{
    (void)state;
    hx_config *cfg = test_config("");
    hx_server_app app = {.routes = refusing_routes};
    char err[64] = "";
    assert_null(hx_server_new(cfg, &app, err, sizeof err));
    assert_string_equal(err, "no routes today");
    hx_server_app none = {0}; /* src/http/ has no route table of its own */
    assert_null(hx_server_new(cfg, &none, err, sizeof err));
    hx_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_request),
        cmocka_unit_test(test_drain_finishes_in_flight),
        cmocka_unit_test(test_drain_closes_idle),
        cmocka_unit_test(test_shed_past_max_connections),
        cmocka_unit_test(test_routes_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
