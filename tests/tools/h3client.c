/* h3client: a small HTTP/3 client for hapax's integration tests and
 * benchmark (test-only: built by meson as `h3client`, never part of hapax).
 * QUIC v1 with ngtcp2 0.12 + GnuTLS (libngtcp2_crypto_gnutls), HTTP/3 with
 * nghttp3 0.8, ALPN "h3", one connected UDP socket per connection, ppoll()
 * and the ngtcp2 timers; no pacing.
 *
 * THE SERVER CERTIFICATE IS NOT VERIFIED (no trust store, no name check):
 * this tool is for tests against a local gateway only.
 *
 *   h3client [options] HOST PORT URL...      (usage() below lists the options)
 *
 * Output: one JSON line per response in completion order, then a summary line
 * (README.md next to this file).
 *
 * 0-RTT: with --session FILE (a ticket plus the server's transport
 * parameters), the connection resumes, gives ngtcp2 the saved parameters
 * (ngtcp2_conn_set_early_remote_transport_params), builds its nghttp3
 * connection at once and opens the first request stream(s) before the
 * handshake, so they leave in 0-RTT packets. At handshake completion, if
 * GnuTLS does not report GNUTLS_SFLAGS_EARLY_DATA, the early data was
 * rejected: ngtcp2_conn_early_data_rejected() discards every stream, the
 * early_data_rejected callback drops the nghttp3 connection and requeues those
 * requests, and they are sent again in 1-RTT on a new nghttp3 connection.
 *
 * Session file (text; rewritten through a temporary file and rename() each
 * time a NewSessionTicket arrives, with the newest ticket):
 *   h3client-session 1
 *   tp <the TP_COUNT transport parameters of tp_field(), decimal>
 *   ticket <hex of gnutls_session_get_data2()>
 */
#include "h3client.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

typedef struct stream {
    int64_t id;
    struct conn *c;
    size_t url;
    int status, fin;
    hdr *hdrs;
    size_t nhdrs;
    buf body;
    size_t body_len;
    uint64_t t0, t_fin; /* opened; the answer's FIN arrived */
    struct stream *next;
} stream;

typedef struct conn {
    int k, fd, closed, early, ticket_seen;
    struct sockaddr_storage local, remote;
    socklen_t locallen, remotelen;
    ngtcp2_crypto_conn_ref ref;
    gnutls_session_t tls;
    ngtcp2_conn *qc;
    nghttp3_conn *h3;
    stream *streams;
    long base, quota, started, done, nactive;
    uint64_t t_start, linger_until;
    ngtcp2_connection_close_error last_error;
} conn;

static gnutls_certificate_credentials_t cred;
static session_data sess;
static int sess_loaded;

static void conn_fail(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- TLS ---- */

static void save_session(conn *c)
{
    gnutls_datum_t d;
    const ngtcp2_transport_params *tp = ngtcp2_conn_get_remote_transport_params(c->qc);
    if (tp == NULL || gnutls_session_get_data2(c->tls, &d) != 0)
        return;
    if (session_write(opt.session_file, tp, d.data, d.size) != 0)
        fprintf(stderr, "h3client: cannot write %s: %s\n", opt.session_file, strerror(errno));
    gnutls_free(d.data);
}

static int tls_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                    const gnutls_datum_t *msg)
{
    (void)when, (void)incoming, (void)msg;
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
    conn *c = ref->user_data;
    if (htype == GNUTLS_HANDSHAKE_NEW_SESSION_TICKET) {
        c->ticket_seen = 1;
        if (opt.session_file)
            save_session(c);
    }
    return 0;
}

static int tls_init(conn *c)
{
    static char alpn_h3[] = "h3";
    const gnutls_datum_t alpn = {(unsigned char *)alpn_h3, 2};
    unsigned flags = GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA;
    if (c->early)
        flags |= GNUTLS_ENABLE_EARLY_DATA;
    if (gnutls_init(&c->tls, flags) != 0)
        return -1;
    if (ngtcp2_crypto_gnutls_configure_client_session(c->tls) != 0 ||
        gnutls_priority_set_direct(c->tls, "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE", NULL) != 0 ||
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, cred) != 0 ||
        gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0)
        return -1;
    gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_POST, tls_hook);
    gnutls_session_set_ptr(c->tls, &c->ref);
    const char *sni = opt.urls[0].host;
    if (sni[0] && !is_numeric_host(sni))
        gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, sni, strlen(sni));
    if (sess_loaded && gnutls_session_set_data(c->tls, sess.ticket, sess.ticket_len) != 0)
        fprintf(stderr, "h3client: the saved session is unusable; full handshake\n");
    return 0;
}

/* ---- HTTP/3 (nghttp3 callbacks) ---- */

static void consume(conn *c, int64_t id, size_t n)
{
    ngtcp2_conn_extend_max_stream_offset(c->qc, id, n);
    ngtcp2_conn_extend_max_offset(c->qc, n);
}

static void stream_free(stream *s)
{
    for (size_t i = 0; i < s->nhdrs; i++) {
        free(s->hdrs[i].name);
        free(s->hdrs[i].value);
    }
    free(s->hdrs);
    free(s->body.p);
    free(s);
}

static void stream_unlink(conn *c, stream *s)
{
    for (stream **pp = &c->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            c->nactive--;
            return;
        }
}

static int h3_begin_headers(nghttp3_conn *h, int64_t id, void *ud, void *sud)
{
    (void)h, (void)id, (void)ud;
    stream *s = sud;
    if (s) { /* a final response after a 1xx replaces its fields */
        for (size_t i = 0; i < s->nhdrs; i++) {
            free(s->hdrs[i].name);
            free(s->hdrs[i].value);
        }
        s->nhdrs = 0;
    }
    return 0;
}

static int h3_recv_header(nghttp3_conn *h, int64_t id, int32_t token, nghttp3_rcbuf *name,
                          nghttp3_rcbuf *value, uint8_t flags, void *ud, void *sud)
{
    (void)h, (void)id, (void)token, (void)flags, (void)ud;
    stream *s = sud;
    nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
    if (s == NULL)
        return 0;
    if (n.len == 7 && memcmp(n.base, ":status", 7) == 0) {
        s->status = 0;
        for (size_t i = 0; i < v.len && v.base[i] >= '0' && v.base[i] <= '9'; i++)
            s->status = s->status * 10 + (v.base[i] - '0');
        return 0;
    }
    for (size_t i = 0; i < s->nhdrs; i++)
        if (strlen(s->hdrs[i].name) == n.len && memcmp(s->hdrs[i].name, n.base, n.len) == 0)
            return 0; /* first value only */
    hdr *nh = realloc(s->hdrs, (s->nhdrs + 1) * sizeof *nh);
    if (nh == NULL)
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    s->hdrs = nh;
    nh[s->nhdrs].name = xstrndup((const char *)n.base, n.len);
    nh[s->nhdrs].value = xstrndup((const char *)v.base, v.len);
    s->nhdrs++;
    return 0;
}

static int h3_recv_data(nghttp3_conn *h, int64_t id, const uint8_t *data, size_t len, void *ud, void *sud)
{
    (void)h;
    conn *c = ud;
    stream *s = sud;
    consume(c, id, len);
    if (s) {
        s->body_len += len;
        if (!opt.quiet && buf_add(&s->body, data, len) != 0)
            return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int h3_deferred_consume(nghttp3_conn *h, int64_t id, size_t n, void *ud, void *sud)
{
    (void)h, (void)sud;
    consume(ud, id, n);
    return 0;
}

/* The answer's end (its FIN): the latency is taken here, not when the
 * stream closes (that waits for the server to acknowledge the request,
 * up to its ACK delay later). */
static int h3_end_stream(nghttp3_conn *h, int64_t id, void *ud, void *sud)
{
    (void)h, (void)id, (void)ud;
    if (sud) {
        stream *s = sud;
        s->fin = 1;
        s->t_fin = now_ns();
        if (stats.t_first == 0)
            stats.t_first = s->t_fin;
    }
    return 0;
}

static int h3_stream_close(nghttp3_conn *h, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)h;
    conn *c = ud;
    stream *s = sud;
    if (s == NULL)
        return 0;
    if (s->status > 0 && s->fin) {
        record_response(c->k, id, s->status, s->hdrs, s->nhdrs, &s->body, s->body_len, s->t_fin - s->t0);
    } else {
        fprintf(stderr, "h3client: conn %d stream %" PRId64 ": closed without a complete response (code 0x%" PRIx64
                        ")\n", c->k, id, code);
        stats.errors++;
    }
    stream_unlink(c, s);
    stream_free(s);
    c->done++;
    return 0;
}

static int h3_stop_sending(nghttp3_conn *h, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)h, (void)sud;
    return ngtcp2_conn_shutdown_stream_read(((conn *)ud)->qc, id, code) == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}

static int h3_reset_stream(nghttp3_conn *h, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)h, (void)sud;
    return ngtcp2_conn_shutdown_stream_write(((conn *)ud)->qc, id, code) == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}

static int h3_setup(conn *c)
{
    nghttp3_callbacks cb = {
        .stream_close = h3_stream_close,
        .recv_data = h3_recv_data,
        .deferred_consume = h3_deferred_consume,
        .begin_headers = h3_begin_headers,
        .recv_header = h3_recv_header,
        .stop_sending = h3_stop_sending,
        .end_stream = h3_end_stream,
        .reset_stream = h3_reset_stream,
    };
    nghttp3_settings st;
    int64_t ctrl, enc, dec;
    nghttp3_settings_default(&st);
    st.qpack_max_dtable_capacity = 4096;
    st.qpack_blocked_streams = 100;
    /* may run inside ngtcp2_conn_read_pkt: report, and let the caller fail */
    if (ngtcp2_conn_get_streams_uni_left(c->qc) < 3) {
        fprintf(stderr, "h3client: conn %d: the server allows fewer than 3 unidirectional streams\n", c->k);
        return -1;
    }
    if (nghttp3_conn_client_new(&c->h3, &cb, &st, NULL, c) != 0 ||
        ngtcp2_conn_open_uni_stream(c->qc, &ctrl, NULL) != 0 || nghttp3_conn_bind_control_stream(c->h3, ctrl) != 0 ||
        ngtcp2_conn_open_uni_stream(c->qc, &enc, NULL) != 0 || ngtcp2_conn_open_uni_stream(c->qc, &dec, NULL) != 0 ||
        nghttp3_conn_bind_qpack_streams(c->h3, enc, dec) != 0) {
        fprintf(stderr, "h3client: conn %d: cannot set up HTTP/3\n", c->k);
        return -1;
    }
    return 0;
}

static nghttp3_ssize read_body(nghttp3_conn *h, int64_t id, nghttp3_vec *vec, size_t veccnt, uint32_t *pflags,
                               void *ud, void *sud)
{
    (void)h, (void)id, (void)veccnt, (void)ud, (void)sud;
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    if (opt.body_len == 0)
        return 0;
    vec[0].base = opt.body; /* whole body at once; it lives until exit */
    vec[0].len = opt.body_len;
    return 1;
}

static void nv_set(nghttp3_nv *nv, const char *name, const char *value)
{
    /* nghttp3 copies the fields; its nv type is not const-qualified */
    nv->name = (uint8_t *)(uintptr_t)name;
    nv->value = (uint8_t *)(uintptr_t)value;
    nv->namelen = strlen(name);
    nv->valuelen = strlen(value);
    nv->flags = NGHTTP3_NV_FLAG_NONE;
}

static int submit(conn *c, stream *s)
{
    nghttp3_nv nva[6 + MAX_HEADERS];
    size_t n = 0;
    const url *u = &opt.urls[s->url];
    char clen[32];
    nv_set(&nva[n++], ":method", opt.method);
    nv_set(&nva[n++], ":scheme", "https");
    nv_set(&nva[n++], ":authority", u->authority);
    nv_set(&nva[n++], ":path", u->path);
    nv_set(&nva[n++], "user-agent", "hapax-h3client");
    for (size_t i = 0; i < opt.nheaders; i++)
        nv_set(&nva[n++], opt.headers[i].name, opt.headers[i].value);
    if (opt.body && !opt.has_clen) {
        snprintf(clen, sizeof clen, "%zu", opt.body_len);
        nv_set(&nva[n++], "content-length", clen);
    }
    nghttp3_data_reader dr = {.read_data = read_body};
    return nghttp3_conn_submit_request(c->h3, s->id, nva, n, opt.body ? &dr : NULL, s);
}

/* Opens request streams while this connection has requests left, stream
 * slots (-s) and stream credit; before the handshake only in 0-RTT mode. */
static void fill_streams(conn *c)
{
    int early_phase = !ngtcp2_conn_get_handshake_completed(c->qc);
    if (c->h3 == NULL || c->closed || (early_phase && !c->early))
        return;
    while (c->started < c->quota && c->nactive < opt.streams) {
        int64_t id;
        if (ngtcp2_conn_open_bidi_stream(c->qc, &id, NULL) != 0)
            return; /* no credit: extend_max_local_streams_bidi, then again */
        stream *s = calloc(1, sizeof *s);
        if (s == NULL) {
            conn_fail(c, "out of memory");
            return;
        }
        s->id = id;
        s->c = c;
        s->url = (size_t)(c->base + c->started) % opt.nurls;
        s->t0 = now_ns();
        s->next = c->streams;
        c->streams = s;
        c->nactive++;
        c->started++;
        if (submit(c, s) != 0) {
            conn_fail(c, "nghttp3_conn_submit_request failed");
            return;
        }
    }
}

/* ---- QUIC (ngtcp2 callbacks) ---- */

static int q_recv_stream_data(ngtcp2_conn *qc, uint32_t flags, int64_t id, uint64_t off, const uint8_t *data,
                              size_t len, void *ud, void *sud)
{
    (void)qc, (void)off, (void)sud;
    conn *c = ud;
    if (c->h3 == NULL)
        return 0;
    nghttp3_ssize n = nghttp3_conn_read_stream(c->h3, id, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
    if (n < 0) {
        fprintf(stderr, "h3client: conn %d: nghttp3_conn_read_stream: %s\n", c->k, nghttp3_strerror((int)n));
        ngtcp2_connection_close_error_set_application_error(
            &c->last_error, nghttp3_err_infer_quic_app_error_code((int)n), NULL, 0);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    consume(c, id, (size_t)n);
    return 0;
}

static int q_acked(ngtcp2_conn *qc, int64_t id, uint64_t off, uint64_t len, void *ud, void *sud)
{
    (void)qc, (void)off, (void)sud;
    conn *c = ud;
    if (c->h3 && nghttp3_conn_add_ack_offset(c->h3, id, len) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int q_stream_close(ngtcp2_conn *qc, uint32_t flags, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)sud;
    conn *c = ud;
    if (c->h3 == NULL)
        return 0;
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET))
        code = NGHTTP3_H3_NO_ERROR;
    int rv = nghttp3_conn_close_stream(c->h3, id, code);
    if (rv == NGHTTP3_ERR_STREAM_NOT_FOUND) {
        if (!ngtcp2_is_bidi_stream(id))
            ngtcp2_conn_extend_max_streams_uni(qc, 1);
        return 0;
    }
    if (rv != 0) {
        ngtcp2_connection_close_error_set_application_error(&c->last_error,
                                                            nghttp3_err_infer_quic_app_error_code(rv), NULL, 0);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    if (!ngtcp2_is_bidi_stream(id))
        ngtcp2_conn_extend_max_streams_uni(qc, 1);
    return 0;
}

static int q_stream_reset(ngtcp2_conn *qc, int64_t id, uint64_t final_size, uint64_t code, void *ud, void *sud)
{
    (void)qc, (void)final_size, (void)code, (void)sud;
    conn *c = ud;
    if (c->h3 && nghttp3_conn_shutdown_stream_read(c->h3, id) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int q_extend_max_stream_data(ngtcp2_conn *qc, int64_t id, uint64_t max, void *ud, void *sud)
{
    (void)qc, (void)max, (void)sud;
    conn *c = ud;
    if (c->h3 && nghttp3_conn_unblock_stream(c->h3, id) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static void q_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    (void)ctx;
    (void)gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

static int q_new_cid(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
    (void)qc, (void)ud;
    if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0 ||
        gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    cid->datalen = cidlen;
    return 0;
}

static int q_recv_rx_key(ngtcp2_conn *qc, ngtcp2_crypto_level level, void *ud)
{
    (void)qc;
    conn *c = ud;
    /* 1-RTT keys: the server's control and QPACK streams may follow at once */
    if (level == NGTCP2_CRYPTO_LEVEL_APPLICATION && c->h3 == NULL && !c->early)
        return h3_setup(c) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int q_early_rejected(ngtcp2_conn *qc, void *ud)
{
    (void)qc;
    conn *c = ud;
    /* ngtcp2 has forgotten every stream: requeue their requests */
    nghttp3_conn_del(c->h3);
    c->h3 = NULL;
    while (c->streams) {
        stream *s = c->streams;
        c->streams = s->next;
        stream_free(s);
        c->started--;
    }
    c->nactive = 0;
    return 0;
}

static int q_handshake_completed(ngtcp2_conn *qc, void *ud)
{
    conn *c = ud;
    stats.hs_ms[c->k] = (double)(now_ns() - c->t_start) / 1e6;
    unsigned ncert = 0;
    const gnutls_datum_t *cert = gnutls_certificate_get_peers(c->tls, &ncert);
    unsigned char dig[32];
    size_t dl = sizeof dig;
    if (c->k == 0 && cert && ncert && gnutls_fingerprint(GNUTLS_DIG_SHA256, &cert[0], dig, &dl) == 0)
        for (size_t i = 0; i < dl; i++)
            snprintf(stats.peer_sha256 + 2 * i, 3, "%02x", dig[i]);
    if (c->early) {
        if (gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_EARLY_DATA) {
            stats.early_accepted++;
        } else {
            stats.early_rejected++;
            if (ngtcp2_conn_early_data_rejected(qc) != 0)
                return NGTCP2_ERR_CALLBACK_FAILURE;
            c->early = 0;
            if (h3_setup(c) != 0)
                return NGTCP2_ERR_CALLBACK_FAILURE;
        }
    }
    if (gnutls_session_is_resumed(c->tls))
        stats.resumed++;
    return 0;
}

static void q_log(void *ud, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void q_log(void *ud, const char *fmt, ...)
{
    va_list ap;
    (void)ud;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((conn *)ref->user_data)->qc;
}

static int quic_init(conn *c)
{
    ngtcp2_callbacks cb = {
        .client_initial = ngtcp2_crypto_client_initial_cb,
        .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
        .handshake_completed = q_handshake_completed,
        .encrypt = ngtcp2_crypto_encrypt_cb,
        .decrypt = ngtcp2_crypto_decrypt_cb,
        .hp_mask = ngtcp2_crypto_hp_mask_cb,
        .recv_stream_data = q_recv_stream_data,
        .acked_stream_data_offset = q_acked,
        .stream_close = q_stream_close,
        .recv_retry = ngtcp2_crypto_recv_retry_cb,
        .rand = q_rand,
        .get_new_connection_id = q_new_cid,
        .update_key = ngtcp2_crypto_update_key_cb,
        .stream_reset = q_stream_reset,
        .extend_max_stream_data = q_extend_max_stream_data,
        .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
        .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
        .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
        .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
        .recv_rx_key = q_recv_rx_key,
        .early_data_rejected = q_early_rejected,
    };
    ngtcp2_path path = {{(struct sockaddr *)&c->local, c->locallen}, {(struct sockaddr *)&c->remote, c->remotelen},
                        NULL};
    ngtcp2_cid dcid = {.datalen = 18}, scid = {.datalen = 16};
    ngtcp2_settings st;
    ngtcp2_transport_params tp;
    if (gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen) != 0 ||
        gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0)
        return -1;
    ngtcp2_settings_default(&st);
    st.initial_ts = now_ns();
    if (getenv("H3CLIENT_DEBUG"))
        st.log_printf = q_log;
    ngtcp2_transport_params_default(&tp);
    tp.initial_max_stream_data_bidi_local = opt.window > 0 ? (uint64_t)opt.window : 4u << 20;
    tp.initial_max_stream_data_bidi_remote = 256u << 10;
    tp.initial_max_stream_data_uni = 256u << 10;
    tp.initial_max_data = 16u << 20;
    tp.initial_max_streams_bidi = 0;
    tp.initial_max_streams_uni = 100;
    tp.max_idle_timeout = 30 * NGTCP2_SECONDS;
    c->ref.get_conn = get_conn;
    c->ref.user_data = c;
    int rv = ngtcp2_conn_client_new(&c->qc, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &st, &tp, NULL, c);
    if (rv != 0) {
        fprintf(stderr, "h3client: ngtcp2_conn_client_new: %s\n", ngtcp2_strerror(rv));
        return -1;
    }
    ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
    if (c->early) {
        ngtcp2_transport_params etp;
        ngtcp2_transport_params_default(&etp);
        session_tp_apply(&sess, &etp);
        ngtcp2_conn_set_early_remote_transport_params(c->qc, &etp);
        if (h3_setup(c) != 0)
            return -1;
    }
    return 0;
}

/* ---- I/O ---- */

static int sock_open(conn *c)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res;
    int rv = getaddrinfo(opt.host, opt.port, &hints, &res);
    if (rv != 0) {
        fprintf(stderr, "h3client: %s: %s\n", opt.host, gai_strerror(rv));
        return -1;
    }
    c->fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 4 << 20;
    if (c->fd < 0 || connect(c->fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "h3client: socket/connect: %s\n", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    memcpy(&c->remote, res->ai_addr, res->ai_addrlen);
    c->remotelen = res->ai_addrlen;
    freeaddrinfo(res);
    c->locallen = sizeof c->local;
    return getsockname(c->fd, (struct sockaddr *)&c->local, &c->locallen);
}

static void send_pkt(conn *c, const uint8_t *p, size_t n)
{
    while (send(c->fd, p, n, 0) < 0 && errno == EINTR)
        ;
    /* other errors (ECONNREFUSED from an earlier ICMP, ENOBUFS): QUIC loss
     * recovery resends; a dead peer ends in the idle/handshake timeout */
}

static void close_conn(conn *c, int graceful)
{
    uint8_t pkt[1500];
    ngtcp2_path_storage ps;
    ngtcp2_pkt_info pi;
    if (c->closed)
        return;
    c->closed = 1;
    if (graceful)
        ngtcp2_connection_close_error_set_application_error(&c->last_error, NGHTTP3_H3_NO_ERROR, NULL, 0);
    if (ngtcp2_conn_is_in_closing_period(c->qc) || ngtcp2_conn_is_in_draining_period(c->qc))
        return;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, pkt, sizeof pkt, &c->last_error,
                                                        now_ns());
    if (n > 0)
        send_pkt(c, pkt, (size_t)n);
}

static void conn_fail(conn *c, const char *fmt, ...)
{
    va_list ap;
    if (c->closed)
        return;
    fprintf(stderr, "h3client: conn %d: ", c->k);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    stats.errors += c->quota - c->done;
    stats.conn_errors++;
    close_conn(c, 0);
}

static int conn_write(conn *c)
{
    uint8_t pkt[1500];
    size_t max = ngtcp2_conn_get_max_tx_udp_payload_size(c->qc);
    ngtcp2_path_storage ps;
    uint64_t ts = now_ns();
    if (max > sizeof pkt)
        max = sizeof pkt;
    ngtcp2_path_storage_zero(&ps);
    for (;;) {
        int64_t id = -1;
        int fin = 0;
        nghttp3_vec hv[16];
        ngtcp2_vec qv[16];
        nghttp3_ssize cnt = 0;
        ngtcp2_ssize datalen;
        ngtcp2_pkt_info pi;
        if (c->h3 && ngtcp2_conn_get_max_data_left(c->qc)) {
            cnt = nghttp3_conn_writev_stream(c->h3, &id, &fin, hv, 16);
            if (cnt < 0) {
                conn_fail(c, "nghttp3_conn_writev_stream: %s", nghttp3_strerror((int)cnt));
                return -1;
            }
        }
        for (nghttp3_ssize i = 0; i < cnt; i++) {
            qv[i].base = hv[i].base;
            qv[i].len = hv[i].len;
        }
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
        ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, pkt, max, &datalen, flags, id, qv,
                                                   (size_t)cnt, ts);
        if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
            nghttp3_conn_block_stream(c->h3, id);
            continue;
        }
        if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
            nghttp3_conn_shutdown_stream_write(c->h3, id);
            continue;
        }
        if (n == NGTCP2_ERR_WRITE_MORE) {
            if (nghttp3_conn_add_write_offset(c->h3, id, (size_t)datalen) != 0) {
                conn_fail(c, "nghttp3_conn_add_write_offset failed");
                return -1;
            }
            continue;
        }
        if (n < 0) {
            ngtcp2_connection_close_error_set_transport_error_liberr(&c->last_error, (int)n, NULL, 0);
            conn_fail(c, "ngtcp2_conn_writev_stream: %s", ngtcp2_strerror((int)n));
            return -1;
        }
        if (datalen >= 0 && nghttp3_conn_add_write_offset(c->h3, id, (size_t)datalen) != 0) {
            conn_fail(c, "nghttp3_conn_add_write_offset failed");
            return -1;
        }
        if (n == 0)
            return 0;
        send_pkt(c, pkt, (size_t)n);
    }
}

static void conn_read(conn *c)
{
    uint8_t pkt[65536];
    for (int i = 0; i < 256 && !c->closed; i++) {
        ssize_t n = recv(c->fd, pkt, sizeof pkt, MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) /* ECONNREFUSED: nobody listens */
                conn_fail(c, "recv: %s", strerror(errno));
            return;
        }
        ngtcp2_path path = {{(struct sockaddr *)&c->local, c->locallen},
                            {(struct sockaddr *)&c->remote, c->remotelen}, NULL};
        ngtcp2_pkt_info pi = {0};
        int rv = ngtcp2_conn_read_pkt(c->qc, &path, &pi, pkt, (size_t)n, now_ns());
        if (rv == 0)
            continue;
        if (rv == NGTCP2_ERR_DRAINING) {
            ngtcp2_connection_close_error e;
            ngtcp2_conn_get_connection_close_error(c->qc, &e);
            if (c->done < c->quota)
                conn_fail(c, "closed by the server (%s error 0x%" PRIx64 " %.*s)",
                          e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION ? "application" : "transport",
                          e.error_code, (int)e.reasonlen, e.reason ? (const char *)e.reason : "");
            c->closed = 1;
            return;
        }
        if (rv == NGTCP2_ERR_CRYPTO)
            ngtcp2_connection_close_error_set_transport_error_tls_alert(&c->last_error,
                                                                        ngtcp2_conn_get_tls_alert(c->qc), NULL, 0);
        else if (c->last_error.error_code == 0)
            ngtcp2_connection_close_error_set_transport_error_liberr(&c->last_error, rv, NULL, 0);
        conn_fail(c, "ngtcp2_conn_read_pkt: %s", ngtcp2_strerror(rv));
        return;
    }
}

/* ---- the run ---- */

int run_connections(void)
{
    conn *cs = calloc((size_t)opt.conns, sizeof *cs);
    struct pollfd *pf = calloc((size_t)opt.conns, sizeof *pf);
    uint64_t deadline = now_ns() + (uint64_t)(opt.timeout * 1e9);
    int timed_out = 0;
    if (cs == NULL || pf == NULL || gnutls_certificate_allocate_credentials(&cred) != 0)
        return -1;
    if (opt.session_file) {
        int rv = session_read(opt.session_file, &sess);
        if (rv < 0)
            fprintf(stderr, "h3client: %s is not a session file; ignored\n", opt.session_file);
        sess_loaded = rv > 0;
    }
    long base = 0;
    for (int k = 0; k < opt.conns; k++) {
        conn *c = &cs[k];
        c->k = k;
        c->base = base;
        c->quota = opt.requests / opt.conns + (k < opt.requests % opt.conns);
        base += c->quota;
        c->early = sess_loaded && !opt.no_early;
        stats.early_attempted += c->early;
        ngtcp2_connection_close_error_default(&c->last_error);
        c->t_start = now_ns();
        if (sock_open(c) != 0 || tls_init(c) != 0 || quic_init(c) != 0) {
            fprintf(stderr, "h3client: conn %d: setup failed\n", k);
            return -1;
        }
    }
    stats.t_start = now_ns();
    for (;;) {
        uint64_t now = now_ns(), next = deadline;
        int live = 0;
        if (opt.duration > 0 && now >= stats.t_start + (uint64_t)(opt.duration * 1e9))
            for (int k = 0; k < opt.conns; k++) /* --duration: no new requests, finish the rest */
                if (cs[k].quota > cs[k].started)
                    cs[k].quota = cs[k].started;
        for (int k = 0; k < opt.conns; k++) {
            conn *c = &cs[k];
            if (c->closed)
                continue;
            fill_streams(c);
            if (!c->closed && c->done >= c->quota) {
                /* all answered: wait a little for a ticket if one is wanted */
                if (c->linger_until == 0)
                    c->linger_until = now + (opt.session_file && !c->ticket_seen ? 1000000000ull : 0);
                if (c->ticket_seen || !opt.session_file || now >= c->linger_until) {
                    close_conn(c, 1);
                    continue;
                }
            }
            if (!c->closed)
                conn_write(c);
            if (c->closed)
                continue;
            live++;
            uint64_t e = ngtcp2_conn_get_expiry(c->qc);
            if (e < next)
                next = e;
            if (c->linger_until && c->linger_until < next)
                next = c->linger_until;
        }
        if (live == 0)
            break;
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        int n = 0;
        for (int k = 0; k < opt.conns; k++)
            if (!cs[k].closed)
                pf[n++] = (struct pollfd){.fd = cs[k].fd, .events = POLLIN};
        now = now_ns();
        uint64_t wait = next > now ? next - now : 0;
        struct timespec tmo = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        if (ppoll(pf, (nfds_t)n, &tmo, NULL) < 0 && errno != EINTR)
            return -1;
        for (int k = 0; k < opt.conns; k++) {
            conn *c = &cs[k];
            if (c->closed)
                continue;
            conn_read(c);
            if (!c->closed && ngtcp2_conn_get_expiry(c->qc) <= now_ns()) {
                int rv = ngtcp2_conn_handle_expiry(c->qc, now_ns());
                if (rv != 0) {
                    ngtcp2_connection_close_error_set_transport_error_liberr(&c->last_error, rv, NULL, 0);
                    conn_fail(c, "%s", rv == NGTCP2_ERR_IDLE_CLOSE ? "idle timeout" : ngtcp2_strerror(rv));
                }
            }
        }
    }
    stats.t_end = now_ns();
    if (opt.duration > 0) { /* what was asked in the time: the summary's "requests" */
        long total = 0;
        for (int k = 0; k < opt.conns; k++)
            total += cs[k].quota;
        opt.requests = total;
    }
    for (int k = 0; k < opt.conns; k++) {
        conn *c = &cs[k];
        if (timed_out && !c->closed) {
            stats.errors += c->quota - c->done;
            close_conn(c, 1);
        }
        while (c->streams) {
            stream *s = c->streams;
            c->streams = s->next;
            stream_free(s);
        }
        nghttp3_conn_del(c->h3);
        ngtcp2_conn_del(c->qc);
        gnutls_deinit(c->tls);
        close(c->fd);
    }
    free(cs);
    free(pf);
    free(sess.ticket);
    gnutls_certificate_free_credentials(cred);
    return timed_out ? 3 : 0;
}
