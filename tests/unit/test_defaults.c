/* Secure defaults (issue 9): loopback host, server.allow_unauthenticated,
 * and the --host/--port / HAPAX_HOST/HAPAX_PORT overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static hx_config *load(const char *yaml, hx_config_errors *e)
{
    *e = (hx_config_errors){0};
    return hx_config_load_string(yaml, strlen(yaml), "t.yaml", e);
}

static bool has_error(const hx_config_errors *e, const char *needle)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->items[i], needle))
            return true;
    return false;
}

static void expect_ok(const char *yaml)
{
    hx_config_errors e;
    hx_config *c = load(yaml, &e);
    for (size_t i = 0; i < e.n; i++)
        print_message("  error: %s\n", e.items[i]);
    assert_non_null(c);
    hx_config_unref(c);
    hx_config_errors_free(&e);
}

static void expect_exposed(const char *yaml, const char *host)
{
    hx_config_errors e;
    hx_config *c = load(yaml, &e);
    assert_null(c);
    assert_true(has_error(&e, "server.host:"));
    assert_true(has_error(&e, host));
    /* both ways out are named */
    assert_true(has_error(&e, "auth.keys"));
    assert_true(has_error(&e, "server.allow_unauthenticated: true"));
    hx_config_errors_free(&e);
}

static void test_loopback(void **state)
{
    (void)state;
    const char *yes[] = {"127.0.0.1", "127.1.2.3", "127.255.255.255", "::1", "localhost",
                         "LocalHost", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"};
    const char *no[] = {"0.0.0.0", "::", "128.0.0.1", "10.0.0.1", "192.168.1.1", "::2",
                        "::ffff:10.0.0.1", "localhost.", "localhost.example.com", "example.com",
                        "", "127.0.0.1 ", "fe80::1"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(hx_config_host_is_loopback(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (hx_config_host_is_loopback(no[i]))
            fail_msg("%s counted as loopback", no[i]);
    assert_false(hx_config_host_is_loopback(NULL));
}

static void test_default_is_loopback_and_closed(void **state)
{
    (void)state;
    hx_config *c = hx_config_default();
    assert_non_null(c);
    assert_string_equal(c->server.host, "127.0.0.1");
    assert_false(c->server.allow_unauthenticated);
    assert_false(c->auth.enabled);
    hx_config_errors e = {0};
    assert_int_equal(hx_config_validate(c, &e), 0);
    hx_config_unref(c);
    expect_ok("server:\n  port: 9000\n");
}

static void test_non_loopback_needs_auth_or_opt_in(void **state)
{
    (void)state;
    expect_exposed("server:\n  host: 0.0.0.0\n", "0.0.0.0");
    expect_exposed("server:\n  host: \"::\"\n", "::");
    expect_exposed("server:\n  host: 192.0.2.7\n", "192.0.2.7");
    expect_exposed("server:\n  host: gateway.example.com\n", "gateway.example.com");
    /* the opt-in */
    expect_ok("server:\n  host: 0.0.0.0\n  allow_unauthenticated: true\n");
    /* client keys */
    expect_ok("server:\n  host: 0.0.0.0\nauth:\n  enabled: true\n  keys:\n"
              "    - name: a\n      key: k-123\n");
    /* auth on, but a spending route whose own chain lacks it: still open */
    hx_config_errors e2;
    assert_null(load("server:\n  host: 0.0.0.0\n  middleware: [request_id, logging]\n"
                     "auth:\n  enabled: true\n  keys:\n    - name: a\n      key: k-123\n"
                     "routes:\n  - path: /v1/chat/completions\n    handler: chat\n    middleware: [auth]\n"
                     "  - path: /v1/messages\n    handler: messages\n", &e2));
    assert_true(has_error(&e2, "its middleware lacks auth"));
    hx_config_errors_free(&e2);
    expect_ok("server:\n  host: 0.0.0.0\n  middleware: [request_id, logging]\n"
              "auth:\n  enabled: true\n  keys:\n    - name: a\n      key: k-123\n"
              "routes:\n  - path: /v1/chat/completions\n    handler: chat\n    middleware: [auth]\n"
              "  - path: /health\n    handler: health\n");
    /* loopback spellings need neither */
    expect_ok("server:\n  host: localhost\n");
    expect_ok("server:\n  host: \"::1\"\n");
    expect_ok("server:\n  host: 127.0.0.2\n");
    /* a wrong type for the new key is reported like any other */
    hx_config_errors e;
    assert_null(load("server:\n  allow_unauthenticated: maybe\n", &e));
    assert_true(has_error(&e, "server.allow_unauthenticated"));
    hx_config_errors_free(&e);
}

static void test_overrides_order_and_validation(void **state)
{
    (void)state;
    hx_config_errors e = {0};
    unsetenv("HAPAX_HOST");
    unsetenv("HAPAX_PORT");

    /* nothing set: the file wins */
    assert_int_equal(hx_config_overrides_set(NULL, NULL, &e), 0);
    hx_config *c = load("server:\n  port: 1234\n", &e);
    assert_non_null(c);
    assert_int_equal(c->server.port, 1234);
    hx_config_unref(c);

    /* the environment over the file */
    setenv("HAPAX_PORT", "2345", 1);
    setenv("HAPAX_HOST", "::1", 1);
    assert_int_equal(hx_config_overrides_set(NULL, NULL, &e), 0);
    c = load("server:\n  port: 1234\n  host: 127.0.0.1\n", &e);
    assert_non_null(c);
    assert_int_equal(c->server.port, 2345);
    assert_string_equal(c->server.host, "::1");
    hx_config_unref(c);

    /* flags over the environment; defaults get them too */
    assert_int_equal(hx_config_overrides_set("localhost", "3456", &e), 0);
    c = hx_config_default();
    assert_int_equal(c->server.port, 3456);
    assert_string_equal(c->server.host, "localhost");
    hx_config_unref(c);

    /* an override is validated like the file value: no auth, not loopback */
    assert_int_equal(hx_config_overrides_set("0.0.0.0", NULL, &e), 0);
    assert_null(load("server:\n  host: 127.0.0.1\n", &e));
    assert_true(has_error(&e, "0.0.0.0 (from --host)"));
    hx_config_errors_free(&e);
    unsetenv("HAPAX_PORT");
    assert_int_equal(hx_config_overrides_set(NULL, NULL, &e), 0);
    setenv("HAPAX_HOST", "0.0.0.0", 1);
    assert_int_equal(hx_config_overrides_set(NULL, NULL, &e), 0);
    assert_null(load("server:\n  port: 1\n", &e));
    assert_true(has_error(&e, "(from HAPAX_HOST)"));
    hx_config_errors_free(&e);
    unsetenv("HAPAX_HOST");

    /* bad values are refused up front, naming their source */
    const char *bad_ports[] = {"abc", "-1", "65536", "+80", " 80", "80x", "", "999999"};
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
        assert_int_equal(hx_config_overrides_set(NULL, bad_ports[i], &e), -1);
        assert_true(has_error(&e, "--port: invalid port"));
        hx_config_errors_free(&e);
    }
    setenv("HAPAX_PORT", "70000", 1);
    assert_int_equal(hx_config_overrides_set(NULL, NULL, &e), -1);
    assert_true(has_error(&e, "HAPAX_PORT: invalid port"));
    hx_config_errors_free(&e);
    setenv("HAPAX_PORT", "", 1); /* empty: ignored, like an unset variable */
    assert_int_equal(hx_config_overrides_set(NULL, NULL, &e), 0);
    unsetenv("HAPAX_PORT");
    assert_int_equal(hx_config_overrides_set("", NULL, &e), -1);
    assert_true(has_error(&e, "--host: empty host"));
    hx_config_errors_free(&e);
    char longhost[300];
    memset(longhost, 'a', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    assert_int_equal(hx_config_overrides_set(longhost, NULL, &e), -1);
    hx_config_errors_free(&e);
    /* port 0 (any free port) is a valid value, as in the file */
    assert_int_equal(hx_config_overrides_set(NULL, "0", &e), 0);
    c = hx_config_default();
    assert_int_equal(c->server.port, 0);
    hx_config_unref(c);
    hx_config_overrides_clear();
    c = hx_config_default();
    assert_int_equal(c->server.port, 8080);
    hx_config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_default_is_loopback_and_closed),
        cmocka_unit_test(test_non_loopback_needs_auth_or_opt_in),
        cmocka_unit_test(test_overrides_order_and_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
