/* src/tls/: a GnuTLS client session against hx_tls_conn, all in memory
 * (no sockets), with certificates made at test time by tests/certs/gen.sh
 * (tls_certs.h). The server.tls config validation: test_tls_config.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config/config.h"
#include "obs/log.h"
#include "tls/tls.h"
#include "util/alloc.h"

#define PIPE_MAX (256 * 1024)
#define PUMP_ROUNDS 64

#include "tls_certs.h"


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

static int pipe_put(pipe_buf *p, const void *d, size_t n)
{
    if (n > PIPE_MAX - p->len)
        return -1;
    memcpy(p->d + p->len, d, n);
    p->len += n;
    return 0;
}

static int srv_send(void *ud, const void *d, size_t n)
{
    pair *p = ud;
    return p->fail_send ? -1 : pipe_put(&p->s2c, d, n);
}

static size_t largest_recv; /* the biggest plaintext piece handed to recv */

static int srv_recv(void *ud, const void *d, size_t n)
{
    if (n > largest_recv)
        largest_recv = n;
    return pipe_put(&((pair *)ud)->got, d, n);
}

static const hx_tls_io srv_io = {srv_send, srv_recv};

static ssize_t cli_push(gnutls_transport_ptr_t t, const void *d, size_t n)
{
    return pipe_put(&((pair *)t)->c2s, d, n) == 0 ? (ssize_t)n : -1;
}

static ssize_t cli_pull(gnutls_transport_ptr_t t, void *d, size_t n)
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

static int forced_retrieve(gnutls_session_t s, const gnutls_datum_t *ca, int nca, const gnutls_pk_algorithm_t *pk,
                           int npk, gnutls_pcert_st **pcert, unsigned *n, gnutls_privkey_t *key)
{
    (void)s, (void)ca, (void)nca, (void)pk, (void)npk;
    *pcert = &forced_pcert;
    *n = 1;
    *key = forced_key;
    return 0;
}

static void force_load(const char *cert, const char *key)
{
    unsigned n = 1;
    assert_int_equal(gnutls_pcert_list_import_x509_file(&forced_pcert, &n, cert, GNUTLS_X509_FMT_PEM, NULL, NULL, 0), 0);
    gnutls_datum_t k;
    assert_int_equal(gnutls_load_file(key, &k), 0);
    assert_int_equal(gnutls_privkey_init(&forced_key), 0);
    assert_int_equal(gnutls_privkey_import_x509_raw(forced_key, &k, GNUTLS_X509_FMT_PEM, NULL, 0), 0);
    gnutls_free(k.data);
}

static void force_unload(void)
{
    gnutls_pcert_deinit(&forced_pcert);
    gnutls_privkey_deinit(forced_key);
}

static pair *pair_new(hx_tls_ctx *ctx, const cli_opts *o)
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

static void pair_free(pair *p)
{
    hx_tls_conn_free(p->srv);
    gnutls_deinit(p->cli);
    gnutls_certificate_free_credentials(p->ccred);
    free(p);
}

/* Moves the client's bytes to the server, once. */
static void flush_c2s(pair *p)
{
    if (p->c2s.len == 0)
        return;
    p->srv_rc = hx_tls_conn_feed(p->srv, p->c2s.d, p->c2s.len);
    p->c2s.len = 0;
}

/* Runs both handshakes until they finish or one side fails. */
static void pump(pair *p)
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

static void handshake_ok(pair *p)
{
    pump(p);
    assert_int_equal(p->cli_rc, 0);
    assert_int_equal(p->srv_rc, HX_TLS_OK);
    assert_true(hx_tls_conn_ready(p->srv));
}

/* Client -> server and server -> client through the session. */
static void exchange(pair *p)
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

static void tls_cfg(hx_cfg_tls *t, const char *cert, const char *key)
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

static hx_tls_ctx *ctx_of(const hx_cfg_tls *t)
{
    char err[512] = "";
    hx_tls_ctx *c = hx_tls_ctx_new(t, err, sizeof err);
    if (c == NULL)
        fail_msg("hx_tls_ctx_new: %s", err);
    return c;
}

static hx_tls_ctx *default_ctx(void)
{
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    return ctx_of(&t);
}

/* ---- tests ---- */

static void test_tls13_and_data(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = default_ctx();
    pair *p = pair_new(ctx, &(cli_opts){.alpn = "h2,http/1.1"});
    handshake_ok(p);
    const hx_tls_info *i = hx_tls_conn_info(p->srv);
    assert_string_equal(i->version, "TLS1.3");
    assert_string_equal(i->alpn, "h2");
    assert_false(i->resumed);
    assert_false(i->peer_verified);
    assert_string_equal(i->peer_sha256, "");
    exchange(p);
    /* close_notify both ways */
    assert_int_equal(hx_tls_conn_close(p->srv), HX_TLS_OK);
    char buf[8];
    assert_int_equal(gnutls_record_recv(p->cli, buf, sizeof buf), 0);
    assert_int_equal(hx_tls_conn_send(p->srv, "x", 1), HX_TLS_E_STATE);
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

static void test_tls12_and_peer_close(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = default_ctx();
    pair *p = pair_new(ctx, &(cli_opts){.priority = "NORMAL:-VERS-ALL:+VERS-TLS1.2", .alpn = "http/1.1"});
    handshake_ok(p);
    assert_string_equal(hx_tls_conn_info(p->srv)->version, "TLS1.2");
    assert_string_equal(hx_tls_conn_info(p->srv)->alpn, "http/1.1");
    exchange(p);
    assert_int_equal(gnutls_bye(p->cli, GNUTLS_SHUT_WR), 0);
    flush_c2s(p);
    assert_int_equal(p->srv_rc, HX_TLS_CLOSED);
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

static void test_min_version_13_refuses_12(void **state)
{
    (void)state;
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    t.min_version = "1.3";
    hx_tls_ctx *ctx = ctx_of(&t);
    pair *p = pair_new(ctx, &(cli_opts){.priority = "NORMAL:-VERS-ALL:+VERS-TLS1.2"});
    pump(p);
    assert_int_equal(p->srv_rc, HX_TLS_E_HANDSHAKE);
    assert_false(hx_tls_conn_ready(p->srv));
    assert_string_not_equal(hx_tls_conn_error(p->srv), "");
    /* the alert reached the client */
    assert_true(gnutls_error_is_fatal(gnutls_handshake(p->cli)));
    /* an error sticks */
    assert_int_equal(hx_tls_conn_feed(p->srv, "x", 1), HX_TLS_E_HANDSHAKE);
    pair_free(p);
    /* a 1.3 client is served */
    p = pair_new(ctx, &(cli_opts){0});
    handshake_ok(p);
    assert_string_equal(hx_tls_conn_info(p->srv)->version, "TLS1.3");
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

static void test_default_priority_refuses_cbc(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = default_ctx();
    pair *p = pair_new(ctx, &(cli_opts){.priority = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC"});
    pump(p);
    assert_int_equal(p->srv_rc, HX_TLS_E_HANDSHAKE);
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

static void test_alpn(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = default_ctx();
    pair *p = pair_new(ctx, &(cli_opts){.alpn = "http/1.1"});
    handshake_ok(p);
    assert_string_equal(hx_tls_conn_info(p->srv)->alpn, "http/1.1");
    pair_free(p);
    p = pair_new(ctx, &(cli_opts){0});
    handshake_ok(p);
    assert_string_equal(hx_tls_conn_info(p->srv)->alpn, "");
    pair_free(p);
    hx_tls_ctx_unref(ctx);
    /* alpn: [http/1.1] only: a client offering both gets http/1.1 */
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    char *only[] = {"http/1.1"};
    t.alpn = (hx_strlist){only, 1};
    ctx = ctx_of(&t);
    p = pair_new(ctx, &(cli_opts){.alpn = "h2,http/1.1"});
    handshake_ok(p);
    assert_string_equal(hx_tls_conn_info(p->srv)->alpn, "http/1.1");
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

static hx_tls_ctx *sni_ctx(void)
{
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    hx_cfg_tls_cert more = {(char *)(uintptr_t)tls_at("other.pem"), (char *)(uintptr_t)tls_at("other.key")};
    t.certificates = &more;
    t.n_certificates = 1;
    return ctx_of(&t);
}

static void test_sni(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = sni_ctx();
    /* The client verifies the server certificate for the name it sent:
     * the handshake succeeds only when the right one was chosen. */
    static const char *names[] = {"c.test", "b.test", "a.test"};
    for (size_t k = 0; k < 3; k++) {
        pair *p = pair_new(ctx, &(cli_opts){.sni = names[k]});
        handshake_ok(p);
        assert_string_equal(hx_tls_conn_info(p->srv)->sni, names[k]);
        pair_free(p);
    }
    /* an unknown name gets the first (default) certificate */
    pair *p = pair_new(ctx, &(cli_opts){.sni = "a.test"});
    gnutls_server_name_set(p->cli, GNUTLS_NAME_DNS, "unknown.test", 12);
    handshake_ok(p);
    assert_string_equal(hx_tls_conn_info(p->srv)->sni, "unknown.test");
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

/* A full handshake on ctx; returns the session data holding the ticket. */
static void get_ticket(hx_tls_ctx *ctx, gnutls_datum_t *out)
{
    pair *p = pair_new(ctx, &(cli_opts){0});
    handshake_ok(p);
    exchange(p); /* the client reads the NewSessionTicket before "pong" */
    assert_int_equal(gnutls_session_get_data2(p->cli, out), 0);
    pair_free(p);
}

static bool resumes(hx_tls_ctx *ctx, const gnutls_datum_t *ticket)
{
    pair *p = pair_new(ctx, &(cli_opts){.resume = ticket});
    handshake_ok(p);
    bool r = hx_tls_conn_info(p->srv)->resumed;
    assert_int_equal(r, gnutls_session_is_resumed(p->cli) != 0);
    pair_free(p);
    return r;
}

static void test_tickets(void **state)
{
    (void)state;
    gnutls_datum_t tk;
    /* one process, no key file: a ticket resumes, also on a reloaded context */
    hx_tls_ctx *a = default_ctx();
    get_ticket(a, &tk);
    assert_true(resumes(a, &tk));
    hx_tls_ctx *a2 = default_ctx();
    assert_true(resumes(a2, &tk));
    gnutls_free(tk.data);
    hx_tls_ctx_unref(a);
    hx_tls_ctx_unref(a2);

    /* two instances sharing ticket_key_file accept each other's tickets */
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    t.ticket_key_file = (char *)(uintptr_t)tls_at("ticket.key");
    hx_tls_ctx *x = ctx_of(&t);
    hx_tls_ctx *y = ctx_of(&t);
    get_ticket(x, &tk);
    assert_true(resumes(y, &tk));
    /* an instance with another key does a full handshake */
    hx_tls_ctx *z = default_ctx();
    assert_false(resumes(z, &tk));
    gnutls_free(tk.data);
    /* tickets off: no resumption */
    t.session_tickets = false;
    hx_tls_ctx *off = ctx_of(&t);
    get_ticket(off, &tk);
    assert_false(resumes(off, &tk));
    gnutls_free(tk.data);
    hx_tls_ctx_unref(x);
    hx_tls_ctx_unref(y);
    hx_tls_ctx_unref(z);
    hx_tls_ctx_unref(off);
}

static hx_tls_ctx *mtls_ctx(const char *mode)
{
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    t.client_auth = (char *)(uintptr_t)mode;
    t.client_ca_file = (char *)(uintptr_t)tls_at("ca.pem");
    return ctx_of(&t);
}

static void fingerprint(const char *pem_path, char out[65])
{
    gnutls_datum_t pem, der;
    assert_int_equal(gnutls_load_file(pem_path, &pem), 0);
    assert_int_equal(gnutls_pem_base64_decode2("CERTIFICATE", &pem, &der), 0);
    unsigned char d[32];
    size_t n = sizeof d;
    assert_int_equal(gnutls_fingerprint(GNUTLS_DIG_SHA256, &der, d, &n), 0);
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    gnutls_free(pem.data);
    gnutls_free(der.data);
}

static void test_mtls(void **state)
{
    (void)state;
    char fp[65];
    fingerprint(tls_at("client.pem"), fp);
    hx_tls_ctx *req = mtls_ctx("require");
    /* a client certificate from the CA: verified, identity exposed */
    pair *p = pair_new(req, &(cli_opts){.cert = tls_at("client.pem"), .key = tls_at("client.key")});
    handshake_ok(p);
    const hx_tls_info *i = hx_tls_conn_info(p->srv);
    assert_true(i->peer_verified);
    assert_string_equal(i->peer_sha256, fp);
    assert_string_equal(i->peer_subject, "CN=client-one");
    exchange(p);
    pair_free(p);
    /* none: refused */
    p = pair_new(req, &(cli_opts){0});
    pump(p);
    assert_int_equal(p->srv_rc, HX_TLS_E_PEER_CERT);
    pair_free(p);
    /* one from another CA: refused (a polite client sends none, since the
     * server names its CA; a hostile one sends it anyway) */
    p = pair_new(req, &(cli_opts){.cert = tls_at("rogue.pem"), .key = tls_at("rogue.key")});
    pump(p);
    assert_int_equal(p->srv_rc, HX_TLS_E_PEER_CERT);
    pair_free(p);
    force_load(tls_at("rogue.pem"), tls_at("rogue.key"));
    p = pair_new(req, &(cli_opts){.force_cert = true});
    pump(p);
    assert_int_equal(p->srv_rc, HX_TLS_E_PEER_CERT);
    pair_free(p);
    hx_tls_ctx_unref(req);

    hx_tls_ctx *opt = mtls_ctx("optional");
    p = pair_new(opt, &(cli_opts){0});
    handshake_ok(p);
    assert_false(hx_tls_conn_info(p->srv)->peer_verified);
    assert_string_equal(hx_tls_conn_info(p->srv)->peer_sha256, "");
    pair_free(p);
    p = pair_new(opt, &(cli_opts){.cert = tls_at("client.pem"), .key = tls_at("client.key")});
    handshake_ok(p);
    assert_string_equal(hx_tls_conn_info(p->srv)->peer_sha256, fp);
    pair_free(p);
    p = pair_new(opt, &(cli_opts){.force_cert = true});
    pump(p);
    assert_int_equal(p->srv_rc, HX_TLS_E_PEER_CERT);
    pair_free(p);
    force_unload();
    /* a server certificate (wrong purpose) signed by the right CA: refused */
    force_load(tls_at("server.pem"), tls_at("server.key"));
    p = pair_new(opt, &(cli_opts){.force_cert = true});
    pump(p);
    assert_int_equal(p->srv_rc, HX_TLS_E_PEER_CERT);
    pair_free(p);
    force_unload();
    hx_tls_ctx_unref(opt);

    /* client_auth: none never asks: a client certificate is not sent */
    hx_tls_ctx *none = default_ctx();
    p = pair_new(none, &(cli_opts){.cert = tls_at("client.pem"), .key = tls_at("client.key")});
    handshake_ok(p);
    assert_false(hx_tls_conn_info(p->srv)->peer_verified);
    pair_free(p);
    hx_tls_ctx_unref(none);
}

/* A session resumed by ticket keeps the client identity of the full
 * handshake (the ticket carries it): auth sees the same client. */
static void test_mtls_resumed_identity(void **state)
{
    (void)state;
    char fp[65];
    fingerprint(tls_at("client.pem"), fp);
    hx_tls_ctx *req = mtls_ctx("require");
    pair *p = pair_new(req, &(cli_opts){.cert = tls_at("client.pem"), .key = tls_at("client.key")});
    handshake_ok(p);
    exchange(p);
    gnutls_datum_t tk;
    assert_int_equal(gnutls_session_get_data2(p->cli, &tk), 0);
    pair_free(p);
    p = pair_new(req, &(cli_opts){.cert = tls_at("client.pem"), .key = tls_at("client.key"), .resume = &tk});
    handshake_ok(p);
    const hx_tls_info *i = hx_tls_conn_info(p->srv);
    assert_true(i->resumed);
    assert_true(i->peer_verified);
    assert_string_equal(i->peer_sha256, fp);
    assert_string_equal(i->peer_subject, "CN=client-one");
    pair_free(p);
    gnutls_free(tk.data);
    hx_tls_ctx_unref(req);
}

static void test_reload_swaps(void **state)
{
    (void)state;
    hx_tls_ctx *old = default_ctx();
    hx_tls_ctx_publish(old);
    hx_tls_ctx *cur = hx_tls_ctx_current();
    assert_ptr_equal(cur, old);
    pair *p1 = pair_new(cur, &(cli_opts){.sni = "a.test"});
    hx_tls_ctx_unref(cur);
    handshake_ok(p1);

    /* the reload: a new context whose default certificate is c.test */
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("other.pem"), tls_at("other.key"));
    hx_tls_ctx *fresh = ctx_of(&t);
    hx_tls_ctx_publish(fresh);
    hx_tls_ctx_unref(fresh);
    hx_tls_ctx_unref(old); /* only the published pointer's and p1's references were left */

    cur = hx_tls_ctx_current();
    assert_ptr_equal(cur, fresh);
    pair *p2 = pair_new(cur, &(cli_opts){.sni = "c.test"});
    hx_tls_ctx_unref(cur);
    handshake_ok(p2);
    /* the old connection keeps working on the old context */
    exchange(p1);
    exchange(p2);
    pair_free(p1);
    pair_free(p2);
    hx_tls_ctx_publish(NULL);
    assert_null(hx_tls_ctx_current());
}

static void test_garbage_bounded(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = default_ctx();
    static unsigned char junk[1 << 20];
    memset(junk, 'G', sizeof junk);
    /* before the handshake: not a TLS record */
    pair *p = pair_new(ctx, &(cli_opts){0});
    unsigned long before = hx_alloc_count();
    hx_tls_rc rc = hx_tls_conn_feed(p->srv, junk, sizeof junk);
    assert_true(rc < 0);
    assert_int_equal(hx_alloc_count(), before);
    assert_int_equal(hx_tls_conn_feed(p->srv, junk, 16), rc);
    pair_free(p);
    /* after it: a record header announcing 64 KiB, then a flood */
    p = pair_new(ctx, &(cli_opts){0});
    handshake_ok(p);
    static const unsigned char big[] = {23, 3, 3, 0xff, 0xff};
    rc = hx_tls_conn_feed(p->srv, big, sizeof big);
    if (rc == HX_TLS_OK)
        rc = hx_tls_conn_feed(p->srv, junk, sizeof junk);
    assert_int_equal(rc, HX_TLS_E_PROTOCOL);
    assert_int_equal(p->got.len, 0);
    pair_free(p);
    /* a flood of well-formed but undecryptable records */
    p = pair_new(ctx, &(cli_opts){0});
    handshake_ok(p);
    for (size_t off = 0; off + 5 + 1000 <= sizeof junk; off += 1005) {
        junk[off] = 23, junk[off + 1] = 3, junk[off + 2] = 3, junk[off + 3] = 1000 >> 8, junk[off + 4] = 1000 & 255;
    }
    rc = hx_tls_conn_feed(p->srv, junk, sizeof junk);
    assert_int_equal(rc, HX_TLS_E_PROTOCOL);
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

/* Ciphertext arriving one byte at a time (a slow or fragmenting peer)
 * completes the handshake all the same. */
static void test_byte_at_a_time(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = default_ctx();
    pair *p = pair_new(ctx, &(cli_opts){.alpn = "h2"});
    for (int i = 0; i < PUMP_ROUNDS && !(p->cli_rc == 0 && hx_tls_conn_ready(p->srv)); i++) {
        if (p->cli_rc == GNUTLS_E_AGAIN)
            p->cli_rc = gnutls_handshake(p->cli);
        for (size_t k = 0; k < p->c2s.len; k++)
            assert_int_equal(hx_tls_conn_feed(p->srv, p->c2s.d + k, 1), HX_TLS_OK);
        p->c2s.len = 0;
    }
    assert_int_equal(p->cli_rc, 0);
    assert_true(hx_tls_conn_ready(p->srv));
    assert_string_equal(hx_tls_conn_info(p->srv)->alpn, "h2");
    exchange(p);
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

/* 200 KB each way: the server splits its sends into records, and hands
 * the peer's plaintext over at most one record at a time. */
static void test_large_transfer(void **state)
{
    (void)state;
    enum { BIG = 200 * 1000 };
    static unsigned char data[BIG], back[BIG];
    for (size_t i = 0; i < BIG; i++)
        data[i] = (unsigned char)(i * 7 + i / 251);
    hx_tls_ctx *ctx = default_ctx();
    pair *p = pair_new(ctx, &(cli_opts){0});
    handshake_ok(p);
    largest_recv = 0;
    for (size_t off = 0; off < BIG;) {
        ssize_t n = gnutls_record_send(p->cli, data + off, BIG - off);
        assert_true(n > 0);
        off += (size_t)n;
        flush_c2s(p);
        assert_int_equal(p->srv_rc, HX_TLS_OK);
    }
    assert_int_equal(p->got.len, BIG);
    assert_memory_equal(p->got.d, data, BIG);
    assert_true(largest_recv <= HX_TLS_RECORD_MAX);
    assert_int_equal(hx_tls_conn_send(p->srv, data, BIG), HX_TLS_OK);
    size_t got = 0;
    while (got < BIG) {
        ssize_t n = gnutls_record_recv(p->cli, back + got, BIG - got);
        if (n == GNUTLS_E_AGAIN && p->s2c.len == 0)
            break;
        if (n > 0)
            got += (size_t)n;
    }
    assert_int_equal(got, BIG);
    assert_memory_equal(back, data, BIG);
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

/* Warning alerts are free to send: past HX_TLS_WARNINGS_MAX the peer is cut off. */
static void test_warning_flood(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = default_ctx();
    pair *p = pair_new(ctx, &(cli_opts){.priority = "NORMAL:-VERS-ALL:+VERS-TLS1.2"});
    handshake_ok(p);
    int i = 0;
    for (; i < 2 * HX_TLS_WARNINGS_MAX && p->srv_rc == HX_TLS_OK; i++) {
        assert_int_equal(gnutls_alert_send(p->cli, GNUTLS_AL_WARNING, GNUTLS_A_USER_CANCELED), 0);
        flush_c2s(p);
    }
    assert_int_equal(p->srv_rc, HX_TLS_E_PROTOCOL);
    assert_int_equal(i, HX_TLS_WARNINGS_MAX + 1);
    pair_free(p);
    hx_tls_ctx_unref(ctx);
}

static void test_send_state_and_io_failure(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = default_ctx();
    pair *p = pair_new(ctx, &(cli_opts){0});
    assert_int_equal(hx_tls_conn_send(p->srv, "early", 5), HX_TLS_E_STATE);
    assert_int_equal(hx_tls_conn_close(p->srv), HX_TLS_E_STATE);
    handshake_ok(p);
    p->fail_send = true;
    assert_int_equal(hx_tls_conn_send(p->srv, "x", 1), HX_TLS_E_IO);
    assert_int_equal(hx_tls_conn_send(p->srv, "x", 1), HX_TLS_E_IO);
    pair_free(p);
    /* a send failure during the handshake */
    p = pair_new(ctx, &(cli_opts){0});
    p->fail_send = true;
    pump(p);
    assert_int_equal(p->srv_rc, HX_TLS_E_IO);
    pair_free(p);
    hx_tls_ctx_unref(ctx);
    for (int r = HX_TLS_E_STATE; r <= HX_TLS_CLOSED; r++)
        assert_string_not_equal(hx_tls_rc_text((hx_tls_rc)r), "unknown");
}

/* A session the caller made (as a QUIC stack would) configured from the
 * context: a client handshakes with it. */
static void test_session_setup(void **state)
{
    (void)state;
    hx_tls_ctx *ctx = default_ctx();
    gnutls_session_t s;
    assert_int_equal(gnutls_init(&s, GNUTLS_SERVER), 0);
    assert_int_equal(hx_tls_ctx_session_setup(ctx, s), 0);
    gnutls_datum_t sel;
    assert_int_equal(gnutls_alpn_get_selected_protocol(s, &sel), GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
    gnutls_deinit(s);
    hx_tls_ctx_unref(ctx);
}

static void test_ctx_errors(void **state)
{
    (void)state;
    char err[512];
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("mismatch.key"));
    assert_null(hx_tls_ctx_new(&t, err, sizeof err));
    assert_non_null(strstr(err, "mismatch.key"));
    tls_cfg(&t, tls_at("missing.pem"), tls_at("server.key"));
    assert_null(hx_tls_ctx_new(&t, err, sizeof err));
    assert_non_null(strstr(err, "missing.pem"));
    tls_cfg(&t, "", "");
    assert_null(hx_tls_ctx_new(&t, err, sizeof err));
    assert_non_null(strstr(err, "no certificate"));
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    t.priority = "NORMAL:+BOGUS-THING";
    assert_null(hx_tls_ctx_new(&t, err, sizeof err));
    assert_non_null(strstr(err, "server.tls.priority"));
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    t.client_auth = "require";
    t.client_ca_file = (char *)(uintptr_t)tls_at("server.key");
    assert_null(hx_tls_ctx_new(&t, err, sizeof err));
    assert_non_null(strstr(err, "client_ca_file"));
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    t.ticket_key_file = (char *)(uintptr_t)tls_at("ca.pem");
    assert_null(hx_tls_ctx_new(&t, err, sizeof err));
    assert_non_null(strstr(err, "exactly 64 bytes"));
}

static void test_alloc_failures(void **state)
{
    (void)state;
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    char err[256];
    hx_tls_ctx *ctx = NULL;
    unsigned long n = 1;
    for (; ctx == NULL && n < 100; n++) {
        hx_alloc_fail_at(n, 1);
        ctx = hx_tls_ctx_new(&t, err, sizeof err);
        hx_alloc_fail_at(0, 0);
    }
    assert_non_null(ctx);
    assert_true(n > 2); /* at least one allocation failed on the way */
    hx_tls_conn *c = NULL;
    for (n = 1; c == NULL && n < 100; n++) {
        hx_alloc_fail_at(n, 1);
        c = hx_tls_conn_new(ctx, &srv_io, NULL);
        hx_alloc_fail_at(0, 0);
    }
    assert_non_null(c);
    assert_true(n > 2);
    hx_tls_conn_free(c);
    hx_tls_ctx_unref(ctx);
}

static void test_key_mode_warning(void **state)
{
    (void)state;
    char logp[512];
    snprintf(logp, sizeof logp, "%s/log.txt", tls_dir);
    int fd = open(logp, O_CREAT | O_TRUNC | O_RDWR, 0600);
    assert_true(fd >= 0);
    hx_log_set_fd(fd);
    hx_log_set_json(true);
    hx_log_set_level(HX_LOG_WARN);
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    assert_int_equal(hx_tls_warn_key_modes(&t), 0);
    assert_int_equal(chmod(tls_at("server.key"), 0644), 0);
    assert_int_equal(hx_tls_warn_key_modes(&t), 1);
    hx_tls_ctx_unref(ctx_of(&t)); /* building a context warns too */
    assert_int_equal(chmod(tls_at("server.key"), 0600), 0);
    hx_log_set_fd(2);
    hx_log_set_level(HX_LOG_ERROR);
    char buf[4096] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "\"event\":\"security\""));
    assert_non_null(strstr(buf, "server.key"));
    assert_non_null(strstr(buf, "world-readable"));
}

int main(void)
{
    hx_log_set_level(HX_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13_and_data),
        cmocka_unit_test(test_tls12_and_peer_close),
        cmocka_unit_test(test_min_version_13_refuses_12),
        cmocka_unit_test(test_default_priority_refuses_cbc),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_tickets),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_mtls_resumed_identity),
        cmocka_unit_test(test_reload_swaps),
        cmocka_unit_test(test_garbage_bounded),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_large_transfer),
        cmocka_unit_test(test_warning_flood),
        cmocka_unit_test(test_send_state_and_io_failure),
        cmocka_unit_test(test_session_setup),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_key_mode_warning),
    };
    return cmocka_run_group_tests(tests, tls_certs_setup, tls_certs_teardown);
}
