/* The connection I/O layer's TLS side (io.h): a GnuTLS session on memory
 * buffers (src/tls) between the TCP socket and the adapter.
 *
 * Ciphertext reads are fed to the session; its plaintext goes to the
 * adapter's read callback, its answers (handshake, alerts) out on the
 * socket. The adapter's writes are encrypted at once and written as one
 * libuv write whose completion reports the plaintext length. Reads are at
 * most HX_IO_TLS_READ bytes, so one read hands the adapter at most about
 * two records of plaintext (one buffered partial record plus what the
 * read completes): the adapter's input bound holds after it stops
 * reading. */
#include <string.h>

#include "http/io.h"
#include "http/io_tls.h"
#include "http/proto.h"
#include "http/request.h"
#include "obs/log.h"
#include "tls/tls.h"
#include "util/alloc.h"
#include "util/buf.h"

#define HX_IO_TLS_READ HX_TLS_RECORD_MAX
/* Ciphertext of one adapter write: its bounded output plus record
 * overhead (h1 writes at most HX_H1_OBUF_MAX = 80 MiB at once). */
#define HX_IO_TLS_OUT_MAX (96 * 1024 * 1024)

struct hx_io_tls {
    hx_io *io;
    hx_tls_conn *conn;
    hx_buf out;            /* ciphertext of the current session call */
    hx_io_ready_cb ready;
    uv_alloc_cb alloc;     /* the adapter's */
    uv_read_cb read;
    bool told_ready;
    bool in_feed;          /* the session is on the stack: free it later */
    bool released;
};

/* ---- ALPN: protocol name → adapter ---------------------------------- */

/* The protocols the TLS listener offers, each with its adapter. A TLS
 * connection starts in h1 (it runs the handshake); ALPN "h2" moves the
 * hx_io to the HTTP/2 adapter (h1.c:on_tls_ready, hx_h2_adopt_io). */
static const struct {
    const char *name;
    const hx_proto *proto;
} alpn_table[] = {
    {"h2", &hx_h2_proto},
    {"http/1.1", &hx_h1_proto},
};

const hx_proto *hx_alpn_proto(const char *name)
{
    if (name == NULL || *name == '\0')
        return &hx_h1_proto; /* no ALPN: HTTP/1.1 (RFC 7301 clients that do not offer it) */
    for (size_t i = 0; i < sizeof alpn_table / sizeof alpn_table[0]; i++)
        if (strcmp(alpn_table[i].name, name) == 0)
            return alpn_table[i].proto;
    return NULL;
}

hx_tls_ctx *hx_io_tls_ctx_new(const hx_cfg_tls *t, bool h2, char *err, size_t errlen)
{
    /* Offer only what an adapter serves: "h2" only while HTTP/2 is on
     * (server.http2.enabled; a client offering h2 then gets http/1.1). */
    char *names[8];
    hx_cfg_tls only = *t;
    only.alpn.items = names;
    only.alpn.n = 0;
    for (size_t i = 0; i < t->alpn.n && only.alpn.n < sizeof names / sizeof names[0]; i++)
        if ((h2 || strcmp(t->alpn.items[i], "h2") != 0) && hx_alpn_proto(t->alpn.items[i]) != NULL)
            names[only.alpn.n++] = t->alpn.items[i];
    return hx_tls_ctx_new(&only, err, errlen);
}

/* ---- session callbacks ------------------------------------------------ */

static int on_cipher(void *ud, const void *data, size_t len)
{
    hx_io_tls *t = ud;
    return hx_buf_append(&t->out, data, len) == 0 ? 0 : -1;
}

static void tell_ready(hx_io_tls *t)
{
    if (t->told_ready || !hx_tls_conn_ready(t->conn))
        return;
    t->told_ready = true;
    if (t->ready)
        t->ready(t->io);
}

static int on_plain(void *ud, const void *data, size_t len)
{
    hx_io_tls *t = ud;
    if (t->released || t->read == NULL)
        return -1;
    /* Application data may follow the client's Finished in one read: the
     * adapter learns of the handshake (ALPN, identity) before any byte. */
    tell_ready(t);
    if (t->released)
        return -1;
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
    t->read((uv_stream_t *)&t->io->tcp, (ssize_t)len, &b);
    return t->released ? -1 : 0;
}

/* Writes what the last session call produced. With a callback, the
 * callback follows (0 returned) even when there was nothing to write. */
static int flush_cipher(hx_io_tls *t, size_t plain_len, hx_io_write_cb cb)
{
    if (t->out.len == 0 && cb == NULL)
        return 0;
    size_t n = 0;
    char *data = t->out.len ? hx_buf_steal(&t->out, &n) : NULL;
    return hx_io_write_owned(t->io, data, n, plain_len, cb);
}

static void tls_free(hx_io_tls *t)
{
    hx_tls_conn_free(t->conn);
    hx_buf_free(&t->out);
    hx_free(t);
}

/* ---- the io.h calls --------------------------------------------------- */

int hx_io_tls_start(hx_io *io, hx_io_ready_cb ready)
{
    hx_io_tls *t = hx_calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    hx_tls_ctx *ctx = hx_tls_ctx_current();
    static const hx_tls_io cbs = {on_cipher, on_plain};
    t->io = io;
    t->ready = ready;
    hx_buf_init(&t->out, HX_IO_TLS_OUT_MAX);
    t->conn = ctx ? hx_tls_conn_new(ctx, &cbs, t) : NULL;
    hx_tls_ctx_unref(ctx); /* the connection holds its own reference */
    if (t->conn == NULL) {
        hx_free(t);
        return -1;
    }
    io->tls = t;
    return 0;
}

static void tls_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    hx_io *io = (hx_io *)h;
    io->tls->alloc(h, suggested, buf);
    if (buf->len > HX_IO_TLS_READ)
        buf->len = HX_IO_TLS_READ;
}

static void tls_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    hx_io *io = (hx_io *)s;
    hx_io_tls *t = io->tls;
    if (t == NULL || nread == 0)
        return;
    uv_read_cb read = t->read;
    if (nread < 0) {
        read(s, nread, buf); /* EOF without close_notify, or an error */
        return;
    }
    t->in_feed = true;
    hx_tls_rc rc = hx_tls_conn_feed(t->conn, buf->base, (size_t)nread);
    t->in_feed = false;
    if (t->released) {
        tls_free(t); /* the adapter closed from inside the feed */
        return;
    }
    int wrc = flush_cipher(t, 0, NULL); /* handshake answers, alerts */
    if (rc == HX_TLS_OK && wrc == 0) {
        tell_ready(t);
        return;
    }
    if (rc != HX_TLS_OK && rc != HX_TLS_CLOSED)
        HX_LOG_DEBUG("TLS connection failed", HX_F_STR("error", hx_tls_rc_text(rc)),
                     HX_F_STR("reason", hx_tls_conn_error(t->conn)));
    /* t->read again: the handshake may have moved the connection to
     * another adapter (ALPN h2) during the feed. */
    t->read(s, rc == HX_TLS_CLOSED ? UV_EOF : UV_EPROTO, buf);
}

int hx_io_tls_read_start(hx_io *io, uv_alloc_cb alloc, uv_read_cb read)
{
    io->tls->alloc = alloc;
    io->tls->read = read;
    return uv_read_start((uv_stream_t *)&io->tcp, tls_alloc, tls_on_read);
}

/* Past this, an idle connection gives its ciphertext buffer back. */
#define HX_IO_TLS_OUT_KEEP (32 * 1024)

ssize_t hx_io_tls_send(hx_io *io, hx_buf *out, hx_io_write_cb cb)
{
    hx_io_tls *t = io->tls;
    size_t len = out->len;
    if (len == 0)
        return 0;
    hx_tls_rc rc = hx_tls_conn_send(t->conn, out->data, len);
    hx_buf_reset(out);
    if (rc != HX_TLS_OK) {
        hx_buf_reset(&t->out);
        return UV_EPROTO;
    }
    /* The records straight to the socket when it takes them all (the
     * usual answer): no copy, no write request, no loop turn. */
    uv_buf_t b = uv_buf_init(t->out.data, (unsigned)t->out.len);
    int n = uv_try_write((uv_stream_t *)&io->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
        hx_buf_reset(&t->out);
        return n;
    }
    if (n > 0 && (size_t)n == t->out.len) {
        if (t->out.cap > HX_IO_TLS_OUT_KEEP)
            hx_buf_free(&t->out);
        else
            hx_buf_reset(&t->out);
        return (ssize_t)len;
    }
    if (n > 0)
        hx_buf_consume(&t->out, (size_t)n);
    int wrc = flush_cipher(t, len, cb);
    return wrc < 0 ? wrc : 0;
}

int hx_io_tls_shutdown(hx_io *io, uv_shutdown_t *req, uv_shutdown_cb cb)
{
    hx_io_tls *t = io->tls;
    /* close_notify first (queued after the output), then FIN. */
    if (hx_tls_conn_ready(t->conn) && hx_tls_conn_close(t->conn) == HX_TLS_OK)
        (void)flush_cipher(t, 0, NULL);
    return uv_shutdown(req, (uv_stream_t *)&io->tcp, cb);
}

void hx_io_tls_release(hx_io *io)
{
    hx_io_tls *t = io->tls;
    io->tls = NULL;
    /* A closing connection still says close_notify when the socket takes
     * it now (a draining idle keep-alive connection): best effort. */
    if (!t->in_feed && hx_tls_conn_ready(t->conn) && hx_tls_conn_close(t->conn) == HX_TLS_OK && t->out.len) {
        uv_buf_t b = uv_buf_init(t->out.data, (unsigned)t->out.len);
        (void)uv_try_write((uv_stream_t *)&io->tcp, &b, 1);
    }
    t->released = true;
    if (!t->in_feed)
        tls_free(t);
}

hx_io_tls_facts hx_io_tls_get_facts(const hx_io *io)
{
    hx_io_tls_facts f = {"", "", ""};
    if (io->tls == NULL || !hx_tls_conn_ready(io->tls->conn))
        return f;
    const hx_tls_info *i = hx_tls_conn_info(io->tls->conn);
    f.alpn = i->alpn;
    if (i->peer_verified) {
        f.peer_sha256 = i->peer_sha256;
        f.peer_subject = i->peer_subject;
    }
    return f;
}

void hx_io_req_facts(hx_io *io, hx_req *r)
{
    if (!hx_io_is_tls(io))
        return;
    hx_io_tls_facts f = hx_io_tls_get_facts(io);
    r->secure = true;
    /* Both bounded like hx_tls_info's: copied whole or not at all. */
    size_t hl = strlen(f.peer_sha256), sl = strlen(f.peer_subject);
    if (hl < sizeof r->peer_cert_sha256 && sl < sizeof r->peer_cert_subject) {
        memcpy(r->peer_cert_sha256, f.peer_sha256, hl + 1);
        memcpy(r->peer_cert_subject, f.peer_subject, sl + 1);
    }
}
