/* A server TLS session over memory buffers: the transport feeds
 * ciphertext in and gets ciphertext out through io->send, plaintext
 * through io->recv. GnuTLS reads from the fed bytes (pull) and writes
 * through the callback (push); it buffers at most one partial record
 * (its record size limit), so nothing here grows with the input. */
#include "tls/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/x509.h>

#include "tls/tls_int.h"
#include "util/alloc.h"

typedef enum { ST_HANDSHAKE, ST_OPEN, ST_PEER_CLOSED, ST_CLOSED, ST_FAILED } conn_state;

struct hx_tls_conn {
    hx_tls_ctx *ctx;
    gnutls_session_t s;
    hx_tls_io io;
    void *ud;
    const unsigned char *in; /* the bytes of the current feed not yet pulled */
    size_t in_left;
    conn_state state;
    hx_tls_rc failed;        /* the error every later call returns */
    int gnutls_err;
    bool io_failed;
    unsigned warnings;       /* non-fatal events so far (HX_TLS_WARNINGS_MAX) */
    hx_tls_info info;
};

/* One record of plaintext at a time; shared by the connections of a thread
 * so that an idle connection costs no record buffer. */
static _Thread_local unsigned char plain[HX_TLS_RECORD_MAX];

static ssize_t on_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
    hx_tls_conn *c = p;
    if (c->in_left == 0) {
        gnutls_transport_set_errno(c->s, EAGAIN);
        return -1;
    }
    size_t n = len < c->in_left ? len : c->in_left;
    memcpy(data, c->in, n);
    c->in += n;
    c->in_left -= n;
    return (ssize_t)n;
}

static int on_pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
    (void)ms;
    return ((hx_tls_conn *)p)->in_left > 0 ? 1 : 0;
}

static ssize_t on_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
    hx_tls_conn *c = p;
    if (c->io.send(c->ud, data, len) != 0) {
        c->io_failed = true;
        gnutls_transport_set_errno(c->s, EIO);
        return -1;
    }
    return (ssize_t)len;
}

hx_tls_conn *hx_tls_conn_new(hx_tls_ctx *ctx, const hx_tls_io *io, void *ud)
{
    hx_tls_conn *c = hx_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (gnutls_init(&c->s, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0) {
        hx_free(c);
        return NULL;
    }
    c->ctx = hx_tls_ctx_ref(ctx);
    c->io = *io;
    c->ud = ud;
    if (hx_tls_ctx_session_setup(ctx, c->s) != 0) {
        hx_tls_conn_free(c);
        return NULL;
    }
    gnutls_handshake_set_max_packet_length(c->s, HX_TLS_HANDSHAKE_MAX);
    gnutls_transport_set_ptr(c->s, c);
    gnutls_transport_set_pull_function(c->s, on_pull);
    gnutls_transport_set_pull_timeout_function(c->s, on_pull_timeout);
    gnutls_transport_set_push_function(c->s, on_push);
    return c;
}

void hx_tls_conn_free(hx_tls_conn *c)
{
    if (c == NULL)
        return;
    gnutls_deinit(c->s);
    hx_tls_ctx_unref(c->ctx);
    hx_free(c);
}

static hx_tls_rc classify(const hx_tls_conn *c, int err)
{
    if (c->io_failed || err == GNUTLS_E_PUSH_ERROR)
        return HX_TLS_E_IO;
    switch (err) {
    case GNUTLS_E_MEMORY_ERROR:
        return HX_TLS_E_NOMEM;
    case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
    case GNUTLS_E_CERTIFICATE_REQUIRED:
    case GNUTLS_E_NO_CERTIFICATE_FOUND:
    case GNUTLS_E_CERTIFICATE_ERROR:
        return HX_TLS_E_PEER_CERT;
    case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
    case GNUTLS_E_RECORD_OVERFLOW:
    case GNUTLS_E_UNEXPECTED_PACKET:
    case GNUTLS_E_DECRYPTION_FAILED:
    case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
    case GNUTLS_E_HANDSHAKE_TOO_LARGE:
        return HX_TLS_E_PROTOCOL;
    default:
        return c->state == ST_HANDSHAKE ? HX_TLS_E_HANDSHAKE : HX_TLS_E_PROTOCOL;
    }
}

static hx_tls_rc fail(hx_tls_conn *c, int err)
{
    c->failed = classify(c, err);
    c->gnutls_err = err;
    /* Tell the peer why, unless the way to it is what failed. */
    if (c->failed != HX_TLS_E_IO)
        (void)gnutls_alert_send_appropriate(c->s, err);
    c->state = ST_FAILED;
    return c->failed;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

bool hx_tls_session_peer(gnutls_session_t s, char sha256[HX_TLS_SHA256_HEX + 1], char subject[HX_TLS_SUBJECT_MAX + 1])
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    if (certs == NULL || n == 0 || hx__tls_verify_client(s) != 0)
        return false;
    unsigned char d[32];
    size_t dl = sizeof d;
    if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], d, &dl) != 0 || dl != sizeof d)
        return false;
    hex(d, dl, sha256);
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) != 0)
        return true;
    gnutls_datum_t dn = {NULL, 0};
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0 && dn.size <= HX_TLS_SUBJECT_MAX &&
        memchr(dn.data, '\0', dn.size) == NULL) {
        memcpy(subject, dn.data, dn.size);
        subject[dn.size] = '\0';
    }
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(crt);
    return true;
}

/* The verified client certificate (the handshake failed if it was not). */
static void peer_identity(hx_tls_conn *c)
{
    c->info.peer_verified = hx_tls_session_peer(c->s, c->info.peer_sha256, c->info.peer_subject);
}

static void fill_info(hx_tls_conn *c)
{
    hx_tls_info *i = &c->info;
    i->version = gnutls_protocol_get_name(gnutls_protocol_get_version(c->s));
    i->cipher = gnutls_cipher_get_name(gnutls_cipher_get(c->s));
    if (i->version == NULL)
        i->version = "";
    if (i->cipher == NULL)
        i->cipher = "";
    gnutls_datum_t a = {NULL, 0};
    if (gnutls_alpn_get_selected_protocol(c->s, &a) == 0 && a.size <= HX_TLS_ALPN_MAX) {
        memcpy(i->alpn, a.data, a.size);
        i->alpn[a.size] = '\0';
    }
    size_t len = sizeof i->sni;
    unsigned type = 0;
    if (gnutls_server_name_get(c->s, i->sni, &len, &type, 0) != 0 || type != GNUTLS_NAME_DNS)
        i->sni[0] = '\0';
    i->resumed = gnutls_session_is_resumed(c->s) != 0;
    peer_identity(c);
}

/* Warning alerts cost the peer nothing; a real client sends almost none. */
static bool too_many_warnings(hx_tls_conn *c)
{
    return ++c->warnings > HX_TLS_WARNINGS_MAX;
}

static hx_tls_rc handshake(hx_tls_conn *c)
{
    for (;;) {
        int rc = gnutls_handshake(c->s);
        if (rc == 0)
            break;
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            if (c->in_left == 0)
                return HX_TLS_OK;
            continue;
        }
        if (gnutls_error_is_fatal(rc) || too_many_warnings(c))
            return fail(c, gnutls_error_is_fatal(rc) ? rc : GNUTLS_E_UNEXPECTED_PACKET);
    }
    c->state = ST_OPEN;
    fill_info(c);
    return HX_TLS_OK;
}

static hx_tls_rc read_records(hx_tls_conn *c)
{
    for (;;) {
        ssize_t n = gnutls_record_recv(c->s, plain, sizeof plain);
        if (n > 0) {
            if (c->io.recv(c->ud, plain, (size_t)n) != 0) {
                c->io_failed = true;
                return fail(c, GNUTLS_E_PUSH_ERROR);
            }
            /* Every fed byte read and nothing decrypted left: the next
             * call could only say "again", after GnuTLS allocated and
             * freed a record buffer for it. */
            if (c->in_left == 0 && gnutls_record_check_pending(c->s) == 0)
                return HX_TLS_OK;
            continue;
        }
        if (n == 0) {
            c->state = ST_PEER_CLOSED;
            return HX_TLS_CLOSED;
        }
        if (n == GNUTLS_E_AGAIN && c->in_left == 0 && gnutls_record_check_pending(c->s) == 0)
            return HX_TLS_OK;
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (gnutls_error_is_fatal((int)n))
            return fail(c, (int)n);
        if (too_many_warnings(c))
            return fail(c, GNUTLS_E_UNEXPECTED_PACKET);
        if (n == GNUTLS_E_REHANDSHAKE) /* TLS 1.2 renegotiation: not offered */
            (void)gnutls_alert_send(c->s, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
    }
}

hx_tls_rc hx_tls_conn_feed(hx_tls_conn *c, const void *data, size_t len)
{
    if (c->state == ST_FAILED)
        return c->failed;
    if (c->state == ST_PEER_CLOSED)
        return HX_TLS_CLOSED;
    if (c->state == ST_CLOSED)
        return HX_TLS_E_STATE;
    c->in = data;
    c->in_left = len;
    hx_tls_rc rc = HX_TLS_OK;
    if (c->state == ST_HANDSHAKE)
        rc = handshake(c);
    if (rc == HX_TLS_OK && c->state == ST_OPEN)
        rc = read_records(c);
    c->in = NULL;
    c->in_left = 0;
    return rc;
}

hx_tls_rc hx_tls_conn_send(hx_tls_conn *c, const void *data, size_t len)
{
    if (c->state == ST_FAILED)
        return c->failed;
    if (c->state != ST_OPEN && c->state != ST_PEER_CLOSED)
        return HX_TLS_E_STATE;
    const unsigned char *p = data;
    while (len > 0) {
        size_t chunk = len < HX_TLS_RECORD_MAX ? len : HX_TLS_RECORD_MAX;
        ssize_t n = gnutls_record_send(c->s, p, chunk);
        if (n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n <= 0) /* push never says "again": anything else is final */
            return fail(c, n == GNUTLS_E_AGAIN ? GNUTLS_E_PUSH_ERROR : (int)n);
        p += n;
        len -= (size_t)n;
    }
    return HX_TLS_OK;
}

hx_tls_rc hx_tls_conn_close(hx_tls_conn *c)
{
    if (c->state == ST_FAILED)
        return c->failed;
    if (c->state != ST_OPEN && c->state != ST_PEER_CLOSED)
        return HX_TLS_E_STATE;
    int rc = gnutls_bye(c->s, GNUTLS_SHUT_WR);
    c->state = ST_CLOSED;
    return rc == 0 ? HX_TLS_OK : HX_TLS_E_IO;
}

bool hx_tls_conn_ready(const hx_tls_conn *c)
{
    return c->state == ST_OPEN || c->state == ST_PEER_CLOSED || c->state == ST_CLOSED;
}

const hx_tls_info *hx_tls_conn_info(const hx_tls_conn *c)
{
    return &c->info;
}

const char *hx_tls_conn_error(const hx_tls_conn *c)
{
    return c->gnutls_err ? gnutls_strerror(c->gnutls_err) : "";
}

const char *hx_tls_rc_text(hx_tls_rc rc)
{
    switch (rc) {
    case HX_TLS_OK:
        return "ok";
    case HX_TLS_CLOSED:
        return "closed by the peer";
    case HX_TLS_E_HANDSHAKE:
        return "TLS handshake failed";
    case HX_TLS_E_PEER_CERT:
        return "client certificate missing or not trusted";
    case HX_TLS_E_PROTOCOL:
        return "TLS protocol error";
    case HX_TLS_E_IO:
        return "transport error";
    case HX_TLS_E_NOMEM:
        return "out of memory";
    case HX_TLS_E_STATE:
        return "connection not open";
    }
    return "unknown";
}
