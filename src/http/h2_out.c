/* HTTP/2 adapter, answer side: the hx_transport of a stream. The head
 * becomes a HEADERS frame (names lowercased, hop-by-hop fields dropped);
 * body bytes wait in the stream's buffer until nghttp2 pulls them through
 * the data source as the client's window allows (deferred while the
 * buffer is empty, resumed by the next write); HX_RES_BUSY past the
 * stream's or the connection's high-water mark, on_drain from
 * h2.c:hx_h2_on_output once both are low again. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/h2_int.h"
#include "http/redirect.h"
#include "http/request.h"
#include "util/alloc.h"

/* The response head as nghttp2 name/value pairs: names lowercased (HTTP/2
 * requires it) in one block, hop-by-hop fields dropped. */
static int build_nv(const hx_headers *h, int status, int64_t clen, nghttp2_nv **nvp, size_t *np, char **blockp)
{
    const char *alt_svc = hx_res_alt_svc(); /* HTTP/3 is on: say where */
    size_t need = 32, n = 3;
    for (size_t i = 0; i < h->n; i++)
        if (!hx_header_hop_by_hop(h->items[i].name))
            need += strlen(h->items[i].name) + 1, n++;
    if (need > HX_H2_HEAD_MAX)
        return -1;
    nghttp2_nv *nv = hx_calloc(n, sizeof *nv);
    char *block = hx_malloc(need);
    if (nv == NULL || block == NULL) {
        hx_free(nv);
        hx_free(block);
        return -1;
    }
    size_t k = 0, off = 0;
    int sl = snprintf(block, 8, "%d", status);
    nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)block, 7, (size_t)sl, NGHTTP2_NV_FLAG_NONE};
    off = (size_t)sl + 1;
    if (clen >= 0) {
        int cl = snprintf(block + off, 24, "%lld", (long long)clen);
        nv[k++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)block + off, 14, (size_t)cl,
                               NGHTTP2_NV_FLAG_NONE};
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
        nv[k++] = (nghttp2_nv){(uint8_t *)lc, (uint8_t *)h->items[i].value, nl, strlen(h->items[i].value),
                               NGHTTP2_NV_FLAG_NONE};
    }
    if (alt_svc)
        nv[k++] = (nghttp2_nv){(uint8_t *)"alt-svc", (uint8_t *)(uintptr_t)alt_svc, 7, strlen(alt_svc),
                               NGHTTP2_NV_FLAG_NONE};
    *nvp = nv;
    *np = k;
    *blockp = block;
    return 0;
}

static ssize_t data_read(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)sess, (void)id, (void)ud;
    h2_stream *s = src->ptr;
    size_t n = hx_h2_stream_buffered(s);
    if (n > length)
        n = length;
    if (n > 0) {
        memcpy(buf, s->out.data + s->out_off, n);
        s->out_off += n;
        if (s->out_off == s->out.len) {
            hx_buf_reset(&s->out);
            s->out_off = 0;
        }
    }
    if (hx_h2_stream_buffered(s) == 0) {
        if (s->eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        } else if (n == 0) {
            s->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

static void stream_kick(h2_stream *s)
{
    h2_conn *c = s->c;
    if (s->deferred && !c->sess_dead && c->state != H2C_CLOSED) {
        s->deferred = false;
        nghttp2_session_resume_data(c->sess, s->id);
    }
    hx_h2_io_flush_soon(c);
}

static int submit_head(hx_req *r, int status, const hx_headers *h, int64_t content_length)
{
    h2_stream *s = r->tp_ctx;
    h2_conn *c = s->c;
    bool no_body = status < 200 || status == 204 || status == 304;
    nghttp2_nv *nv;
    size_t n;
    char *block;
    if (c->sess_dead || c->state == H2C_CLOSED)
        return HX_RES_EGONE;
    if (build_nv(h, status, no_body ? -1 : content_length, &nv, &n, &block) != 0)
        return HX_RES_ENOMEM;
    /* Always a data source, even for an empty body: the stream ends when
     * the handler ends it (tp_end), never under its feet. */
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = data_read};
    int rv = nghttp2_submit_response(c->sess, s->id, nv, n, &dp);
    hx_free(nv);
    hx_free(block);
    if (rv != 0)
        return HX_RES_ENOMEM;
    hx_h2_set_stream_state(s, H2S_ANSWERING, "answer head");
    hx_h2_io_flush_soon(c);
    return HX_RES_OK;
}

/* A head that cannot be submitted resets the stream: the request is never
 * left open without an answer. */
static int tp_head(hx_req *r, int status, const hx_headers *h, int64_t content_length)
{
    int rc = submit_head(r, status, h, content_length);
    if (rc == HX_RES_ENOMEM) {
        h2_stream *s = r->tp_ctx;
        nghttp2_submit_rst_stream(s->c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        if (s->state != H2S_DONE)
            hx_h2_set_stream_state(s, H2S_DONE, "answer head failed");
        hx_h2_io_flush_soon(s->c);
    }
    return rc;
}

static int tp_body(hx_req *r, const void *data, size_t len)
{
    h2_stream *s = r->tp_ctx;
    h2_conn *c = s->c;
    if (c->state == H2C_CLOSED || c->sess_dead)
        return HX_RES_EGONE;
    if (hx_buf_append(&s->out, data, len) != 0) {
        /* Out of memory or past its bound: the answer cannot complete. */
        nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        hx_h2_io_flush_soon(c);
        return HX_RES_ENOMEM;
    }
    r->bytes_out += len;
    stream_kick(s);
    if (hx_h2_stream_buffered(s) > HX_H2_STREAM_HIGH || c->out_pending > HX_H2_CONN_HIGH) {
        s->busy = true;
        return HX_RES_BUSY;
    }
    return HX_RES_OK;
}

static int tp_end(hx_req *r)
{
    h2_stream *s = r->tp_ctx;
    if (s->state == H2S_DONE)
        return HX_RES_EGONE; /* reset already: its head could not be submitted */
    s->eof = true;
    hx_h2_set_stream_state(s, H2S_DONE, "answer ended");
    stream_kick(s);
    return HX_RES_OK;
}

static void tp_abort(hx_req *r)
{
    h2_stream *s = r->tp_ctx;
    h2_conn *c = s->c;
    r->on_abort = NULL; /* the handler asked for it: no callback back */
    if (s->state != H2S_DONE)
        hx_h2_set_stream_state(s, H2S_DONE, "handler cut the stream");
    if (!c->sess_dead && c->state != H2C_CLOSED)
        nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    s->req = NULL;
    c->body_bytes -= s->body_counted;
    s->body_counted = 0;
    r->tp = NULL;
    r->tp_ctx = NULL;
    hx_req_unref(r);
    hx_h2_io_flush_soon(c);
}

const hx_transport hx_h2_transport = {tp_head, tp_body, tp_end, tp_abort, NULL}; /* no early data on TCP */

