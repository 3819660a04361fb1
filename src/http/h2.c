/* HTTP/2 adapter: an nghttp2 server session per connection, one hx_req per
 * stream, the same router, limits and middleware as HTTP/1.1.
 *
 * Input: h2_io.c hands read bytes to nghttp2_session_mem_recv; its
 * callbacks build the request (HEADERS → method, path, headers; DATA →
 * body) and dispatch it at END_STREAM. Output: a response body waits in
 * its stream's buffer; nghttp2 pulls it through a data source that
 * defers when the buffer is empty (resumed by the next write). Frames are
 * produced only while the connection's unwritten output is under
 * HX_H2_CONN_HIGH, so a client that does not read (or keeps its window at
 * zero) makes writers hear HX_RES_BUSY instead of growing memory. */
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/h2_int.h"
#include "http/request.h"
#include "obs/log.h"
#include "util/alloc.h"

static void drain_one(h2_conn *c);

/* ---- streams ------------------------------------------------------------ */

static void stream_unlink_free(h2_stream *s)
{
    h2_conn *c = s->c;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->nstreams--;
    hx_buf_free(&s->out);
    hx_free(s);
}

/* Drops the stream's request: aborted when its answer never ended (the
 * client reset the stream or the connection went). */
static void stream_release_req(h2_stream *s)
{
    hx_req *r = s->req;
    s->req = NULL;
    s->c->body_bytes -= s->body_counted;
    s->body_counted = 0;
    if (r == NULL)
        return;
    if (r->tp_ctx == s && !r->ended)
        hx_req_abort(r);
    r->tp = NULL;
    r->tp_ctx = NULL;
    hx_req_unref(r);
}

/* ---- request head and body ---------------------------------------------- */

static void answer_error(h2_stream *s, hx_err e)
{
    hx_req *r = s->req;
    if (r == NULL)
        return;
    hx_stream_error_prep(r);
    if (hx_res_error(r, e, NULL) >= 0 || s->req == NULL)
        return; /* answered, or already cut by tp_abort */
    nghttp2_submit_rst_stream(s->c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    if (s->state != H2S_DONE)
        hx_h2_set_stream_state(s, H2S_DONE, "error answer failed");
}

static void dispatch(h2_stream *s)
{
    h2_conn *c = s->c;
    hx_req *r = s->req;
    hx_h2_set_stream_state(s, H2S_HANDLING, "request complete");
    r->bytes_in += s->header_bytes;
    hx_req_ref(r); /* a synchronous handler may end or cut it */
    hx_router_dispatch(c->w->router, r);
    hx_req_unref(r);
}

/* END_HEADERS: the head is whole. Returns false when an answer went out. */
static bool head_complete(h2_stream *s)
{
    hx_err e = hx_stream_head_verdict(s->req, s->too_large, s->c->w->cfg->server.max_body_bytes);
    if (e == HX_ERR__COUNT)
        return true;
    answer_error(s, e);
    return false;
}

/* While streams are open the connection's clock sweeps once a second:
 * a request still arriving after server.read_timeout gets 408, as on
 * HTTP/1.1 (a slow client cannot hold max_concurrent_streams bodies
 * open for ever). With no stream the same clock is the idle timeout. */
static void on_sweep(uv_timer_t *t)
{
    h2_conn *c = t->data;
    if (c->state == H2C_CLOSED || c->lingering || c->sess_dead)
        return;
    if (c->nstreams == 0) {
        uv_timer_stop(t);
        if (c->state == H2C_OPEN)
            hx_h2_guard_idle(c);
        return;
    }
    int64_t ms = c->w->cfg->server.read_timeout;
    if (ms <= 0)
        return;
    uint64_t now = hx_now_ns();
    for (h2_stream *s = c->streams, *next; s; s = next) {
        next = s->next;
        if (s->req == NULL || now - s->req->start_ns <= (uint64_t)ms * 1000000ull)
            continue;
        if (s->state == H2S_HEADERS || s->state == H2S_BODY) {
            answer_error(s, HX_ERR_REQUEST_TIMEOUT);
        } else if (s->state == H2S_DONE && s->eof && hx_h2_stream_buffered(s) == 0 &&
                   nghttp2_session_get_stream_remote_close(c->sess, s->id) == 0) {
            /* Answered early (413, 431, 408) and the client still has not
             * ended its side: it may stop (RFC 9113 8.1), and the stream
             * frees its concurrency slot. Not at once: curl 7.88 drops an
             * answer followed by RST_STREAM(NO_ERROR) in the same read. */
            nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
        }
    }
    hx_h2_io_flush_soon(c);
}

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *f, void *ud)
{
    h2_conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    h2_stream *s = hx_calloc(1, sizeof *s);
    hx_req *r = s ? hx_req_new(&hx_h2_transport, s, c->w->cfg) : NULL;
    if (r == NULL) {
        hx_free(s);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
    }
    s->c = c;
    s->id = f->hd.stream_id;
    s->state = H2S_HEADERS;
    s->req = r;
    hx_buf_init(&s->out, HX_H2_STREAM_OUT_MAX);
    r->mw = hx_router_global_mw(c->w->router);
    hx_req_set_ctx(r, HX_REQ_CTX_APP, c->w->app);
    r->loop = &c->w->loop;
    r->http_minor = 1;
    memcpy(r->peer_ip, c->peer_ip, sizeof r->peer_ip);
    r->peer_port = c->peer_port;
    hx_io_req_facts(c->io, r); /* so auth by client_cert works over h2 too */
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    if (c->nstreams == 1 && !c->lingering)
        uv_timer_start(&c->idle_t, on_sweep, 1000, 1000);
    nghttp2_session_set_stream_user_data(sess, s->id, s);
    return 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    (void)flags, (void)ud;
    h2_stream *s = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
    if (s == NULL || s->req == NULL || s->state != H2S_HEADERS || s->too_large)
        return 0; /* trailers and a refused head are dropped */
    const hx_config *cfg = s->c->w->cfg;
    size_t limit = (size_t)cfg->server.max_header_bytes;
    if (cfg->server.http2.max_header_list_size > 0 && (size_t)cfg->server.http2.max_header_list_size < limit)
        limit = (size_t)cfg->server.http2.max_header_list_size;
    s->header_bytes += nl + vl;
    if (s->header_bytes > limit) {
        s->too_large = true; /* 431 once the head is complete */
        return 0;
    }
    hx_req *r = s->req;
    int rc = 0;
    if (nl > 0 && name[0] == ':') {
        if (nl == 7 && memcmp(name, ":method", 7) == 0)
            r->method = hx_method_name(value, vl);
        else if (nl == 5 && memcmp(name, ":path", 5) == 0)
            rc = hx_h1_set_target(r, (const char *)value, vl);
        else if (nl == 10 && memcmp(name, ":authority", 10) == 0 && !s->has_host)
            rc = hx_headers_addn(&r->headers, "host", 4, (const char *)value, vl), s->has_host = true;
        return rc == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (nl == 4 && memcmp(name, "host", 4) == 0) {
        if (s->has_host)
            return 0; /* :authority wins (RFC 9113 8.3.1) */
        s->has_host = true;
    }
    rc = hx_headers_addn(&r->headers, (const char *)name, nl, (const char *)value, vl);
    return rc == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *ud)
{
    (void)flags, (void)ud;
    h2_stream *s = nghttp2_session_get_stream_user_data(sess, id);
    if (s == NULL || s->req == NULL || s->state != H2S_BODY)
        return 0; /* after an early answer: read and dropped */
    hx_req *r = s->req;
    r->bytes_in += len;
    if (r->body.len + len > (size_t)s->c->w->cfg->server.max_body_bytes) {
        answer_error(s, HX_ERR_BODY_TOO_LARGE);
        return 0;
    }
    h2_conn *c = s->c;
    if (c->body_bytes + len > (size_t)HX_H2_BODY_BUDGET(c->w->cfg->server.max_body_bytes)) {
        /* Refused before any processing: the client may retry it. */
        nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        hx_h2_set_stream_state(s, H2S_DONE, "connection body budget");
        c->body_bytes -= s->body_counted;
        s->body_counted = 0;
        hx_buf_free(&r->body);
        return 0;
    }
    if (hx_buf_append(&r->body, data, len) != 0) {
        answer_error(s, HX_ERR_INTERNAL);
        return 0;
    }
    s->body_counted += len;
    c->body_bytes += len;
    return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *ud)
{
    h2_conn *c = ud;
    if (!hx_h2_guard_frame(c, f))
        return c->goaway_due ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    h2_stream *s = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
    if (s == NULL || s->req == NULL)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && s->state == H2S_HEADERS) {
        if (!head_complete(s))
            return 0;
        if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            hx_h2_set_stream_state(s, H2S_BODY, "head complete, body follows");
            const char *expect = hx_headers_get(&s->req->headers, "expect");
            if (expect && strcasecmp(expect, "100-continue") == 0) {
                /* The body is welcome (its size was checked above). */
                nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE};
                nghttp2_submit_headers(sess, NGHTTP2_FLAG_NONE, s->id, NULL, &nv, 1, NULL);
            }
            return 0;
        }
    }
    if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && (s->state == H2S_HEADERS || s->state == H2S_BODY))
        dispatch(s);
    return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t err, void *ud)
{
    (void)err;
    h2_conn *c = ud;
    h2_stream *s = nghttp2_session_get_stream_user_data(sess, id);
    if (s == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(sess, id, NULL);
    hx_h2_set_stream_state(s, H2S_CLOSED, err ? "reset" : "closed");
    stream_release_req(s);
    stream_unlink_free(s);
    if (c->nstreams == 0 && c->state == H2C_OPEN)
        hx_h2_guard_idle(c);
    else if (c->nstreams == 0 && c->state == H2C_DRAINING)
        hx_h2_set_conn_state(c, H2C_CLOSING, "drained");
    return 0;
}

static int on_frame_send(nghttp2_session *sess, const nghttp2_frame *f, void *ud)
{
    h2_conn *c = ud;
    (void)sess;
    if (f->hd.type == NGHTTP2_RST_STREAM)
        hx_h2_guard_reset_sent(c);
    else if (f->hd.type == NGHTTP2_GOAWAY)
        hx_h2_goaway_sent(c, f->goaway.error_code);
    else if (f->hd.type == NGHTTP2_DATA && f->hd.length > 0)
        hx_h2_guard_data_sent(c); /* also the slow-read clock's progress */
    return 0;
}

static ssize_t on_send(nghttp2_session *sess, const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)sess, (void)flags;
    h2_conn *c = ud;
    if (c->out_pending >= HX_H2_CONN_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK; /* the socket drains first */
    return hx_h2_io_write(c, data, len) == 0 ? (ssize_t)len : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* ---- nghttp2 allocations through util/alloc.h --------------------------- */

static void *mem_malloc(size_t n, void *ud)
{
    (void)ud;
    return hx_malloc(n);
}
static void mem_free(void *p, void *ud)
{
    (void)ud;
    hx_free(p);
}
static void *mem_calloc(size_t n, size_t sz, void *ud)
{
    (void)ud;
    return hx_calloc(n, sz);
}
static void *mem_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    return hx_realloc(p, n);
}
static nghttp2_mem h2_mem = {NULL, mem_malloc, mem_free, mem_calloc, mem_realloc};

static int session_new(h2_conn *c)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -1;
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_option *opt = hx_h2_guard_options(c->w->cfg);
    int rv = opt ? nghttp2_session_server_new3(&c->sess, cb, c, opt, &h2_mem) : -1;
    nghttp2_session_callbacks_del(cb);
    if (opt)
        nghttp2_option_del(opt);
    if (rv != 0)
        return -1;
    const hx_cfg_server *sv = &c->w->cfg->server;
    const hx_cfg_http2 *h = &sv->http2;
    int64_t hl = h->max_header_list_size > 0 && h->max_header_list_size < sv->max_header_bytes
                     ? h->max_header_list_size
                     : sv->max_header_bytes;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)h->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)h->initial_window_size},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, (uint32_t)h->max_frame_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)hl},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    return nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) == 0 ? 0 : -1;
}

/* ---- connection life ---------------------------------------------------- */

h2_conn *hx_h2_conn_new(hx_worker *w)
{
    h2_conn *c = hx_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->w = w;
    c->state = H2C_OPEN;
    if (hx_h2_io_init(c) != 0) {
        hx_free(c);
        return NULL;
    }
    c->next = w->h2_conns;
    if (w->h2_conns)
        w->h2_conns->prev = c;
    w->h2_conns = c;
    w->nconns++;
    return c;
}

void hx_h2_conn_freed(h2_conn *c)
{
    hx_worker *w = c->w;
    hx_free(c);
    hx_worker_maybe_stop(w);
}

void hx_h2_conn_close(h2_conn *c, const char *why)
{
    if (c->state == H2C_CLOSED)
        return;
    if (c->in_recv) {
        c->close_due = true; /* nghttp2 is on the stack */
        return;
    }
    hx_h2_set_conn_state(c, H2C_CLOSED, why);
    hx_worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->h2_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    if (c->counted)
        atomic_fetch_sub(&w->srv->conns, 1);
    while (c->streams) {
        h2_stream *s = c->streams;
        hx_h2_set_stream_state(s, H2S_CLOSED, "connection closed");
        stream_release_req(s);
        stream_unlink_free(s);
    }
    nghttp2_session_del(c->sess);
    c->sess = NULL;
    c->sess_dead = true;
    hx_h2_io_close(c);
}

void hx_h2_on_eof(h2_conn *c)
{
    hx_h2_conn_close(c, "client gone");
}

void hx_h2_on_input(h2_conn *c, const uint8_t *data, size_t len)
{
    if (c->state == H2C_CLOSING || c->sess_dead)
        return; /* the GOAWAY flushes; input is dropped */
    c->in_recv = true;
    ssize_t rv = nghttp2_session_mem_recv(c->sess, data, len);
    c->in_recv = false;
    if (c->goaway_due) {
        hx_h2_abuse_finish(c); /* rv is our callback's failure */
    } else if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
        c->sess_dead = true; /* hx_h2_abuse writes its GOAWAY by hand */
        hx_h2_abuse(c, rv == NGHTTP2_ERR_FLOODED ? "flood" : "continuation_flood");
    } else if (rv < 0 && c->state != H2C_CLOSED) {
        /* A connection error (bad preface, HPACK failure: a header field
         * over nghttp2's 64 KiB bound...): nghttp2 has usually queued a
         * GOAWAY saying why; flush it (or ours), then close. */
        nghttp2_session_terminate_session(c->sess, NGHTTP2_PROTOCOL_ERROR);
        if (c->state != H2C_CLOSING)
            hx_h2_set_conn_state(c, H2C_CLOSING, "protocol error");
    }
    if (c->close_due) {
        c->close_due = false;
        hx_h2_conn_close(c, "closed during input");
        return;
    }
    if (c->state == H2C_CLOSED)
        return;
    /* A client that sends but does not read (PINGs whose answers pile up)
     * is not read either until its output drains. */
    if (c->out_pending > HX_H2_CONN_HIGH)
        hx_h2_io_pause(c);
    hx_h2_io_flush_soon(c);
}

static void on_linger(uv_timer_t *t)
{
    hx_h2_conn_close(t->data, "linger over");
}

/* After the output of a GOAWAY: the connection ends once it is written
 * (FIN, a short linger, close). */
static void maybe_finish(h2_conn *c)
{
    if (c->state == H2C_CLOSED || c->out_pending > 0 || c->lingering)
        return;
    if (c->state == H2C_CLOSING) {
        c->lingering = true;
        uv_timer_stop(&c->slow_t);
        if (hx_h2_io_finish(c) != 0) {
            hx_h2_conn_close(c, "goaway flushed");
            return;
        }
        uv_timer_start(&c->idle_t, on_linger, HX_H2_LINGER_MS, 0);
        return;
    }
    if (!c->sess_dead && !nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess))
        hx_h2_conn_close(c, "session over");
}

void hx_h2_on_output(h2_conn *c)
{
    if (!c->sess_dead && nghttp2_session_send(c->sess) != 0) {
        c->sess_dead = true;
        hx_h2_conn_close(c, "session send failed");
        return;
    }
    if (c->state == H2C_CLOSED)
        return;
    for (h2_stream *s = c->streams, *next; s; s = next) {
        next = s->next;
        if (s->busy && hx_h2_stream_buffered(s) <= HX_H2_STREAM_LOW && c->out_pending <= HX_H2_CONN_LOW) {
            s->busy = false;
            hx_req *r = s->req;
            if (r && r->on_drain)
                r->on_drain(r, r->cb_ud); /* a later turn than the write it answers */
            if (c->state == H2C_CLOSED)
                return;
        }
    }
    hx_h2_guard_output(c, false);
    maybe_finish(c);
}

void hx_h2_on_written(h2_conn *c, size_t len)
{
    (void)len;
    hx_h2_guard_output(c, false);
    if (c->out_pending <= HX_H2_CONN_LOW)
        hx_h2_io_resume(c);
    if (c->state == H2C_CLOSING || c->sess_dead) {
        maybe_finish(c);
        return;
    }
    /* Room again: nghttp2 frames more, busy writers hear on_drain. */
    bool more = nghttp2_session_want_write(c->sess) != 0;
    for (const h2_stream *s = c->streams; s && !more; s = s->next)
        more = s->busy;
    if (more)
        hx_h2_io_flush_soon(c);
    else
        maybe_finish(c);
}

int hx_h2_conn_begin(h2_conn *c, long max_conns, const uint8_t *data, size_t len)
{
    hx_worker *w = c->w;
    if (!c->counted) {
        if (atomic_fetch_add(&w->srv->conns, 1) >= max_conns) {
            atomic_fetch_sub(&w->srv->conns, 1);
            hx_h2_conn_close(c, "over max_connections");
            return -1;
        }
        c->counted = true;
    }
    hx_h2_guard_init(c);
    if (session_new(c) != 0 || hx_h2_io_start(c) != 0) {
        c->sess_dead = c->sess == NULL;
        hx_h2_conn_close(c, "session start failed");
        return -1;
    }
    hx_h2_guard_idle(c);
    if (len > 0)
        hx_h2_on_input(c, data, len);
    if (c->w->draining && c->state == H2C_OPEN)
        drain_one(c); /* handed over by h1 after the drain began */
    hx_h2_io_flush_soon(c);
    return 0;
}

int hx_h2_adopt(hx_worker *w, int fd, const char *data, size_t len, const char *peer_ip, int peer_port,
                bool counted)
{
    h2_conn *c = hx_h2_conn_new(w);
    if (c == NULL)
        return -1; /* the caller still owns fd */
    snprintf(c->peer_ip, sizeof c->peer_ip, "%s", peer_ip);
    c->peer_port = peer_port;
    c->counted = counted; /* from here on the slot is this connection's */
    if (hx_h2_io_open(c, fd) != 0) {
        c->sess_dead = true;
        hx_h2_conn_close(c, "adopt failed");
        return 0;
    }
    hx_h2_conn_begin(c, LONG_MAX, (const uint8_t *)data, len);
    return 0;
}

int hx_h2_adopt_io(hx_worker *w, hx_io *io, const char *peer_ip, int peer_port, bool counted)
{
    h2_conn *c = hx_h2_conn_new(w);
    if (c == NULL)
        return -1;
    snprintf(c->peer_ip, sizeof c->peer_ip, "%s", peer_ip);
    c->peer_port = peer_port;
    c->counted = counted;
    hx_h2_io_take(c, io);
    hx_h2_conn_begin(c, LONG_MAX, NULL, 0);
    return 0;
}

/* ---- shutdown ----------------------------------------------------------- */

/* GOAWAY with the last stream we took: those finish, no new one. */
static void drain_one(h2_conn *c)
{
    if (c->state != H2C_OPEN)
        return;
    if (c->sess_dead) {
        hx_h2_conn_close(c, "draining");
        return;
    }
    int32_t last = nghttp2_session_get_last_proc_stream_id(c->sess);
    nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0);
    hx_h2_count_goaway("shutdown");
    hx_h2_set_conn_state(c, c->nstreams ? H2C_DRAINING : H2C_CLOSING, "shutdown");
    hx_h2_io_flush_soon(c);
}

void hx_h2_drain(hx_worker *w)
{
    for (h2_conn *c = w->h2_conns, *next; c; c = next) {
        next = c->next;
        drain_one(c);
    }
}

void hx_h2_close_all(hx_worker *w)
{
    while (w->h2_conns)
        hx_h2_conn_close(w->h2_conns, "closing all");
}

bool hx_h2_shed_one(hx_worker *w)
{
    h2_conn *idle = NULL;
    for (h2_conn *c = w->h2_conns; c; c = c->next) {
        if (c->state == H2C_CLOSING) {
            hx_h2_conn_close(c, "shed for a descriptor");
            return true;
        }
        if (idle == NULL && c->nstreams == 0 && c->out_pending == 0)
            idle = c;
    }
    if (idle)
        hx_h2_conn_close(idle, "shed for a descriptor");
    return idle != NULL;
}
