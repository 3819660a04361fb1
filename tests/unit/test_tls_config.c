/* server.tls config validation (src/config/validate_tls.c) and the
 * defaults, with certificates made at test time (tls_certs.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "obs/log.h"

#include "tls_certs.h"


/* Loads `extra` (server.tls keys) and returns every error joined. */
static char *validate(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *validate(const char *fmt, ...)
{
    static char out[8192];
    char yaml[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(yaml, sizeof yaml, fmt, ap);
    va_end(ap);
    hx_config_errors errs = {0};
    hx_config *cfg = hx_config_load_string(yaml, strlen(yaml), "tls.yaml", &errs);
    out[0] = '\0';
    for (size_t i = 0; i < errs.n; i++) {
        strncat(out, errs.items[i], sizeof out - strlen(out) - 2);
        strcat(out, "\n");
    }
    hx_config_errors_free(&errs);
    hx_config_unref(cfg);
    return out;
}

#define TLS_YAML "server:\n  tls:\n    enabled: true\n"

/* validate() of server.tls with one certificate and key, by file name. */
static char *validate_pair(const char *cert, const char *key)
{
    return validate(TLS_YAML "    cert_file: %s\n    key_file: %s\n", tls_at(cert), tls_at(key));
}

/* The joined errors e hold `want`. */
#define assert_has(e, want) assert_non_null(strstr((e), (want)))

static void test_config_errors(void **state)
{
    (void)state;
    char *e;
    /* a good config: accepted (the listener is wired) */
    e = validate_pair("chain.pem", "server.key");
    assert_string_equal(e, "");
    /* disabled: nothing is checked */
    e = validate("server:\n  tls:\n    enabled: false\n    cert_file: /nonexistent.pem\n");
    assert_string_equal(e, "");

    e = validate(TLS_YAML "    cert_file: %s/missing.pem\n    key_file: %s\n", tls_dir, tls_at("server.key"));
    assert_has(e, "tls.yaml:4:16: server.tls.cert_file: cannot read");
    assert_has(e, "missing.pem: No such file or directory");
    e = validate_pair("server.key", "server.key");
    assert_has(e, "server.tls.cert_file: ");
    assert_has(e, "server.key holds no PEM certificate");
    e = validate_pair("chain.pem", "ca.pem");
    assert_has(e, "server.tls.key_file: ");
    assert_has(e, "ca.pem holds no PEM private key");
    e = validate_pair("chain.pem", "mismatch.key");
    assert_has(e, "tls.yaml:5:15: server.tls.key_file: ");
    assert_has(e, "mismatch.key does not match the certificate in");
    e = validate_pair("expired.pem", "server.key");
    assert_has(e, "expired.pem expired on 2020-01-01 00:00:00 UTC (valid from 2019-01-01 00:00:00 UTC)");
    e = validate_pair("future.pem", "server.key");
    assert_has(e, "future.pem is not valid before 2090-01-01 00:00:00 UTC");
    e = validate_pair("badorder.pem", "server.key");
    assert_has(e, "badorder.pem are out of order");
    e = validate(TLS_YAML "    cert_file: %s\n", tls_at("chain.pem"));
    assert_has(e, "server.tls.key_file: key_file is required with cert_file");
    e = validate(TLS_YAML);
    assert_has(e, "server.tls: no certificate");
    /* certificates[] are checked one by one */
    e = validate(TLS_YAML "    certificates:\n      - cert_file: %s\n        key_file: %s\n"
                          "      - cert_file: %s\n        key_file: %s\n",
                 tls_at("chain.pem"), tls_at("server.key"), tls_at("other.pem"), tls_at("server.key"));
    assert_has(e, "tls.yaml:8:19: server.tls.certificates[1].key_file: ");
    e = validate(TLS_YAML "    certificates:\n      - {}\n");
    assert_has(e, "server.tls.certificates[0]: cert_file and key_file are required");
    /* client CA */
    e = validate(TLS_YAML "    cert_file: %s\n    key_file: %s\n    client_auth: require\n", tls_at("chain.pem"),
                 tls_at("server.key"));
    assert_has(e, "server.tls.client_auth: client_auth: require needs client_ca_file");
    e = validate(TLS_YAML "    cert_file: %s\n    key_file: %s\n    client_auth: optional\n"
                          "    client_ca_file: %s/nope.pem\n",
                 tls_at("chain.pem"), tls_at("server.key"), tls_dir);
    assert_has(e, "server.tls.client_ca_file: cannot read");
    e = validate(TLS_YAML "    cert_file: %s\n    key_file: %s\n    client_auth: sometimes\n", tls_at("chain.pem"),
                 tls_at("server.key"));
    assert_has(e, "invalid client_auth (none, optional or require)");
    /* versions, ALPN, priority, ports, tickets */
    e = validate(TLS_YAML "    min_version: \"1.1\"\n    alpn: [h3]\n    priority: \"NORMAL:+NOPE\"\n");
    assert_has(e, "invalid TLS version (1.2 or 1.3)");
    assert_has(e, "unknown ALPN protocol (h2 or http/1.1)");
    assert_has(e, "server.tls.priority: not a GnuTLS priority string");
    e = validate(TLS_YAML "    port: 8080\n    redirect_http: true\n");
    assert_has(e, "there is no plain port to redirect from");
    /* a FIFO (or directory) is refused without blocking on it */
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/fifo", tls_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    e = validate(TLS_YAML "    cert_file: %s\n    key_file: %s\n", fifo, tls_dir);
    assert_has(e, "fifo is not a regular file");
    assert_has(e, "server.tls.key_file: ");
    unlink(fifo);
    e = validate(TLS_YAML "    ticket_key_file: %s\n", tls_at("ca.pem"));
    assert_has(e, "must hold exactly 64 bytes");
    e = validate(TLS_YAML "    handshake_timeout: 0s\n    port: 70000\n");
    assert_has(e, "invalid TLS handshake timeout");
    assert_has(e, "invalid TLS port");
    e = validate(TLS_YAML "    cert_fle: x\n");
    assert_has(e, "cert_fle");
}

static void test_config_defaults(void **state)
{
    (void)state;
    hx_config *cfg = hx_config_default();
    assert_non_null(cfg);
    const hx_cfg_tls *t = &cfg->server.tls;
    assert_false(t->enabled);
    assert_int_equal(t->port, 8443);
    assert_string_equal(t->min_version, "1.2");
    assert_int_equal(t->alpn.n, 2);
    assert_string_equal(t->alpn.items[0], "h2");
    assert_string_equal(t->client_auth, "none");
    assert_true(t->session_tickets);
    assert_int_equal(t->handshake_timeout, 10000);
    hx_config_unref(cfg);
}

int main(void)
{
    hx_log_set_level(HX_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_defaults),
    };
    return cmocka_run_group_tests(tests, tls_certs_setup, tls_certs_teardown);
}
