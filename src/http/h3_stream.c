/* HTTP/3 adapter, request side: nghttp3 turns a connection's streams into
 * requests; each becomes an hx_req with the same limits as HTTP/1.1 and
 * HTTP/2 (server.max_header_bytes: 431, server.max_body_bytes: 413,
 * server.read_timeout: 408, a connection's bodies within a budget) and
 * goes to the router once whole, after the packet that completed it was
 * read (never from inside a library callback). The answer is the
 * stream's hx_transport: body bytes stay in chunks until the client
 * acknowledged them (nghttp3 keeps pointers into them), HX_RES_BUSY past
 * HX_H3_STREAM_HIGH, on_drain once acknowledgements bring it under LOW.
 *
 * 0-RTT (RFC 8470): a request that arrived, in part, in early data and
 * is dispatched before the handshake completed carries hx_req.early_data;
 * the router serves, holds (when_confirmed) or refuses it. Past
 * server.http3.max_0rtt_size of early data it gets 425 at once. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/h3_int.h"
#include "obs/log.h"
#include "util/alloc.h"

/* ---- the answer's chunks -------------------------------------------------------- */

static int chunk_append(h3_stream *s, const void *data, size_t len)
{
    if (s->buffered + len > HX_H1_OBUF_MAX)
        return -1;
    h3_chunk *t = s->tail;
    if (t && t->cap - t->len >= len) {
        memcpy(t->data + t->len, data, len); /* past what nghttp3 holds: nothing moves */
        t->len += len;
    } else {
        size_t cap = len > HX_H3_CHUNK ? len : HX_H3_CHUNK;
        h3_chunk *ch = hx_malloc(sizeof *ch + cap);
        if (ch == NULL)
            return -1;
        ch->next = NULL;
        ch->cap = cap;
        ch->len = len;
        ch->sent = 0;
        memcpy(ch->data, data, len);
        if (t)
            t->next = ch;
        else
            s->head = ch;
        s->tail = ch;
    }
    s->buffered += len;
    return 0;
}

static void chunks_free(h3_stream *s)
{
    for (h3_chunk *ch = s->head, *next; ch; ch = next) {
        next = ch->next;
        hx_free(ch);
    }
    s->head = s->tail = NULL;
    s->buffered = 0;
    s->unacked_head = 0;
}

static nghttp3_ssize read_data(nghttp3_conn *h3, int64_t id, nghttp3_vec *vec, size_t veccnt, uint32_t *pflags,
                               void *ud, void *sud)
{
    (void)h3, (void)id, (void)ud;
    h3_stream *s = sud;
    size_t k = 0;
    h3_chunk *ch = s->head;
    for (; ch && k < veccnt; ch = ch->next) {
        if (ch->sent == ch->len)
            continue;
        vec[k].base = ch->data + ch->sent;
        vec[k].len = ch->len - ch->sent;
        ch->sent = ch->len;
        k++;
    }
    bool all_out = ch == NULL || (ch->sent == ch->len && ch->next == NULL);
    if (s->eof && all_out) {
        *pflags |= NGHTTP3_DATA_FLAG_EOF;
        return (nghttp3_ssize)k;
    }
    if (k == 0) {
        s->blocked = true;
        return NGHTTP3_ERR_WOULDBLOCK;
    }
    return (nghttp3_ssize)k;
}

static int h_acked(nghttp3_conn *h3, int64_t id, uint64_t len, void *ud, void *sud)
{
    (void)h3, (void)id, (void)ud;
    h3_stream *s = sud;
    if (s == NULL)
        return 0;
    s->unacked_head += len;
    while (s->head && s->unacked_head >= s->head->len && s->head->sent == s->head->len) {
        h3_chunk *ch = s->head;
        s->unacked_head -= ch->len;
        s->buffered -= ch->len;
        s->head = ch->next;
        if (s->head == NULL)
            s->tail = NULL;
        hx_free(ch);
    }
    if (s->busy && s->buffered <= HX_H3_STREAM_LOW)
        s->drain_due = s->c->drain_due = true;
    return 0;
}

/* ---- streams --------------------------------------------------------------------- */

static void stream_release_req(h3_stream *s)
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

static void stream_free(h3_stream *s)
{
    h3_conn *c = s->c;
    stream_release_req(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->nstreams--;
    chunks_free(s);
    hx_free(s);
}

void hx_h3_stream_free_all(h3_conn *c)
{
    while (c->streams) {
        if (c->h3)
            nghttp3_conn_set_stream_user_data(c->h3, c->streams->id, NULL);
        stream_free(c->streams);
    }
}

static void answer_error(h3_stream *s, hx_err e)
{
    hx_req *r = s->req;
    if (r == NULL)
        return;
    hx_stream_error_prep(r);
    /* RFC 9114 4.1.2: answered before the request ended: the rest of it
     * is not wanted (STOP_SENDING H3_NO_ERROR). */
    if (s->state == H3S_HEADERS || s->state == H3S_BODY)
        ngtcp2_conn_shutdown_stream_read(s->c->qc, s->id, NGHTTP3_H3_NO_ERROR);
    if (hx_res_error(r, e, NULL) >= 0 || s->req == NULL)
        return;
    ngtcp2_conn_shutdown_stream(s->c->qc, s->id, NGHTTP3_H3_INTERNAL_ERROR);
    s->state = H3S_DONE;
}

static int h_begin_headers(nghttp3_conn *h3, int64_t id, void *ud, void *sud)
{
    (void)sud;
    h3_conn *c = ud;
    hx_worker *w = c->hw->w;
    h3_stream *s = hx_calloc(1, sizeof *s);
    hx_req *r = s ? hx_req_new(&hx_h3_transport, s, w->cfg) : NULL;
    if (r == NULL) {
        hx_free(s);
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
    s->c = c;
    s->id = id;
    s->state = H3S_HEADERS;
    s->req = r;
    s->early = c->in_early;
    r->mw = hx_router_global_mw(w->router);
    hx_req_set_ctx(r, HX_REQ_CTX_APP, w->app);
    r->loop = &w->loop;
    r->http_minor = 1;
    r->secure = true;
    memcpy(r->peer_ip, c->peer_ip, sizeof r->peer_ip);
    r->peer_port = c->peer_port;
    hx_tls_session_peer(c->tls, r->peer_cert_sha256, r->peer_cert_subject); /* auth by client_cert */
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    nghttp3_conn_set_stream_user_data(h3, id, s);
    return 0;
}

static int h_recv_header(nghttp3_conn *h3, int64_t id, int32_t token, nghttp3_rcbuf *name, nghttp3_rcbuf *value,
                         uint8_t flags, void *ud, void *sud)
{
    (void)h3, (void)id, (void)token, (void)flags, (void)ud;
    h3_stream *s = sud;
    if (s == NULL || s->req == NULL || s->state != H3S_HEADERS || s->too_large)
        return 0;
    nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
    const char *nm = (const char *)n.base, *val = (const char *)v.base;
    s->header_bytes += n.len + v.len;
    if (s->header_bytes > (size_t)s->c->hw->w->cfg->server.max_header_bytes) {
        s->too_large = true; /* 431 once the head is complete */
        return 0;
    }
    hx_req *r = s->req;
    int rc = 0;
    if (n.len > 0 && nm[0] == ':') {
        if (n.len == 7 && memcmp(nm, ":method", 7) == 0)
            r->method = hx_method_name(v.base, v.len);
        else if (n.len == 5 && memcmp(nm, ":path", 5) == 0)
            rc = hx_h1_set_target(r, val, v.len);
        else if (n.len == 10 && memcmp(nm, ":authority", 10) == 0 && !s->has_host)
            rc = hx_headers_addn(&r->headers, "host", 4, val, v.len), s->has_host = true;
        return rc == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
    }
    if (n.len == 4 && memcmp(nm, "host", 4) == 0) {
        if (s->has_host)
            return 0; /* :authority wins (RFC 9114 4.3.1) */
        s->has_host = true;
    }
    rc = hx_headers_addn(&r->headers, nm, n.len, val, v.len);
    return rc == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}

/* The head is whole: false when an answer went out already. */
static bool head_complete(h3_stream *s)
{
    hx_err e = hx_stream_head_verdict(s->req, s->too_large, s->c->hw->w->cfg->server.max_body_bytes);
    if (e == HX_ERR__COUNT)
        return true;
    answer_error(s, e);
    return false;
}

static int h_end_headers(nghttp3_conn *h3, int64_t id, int fin, void *ud, void *sud)
{
    (void)h3, (void)id, (void)ud;
    h3_stream *s = sud;
    if (s == NULL || s->req == NULL || s->state != H3S_HEADERS)
        return 0;
    if (!head_complete(s))
        return 0;
    s->state = H3S_BODY;
    if (fin) {
        s->dispatch_due = true;
        s->c->dispatch_due = true;
    }
    return 0;
}

static int h_recv_data(nghttp3_conn *h3, int64_t id, const uint8_t *data, size_t len, void *ud, void *sud)
{
    (void)h3;
    h3_conn *c = ud;
    h3_stream *s = sud;
    /* Flow control: a body is bounded by max_body_bytes, not by the window. */
    ngtcp2_conn_extend_max_stream_offset(c->qc, id, len);
    ngtcp2_conn_extend_max_offset(c->qc, len);
    if (s == NULL || s->req == NULL || s->state != H3S_BODY)
        return 0; /* after an early answer: read and dropped */
    hx_req *r = s->req;
    s->early |= c->in_early;
    r->bytes_in += len;
    const hx_config *cfg = c->hw->w->cfg;
    if (r->body.len + len > (size_t)cfg->server.max_body_bytes) {
        answer_error(s, HX_ERR_BODY_TOO_LARGE);
        return 0;
    }
    if (c->body_bytes + len > (uint64_t)HX_H3_BODY_BUDGET(cfg->server.max_body_bytes)) {
        /* Refused before any processing: the client may retry it. */
        ngtcp2_conn_shutdown_stream(c->qc, id, NGHTTP3_H3_REQUEST_REJECTED);
        s->state = H3S_DONE;
        stream_release_req(s);
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

static int h_deferred_consume(nghttp3_conn *h3, int64_t id, size_t n, void *ud, void *sud)
{
    (void)h3, (void)sud;
    h3_conn *c = ud;
    ngtcp2_conn_extend_max_stream_offset(c->qc, id, n);
    ngtcp2_conn_extend_max_offset(c->qc, n);
    return 0;
}

static int h_end_stream(nghttp3_conn *h3, int64_t id, void *ud, void *sud)
{
    (void)h3, (void)id;
    h3_conn *c = ud;
    h3_stream *s = sud;
    if (s == NULL || s->req == NULL || s->state != H3S_BODY)
        return 0;
    s->early |= c->in_early;
    s->dispatch_due = true;
    c->dispatch_due = true;
    return 0;
}

static int h_stream_close(nghttp3_conn *h3, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)h3, (void)code;
    h3_conn *c = ud;
    h3_stream *s = sud;
    if (s)
        stream_free(s);
    if (ngtcp2_is_bidi_stream(id))
        ngtcp2_conn_extend_max_streams_bidi(c->qc, 1);
    return 0;
}

static int h_stop_sending(nghttp3_conn *h3, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)h3, (void)sud;
    h3_conn *c = ud;
    return ngtcp2_conn_shutdown_stream_read(c->qc, id, code) == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}

static int h_reset_stream(nghttp3_conn *h3, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)h3, (void)sud;
    h3_conn *c = ud;
    return ngtcp2_conn_shutdown_stream_write(c->qc, id, code) == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}

int hx_h3_http_open(h3_conn *c)
{
    if (c->h3)
        return 0;
    if (ngtcp2_conn_get_max_local_streams_uni(c->qc) < 3)
        return -1;
    static const nghttp3_callbacks cb = {
        .acked_stream_data = h_acked,
        .stream_close = h_stream_close,
        .recv_data = h_recv_data,
        .deferred_consume = h_deferred_consume,
        .begin_headers = h_begin_headers,
        .recv_header = h_recv_header,
        .end_headers = h_end_headers,
        .stop_sending = h_stop_sending,
        .end_stream = h_end_stream,
        .reset_stream = h_reset_stream,
    };
    nghttp3_settings st;
    nghttp3_settings_default(&st);
    st.max_field_section_size = (uint64_t)c->hw->w->cfg->server.max_header_bytes;
    st.qpack_max_dtable_capacity = 4096;
    st.qpack_blocked_streams = 100;
    if (nghttp3_conn_server_new(&c->h3, &cb, &st, nghttp3_mem_default(), c) != 0) {
        c->h3 = NULL;
        return -1;
    }
    const ngtcp2_transport_params *p = ngtcp2_conn_get_local_transport_params(c->qc);
    nghttp3_conn_set_max_client_streams_bidi(c->h3, p->initial_max_streams_bidi);
    int64_t ctrl, enc, dec;
    if (ngtcp2_conn_open_uni_stream(c->qc, &ctrl, NULL) != 0 || nghttp3_conn_bind_control_stream(c->h3, ctrl) != 0 ||
        ngtcp2_conn_open_uni_stream(c->qc, &enc, NULL) != 0 || ngtcp2_conn_open_uni_stream(c->qc, &dec, NULL) != 0 ||
        nghttp3_conn_bind_qpack_streams(c->h3, enc, dec) != 0)
        return -1;
    return 0;
}

/* ---- dispatch, held requests, drains: after each read ---------------------------- */

static void dispatch(h3_stream *s)
{
    h3_conn *c = s->c;
    hx_req *r = s->req;
    const hx_cfg_http3 *h = &c->hw->w->cfg->server.http3;
    if (s->early && !ngtcp2_conn_get_handshake_completed(c->qc)) {
        if (c->shared_pending) { /* another instance may have seen this first flight */
            s->gated = true;
            return;
        }
        if (c->shared_refused) {
            answer_error(s, HX_ERR_TOO_EARLY);
            return;
        }
        if (c->early_bytes > (size_t)h->max_0rtt_size) {
            hx_h3_count_early("too_large", c);
            answer_error(s, HX_ERR_TOO_EARLY);
            return;
        }
        r->early_data = true;
    }
    s->state = H3S_HANDLING;
    r->bytes_in += s->header_bytes;
    hx_req_ref(r); /* a synchronous handler may end or cut it */
    hx_router_dispatch(c->hw->w->router, r);
    hx_req_unref(r);
}

void hx_h3_streams_dispatch(h3_conn *c)
{
    if (!c->dispatch_due && !c->drain_due)
        return;
    c->dispatch_due = c->drain_due = false;
    for (h3_stream *s = c->streams, *next; s; s = next) {
        next = s->next;
        if (s->dispatch_due) {
            s->dispatch_due = false;
            if (s->req && s->state == H3S_BODY)
                dispatch(s);
        }
        if (s->drain_due) {
            s->drain_due = false;
            s->busy = false;
            if (s->req && s->req->on_drain)
                s->req->on_drain(s->req, s->req->cb_ud);
        }
    }
}

void hx_h3_streams_ungate(h3_conn *c)
{
    if (c->state >= H3C_CLOSING)
        return;
    for (h3_stream *s = c->streams; s; s = s->next)
        if (s->gated) {
            s->gated = false;
            s->dispatch_due = true;
            c->dispatch_due = true;
        }
    hx_h3_streams_dispatch(c);
    hx_h3_write_soon(c);
}

void hx_h3_streams_confirmed(h3_conn *c)
{
    for (h3_stream *s = c->streams, *next; s; s = next) {
        next = s->next;
        if (!s->held || s->req == NULL)
            continue;
        s->held = false;
        hx_req_cb cb = s->confirmed_cb;
        hx_req *r = hx_req_ref(s->req);
        cb(r, s->confirmed_ud);
        hx_req_unref(r);
    }
}

/* server.read_timeout, as on HTTP/1.1 and HTTP/2: a request still
 * arriving after it gets 408 (a slow client cannot hold streams and
 * bodies open for ever). Once a second, from the worker's sweep timer. */
void hx_h3_sweep(h3_worker *hw)
{
    int64_t ms = hw->w->cfg->server.read_timeout;
    if (ms <= 0)
        return;
    uint64_t now = hx_now_ns();
    for (h3_conn *c = hw->conns; c; c = c->next) {
        if (c->state >= H3C_CLOSING)
            continue;
        bool any = false;
        for (h3_stream *s = c->streams; s; s = s->next)
            if (s->req && (s->state == H3S_HEADERS || s->state == H3S_BODY) && !s->dispatch_due &&
                now - s->req->start_ns > (uint64_t)ms * 1000000ull) {
                answer_error(s, HX_ERR_REQUEST_TIMEOUT);
                any = true;
            }
        if (any)
            hx_h3_write_soon(c);
    }
}

/* ---- the stream's hx_transport ----------------------------------------------------- */

/* The head as nghttp3 pairs: names lowercased in one block (nghttp3
 * copies them on submit), hop-by-hop fields dropped (RFC 9114 4.2). */
static int submit_head(hx_req *r, int status, const hx_headers *h, int64_t content_length)
{
    h3_stream *s = r->tp_ctx;
    h3_conn *c = s->c;
    if (c->state >= H3C_CLOSING || c->h3 == NULL)
        return HX_RES_EGONE;
    bool no_body = status < 200 || status == 204 || status == 304;
    size_t need = 48, n = 2;
    for (size_t i = 0; i < h->n; i++)
        need += strlen(h->items[i].name) + 1, n++;
    if (need > HX_H3_HEAD_MAX)
        return HX_RES_ENOMEM;
    nghttp3_nv *nv = hx_calloc(n, sizeof *nv);
    char *block = hx_malloc(need);
    if (nv == NULL || block == NULL) {
        hx_free(nv);
        hx_free(block);
        return HX_RES_ENOMEM;
    }
    size_t k = 0, off;
    int sl = snprintf(block, 8, "%d", status);
    nv[k++] = (nghttp3_nv){(uint8_t *)":status", (uint8_t *)block, 7, (size_t)sl, NGHTTP3_NV_FLAG_NONE};
    off = (size_t)sl + 1;
    if (content_length >= 0 && !no_body) {
        int cl = snprintf(block + off, 24, "%lld", (long long)content_length);
        nv[k++] = (nghttp3_nv){(uint8_t *)"content-length", (uint8_t *)block + off, 14, (size_t)cl,
                               NGHTTP3_NV_FLAG_NONE};
        off += (size_t)cl + 1;
    }
    for (size_t i = 0; i < h->n; i++) {
        const char *name = h->items[i].name;
        if (hx_header_hop_by_hop(name) || strcasecmp(name, "content-length") == 0)
            continue;
        size_t nl = strlen(name);
        char *lc = block + off;
        for (size_t j = 0; j < nl; j++)
            lc[j] = (char)((name[j] >= 'A' && name[j] <= 'Z') ? name[j] + 32 : name[j]);
        off += nl + 1;
        nv[k++] = (nghttp3_nv){(uint8_t *)lc, (uint8_t *)h->items[i].value, nl, strlen(h->items[i].value),
                               NGHTTP3_NV_FLAG_NONE};
    }
    nghttp3_data_reader dr = {read_data};
    int rv = nghttp3_conn_submit_response(c->h3, s->id, nv, k, &dr);
    hx_free(nv);
    hx_free(block);
    if (rv != 0)
        return HX_RES_ENOMEM;
    s->state = H3S_ANSWERING;
    hx_h3_write_soon(c);
    return HX_RES_OK;
}

/* A head that cannot be submitted ends the stream (reset): the request is
 * never left open without an answer. */
static int tp_head(hx_req *r, int status, const hx_headers *h, int64_t content_length)
{
    int rc = submit_head(r, status, h, content_length);
    if (rc == HX_RES_ENOMEM) {
        h3_stream *s = r->tp_ctx;
        ngtcp2_conn_shutdown_stream(s->c->qc, s->id, NGHTTP3_H3_INTERNAL_ERROR);
        s->state = H3S_DONE;
        hx_h3_write_soon(s->c);
    }
    return rc;
}

static void stream_kick(h3_stream *s)
{
    h3_conn *c = s->c;
    if (s->blocked && c->h3 && c->state < H3C_CLOSING) {
        s->blocked = false;
        nghttp3_conn_resume_stream(c->h3, s->id);
    }
    hx_h3_write_soon(c);
}

static int tp_body(hx_req *r, const void *data, size_t len)
{
    h3_stream *s = r->tp_ctx;
    h3_conn *c = s->c;
    if (c->state >= H3C_CLOSING || c->h3 == NULL)
        return HX_RES_EGONE;
    if (chunk_append(s, data, len) != 0) {
        ngtcp2_conn_shutdown_stream(c->qc, s->id, NGHTTP3_H3_INTERNAL_ERROR);
        hx_h3_write_soon(c);
        return HX_RES_ENOMEM;
    }
    r->bytes_out += len;
    stream_kick(s);
    if (s->buffered > HX_H3_STREAM_HIGH) {
        s->busy = true;
        return HX_RES_BUSY;
    }
    return HX_RES_OK;
}

static int tp_end(hx_req *r)
{
    h3_stream *s = r->tp_ctx;
    if (s->state == H3S_DONE)
        return HX_RES_EGONE; /* reset already: its head could not be submitted */
    s->eof = true;
    s->state = H3S_DONE;
    stream_kick(s);
    return HX_RES_OK;
}

static void tp_abort(hx_req *r)
{
    h3_stream *s = r->tp_ctx;
    h3_conn *c = s->c;
    r->on_abort = NULL; /* the handler asked for it: no callback back */
    s->state = H3S_DONE;
    if (c->state < H3C_CLOSING)
        ngtcp2_conn_shutdown_stream(c->qc, s->id, NGHTTP3_H3_INTERNAL_ERROR);
    s->req = NULL;
    c->body_bytes -= s->body_counted;
    s->body_counted = 0;
    r->tp = NULL;
    r->tp_ctx = NULL;
    hx_req_unref(r);
    hx_h3_write_soon(c);
}

/* RFC 8470 5.2: held until the handshake completes (hx_h3_streams_confirmed),
 * when the client's Finished proves this is no replay. */
static int tp_when_confirmed(hx_req *r, hx_req_cb cb, void *ud)
{
    h3_stream *s = r->tp_ctx;
    if (s == NULL || s->c->state >= H3C_CLOSING)
        return -1;
    s->held = true;
    s->confirmed_cb = cb;
    s->confirmed_ud = ud;
    return 0;
}

const hx_transport hx_h3_transport = {tp_head, tp_body, tp_end, tp_abort, tp_when_confirmed};
