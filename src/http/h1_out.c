/* HTTP/1.1 adapter, output side: bytes of a turn gathered per connection,
 * written once in the check phase (directly when the socket takes them),
 * with write-stall timeouts and high/low water marks for backpressure. */
#include <stdio.h>
#include <time.h>

#include "http/h1_int.h"
#include "obs/log.h"
#include "util/alloc.h"

void hx_h1_update_date(hx_worker *w)
{
    time_t now = time(NULL);
    if (now == w->date_sec)
        return;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    w->date_sec = now;
}

/* `len` bytes of output reached the socket. */
static void wrote(h1_conn *c, size_t len)
{
    c->out_pending -= len;
    if (c->out_pending == 0)
        uv_timer_stop(&c->wt);
    else
        uv_timer_again(&c->wt); /* progress: the stall clock starts over */
    if (c->busy && c->out_pending <= HX_H1_LOW_WATER) {
        c->busy = false;
        if (c->req && c->req->on_drain)
            c->req->on_drain(c->req, c->req->cb_ud);
    }
    if (c->out_pending == 0 && c->close_after && c->state != H1_HANDLING)
        hx_h1_begin_linger(c);
    else if (c->parse_held && c->out_pending <= HX_H1_LOW_WATER && c->state == H1_IDLE) {
        c->parse_held = false;
        hx_h1_resume_input(c);
    }
}

static void on_write(hx_io *io, size_t len, int status)
{
    h1_conn *c = io->tcp.data;
    if (c->state == H1_CLOSED) {
        c->out_pending -= len;
        return;
    }
    if (status < 0) {
        c->out_pending -= len;
        hx_h1_conn_close(c, "write failed");
        return;
    }
    wrote(c, len);
}

static void on_write_timeout(uv_timer_t *t)
{
    h1_conn *c = t->data;
    HX_LOG_INFO("write timeout, closing connection", HX_F_INT("pending_bytes", (int64_t)c->out_pending));
    hx_h1_conn_close(c, "write timeout");
}

/* Output is gathered per connection during a loop turn and written once,
 * after all callbacks of the turn have run (the check phase): a streamed
 * answer whose upstream chunks arrive together leaves in one write. */
static void flush_conn(h1_conn *c)
{
    c->flush_queued = false;
    if (c->overflow && c->state != H1_CLOSED) {
        HX_LOG_WARN("response output passed its bound, closing connection",
                    HX_F_INT("max_bytes", HX_H1_OBUF_MAX), HX_F_INT("pending_bytes", (int64_t)c->out_pending));
        hx_h1_conn_close(c, "output past its bound");
        return;
    }
    if (c->state == H1_CLOSED || c->obuf.len == 0)
        return;
    /* Most answers fit the socket buffer: a direct write needs no write
     * request and spares libuv's epoll_ctl round after each uv_write. */
    size_t len = c->obuf.len;
    ssize_t n = hx_io_send(c->io, &c->obuf, on_write);
    if (n < 0) {
        c->out_pending -= len;
        hx_h1_conn_close(c, "write failed");
        return;
    }
    if (n > 0)
        wrote(c, (size_t)n);
}

static void on_flush_check(uv_check_t *h)
{
    hx_worker *w = h->data;
    while (w->flush_head) {
        h1_conn *c = w->flush_head;
        w->flush_head = c->flush_next;
        c->flush_next = NULL;
        flush_conn(c);
    }
    uv_check_stop(&w->flush_check);
    uv_idle_stop(&w->flush_idle);
}

static void on_flush_idle(uv_idle_t *h)
{
    (void)h; /* only keeps the loop from blocking while output waits */
}

void hx_h1_worker_init(hx_worker *w)
{
    uv_check_init(&w->loop, &w->flush_check);
    uv_idle_init(&w->loop, &w->flush_idle);
    w->flush_check.data = w->flush_idle.data = w;
}

void hx_h1_worker_close(hx_worker *w)
{
    uv_close((uv_handle_t *)&w->flush_check, NULL);
    uv_close((uv_handle_t *)&w->flush_idle, NULL);
}

static void queue_flush(h1_conn *c)
{
    if (c->flush_queued)
        return;
    hx_worker *w = c->w;
    c->flush_queued = true;
    c->flush_next = w->flush_head;
    w->flush_head = c;
    uv_check_start(&w->flush_check, on_flush_check);
    uv_idle_start(&w->flush_idle, on_flush_idle);
}

int hx_h1_queue_write(h1_conn *c, const char *a, size_t alen, const char *b, size_t blen,
                      const char *d, size_t dlen)
{
    if (c->state == H1_CLOSED)
        return HX_RES_EGONE;
    size_t len = alen + blen + dlen;
    size_t old = c->obuf.len;
    if (hx_buf_append(&c->obuf, a, alen) != 0 || (blen && hx_buf_append(&c->obuf, b, blen) != 0) ||
        (dlen && hx_buf_append(&c->obuf, d, dlen) != 0)) {
        /* Out of memory or past HX_H1_OBUF_MAX: the answer cannot be
         * completed. The flush closes the connection once the caller,
         * still inside its write, has returned. */
        c->obuf.len = old;
        c->overflow = true;
        queue_flush(c);
        return HX_RES_ENOMEM;
    }
    queue_flush(c);
    c->out_pending += len;
    if (c->req)
        c->req->bytes_out += len;
    int64_t wto = c->w->cfg->server.write_timeout;
    if (wto > 0 && !uv_is_active((uv_handle_t *)&c->wt))
        uv_timer_start(&c->wt, on_write_timeout, (uint64_t)wto, (uint64_t)wto);
    if (c->out_pending > HX_H1_HIGH_WATER) {
        c->busy = true;
        return HX_RES_BUSY;
    }
    return HX_RES_OK;
}
