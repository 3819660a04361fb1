/* The in-memory harness of test_tls*.c: a GnuTLS client session (pair:
 * client <-> hx_tls_conn through two pipes), contexts from an hx_cfg_tls
 * built by hand, and the certificates of tls_certs.h. */
#ifndef HX_TEST_TLS_PAIR_H
#define HX_TEST_TLS_PAIR_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config/config.h"
#include "tls/tls.h"

#include "tls_certs.h"

#define PIPE_MAX (256 * 1024)
#define PUMP_ROUNDS 64



/* ---- an in-memory pair: GnuTLS client <-> hx_tls_conn ---- */

typedef struct {
    unsigned char d[PIPE_MAX];
    size_t len;
} pipe_buf;

typedef struct {
    pipe_buf c2s, s2c, got;    /* got: plaintext the server's recv callback had */
    gnutls_session_t cli;
    gnutls_certificate_credentials_t ccred;
    hx_tls_conn *srv;
    int cli_rc;                /* the client's handshake result */
    hx_tls_rc srv_rc;          /* the server's last feed result */
    bool fail_send;
} pair;

static inline int pipe_put(pipe_buf *p, const void *d, size_t n)
{
    if (n > PIPE_MAX - p->len)
        return -1;
    memcpy(p->d + p->len, d, n);
    p->len += n;
    return 0;
}

static inline int srv_send(void *ud, const void *d, size_t n)
{
    pair *p = ud;
    return p->fail_send ? -1 : pipe_put(&p->s2c, d, n);
}

static size_t largest_recv; /* the biggest plaintext piece handed to recv */

static inline int srv_recv(void *ud, const void *d, size_t n)
{
    if (n > largest_recv)
        largest_recv = n;
    return pipe_put(&((pair *)ud)->got, d, n);
}

static const hx_tls_io srv_io = {srv_send, srv_recv};

static inline ssize_t cli_push(gnutls_transport_ptr_t t, const void *d, size_t n)
{
    return pipe_put(&((pair *)t)->c2s, d, n) == 0 ? (ssize_t)n : -1;
}

static inline ssize_t cli_pull(gnutls_transport_ptr_t t, void *d, size_t n)
{
    pair *p = t;
    if (p->s2c.len == 0) {
        gnutls_transport_set_errno(p->cli, EAGAIN);
        return -1;
    }
    size_t k = n < p->s2c.len ? n : p->s2c.len;
    memcpy(d, p->s2c.d, k);
    memmove(p->s2c.d, p->s2c.d + k, p->s2c.len - k);
    p->s2c.len -= k;
    return (ssize_t)k;
}

typedef struct {
    const char *priority;  /* NULL = NORMAL */
    const char *sni;       /* also the name the server certificate is verified for */
    const char *alpn;      /* "h2,http/1.1", "http/1.1" or NULL */
    const char *cert, *key;/* a client certificate */
    bool force_cert;       /* sent whatever CAs the server names */
    const gnutls_datum_t *resume;
} cli_opts;

/* A client that sends its certificate even when the server's
 * CertificateRequest names other CAs (as a hostile client may). */
static gnutls_pcert_st forced_pcert;
static gnutls_privkey_t forced_key;

static inline int forced_retrieve(gnutls_session_t s, const gnutls_datum_t *ca, int nca, const gnutls_pk_algorithm_t *pk,
                           int npk, gnutls_pcert_st **pcert, unsigned *n, gnutls_privkey_t *key)
{
    (void)s, (void)ca, (void)nca, (void)pk, (void)npk;
    *pcert = &forced_pcert;
    *n = 1;
    *key = forced_key;
    return 0;
}

static inline void force_load(const char *cert, const char *key)
{
    unsigned n = 1;
    assert_int_equal(gnutls_pcert_list_import_x509_file(&forced_pcert, &n, cert, GNUTLS_X509_FMT_PEM, NULL, NULL, 0), 0);
    gnutls_datum_t k;
    assert_int_equal(gnutls_load_file(key, &k), 0);
    assert_int_equal(gnutls_privkey_init(&forced_key), 0);
    assert_int_equal(gnutls_privkey_import_x509_raw(forced_key, &k, GNUTLS_X509_FMT_PEM, NULL, 0), 0);
    gnutls_free(k.data);
}

static inline void force_unload(void)
{
    gnutls_pcert_deinit(&forced_pcert);
    gnutls_privkey_deinit(forced_key);
}

static inline pair *pair_new(hx_tls_ctx *ctx, const cli_opts *o)
{
    pair *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->srv = hx_tls_conn_new(ctx, &srv_io, p);
    assert_non_null(p->srv);
    assert_int_equal(gnutls_certificate_allocate_credentials(&p->ccred), 0);
    assert_true(gnutls_certificate_set_x509_trust_file(p->ccred, tls_at("ca.pem"), GNUTLS_X509_FMT_PEM) > 0);
    if (o->force_cert)
        gnutls_certificate_set_retrieve_function2(p->ccred, forced_retrieve);
    else if (o->cert)
        assert_int_equal(gnutls_certificate_set_x509_key_file(p->ccred, o->cert, o->key, GNUTLS_X509_FMT_PEM), 0);
    assert_int_equal(gnutls_init(&p->cli, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_priority_set_direct(p->cli, o->priority ? o->priority : "NORMAL", NULL), 0);
    assert_int_equal(gnutls_credentials_set(p->cli, GNUTLS_CRD_CERTIFICATE, p->ccred), 0);
    const char *name = o->sni ? o->sni : "a.test";
    if (o->sni)
        assert_int_equal(gnutls_server_name_set(p->cli, GNUTLS_NAME_DNS, o->sni, strlen(o->sni)), 0);
    gnutls_session_set_verify_cert(p->cli, name, 0);
    if (o->alpn) {
        gnutls_datum_t a[2];
        unsigned n = 0;
        if (strstr(o->alpn, "h2"))
            a[n++] = (gnutls_datum_t){(unsigned char *)(uintptr_t) "h2", 2};
        if (strstr(o->alpn, "http/1.1"))
            a[n++] = (gnutls_datum_t){(unsigned char *)(uintptr_t) "http/1.1", 8};
        assert_int_equal(gnutls_alpn_set_protocols(p->cli, a, n, 0), 0);
    }
    if (o->resume)
        assert_int_equal(gnutls_session_set_data(p->cli, o->resume->data, o->resume->size), 0);
    gnutls_transport_set_ptr(p->cli, p);
    gnutls_transport_set_push_function(p->cli, cli_push);
    gnutls_transport_set_pull_function(p->cli, cli_pull);
    p->cli_rc = GNUTLS_E_AGAIN;
    return p;
}

static inline void pair_free(pair *p)
{
    hx_tls_conn_free(p->srv);
    gnutls_deinit(p->cli);
    gnutls_certificate_free_credentials(p->ccred);
    free(p);
}

/* Moves the client's bytes to the server, once. */
static inline void flush_c2s(pair *p)
{
    if (p->c2s.len == 0)
        return;
    p->srv_rc = hx_tls_conn_feed(p->srv, p->c2s.d, p->c2s.len);
    p->c2s.len = 0;
}

/* Runs both handshakes until they finish or one side fails. */
static inline void pump(pair *p)
{
    for (int i = 0; i < PUMP_ROUNDS; i++) {
        if (p->cli_rc == GNUTLS_E_AGAIN || p->cli_rc == GNUTLS_E_INTERRUPTED)
            p->cli_rc = gnutls_handshake(p->cli);
        flush_c2s(p);
        if (p->srv_rc < 0 || (p->cli_rc < 0 && gnutls_error_is_fatal(p->cli_rc)))
            return;
        if (p->cli_rc == 0 && hx_tls_conn_ready(p->srv) && p->c2s.len == 0)
            return;
    }
    fail_msg("handshake did not finish in %d rounds", PUMP_ROUNDS);
}

static inline void handshake_ok(pair *p)
{
    pump(p);
    assert_int_equal(p->cli_rc, 0);
    assert_int_equal(p->srv_rc, HX_TLS_OK);
    assert_true(hx_tls_conn_ready(p->srv));
}

/* Client -> server and server -> client through the session. */
static inline void exchange(pair *p)
{
    p->got.len = 0;
    assert_int_equal(gnutls_record_send(p->cli, "ping", 4), 4);
    flush_c2s(p);
    assert_int_equal(p->srv_rc, HX_TLS_OK);
    assert_int_equal(p->got.len, 4);
    assert_memory_equal(p->got.d, "ping", 4);
    assert_int_equal(hx_tls_conn_send(p->srv, "pong", 4), HX_TLS_OK);
    char buf[16];
    ssize_t n;
    do /* the first records may be TLS 1.3 session tickets */
        n = gnutls_record_recv(p->cli, buf, sizeof buf);
    while (n == GNUTLS_E_AGAIN && p->s2c.len > 0);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "pong", 4);
}

/* ---- contexts ---- */

static inline void tls_cfg(hx_cfg_tls *t, const char *cert, const char *key)
{
    static char *alpn[] = {"h2", "http/1.1"};
    memset(t, 0, sizeof *t);
    t->cert_file = (char *)(uintptr_t)cert;
    t->key_file = (char *)(uintptr_t)key;
    t->min_version = "1.2";
    t->priority = "";
    t->alpn = (hx_strlist){alpn, 2};
    t->client_ca_file = "";
    t->client_auth = "none";
    t->session_tickets = true;
    t->ticket_key_file = "";
}

static inline hx_tls_ctx *ctx_of(const hx_cfg_tls *t)
{
    char err[512] = "";
    hx_tls_ctx *c = hx_tls_ctx_new(t, err, sizeof err);
    if (c == NULL)
        fail_msg("hx_tls_ctx_new: %s", err);
    return c;
}

static inline hx_tls_ctx *default_ctx(void)
{
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    return ctx_of(&t);
}

#endif
