/* The HTTP/1.1 accept path on a real loop and listener: a connection
 * that cannot be taken (failed allocation) must not leave the listener
 * deaf, and the descriptor budget behind max_connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "http/server_int.h"
#include "util/alloc.h"

typedef struct {
    hx_server srv;
    hx_worker *w;
    int port;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->srv.cfg = hx_config_default();
    assert_non_null(f->srv.cfg);
    f->w = calloc(1, sizeof *f->w);
    assert_non_null(f->w);
    hx_worker *w = f->w;
    w->srv = &f->srv;
    w->cfg = f->srv.cfg;
    assert_int_equal(uv_loop_init(&w->loop), 0);
    hx_accept_init(w);
    hx_h1_worker_init(w);
    w->listeners[0].proto = &hx_h1_proto;
    w->nlisteners = 1;
    assert_int_equal(uv_tcp_init(&w->loop, &w->listeners[0].tcp), 0);
    w->listeners[0].tcp.data = w;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&w->listeners[0].tcp, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&w->listeners[0].tcp, 16, hx_accept_on_connection), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    assert_int_equal(uv_tcp_getsockname(&w->listeners[0].tcp, (struct sockaddr *)&got, &len), 0);
    f->port = ntohs(got.sin_port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    hx_worker *w = f->w;
    hx_alloc_fail_at(0, 0);
    hx_h1_close_all(w);
    uv_close((uv_handle_t *)&w->listeners[0].tcp, NULL);
    hx_h1_worker_close(w);
    hx_accept_close(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    hx_config_unref(f->srv.cfg);
    free(w);
    free(f);
    return 0;
}

static int client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Completes in the kernel backlog, before any accept. */
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Runs the loop until the worker holds `want` connections or `ms` pass. */
static void run_until_conns(hx_worker *w, size_t want, int ms)
{
    for (int i = 0; i < ms / 5 && w->nconns < want; i++) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
}

static void test_failed_allocation_does_not_deafen_listener(void **state)
{
    fixture *f = *state;
    hx_worker *w = f->w;
    int c1 = client_connect(f->port);
    /* The next allocation is the connection's own: it fails once. */
    unsigned long before = hx_alloc_count();
    hx_alloc_fail_at(1, 0);
    run_until_conns(w, 1, 50);
    hx_alloc_fail_at(0, 0);
    assert_true(hx_alloc_count() > before); /* the accept path did try */
    /* Memory is back: a later client (and the one that met the failure)
     * must be served. Before the fix libuv never polled the listener
     * again after the skipped uv_accept, so both waited forever. */
    int c2 = client_connect(f->port);
    run_until_conns(w, 2, 3000);
    assert_int_equal(w->nconns, 2);
    assert_int_equal(atomic_load(&f->srv.conns), 2);
    close(c1);
    close(c2);
}

static void test_sticky_failure_then_recovery(void **state)
{
    fixture *f = *state;
    hx_worker *w = f->w;
    int c1 = client_connect(f->port);
    hx_alloc_fail_at(1, 1); /* every allocation fails for a while */
    for (int i = 0; i < 60; i++) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
    assert_int_equal(w->nconns, 0);
    hx_alloc_fail_at(0, 0);
    run_until_conns(w, 1, 3000);
    assert_int_equal(w->nconns, 1);
    int c2 = client_connect(f->port);
    run_until_conns(w, 2, 3000);
    assert_int_equal(w->nconns, 2);
    close(c1);
    close(c2);
}

static void test_fd_conn_cap(void **state)
{
    (void)state;
    /* 256 descriptors, 2 workers: 48 reserved, half of the rest for upstreams. */
    assert_int_equal(hx_fd_conn_cap(256, 2), (256 - HX_FD_RESERVE_BASE - 2 * HX_FD_RESERVE_PER_WORKER) / 2);
    assert_true(hx_fd_conn_cap(256, 2) < 256);
    assert_true(hx_fd_conn_cap(1048576, 8) > 10000); /* a raised limit does not clamp the default */
    assert_int_equal(hx_fd_conn_cap(10, 4), 1);       /* absurdly low: still one */
    assert_int_equal(hx_fd_conn_cap(0, 0), 1);
    assert_true(hx_fd_conn_cap(1024, 0) == hx_fd_conn_cap(1024, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_allocation_does_not_deafen_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_failure_then_recovery, setup, teardown),
        cmocka_unit_test(test_fd_conn_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
