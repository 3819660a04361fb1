/* src/tls/: a GnuTLS client session against hx_tls_conn, all in memory
 * (no sockets; tls_pair.h), with certificates made at test time by
 * tests/certs/gen.sh (tls_certs.h): versions, ALPN, SNI, reload, bounds,
 * errors. Tickets and client certificates: test_tls_auth.c; the server.tls
 * config validation: test_tls_config.c. */
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

/* Renewal without a signal: the context notices a replaced file. */
static void test_files_changed(void **state)
{
    (void)state;
    char copy[300], cmd[2048];
    snprintf(copy, sizeof copy, "%s/renew.pem", tls_dir);
    snprintf(cmd, sizeof cmd, "cp %s %s", tls_at("chain.pem"), copy);
    assert_int_equal(system(cmd), 0);
    hx_cfg_tls t;
    tls_cfg(&t, copy, tls_at("server.key"));
    hx_tls_ctx *ctx = ctx_of(&t);
    assert_false(hx_tls_ctx_files_changed(ctx));
    /* same bytes, written anew and renamed over (what renewal tools do) */
    snprintf(cmd, sizeof cmd, "cp %s %s.new && mv %s.new %s", tls_at("chain.pem"), copy, copy, copy);
    assert_int_equal(system(cmd), 0);
    assert_true(hx_tls_ctx_files_changed(ctx));
    hx_tls_ctx_unref(ctx);
    ctx = ctx_of(&t);
    assert_false(hx_tls_ctx_files_changed(ctx));
    assert_int_equal(unlink(copy), 0);
    assert_true(hx_tls_ctx_files_changed(ctx));
    hx_tls_ctx_unref(ctx);
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
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/ticket.fifo", tls_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    t.ticket_key_file = fifo;
    assert_null(hx_tls_ctx_new(&t, err, sizeof err)); /* and does not block */
    assert_non_null(strstr(err, "not a regular file"));
    unlink(fifo);
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
        cmocka_unit_test(test_reload_swaps),
        cmocka_unit_test(test_files_changed),
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
