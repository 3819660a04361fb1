/* See fuzz_net.h. */
#include "fuzz_net.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

void hx_fuzz_net_init(hx_fuzz_net *n, const char *name, hx_config *cfg, hx_router *rt)
{
    n->name = name;
    n->wk = calloc(1, sizeof *n->wk);
    if (cfg == NULL || rt == NULL || n->wk == NULL) {
        fprintf(stderr, "fuzz %s: set-up failed\n", name);
        abort();
    }
    hx_worker *wk = n->wk;
    n->srv.cfg = cfg;
    n->srv.router = rt;
    n->srv.nworkers = 1;
    n->srv.workers = wk;
    wk->srv = &n->srv;
    wk->cfg = cfg;
    wk->router = rt;
    uv_loop_init(&wk->loop);
    hx_accept_init(wk);
}

void hx_fuzz_net_listen(hx_fuzz_net *n)
{
    hx_worker *wk = n->wk;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&n->addr, 0, sizeof n->addr);
    n->addr.sun_family = AF_UNIX;
    n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                              (size_t)snprintf(n->addr.sun_path + 1, sizeof n->addr.sun_path - 1,
                                               "hx-fuzz-%s-%d", n->name, (int)getpid()));
    if (fd < 0 || bind(fd, (struct sockaddr *)&n->addr, n->addr_len) != 0) {
        fprintf(stderr, "fuzz %s: bind: %s\n", n->name, strerror(errno));
        abort();
    }
    wk->listeners[0].proto = &hx_h1_proto;
    wk->nlisteners = 1;
    uv_tcp_init(&wk->loop, &wk->listeners[0].tcp);
    wk->listeners[0].tcp.data = wk;
    /* A Unix socket behind a uv_tcp_t: accept and read work the same. */
    if (uv_tcp_open(&wk->listeners[0].tcp, fd) != 0 ||
        uv_listen((uv_stream_t *)&wk->listeners[0].tcp, 64, hx_accept_on_connection) != 0) {
        fprintf(stderr, "fuzz %s: listen failed\n", n->name);
        abort();
    }
}

int hx_fuzz_net_connect(hx_fuzz_net *n)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&n->addr, n->addr_len) != 0) {
        fprintf(stderr, "fuzz %s: connect: %s\n", n->name, strerror(errno));
        abort();
    }
    for (int i = 0; i < 100000 && n->wk->conns == NULL; i++)
        uv_run(&n->wk->loop, UV_RUN_NOWAIT);
    return fd;
}

double hx_fuzz_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int hx_fuzz_net_drain(int fd, hx_buf *got)
{
    char buf[16384];
    for (;;) {
        ssize_t k = read(fd, buf, sizeof buf);
        if (k == 0)
            return 1;
        if (k < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : 1;
        if (got->len < 65536)
            hx_buf_append(got, buf, (size_t)k);
    }
}

void hx_fuzz_net_finish(hx_fuzz_net *n, int fd, hx_buf *got, int eof, double start, double limit)
{
    hx_worker *wk = n->wk;
    shutdown(fd, SHUT_WR);
    while (!eof) {
        uv_run(&wk->loop, UV_RUN_NOWAIT);
        eof = hx_fuzz_net_drain(fd, got);
        if (!eof && hx_fuzz_now() - start > limit) {
            FUZZ_CHECK(!"the server never closed the connection");
            hx_fuzz_hung++;
            break;
        }
    }
    close(fd);
    for (int i = 0; i < 100000 && (wk->conns || wk->h2_conns); i++)
        uv_run(&wk->loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(wk->conns == NULL && wk->h2_conns == NULL);
    if (wk->conns || wk->h2_conns)
        hx_fuzz_hung++;
}
