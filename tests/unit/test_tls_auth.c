/* src/tls/: session tickets (resumption, shared ticket keys) and client
 * certificates (mTLS), with a GnuTLS client in memory (tls_pair.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "obs/log.h"
#include "tls/tls.h"
#include "util/alloc.h"

#include "tls_pair.h"

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

/* The server refuses a handshake from a client with options o for its
 * certificate (or its lack of one). */
static void assert_peer_refused(hx_tls_ctx *ctx, const cli_opts *o)
{
    pair *p = pair_new(ctx, o);
    pump(p);
    assert_int_equal(p->srv_rc, HX_TLS_E_PEER_CERT);
    pair_free(p);
}

/* A pair with ctx whose client presents client-one's certificate (and
 * resumes the session of `resume`, if any), past a good handshake. */
static pair *client_one_pair(hx_tls_ctx *ctx, const gnutls_datum_t *resume)
{
    cli_opts o = {.cert = tls_at("client.pem"), .key = tls_at("client.key"), .resume = resume};
    pair *p = pair_new(ctx, &o);
    handshake_ok(p);
    return p;
}

static void test_mtls(void **state)
{
    (void)state;
    char fp[65];
    fingerprint(tls_at("client.pem"), fp);
    hx_tls_ctx *req = mtls_ctx("require");
    /* a client certificate from the CA: verified, identity exposed */
    pair *p = client_one_pair(req, NULL);
    const hx_tls_info *i = hx_tls_conn_info(p->srv);
    assert_true(i->peer_verified);
    assert_string_equal(i->peer_sha256, fp);
    assert_string_equal(i->peer_subject, "CN=client-one");
    exchange(p);
    pair_free(p);
    /* none: refused */
    assert_peer_refused(req, &(cli_opts){0});
    /* one from another CA: refused (a polite client sends none, since the
     * server names its CA; a hostile one sends it anyway) */
    assert_peer_refused(req, &(cli_opts){.cert = tls_at("rogue.pem"), .key = tls_at("rogue.key")});
    force_load(tls_at("rogue.pem"), tls_at("rogue.key"));
    assert_peer_refused(req, &(cli_opts){.force_cert = true});
    hx_tls_ctx_unref(req);

    hx_tls_ctx *opt = mtls_ctx("optional");
    p = pair_new(opt, &(cli_opts){0});
    handshake_ok(p);
    assert_false(hx_tls_conn_info(p->srv)->peer_verified);
    assert_string_equal(hx_tls_conn_info(p->srv)->peer_sha256, "");
    pair_free(p);
    p = client_one_pair(opt, NULL);
    assert_string_equal(hx_tls_conn_info(p->srv)->peer_sha256, fp);
    pair_free(p);
    assert_peer_refused(opt, &(cli_opts){.force_cert = true});
    force_unload();
    /* a server certificate (wrong purpose) signed by the right CA: refused */
    force_load(tls_at("server.pem"), tls_at("server.key"));
    assert_peer_refused(opt, &(cli_opts){.force_cert = true});
    force_unload();
    hx_tls_ctx_unref(opt);

    /* client_auth: none never asks: a client certificate is not sent */
    hx_tls_ctx *none = default_ctx();
    p = client_one_pair(none, NULL);
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
    pair *p = client_one_pair(req, NULL);
    exchange(p);
    gnutls_datum_t tk;
    assert_int_equal(gnutls_session_get_data2(p->cli, &tk), 0);
    pair_free(p);
    p = client_one_pair(req, &tk);
    const hx_tls_info *i = hx_tls_conn_info(p->srv);
    assert_true(i->resumed);
    assert_true(i->peer_verified);
    assert_string_equal(i->peer_sha256, fp);
    assert_string_equal(i->peer_subject, "CN=client-one");
    pair_free(p);
    gnutls_free(tk.data);
    hx_tls_ctx_unref(req);
}

int main(void)
{
    hx_log_set_level(HX_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tickets),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_mtls_resumed_identity),
    };
    return cmocka_run_group_tests(tests, tls_certs_setup, tls_certs_teardown);
}
