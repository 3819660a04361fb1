/* The connection I/O layer (src/http/io.h) under the HTTP/1.1 adapter on
 * a real loop and loopback socket (loop_harness.h): a TLS listener with a
 * GnuTLS client on the other end (handshake, ALPN, requests in and out in
 * many records, close_notify at the end, garbage, the handshake deadline,
 * the client certificate reaching hx_req); the plain path with the
 * Alt-Svc hook; the https Location of redirect_http. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <signal.h>

#include "http/io_tls.h"
#include "http/redirect.h"
#include "http/request.h"
#include "loop_harness.h"
#include "tls_pair.h"
#include "util/alloc.h"

static struct {
    int calls;
    bool secure;
    char subject[HX_REQ_PEER_SUBJECT_MAX + 1];
    char sha256[HX_REQ_PEER_SHA256_HEX + 1];
    size_t body_len;
    size_t answer_len; /* bytes of body to answer with */
} g;

static void stub(hx_req *r)
{
    g.calls++;
    g.secure = r->secure;
    memcpy(g.subject, r->peer_cert_subject, sizeof g.subject);
    memcpy(g.sha256, r->peer_cert_sha256, sizeof g.sha256);
    g.body_len = r->body.len;
    if (g.answer_len == 0) {
        hx_res_send(r, 200, "text/plain", "hello", 5);
        return;
    }
    char *b = malloc(g.answer_len);
    assert_non_null(b);
    memset(b, 'z', g.answer_len);
    hx_res_send(r, 200, "text/plain", b, g.answer_len);
    free(b);
}

static lh_loop h;

/* The harness with its listener turned into a TLS one and a context
 * published for it (client_ca: client certificates optional). */
static void tls_setup(const char *yaml, bool client_ca)
{
    memset(&g, 0, sizeof g);
    assert_int_equal(lh_init(&h, yaml, stub), 0);
    h.w->listeners[0].kind = HX_LISTEN_TLS;
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key"));
    if (client_ca) {
        t.client_ca_file = (char *)(uintptr_t)tls_at("ca.pem");
        t.client_auth = "optional";
    }
    char err[256] = "";
    hx_tls_ctx *c = hx_io_tls_ctx_new(&t, false, err, sizeof err); /* the listener's: ALPN filtered */
    assert_non_null(c);
    hx_tls_ctx_publish(c);
    hx_tls_ctx_unref(c);
}

static void tls_teardown(void)
{
    lh_fini(&h);
    hx_tls_ctx_publish(NULL);
}

typedef struct {
    int fd;
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
} client;

static int client_handshake(client *c)
{
    int rc = GNUTLS_E_AGAIN;
    for (int i = 0; i < LH_MAX_TURNS; i++) {
        rc = gnutls_handshake(c->s);
        if (rc == 0 || gnutls_error_is_fatal(rc))
            return rc;
        lh_turn(&h);
    }
    return rc;
}

/* A TLS client offering h2 and http/1.1, connected and past its handshake. */
static void client_open(client *c, const char *cert, const char *key)
{
    c->fd = lh_connect(&h);
    assert_true(c->fd >= 0);
    assert_int_equal(gnutls_certificate_allocate_credentials(&c->cred), 0);
    assert_true(gnutls_certificate_set_x509_trust_file(c->cred, tls_at("ca.pem"), GNUTLS_X509_FMT_PEM) > 0);
    if (cert)
        assert_int_equal(gnutls_certificate_set_x509_key_file(c->cred, cert, key, GNUTLS_X509_FMT_PEM), 0);
    assert_int_equal(gnutls_init(&c->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_set_default_priority(c->s), 0);
    assert_int_equal(gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, c->cred), 0);
    assert_int_equal(gnutls_server_name_set(c->s, GNUTLS_NAME_DNS, "a.test", 6), 0);
    gnutls_session_set_verify_cert(c->s, "a.test", 0);
    gnutls_datum_t alpn[2] = {{(unsigned char *)"h2", 2}, {(unsigned char *)"http/1.1", 8}};
    assert_int_equal(gnutls_alpn_set_protocols(c->s, alpn, 2, 0), 0);
    gnutls_transport_set_int(c->s, c->fd);
    assert_int_equal(client_handshake(c), 0);
}

/* ALPN chose `want`. */
static void assert_alpn(client *c, const char *want)
{
    gnutls_datum_t sel;
    assert_int_equal(gnutls_alpn_get_selected_protocol(c->s, &sel), 0);
    assert_int_equal(sel.size, strlen(want));
    assert_memory_equal(sel.data, want, sel.size);
}

static const char health_req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

static void client_send(client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = gnutls_record_send(c->s, data, len);
        if (n == GNUTLS_E_AGAIN) {
            lh_turn(&h);
            continue;
        }
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

/* Reads until `needle` (NULL: until the end). Returns 0 at a clean end
 * (close_notify), 1 when the needle arrived, or the GnuTLS error. */
static int client_read(client *c, hx_buf *got, const char *needle)
{
    char buf[16384];
    for (int i = 0; i < LH_MAX_TURNS; i++) {
        ssize_t n = gnutls_record_recv(c->s, buf, sizeof buf);
        if (n > 0) {
            assert_int_equal(hx_buf_append(got, buf, (size_t)n), 0);
            if (needle && lh_count(got, needle) > 0)
                return 1;
            continue;
        }
        if (n == 0)
            return 0;
        if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED)
            return (int)n;
        lh_turn(&h);
    }
    return GNUTLS_E_AGAIN;
}

static void client_close(client *c)
{
    gnutls_deinit(c->s);
    gnutls_certificate_free_credentials(c->cred);
    close(c->fd);
}

/* A request and its answer over TLS, on a keep-alive connection, twice;
 * ALPN chose http/1.1 although the client offered h2 first (no HTTP/2
 * adapter yet); the request knows it came over TLS. */
static void test_tls_requests(void **state)
{
    (void)state;
    tls_setup(NULL, false);
    client c;
    client_open(&c, NULL, NULL);
    assert_alpn(&c, "http/1.1");
    hx_buf got;
    hx_buf_init(&got, 1 << 20);
    for (int i = 1; i <= 2; i++) {
        client_send(&c, health_req, sizeof health_req - 1);
        assert_int_equal(client_read(&c, &got, "hello"), 1);
        assert_int_equal(g.calls, i);
        hx_buf_reset(&got);
    }
    assert_true(g.secure);
    assert_string_equal(g.subject, "");
    assert_true(lh_conn(&h)->tls);
    hx_buf_free(&got);
    client_close(&c);
    tls_teardown();
}

/* Bodies of many records each way; the answer's completion is counted in
 * plaintext bytes (nothing left pending); Connection: close ends with
 * close_notify, so the client sees a clean end, not a cut. */
static void test_tls_large_and_close_notify(void **state)
{
    (void)state;
    tls_setup("server:\n  max_body_bytes: 4MB\n", false);
    g.answer_len = 1 << 20;
    client c;
    client_open(&c, NULL, NULL);
    size_t blen = 300000;
    char *req = malloc(blen + 256);
    assert_non_null(req);
    int n = snprintf(req, 256, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               "Content-Length: %zu\r\n\r\n", blen);
    memset(req + n, 'q', blen);
    client_send(&c, req, (size_t)n + blen);
    free(req);
    hx_buf got;
    hx_buf_init(&got, 4 << 20);
    assert_int_equal(client_read(&c, &got, NULL), 0); /* 0: close_notify, a clean end */
    assert_int_equal(g.body_len, blen);
    assert_non_null(memmem(got.data, got.len, "Content-Length: 1048576", 23));
    assert_true(got.len > (size_t)(1 << 20));
    hx_buf_free(&got);
    client_close(&c);
    assert_true(lh_run_until(&h, lh_cond_no_conns, NULL));
    tls_teardown();
}

/* Garbage instead of a ClientHello: the connection closes and nothing of
 * HTTP is answered; a client that sends nothing is cut at
 * handshake_timeout. */
static void test_tls_garbage_and_handshake_deadline(void **state)
{
    (void)state;
    tls_setup("server:\n  tls:\n    handshake_timeout: 50ms\n", false);
    int fd = lh_connect(&h);
    assert_true(lh_send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    hx_buf got;
    hx_buf_init(&got, 1 << 16);
    assert_true(lh_run_until_eof(&h, fd, &got));
    assert_null(memmem(got.data ? got.data : "", got.len, "HTTP/1.1", 8));
    close(fd);
    assert_int_equal(g.calls, 0);
    assert_true(lh_run_until(&h, lh_cond_no_conns, NULL));
    fd = lh_connect(&h); /* silent */
    hx_buf_reset(&got);
    assert_true(lh_run_until_eof(&h, fd, &got));
    assert_int_equal(got.len, 0);
    close(fd);
    assert_true(lh_run_until(&h, lh_cond_no_conns, NULL));
    hx_buf_free(&got);
    tls_teardown();
}

/* A verified client certificate's identity reaches the request. */
static void test_tls_client_cert_facts(void **state)
{
    (void)state;
    tls_setup(NULL, true);
    client c;
    client_open(&c, tls_at("client.pem"), tls_at("client.key"));
    client_send(&c, health_req, sizeof health_req - 1);
    hx_buf got;
    hx_buf_init(&got, 1 << 16);
    assert_int_equal(client_read(&c, &got, "hello"), 1);
    assert_string_equal(g.subject, "CN=client-one");
    assert_int_equal(strlen(g.sha256), 64);
    hx_buf_free(&got);
    client_close(&c);
    tls_teardown();
}

/* Past server.max_connections a TLS connection is closed at once (no
 * handshake spent on a refusal); the one counted keeps working. */
static void test_tls_max_connections(void **state)
{
    (void)state;
    tls_setup("server:\n  max_connections: 1\n", false);
    client c;
    client_open(&c, NULL, NULL);
    assert_int_equal(atomic_load(&h.srv.conns), 1);
    int fd = lh_connect(&h);
    hx_buf got;
    hx_buf_init(&got, 1 << 16);
    assert_true(lh_run_until_eof(&h, fd, &got));
    assert_int_equal(got.len, 0);
    close(fd);
    client_send(&c, health_req, sizeof health_req - 1);
    assert_int_equal(client_read(&c, &got, "hello"), 1);
    hx_buf_free(&got);
    client_close(&c);
    assert_true(lh_run_until(&h, lh_cond_no_conns, NULL));
    assert_int_equal(atomic_load(&h.srv.conns), 0);
    tls_teardown();
}

/* ALPN h2 moves the connection, its TLS session and its slot to the HTTP/2
 * adapter: a request in HTTP/2 frames reaches the router and its answer
 * comes back in a DATA frame, with the request marked secure; h1 bytes
 * on such a connection are not served. */
static void test_tls_alpn_h2_moves_to_http2(void **state)
{
    (void)state;
    tls_setup(NULL, false);
    hx_cfg_tls t;
    tls_cfg(&t, tls_at("chain.pem"), tls_at("server.key")); /* alpn: h2, http/1.1 */
    hx_tls_ctx *ctx = hx_io_tls_ctx_new(&t, true, (char[256]){0}, 256);
    assert_non_null(ctx);
    hx_tls_ctx_publish(ctx);
    hx_tls_ctx_unref(ctx);
    client c;
    client_open(&c, NULL, NULL);
    assert_alpn(&c, "h2");
    /* preface, empty SETTINGS, HEADERS (END_STREAM|END_HEADERS) on stream 1:
     * GET https /health, :authority x (HPACK: indexed and literal fields) */
    static const char req[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                              "\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                              "\x00\x00\x0e\x01\x05\x00\x00\x00\x01"
                              "\x82\x87\x04\x07/health\x01\x01x";
    client_send(&c, req, sizeof req - 1);
    hx_buf got;
    hx_buf_init(&got, 1 << 16);
    assert_int_equal(client_read(&c, &got, "hello"), 1);
    assert_int_equal(g.calls, 1);
    assert_true(g.secure);
    hx_buf_free(&got);
    client_close(&c);
    assert_true(lh_run_until(&h, lh_cond_no_conns, NULL));
    assert_int_equal(atomic_load(&h.srv.conns), 0);

    client_open(&c, NULL, NULL); /* HTTP/1.1 bytes after ALPN h2: refused */
    client_send(&c, health_req, sizeof health_req - 1);
    hx_buf_init(&got, 1 << 16);
    assert_true(client_read(&c, &got, "hello") <= 0);
    assert_int_equal(g.calls, 1);
    hx_buf_free(&got);
    client_close(&c);
    tls_teardown();
}

/* With server.http2.enabled false the listener's context does not offer
 * h2: a client offering h2 and http/1.1 gets http/1.1. */
static void test_tls_alpn_h2_off(void **state)
{
    (void)state;
    tls_setup(NULL, false); /* publishes hx_io_tls_ctx_new(&t, false, ...) */
    client c;
    client_open(&c, NULL, NULL);
    assert_alpn(&c, "http/1.1");
    client_close(&c);
    tls_teardown();
}

/* Plain TCP through the I/O layer, and the Alt-Svc hook: set, every
 * response carries it; unset (the default), none does. */
static void test_plain_alt_svc(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    assert_int_equal(lh_init(&h, NULL, stub), 0);
    hx_buf got;
    hx_buf_init(&got, 1 << 16);
    int fd = lh_connect(&h);
    assert_true(lh_send(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_true(lh_run_until_read(&h, fd, &got, "hello", 1));
    assert_null(memmem(got.data, got.len, "Alt-Svc", 7));
    assert_false(g.secure);
    hx_res_set_alt_svc("h3=\":8443\"; ma=3600");
    assert_true(lh_send(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_true(lh_run_until_read(&h, fd, &got, "hello", 2));
    hx_res_set_alt_svc(NULL);
    assert_non_null(memmem(got.data, got.len, "\r\nAlt-Svc: h3=\":8443\"; ma=3600\r\n", 32));
    hx_buf_free(&got);
    close(fd);
    lh_fini(&h);
}

static void location_is(const char *host, const char *path, const char *query, int port, const char *want)
{
    char *loc = NULL;
    int rc = hx_https_location(host, path, query, port, &loc);
    if (want == NULL) {
        assert_int_equal(rc, -1);
        assert_null(loc);
        return;
    }
    assert_int_equal(rc, 0);
    assert_string_equal(loc, want);
    hx_free(loc);
}

/* redirect_http's Location: the request's own host, the TLS port, the
 * target with nothing a header could be split by. */
static void test_https_location(void **state)
{
    (void)state;
    location_is("a.test", "/v1/models", NULL, 8443, "https://a.test:8443/v1/models");
    location_is("a.test:8080", "/x", "a=1&b=%20", 443, "https://a.test/x?a=1&b=%20");
    location_is("[::1]:80", "/", NULL, 8443, "https://[::1]:8443/");
    location_is("10.0.0.1", "", NULL, 8443, "https://10.0.0.1:8443/");
    location_is("a.test", "/a b\r\n\"<>", "q=\r\n", 8443, "https://a.test:8443/a%20b%0D%0A%22%3C%3E?q=%0D%0A");
    location_is("a.test", "//evil.test/x", NULL, 8443, "https://a.test:8443//evil.test/x");
    location_is(NULL, "/", NULL, 8443, NULL);
    location_is("", "/", NULL, 8443, NULL);
    location_is("evil.test/x", "/", NULL, 8443, NULL);
    location_is("a.test:80@evil.test", "/", NULL, 8443, NULL);
    location_is("a.test:x", "/", NULL, 8443, NULL);
    location_is("a.test:123456", "/", NULL, 8443, NULL);
    location_is(".a", "/", NULL, 8443, NULL);
    location_is("[::1", "/", NULL, 8443, NULL);
    location_is("a b", "/", NULL, 8443, NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as hx_server_run: close_notify to a client already gone */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_requests),
        cmocka_unit_test(test_tls_large_and_close_notify),
        cmocka_unit_test(test_tls_garbage_and_handshake_deadline),
        cmocka_unit_test(test_tls_client_cert_facts),
        cmocka_unit_test(test_tls_max_connections),
        cmocka_unit_test(test_tls_alpn_h2_moves_to_http2),
        cmocka_unit_test(test_tls_alpn_h2_off),
        cmocka_unit_test(test_plain_alt_svc),
        cmocka_unit_test(test_https_location),
    };
    return cmocka_run_group_tests(tests, tls_certs_setup, tls_certs_teardown);
}
