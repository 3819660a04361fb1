/* HTTP/1.1 adapter: http-parser on a libuv TCP stream, feeding hx_req.
 *
 * One request is handled at a time per connection; pipelined requests wait
 * (parser paused, bytes kept) until the current response has ended, so
 * responses always leave in request order. Two timers per connection: `rt`
 * for read / idle / linger deadlines, `wt` for a write that stalls. */
#include <fcntl.h>
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/h1_int.h"
#include "http/redirect.h"
#include "http/request.h"
#include "http/server_int.h"
#include "obs/log.h"
#include "util/alloc.h"

static http_parser_settings settings;
static void parse_input(h1_conn *c);
static void rt_arm(h1_conn *c, enum rt_mode mode);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- transport (hx_transport) ----------------------------------------- */

static int tp_head(hx_req *r, int status, const hx_headers *h, int64_t content_length)
{
    h1_conn *c = r->tp_ctx;
    hx_buf b;
    hx_buf_init(&b, HX_H1_HEAD_MAX);
    if (c->w->draining || !c->keep_alive)
        c->close_after = true;
    bool no_body = status < 200 || status == 204 || status == 304;
    c->chunked_out = false;
    hx_h1_update_date(c->w);
    /* Plain appends: this runs once per answer and printf costs more
     * than the rest of the head together. */
    int ok = hx_buf_append(&b, r->http_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", 9) == 0 &&
             hx_buf_append_int(&b, status) == 0 && hx_buf_append(&b, " ", 1) == 0 &&
             hx_buf_append_str(&b, hx_http_reason(status)) == 0 &&
             hx_buf_append(&b, "\r\nDate: ", 8) == 0 && hx_buf_append_str(&b, c->w->date) == 0 &&
             hx_buf_append(&b, "\r\n", 2) == 0;
    for (size_t i = 0; ok && i < h->n; i++)
        ok = hx_buf_append_str(&b, h->items[i].name) == 0 && hx_buf_append(&b, ": ", 2) == 0 &&
             hx_buf_append_str(&b, h->items[i].value) == 0 && hx_buf_append(&b, "\r\n", 2) == 0;
    const char *alt_svc = hx_res_alt_svc();
    if (ok && alt_svc)
        ok = hx_buf_printf(&b, "Alt-Svc: %s\r\n", alt_svc) == 0;
    if (ok && !no_body) {
        if (content_length >= 0)
            ok = hx_buf_append(&b, "Content-Length: ", 16) == 0 && hx_buf_append_int(&b, content_length) == 0 &&
                 hx_buf_append(&b, "\r\n", 2) == 0;
        else if (r->http_minor >= 1 && !r->head_only)
            ok = hx_buf_append_str(&b, "Transfer-Encoding: chunked\r\n") == 0, c->chunked_out = true;
        else
            c->close_after = true; /* HTTP/1.0 stream: the close ends the body */
    }
    if (ok && c->close_after)
        ok = hx_buf_append_str(&b, "Connection: close\r\n") == 0;
    else if (ok && r->http_minor == 0)
        ok = hx_buf_append_str(&b, "Connection: keep-alive\r\n") == 0;
    if (ok)
        ok = hx_buf_append(&b, "\r\n", 2) == 0;
    int rc = ok ? hx_h1_queue_write(c, b.data, b.len, NULL, 0, NULL, 0) : HX_RES_ENOMEM;
    hx_buf_free(&b);
    return rc;
}

static int tp_body(hx_req *r, const void *data, size_t len)
{
    h1_conn *c = r->tp_ctx;
    if (!c->chunked_out)
        return hx_h1_queue_write(c, data, len, NULL, 0, NULL, 0);
    char pre[24];
    size_t n = 0;
    for (int shift = (int)(sizeof len * 8) - 4; shift >= 0; shift -= 4) {
        unsigned d = (unsigned)(len >> shift) & 0xf;
        if (d || n || shift == 0)
            pre[n++] = "0123456789abcdef"[d];
    }
    pre[n++] = '\r';
    pre[n++] = '\n';
    return hx_h1_queue_write(c, pre, n, data, len, "\r\n", 2);
}

/* The response is complete: move on to the next request or close. */
static void finish_request(h1_conn *c)
{
    hx_req *r = c->req;
    c->req = NULL;
    c->busy = false;
    if (r) {
        r->tp = NULL;
        r->tp_ctx = NULL;
        hx_req_unref(r);
    }
    if (c->state == H1_CLOSED)
        return;
    if (c->close_after || c->state == H1_DISCARD) {
        if (c->state != H1_DISCARD)
            hx_h1_set_state(c, H1_DISCARD, "last answer ended");
        if (c->out_pending == 0)
            hx_h1_begin_linger(c);
        return;
    }
    hx_h1_set_state(c, H1_IDLE, "answer ended, keep-alive");
    /* Between requests an idle keep-alive connection holds no burst-sized
     * output buffer (a thousand of them add up). */
    if (c->obuf.len == 0 && c->obuf.cap > HX_H1_OBUF_KEEP)
        hx_buf_free(&c->obuf);
    rt_arm(c, RT_IDLE);
    /* A pipelining client that does not read its answers gets no more
     * until it does (wrote() resumes): its output stays bounded. */
    if (c->out_pending > HX_H1_HIGH_WATER) {
        c->parse_held = true;
        return;
    }
    if (!c->in_parse)
        hx_h1_resume_input(c);
}

static int tp_end(hx_req *r)
{
    h1_conn *c = r->tp_ctx;
    int rc = HX_RES_OK;
    if (c->chunked_out)
        rc = hx_h1_queue_write(c, "0\r\n\r\n", 5, NULL, 0, NULL, 0);
    finish_request(c);
    return rc < 0 ? rc : HX_RES_OK;
}

static void tp_abort(hx_req *r)
{
    h1_conn *c = r->tp_ctx;
    r->on_abort = NULL; /* the handler asked for it: no callback back */
    hx_h1_conn_close(c, "handler aborted");
}

static const hx_transport h1_transport = {tp_head, tp_body, tp_end, tp_abort, NULL}; /* no early data on TCP */

/* ---- connection lifetime ---------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    h1_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    hx_worker *w = c->w;
    hx_buf_free(&c->in);
    hx_buf_free(&c->obuf);
    hx_buf_free(&c->url);
    hx_buf_free(&c->hname);
    hx_buf_free(&c->hval);
    hx_free(c->io);
    hx_free(c);
    hx_worker_maybe_stop(w);
}

void hx_h1_conn_close(h1_conn *c, const char *why)
{
    if (c->state == H1_CLOSED)
        return;
    hx_h1_set_state(c, H1_CLOSED, why);
    hx_worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    if (c->counted)
        atomic_fetch_sub(&w->srv->conns, 1);
    hx_req *r = c->req;
    c->req = NULL;
    if (r) {
        if (r->tp_ctx == c && !r->ended)
            hx_req_abort(r); /* the client is gone: tell the handler */
        r->tp = NULL;
        r->tp_ctx = NULL;
        hx_req_unref(r);
    }
    if (c->io)
        hx_io_close(c->io, on_handle_closed);
    else
        c->open_handles--; /* the socket went to h2 */
    uv_close((uv_handle_t *)&c->rt, on_handle_closed);
    uv_close((uv_handle_t *)&c->wt, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    h1_conn *c = s->data;
    if (c->state == H1_CLOSED)
        return;
    if (status < 0)
        hx_h1_conn_close(c, "shutdown failed");
}

/* Output done on a connection we are closing: send FIN, then keep reading
 * and discarding for a while so unread input does not turn into a reset
 * that destroys our last response on the client's side. */
void hx_h1_begin_linger(h1_conn *c)
{
    if (c->state == H1_LINGER || c->state == H1_CLOSED)
        return;
    hx_h1_set_state(c, H1_LINGER, "output done, closing");
    c->shutdown_req.data = c;
    if (hx_io_shutdown(c->io, &c->shutdown_req, on_shutdown) != 0) {
        hx_h1_conn_close(c, "shutdown failed");
        return;
    }
    rt_arm(c, RT_LINGER);
}

/* ---- timers ------------------------------------------------------------ */

static hx_req *ensure_req(h1_conn *c);

static void send_error(h1_conn *c, hx_err e)
{
    hx_req *r = ensure_req(c);
    c->close_after = true;
    if (c->state != H1_DISCARD)
        hx_h1_set_state(c, H1_DISCARD, "error answer");
    if (r && r->path == NULL)
        hx_h1_set_target(r, c->url.data ? c->url.data : "", c->url.len);
    if (r && r->request_id[0] == '\0')
        hx_req_assign_id(r, false); /* the headers never completed */
    if (r == NULL || hx_res_error(r, e, NULL) < 0)
        hx_h1_conn_close(c, "error answer failed");
}

static void on_rt(uv_timer_t *t)
{
    h1_conn *c = t->data;
    enum rt_mode mode = c->rt_mode;
    c->rt_mode = RT_NONE;
    if (c->state == H1_CLOSED)
        return;
    if (mode == RT_READ && (c->req != NULL || c->in.len > 0) && c->state == H1_READING) {
        send_error(c, HX_ERR_REQUEST_TIMEOUT);
        return;
    }
    if (mode == RT_HANDSHAKE)
        hx_h1_conn_close(c, "TLS handshake timeout");
    else if (mode == RT_READ || mode == RT_IDLE || mode == RT_LINGER)
        hx_h1_conn_close(c, mode == RT_LINGER ? "linger over" : "read or idle timeout");
}

static void rt_arm(h1_conn *c, enum rt_mode mode)
{
    const hx_cfg_server *s = &c->w->cfg->server;
    int64_t ms = mode == RT_HANDSHAKE ? s->tls.handshake_timeout
               : mode == RT_READ ? s->read_timeout
               : mode == RT_IDLE ? s->idle_timeout
               : mode == RT_LINGER ? HX_H1_LINGER_MS : 0;
    c->rt_mode = mode;
    if (ms <= 0) {
        uv_timer_stop(&c->rt);
        c->rt_mode = RT_NONE;
        return;
    }
    uv_timer_start(&c->rt, on_rt, (uint64_t)ms, 0);
}

/* ---- parser callbacks --------------------------------------------------- */

static int fail_cb(h1_conn *c, hx_err e)
{
    c->err = e;
    return -1;
}

static hx_req *ensure_req(h1_conn *c)
{
    if (c->req)
        return c->req;
    hx_req *r = hx_req_new(&h1_transport, c, c->w->cfg);
    if (r == NULL)
        return NULL;
    r->mw = hx_router_global_mw(c->w->router);
    hx_req_set_ctx(r, HX_REQ_CTX_APP, c->w->app);
    r->loop = &c->w->loop;
    memcpy(r->peer_ip, c->peer_ip, sizeof r->peer_ip);
    r->peer_port = c->peer_port;
    hx_io_req_facts(c->io, r);
    c->req = r;
    return r;
}

static int on_message_begin(http_parser *p)
{
    h1_conn *c = p->data;
    /* Bounds from the current config: a reload may have changed them. */
    size_t hmax = (size_t)c->w->cfg->server.max_header_bytes;
    hx_buf_reset(&c->url);
    hx_buf_reset(&c->hname);
    hx_buf_reset(&c->hval);
    c->url.max = c->hname.max = c->hval.max = hmax;
    c->in_value = false;
    c->in_trailers = false;
    c->header_bytes = 0;
    return ensure_req(c) ? 0 : fail_cb(c, HX_ERR_INTERNAL);
}

static int count_header_bytes(h1_conn *c, size_t n)
{
    c->header_bytes += n;
    return c->header_bytes > (size_t)c->w->cfg->server.max_header_bytes;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    h1_conn *c = p->data;
    if (count_header_bytes(c, n))
        return fail_cb(c, HX_ERR_HEADERS_TOO_LARGE);
    return hx_buf_append(&c->url, at, n) == 0 ? 0 : fail_cb(c, HX_ERR_INTERNAL);
}

static int push_header(h1_conn *c)
{
    if (c->hname.len == 0)
        return 0;
    int rc = hx_headers_addn(&c->req->headers, c->hname.data, c->hname.len,
                             c->hval.data ? c->hval.data : "", c->hval.len);
    hx_buf_reset(&c->hname);
    hx_buf_reset(&c->hval);
    c->in_value = false;
    return rc;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    h1_conn *c = p->data;
    if (count_header_bytes(c, n))
        return fail_cb(c, HX_ERR_HEADERS_TOO_LARGE);
    if (!hx_h1_is_token(at, n))
        return fail_cb(c, HX_ERR_BAD_REQUEST);
    /* Trailers are counted against the header limit and dropped: they
     * arrive after the request was authenticated by its real headers and
     * must never be mistaken for them (X-API-Key, X-Forwarded-For). */
    if (c->in_trailers)
        return 0;
    if (c->in_value && push_header(c) != 0)
        return fail_cb(c, HX_ERR_INTERNAL);
    return hx_buf_append(&c->hname, at, n) == 0 ? 0 : fail_cb(c, HX_ERR_INTERNAL);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    h1_conn *c = p->data;
    if (count_header_bytes(c, n))
        return fail_cb(c, HX_ERR_HEADERS_TOO_LARGE);
    if (c->in_trailers)
        return 0;
    c->in_value = true;
    return hx_buf_append(&c->hval, at, n) == 0 ? 0 : fail_cb(c, HX_ERR_INTERNAL);
}

static int on_headers_complete(http_parser *p)
{
    h1_conn *c = p->data;
    hx_req *r = c->req;
    if (push_header(c) != 0 || hx_h1_set_target(r, c->url.data ? c->url.data : "", c->url.len) != 0)
        return fail_cb(c, HX_ERR_INTERNAL);
    c->in_trailers = true;
    r->method = http_method_str((enum http_method)p->method);
    /* An error answer goes out as HTTP/1.1 unless the client spoke 1.0. */
    r->http_minor = p->http_major == 1 && p->http_minor == 0 ? 0 : 1;
    hx_err bad = hx_h1_framing_error(p->http_major, p->http_minor, (p->flags & F_CHUNKED) != 0, &r->headers);
    if (bad != HX_ERR__COUNT)
        return fail_cb(c, bad);
    r->head_only = p->method == HTTP_HEAD;
    c->keep_alive = http_should_keep_alive(p) != 0;
    hx_req_assign_id(r, (r->mw & HX_MW_REQUEST_ID) != 0);
    bool has_body = (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX);
    if (p->content_length != ULLONG_MAX && p->content_length > (uint64_t)c->w->cfg->server.max_body_bytes)
        return fail_cb(c, HX_ERR_BODY_TOO_LARGE);
    const char *expect = hx_headers_get(&r->headers, "expect");
    if (expect && has_body && r->http_minor >= 1 && strcasecmp(expect, "100-continue") == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (hx_h1_queue_write(c, cont, sizeof cont - 1, NULL, 0, NULL, 0) < 0)
            return fail_cb(c, HX_ERR_INTERNAL);
        r->bytes_out = 0; /* interim response is not part of this response */
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    h1_conn *c = p->data;
    c->req->bytes_in += n;
    if (c->req->body.len + n > (size_t)c->w->cfg->server.max_body_bytes)
        return fail_cb(c, HX_ERR_BODY_TOO_LARGE);
    return hx_buf_append(&c->req->body, at, n) == 0 ? 0 : fail_cb(c, HX_ERR_INTERNAL);
}

static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

/* ---- input ------------------------------------------------------------- */

static void dispatch(h1_conn *c)
{
    hx_h1_set_state(c, H1_HANDLING, "request complete");
    uv_timer_stop(&c->rt);
    c->rt_mode = RT_NONE;
    hx_req *r = c->req;
    r->bytes_in += c->header_bytes;
    if (c->parser.upgrade)
        c->close_after = true; /* we do not switch protocols on HTTP/1.1 */
    if (atomic_load(&c->w->srv->stopping))
        c->close_after = true;
    /* Our own reference: a synchronous handler may end or abort the
     * request, and nothing may free it under the router's feet. */
    hx_req_ref(r);
    const hx_server *srv = c->w->srv;
    if (c->tls || !srv->tls || !c->w->cfg->server.tls.redirect_http || !hx_redirect_https(r, srv->tls_port))
        hx_router_dispatch(c->w->router, r);
    hx_req_unref(r);
}

static hx_err parser_error_to_hx(h1_conn *c, enum http_errno e)
{
    if (c->err != HX_ERR__COUNT)
        return c->err;
    if (e == HPE_HEADER_OVERFLOW)
        return HX_ERR_HEADERS_TOO_LARGE;
    return HX_ERR_BAD_REQUEST;
}

static void parse_input(h1_conn *c)
{
    c->in_parse = true;
    while (!c->parse_held && c->in.len > 0 && (c->state == H1_IDLE || c->state == H1_READING)) {
        if (c->state == H1_IDLE) {
            hx_h1_set_state(c, H1_READING, "request bytes");
            rt_arm(c, RT_READ);
        }
        size_t n = http_parser_execute(&c->parser, &settings, c->in.data, c->in.len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            hx_buf_consume(&c->in, n);
            http_parser_pause(&c->parser, 0);
            dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            hx_buf_reset(&c->in);
            send_error(c, parser_error_to_hx(c, e));
            break;
        }
        hx_buf_consume(&c->in, n);
    }
    c->in_parse = false;
    if (c->read_stopped && c->state != H1_LINGER && c->state != H1_CLOSED && c->in.len <= HX_H1_PENDING_MAX) {
        c->read_stopped = false; /* what was queued is parsed down: read again */
        hx_io_read_start(c->io, on_alloc, on_read);
    }
}

/* Parses what is queued, or (nothing queued) reads again. */
void hx_h1_resume_input(h1_conn *c)
{
    if (c->state == H1_CLOSED || c->in_parse)
        return;
    parse_input(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    h1_conn *c = h->data;
    *buf = uv_buf_init(c->w->rbuf, sizeof c->w->rbuf);
}

/* h2c with prior knowledge: a connection whose first bytes are the
 * HTTP/2 preface goes to the HTTP/2 adapter with what was read so far
 * (a duplicate descriptor; this connection closes from IDLE, a legal
 * move). Returns true when the bytes are (or may become) the preface. */
static bool h2c_handoff(h1_conn *c)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t plen = sizeof preface - 1;
    size_t n = c->in.len < plen ? c->in.len : plen;
    if (memcmp(c->in.data, preface, n) != 0) {
        c->h2c_probe = false;
        return false;
    }
    if (c->in.len < plen)
        return true; /* the rest of the preface follows (RT_READ armed) */
    c->h2c_probe = false;
    uv_os_fd_t fd;
    int dupfd = uv_fileno((uv_handle_t *)&c->io->tcp, &fd) == 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (dupfd < 0) {
        hx_h1_conn_close(c, "h2c hand-off failed");
        return true;
    }
    if (hx_h2_adopt(c->w, dupfd, c->in.data, c->in.len, c->peer_ip, c->peer_port, c->counted) != 0) {
        close(dupfd);
        hx_h1_conn_close(c, "h2c hand-off failed");
        return true;
    }
    c->counted = false; /* the slot moved with the connection */
    hx_buf_reset(&c->in);
    hx_h1_conn_close(c, "handed to http/2 (h2c)");
    return true;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h1_conn *c = s->data;
    if (c->state == H1_CLOSED)
        return;
    if (nread < 0) {
        hx_h1_conn_close(c, "client gone"); /* EOF or error; an in-flight request is aborted */
        return;
    }
    if (nread == 0)
        return;
    if (c->state == H1_DISCARD || c->state == H1_LINGER)
        return;
    if (hx_buf_append(&c->in, buf->base, (size_t)nread) != 0) {
        hx_h1_conn_close(c, "input past its bound");
        return;
    }
    if (c->h2c_probe && c->state == H1_IDLE && h2c_handoff(c))
        return;
    if (c->state == H1_HANDLING || c->parse_held) {
        /* Pipelined input waits; stop reading once enough is queued. */
        if (c->in.len > HX_H1_PENDING_MAX && !c->read_stopped) {
            hx_io_read_stop(c->io);
            c->read_stopped = true;
        }
        return;
    }
    parse_input(c);
}

/* ---- new connections (accept.c takes them from the listener) ---------- */

/* The TLS handshake finished: the protocol ALPN chose must be ours (the
 * context offers only what an adapter serves), then requests may come. */
static void on_tls_ready(hx_io *io)
{
    h1_conn *c = io->tcp.data;
    if (c->state == H1_CLOSED)
        return;
    hx_io_tls_facts f = hx_io_tls_get_facts(io);
    const hx_proto *p = hx_alpn_proto(f.alpn);
    if (p == &hx_h2_proto && c->state == H1_IDLE && c->in.len == 0) {
        /* ALPN h2: the socket and its TLS session move to h2 as they are
         * (the slot of max_connections with them); this side closes. */
        c->io = NULL;
        io->tcp.data = NULL;
        if (hx_h2_adopt_io(c->w, io, c->peer_ip, c->peer_port, c->counted) != 0) {
            c->io = io;
            io->tcp.data = c;
            hx_h1_conn_close(c, "h2 hand-off failed");
            return;
        }
        c->counted = false;
        hx_h1_conn_close(c, "handed to http/2 (ALPN h2)");
        return;
    }
    if (p != &hx_h1_proto) {
        hx_h1_conn_close(c, "ALPN protocol without an adapter");
        return;
    }
    if (c->rt_mode == RT_HANDSHAKE)
        rt_arm(c, RT_READ);
}

static void init_settings(void)
{
    if (settings.on_message_complete)
        return;
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
}

h1_conn *hx_h1_conn_new(hx_worker *w, bool tls)
{
    init_settings();
    h1_conn *c = hx_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->w = w;
    c->state = H1_IDLE;
    c->err = HX_ERR__COUNT;
    size_t hmax = (size_t)w->cfg->server.max_header_bytes;
    hx_buf_init(&c->in, HX_H1_IN_MAX);
    hx_buf_init(&c->obuf, HX_H1_OBUF_MAX);
    hx_buf_init(&c->url, hmax);
    hx_buf_init(&c->hname, hmax);
    hx_buf_init(&c->hval, hmax);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->tls = tls;
    c->io = hx_malloc(sizeof *c->io);
    if (c->io == NULL) {
        hx_free(c);
        return NULL;
    }
    hx_io_init(&w->loop, c->io, c);
    uv_timer_init(&w->loop, &c->rt);
    uv_timer_init(&w->loop, &c->wt);
    c->rt.data = c->wt.data = c;
    c->open_handles = 3;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    return c;
}

uv_stream_t *hx_h1_conn_stream(h1_conn *c)
{
    return hx_io_stream(c->io);
}

void hx_h1_conn_discard(h1_conn *c)
{
    hx_h1_conn_close(c, "accept failed");
}

static void peer_name(h1_conn *c)
{
    hx_io_peer_name(c->io, c->peer_ip, sizeof c->peer_ip, &c->peer_port);
}

void hx_h1_conn_start(h1_conn *c, long max_conns)
{
    hx_worker *w = c->w;
    uv_tcp_nodelay(&c->io->tcp, 1);
    peer_name(c);
    if (atomic_fetch_add(&w->srv->conns, 1) >= max_conns) {
        atomic_fetch_sub(&w->srv->conns, 1);
        if (c->tls) {
            /* A polite 503 would first cost a handshake: close. */
            hx_h1_conn_close(c, "too many connections");
            return;
        }
        hx_io_read_start(c->io, on_alloc, on_read);
        send_error(c, HX_ERR_TOO_MANY_CONNECTIONS);
        return;
    }
    c->counted = true;
    c->h2c_probe = !c->tls && w->cfg->server.http2.enabled && w->cfg->server.http2.h2c;
    if (c->tls && hx_io_tls_start(c->io, on_tls_ready) != 0) {
        hx_h1_conn_close(c, "no TLS session");
        return;
    }
    if (hx_io_read_start(c->io, on_alloc, on_read) != 0) {
        hx_h1_conn_close(c, "read start failed");
        return;
    }
    rt_arm(c, c->tls ? RT_HANDSHAKE : RT_READ);
}

bool hx_h1_shed_one(hx_worker *w)
{
    h1_conn *idle = NULL;
    for (h1_conn *c = w->conns; c; c = c->next) {
        if (c->state == H1_LINGER) {
            hx_h1_conn_close(c, "shed for a descriptor");
            return true;
        }
        if (idle == NULL && c->state == H1_IDLE && c->req == NULL && c->in.len == 0 && c->out_pending == 0)
            idle = c;
    }
    if (idle)
        hx_h1_conn_close(idle, "shed for a descriptor");
    return idle != NULL;
}

void hx_h1_drain(hx_worker *w)
{
    h1_conn *c = w->conns;
    while (c) {
        h1_conn *next = c->next;
        if (c->state == H1_IDLE && c->in.len == 0 && c->out_pending == 0)
            hx_h1_conn_close(c, "draining");
        else
            c->close_after = true;
        c = next;
    }
}

void hx_h1_close_all(hx_worker *w)
{
    while (w->conns)
        hx_h1_conn_close(w->conns, "closing all");
}
