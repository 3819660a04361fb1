/* A whole worker set in the test process: hx_server_run on its own thread
 * (its main loop) with the test's hooks, a real TCP listener on port 0 of
 * 127.0.0.1, and plain blocking sockets for the client side.
 *
 *     wh_server h = {.app = {.routes = my_routes, ...}};
 *     wh_start(&h, cfg);            // returns once app.main_start ran
 *     int fd = wh_connect(&h);
 *     wh_send(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
 *     wh_read_response(fd, &buf);   // one response (Content-Length)
 *     hx_server_stop(h.srv);
 *     assert_int_equal(wh_join(&h), 0);
 *
 * app.ud is the test's own state, a struct whose FIRST member is the
 * wh_server (NULL: the wh_server itself): main_start is the harness's.
 * Named so it does not collide with the HTTP/1.1 connection harness of
 * test_h1.c. */
#ifndef HX_TEST_WORKER_HARNESS_H
#define HX_TEST_WORKER_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "http/server.h"
#include "util/buf.h"

/* Only a guard against a hung test (a failure shows as a short read),
 * never a timing assertion. */
#define WH_IO_GUARD_S 20
/* A response the tests read (their bodies are a few bytes). */
#define WH_RESPONSE_MAX (64 * 1024)

typedef struct {
    hx_server_app app; /* the test's hooks; main_start is the harness's */
    hx_server *srv;
    uv_thread_t thread;
    int rc;
    uv_sem_t started;
} wh_server;

static inline void wh_main_started(void *loop, void *ud)
{
    (void)loop;
    uv_sem_post(&((wh_server *)ud)->started);
}

static inline void wh_thread(void *arg)
{
    wh_server *h = arg;
    h->rc = hx_server_run(h->srv);
}

/* Creates the server for cfg (its host/port/workers should be 127.0.0.1,
 * 0, 1) and runs it. Returns 0, or -1 with hx_server_new's reason in err. */
static inline int wh_start(wh_server *h, hx_config *cfg, char *err, size_t errlen)
{
    h->app.main_start = wh_main_started;
    if (h->app.ud == NULL)
        h->app.ud = h;
    h->srv = hx_server_new(cfg, &h->app, err, errlen);
    if (h->srv == NULL)
        return -1;
    uv_sem_init(&h->started, 0);
    if (uv_thread_create(&h->thread, wh_thread, h) != 0)
        return -1;
    uv_sem_wait(&h->started);
    return 0;
}

/* Waits for hx_server_run to return (after hx_server_stop) and frees the
 * server. Returns its exit code. */
static inline int wh_join(wh_server *h)
{
    uv_thread_join(&h->thread);
    hx_server_free(h->srv);
    h->srv = NULL;
    uv_sem_destroy(&h->started);
    return h->rc;
}

static inline int wh_connect(const wh_server *h)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = WH_IO_GUARD_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hx_server_port(h->srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int wh_send(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0 && errno != EINTR)
            return -1;
        if (k > 0)
            s += k, n -= (size_t)k;
    }
    return 0;
}

/* Reads one response with a Content-Length body into out (NUL
 * terminated, out->len without it). Returns the status, or -1 at EOF,
 * error or a malformed head. */
static inline int wh_read_response(int fd, hx_buf *out)
{
    out->len = 0;
    char c[4096];
    size_t want = 0;
    for (;;) {
        const char *end = out->data ? memmem(out->data, out->len, "\r\n\r\n", 4) : NULL;
        if (end) {
            size_t head = (size_t)(end - out->data) + 4;
            if (want == 0) {
                const char *cl = memmem(out->data, head, "Content-Length:", 15);
                if (cl == NULL)
                    cl = memmem(out->data, head, "content-length:", 15);
                want = head + (cl ? strtoul(cl + 15, NULL, 10) : 0);
            }
            if (out->len >= want)
                break;
        }
        ssize_t n = recv(fd, c, sizeof c, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || hx_buf_append(out, c, (size_t)n) != 0)
            return -1;
    }
    if (hx_buf_append(out, "", 1) != 0)
        return -1;
    out->len--;
    int status = 0;
    if (out->len < 12 || strncmp(out->data, "HTTP/1.1 ", 9) != 0)
        return -1;
    status = atoi(out->data + 9);
    return status;
}

/* The body of the response wh_read_response read. */
static inline const char *wh_body(const hx_buf *b)
{
    const char *end = memmem(b->data, b->len, "\r\n\r\n", 4);
    return end ? end + 4 : "";
}

/* True when the peer closed (EOF) without sending more. */
static inline int wh_peer_closed(int fd)
{
    char c;
    ssize_t n;
    while ((n = recv(fd, &c, 1, 0)) < 0 && errno == EINTR)
        ;
    return n == 0;
}

#endif
