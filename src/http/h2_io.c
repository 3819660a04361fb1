/* HTTP/2 adapter, the only file with socket calls: reads feed nghttp2
 * (hx_h2_on_input), frames of a loop turn are gathered and written once
 * in the check phase, as h1_out.c does. All of them go through the
 * connection I/O layer (io.h), so h2c and h2 over TLS share this code. */
#include <string.h>
#include <unistd.h>

#include "http/h2_int.h"
#include "obs/log.h"
#include "util/alloc.h"

static void on_handle_closed(uv_handle_t *h)
{
    h2_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    hx_free(c->io);
    hx_buf_free(&c->obuf);
    hx_h2_conn_freed(c);
}

int hx_h2_io_init(h2_conn *c)
{
    c->io = hx_malloc(sizeof *c->io);
    if (c->io == NULL)
        return -1;
    hx_buf_init(&c->obuf, HX_H2_OBUF_MAX);
    uv_loop_t *loop = &c->w->loop;
    hx_io_init(loop, c->io, c);
    uv_timer_init(loop, &c->idle_t);
    uv_timer_init(loop, &c->slow_t);
    c->idle_t.data = c->slow_t.data = c;
    c->open_handles = 3;
    return 0;
}

uv_stream_t *hx_h2_io_stream(h2_conn *c)
{
    return hx_io_stream(c->io);
}

static void on_spare_closed(uv_handle_t *h)
{
    hx_free(h); /* the hx_io c never used (tcp first member) */
}

void hx_h2_io_take(h2_conn *c, hx_io *io)
{
    uv_close((uv_handle_t *)&c->io->tcp, on_spare_closed);
    c->io = io;
    io->tcp.data = c;
    hx_io_read_stop(io); /* h1's callbacks; hx_h2_io_start sets ours */
}

int hx_h2_io_open(h2_conn *c, int fd)
{
    if (uv_tcp_open(&c->io->tcp, fd) != 0) {
        close(fd);
        return -1;
    }
    return 0;
}

void hx_h2_io_peer(h2_conn *c)
{
    hx_io_peer_name(c->io, c->peer_ip, sizeof c->peer_ip, &c->peer_port);
}

void hx_h2_io_close(h2_conn *c)
{
    hx_io_close(c->io, on_handle_closed);
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
    return hx_io_shutdown(c->io, &c->shutdown_req, on_shutdown) == 0 ? 0 : -1;
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
    uv_tcp_nodelay(&c->io->tcp, 1);
    return hx_io_read_start(c->io, on_alloc, on_read) == 0 ? 0 : -1;
}

void hx_h2_io_pause(h2_conn *c)
{
    if (c->read_stopped || c->state == H2C_CLOSED)
        return;
    hx_io_read_stop(c->io);
    c->read_stopped = true;
}

void hx_h2_io_resume(h2_conn *c)
{
    if (!c->read_stopped || c->state == H2C_CLOSED)
        return;
    c->read_stopped = false;
    hx_io_read_start(c->io, on_alloc, on_read);
}

/* ---- output ---------------------------------------------------------- */

int hx_h2_io_write(h2_conn *c, const uint8_t *data, size_t len)
{
    if (hx_buf_append(&c->obuf, data, len) != 0)
        return -1;
    c->out_pending += len;
    return 0;
}

static void on_write(hx_io *io, size_t len, int status)
{
    h2_conn *c = io->tcp.data;
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
    /* Most turns fit the socket buffer: no write request needed. */
    size_t len = c->obuf.len;
    ssize_t n = hx_io_send(c->io, &c->obuf, on_write);
    if (n < 0) {
        c->out_pending -= len;
        hx_h2_conn_close(c, "write failed");
        return;
    }
    if (n > 0) {
        c->out_pending -= (size_t)n;
        hx_h2_on_written(c, (size_t)n);
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
