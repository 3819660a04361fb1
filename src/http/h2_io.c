/* HTTP/2 adapter, the only file with socket calls: reads feed nghttp2
 * (hx_h2_on_input), frames of a loop turn are gathered and written once
 * in the check phase, as h1_out.c does. The next round puts these calls
 * over a TLS session instead of the plain descriptor. */
#include <unistd.h>

#include "http/h2_int.h"
#include "obs/log.h"
#include "util/alloc.h"

typedef struct {
    uv_write_t w;
    h2_conn *c;
    size_t len;
    char *data;
} wreq;

static void on_handle_closed(uv_handle_t *h)
{
    h2_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    hx_buf_free(&c->obuf);
    hx_h2_conn_freed(c);
}

int hx_h2_io_init(h2_conn *c)
{
    hx_buf_init(&c->obuf, HX_H2_OBUF_MAX);
    uv_loop_t *loop = &c->w->loop;
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->idle_t);
    uv_timer_init(loop, &c->slow_t);
    c->tcp.data = c->idle_t.data = c->slow_t.data = c;
    c->open_handles = 3;
    return 0;
}

uv_stream_t *hx_h2_io_stream(h2_conn *c)
{
    return (uv_stream_t *)&c->tcp;
}

int hx_h2_io_open(h2_conn *c, int fd)
{
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        return -1;
    }
    return 0;
}

void hx_h2_io_peer(h2_conn *c)
{
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof c->peer_ip);
        c->peer_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof c->peer_ip);
        c->peer_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
}

void hx_h2_io_close(h2_conn *c)
{
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->idle_t, on_handle_closed);
    uv_close((uv_handle_t *)&c->slow_t, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    h2_conn *c = req->data;
    if (c->state != H2C_CLOSED && status < 0)
        hx_h2_conn_close(c, "shutdown failed");
}

int hx_h2_io_finish(h2_conn *c)
{
    c->shutdown_req.data = c;
    return uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) == 0 ? 0 : -1;
}

/* ---- input ----------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    h2_conn *c = h->data;
    *buf = uv_buf_init(c->w->rbuf, sizeof c->w->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h2_conn *c = s->data;
    if (c->state == H2C_CLOSED)
        return;
    if (nread < 0) {
        hx_h2_on_eof(c);
        return;
    }
    if (nread > 0)
        hx_h2_on_input(c, (const uint8_t *)buf->base, (size_t)nread);
}

int hx_h2_io_start(h2_conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0 ? 0 : -1;
}

void hx_h2_io_pause(h2_conn *c)
{
    if (c->read_stopped || c->state == H2C_CLOSED)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->read_stopped = true;
}

void hx_h2_io_resume(h2_conn *c)
{
    if (!c->read_stopped || c->state == H2C_CLOSED)
        return;
    c->read_stopped = false;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- output ---------------------------------------------------------- */

int hx_h2_io_write(h2_conn *c, const uint8_t *data, size_t len)
{
    if (hx_buf_append(&c->obuf, data, len) != 0)
        return -1;
    c->out_pending += len;
    return 0;
}

static void on_write(uv_write_t *uw, int status)
{
    wreq *wr = (wreq *)uw;
    h2_conn *c = wr->c;
    size_t len = wr->len;
    hx_free(wr->data);
    hx_free(wr);
    c->out_pending -= len;
    if (c->state == H2C_CLOSED)
        return;
    if (status < 0) {
        hx_h2_conn_close(c, "write failed");
        return;
    }
    hx_h2_on_written(c, len);
}

static void flush_conn(h2_conn *c)
{
    c->flush_queued = false;
    if (c->state == H2C_CLOSED)
        return;
    hx_h2_on_output(c);
    if (c->state == H2C_CLOSED || c->obuf.len == 0)
        return;
    /* Most turns fit the socket buffer: no write request needed.
     * uv_try_write refuses while earlier writes queue, so order holds. */
    uv_buf_t direct = uv_buf_init(c->obuf.data, (unsigned)c->obuf.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &direct, 1);
    if (n < 0 && n != UV_EAGAIN) {
        hx_h2_conn_close(c, "write failed");
        return;
    }
    if (n > 0) {
        hx_buf_consume(&c->obuf, (size_t)n);
        c->out_pending -= (size_t)n;
        hx_h2_on_written(c, (size_t)n);
        if (c->state == H2C_CLOSED || c->obuf.len == 0)
            return;
    }
    wreq *wr = hx_malloc(sizeof *wr);
    if (wr == NULL) {
        hx_h2_conn_close(c, "out of memory");
        return;
    }
    wr->c = c;
    wr->data = hx_buf_steal(&c->obuf, &wr->len);
    uv_buf_t buf = uv_buf_init(wr->data, (unsigned)wr->len);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
        c->out_pending -= wr->len;
        hx_free(wr->data);
        hx_free(wr);
        hx_h2_conn_close(c, "write failed");
    }
}

static void on_flush_check(uv_check_t *h)
{
    hx_worker *w = h->data;
    while (w->h2_flush_head) {
        h2_conn *c = w->h2_flush_head;
        w->h2_flush_head = c->flush_next;
        c->flush_next = NULL;
        flush_conn(c);
    }
    if (w->h2_flush_head == NULL) {
        uv_check_stop(&w->h2_flush_check);
        uv_idle_stop(&w->h2_flush_idle);
    }
}

static void on_flush_idle(uv_idle_t *h)
{
    (void)h; /* keeps the loop from blocking while output waits */
}

void hx_h2_io_flush_soon(h2_conn *c)
{
    if (c->flush_queued || c->state == H2C_CLOSED)
        return;
    hx_worker *w = c->w;
    c->flush_queued = true;
    c->flush_next = w->h2_flush_head;
    w->h2_flush_head = c;
    uv_check_start(&w->h2_flush_check, on_flush_check);
    uv_idle_start(&w->h2_flush_idle, on_flush_idle);
}

void hx_h2_io_worker_init(hx_worker *w)
{
    uv_check_init(&w->loop, &w->h2_flush_check);
    uv_idle_init(&w->loop, &w->h2_flush_idle);
    w->h2_flush_check.data = w->h2_flush_idle.data = w;
}

void hx_h2_io_worker_close(hx_worker *w)
{
    uv_close((uv_handle_t *)&w->h2_flush_check, NULL);
    uv_close((uv_handle_t *)&w->h2_flush_idle, NULL);
}
