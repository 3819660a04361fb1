#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "http/request.h"
#include "middleware/middleware.h"
#include "util/alloc.h"

#include "capture.h"

/* The recorded response, and whether the handler ran. */
typedef struct {
    hx_test_capture cap; /* first: it is the request's tp_ctx */
    bool handler_ran;
} capture;

static void handler(hx_req *r)
{
    ((capture *)r->tp_ctx)->handler_ran = true;
    hx_res_send(r, 200, "text/plain", "ok", 2);
}

static hx_config *cfg;
static hx_cfg_cors saved;

static int setup(void **state)
{
    (void)state;
    cfg = hx_config_default();
    if (cfg == NULL)
        return -1;
    saved = cfg->cors; /* tests point the lists at static arrays; restored below */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hx_alloc_fail_at(0, 0);
    cfg->cors = saved;
    hx_config_unref(cfg);
    return 0;
}

static char *exact_origins[] = {"https://app.example.com", "http://localhost:3000"};
static char *star_origin[] = {"*"};

static void use_origins(char **items, size_t n, bool credentials)
{
    cfg->cors.allow_origins = (hx_strlist){items, n};
    cfg->cors.allow_credentials = credentials;
}

/* Runs the cors step then `handler`; hdrs is name, value, ..., NULL. */
static void run(capture *c, const char *method, const char *const *hdrs)
{
    memset(c, 0, sizeof *c); /* an empty capture */
    hx_req *r = hx_req_new(&cap_tp, &c->cap, cfg);
    assert_non_null(r);
    r->method = method;
    r->path = hx_strdup("/v1/chat/completions");
    for (size_t i = 0; hdrs && hdrs[i]; i += 2)
        assert_int_equal(hx_headers_add(&r->headers, hdrs[i], hdrs[i + 1]), 0);
    r->steps[0] = hx_mw_cors;
    r->nsteps = 1;
    r->handler = handler;
    r->method_ok = true;
    hx_req_next(r);
    hx_req_unref(r);
}

static const char *hdr(const capture *c, const char *name)
{
    return cap_header(&c->cap, name);
}

static void assert_no_cors_headers(const capture *c)
{
    const hx_headers *h = &c->cap.headers;
    for (size_t i = 0; i < h->n; i++)
        if (strncasecmp(h->items[i].name, "access-control-", 15) == 0)
            fail_msg("unexpected %s: %s", h->items[i].name, h->items[i].value);
}

#define ORIGIN(o) (const char *const[]){"Origin", (o), NULL}
#define PREFLIGHT(o, m) \
    (const char *const[]){"Origin", (o), "Access-Control-Request-Method", (m), \
                          "Access-Control-Request-Headers", "content-type, authorization", NULL}

static void test_no_origin_passes_untouched(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, false);
    capture c;
    run(&c, "POST", NULL);
    assert_true(c.handler_ran);
    assert_int_equal(c.cap.status, 200);
    assert_no_cors_headers(&c);
    assert_null(hdr(&c, "vary"));
    cap_free(&c.cap);
    /* An OPTIONS without Origin is not a preflight either. */
    run(&c, "OPTIONS", (const char *const[]){"Access-Control-Request-Method", "POST", NULL});
    assert_true(c.handler_ran);
    assert_no_cors_headers(&c);
    cap_free(&c.cap);
}

static void test_allowed_exact_origin(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, false);
    capture c;
    run(&c, "POST", ORIGIN("http://localhost:3000"));
    assert_true(c.handler_ran);
    assert_int_equal(c.cap.status, 200);
    assert_string_equal(hdr(&c, "access-control-allow-origin"), "http://localhost:3000");
    assert_string_equal(hdr(&c, "vary"), "Origin");
    assert_string_equal(hdr(&c, "access-control-expose-headers"),
                        "X-Request-ID, Request-ID, X-Response-Time, X-Hapax-Provider, X-Hapax-Attempts, "
                        "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset");
    assert_null(hdr(&c, "access-control-allow-credentials"));
    assert_null(hdr(&c, "access-control-allow-methods")); /* preflight only */
    cap_free(&c.cap);
}

static void test_expose_headers_omitted_when_empty(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, false);
    hx_strlist keep = cfg->cors.expose_headers;
    cfg->cors.expose_headers = (hx_strlist){NULL, 0};
    capture c;
    run(&c, "GET", ORIGIN("https://app.example.com"));
    cfg->cors.expose_headers = keep;
    assert_string_equal(hdr(&c, "access-control-allow-origin"), "https://app.example.com");
    assert_null(hdr(&c, "access-control-expose-headers"));
    cap_free(&c.cap);
}

static void test_wildcard_origin(void **state)
{
    (void)state;
    use_origins(star_origin, 1, false);
    capture c;
    run(&c, "GET", ORIGIN("https://anything.example"));
    assert_true(c.handler_ran);
    assert_string_equal(hdr(&c, "access-control-allow-origin"), "*");
    assert_string_equal(hdr(&c, "vary"), "Origin");
    cap_free(&c.cap);
}

static void test_credentials_echo_origin(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, true);
    capture c;
    run(&c, "GET", ORIGIN("https://app.example.com"));
    assert_string_equal(hdr(&c, "access-control-allow-origin"), "https://app.example.com");
    assert_string_equal(hdr(&c, "access-control-allow-credentials"), "true");
    cap_free(&c.cap);
    /* Browsers refuse "*" with credentials, so even "*" echoes then
     * (validation rejects that config, but a config built in code can). */
    use_origins(star_origin, 1, true);
    run(&c, "GET", ORIGIN("https://other.example"));
    assert_string_equal(hdr(&c, "access-control-allow-origin"), "https://other.example");
    assert_string_equal(hdr(&c, "access-control-allow-credentials"), "true");
    cap_free(&c.cap);
}

static void test_origin_not_allowed(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, true);
    const char *bad[] = {"https://evil.example", "https://APP.example.com",
                         "https://app.example.com:443", "https://app.example.com/", "null", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        capture c;
        run(&c, "POST", ORIGIN(bad[i]));
        assert_true(c.handler_ran);
        assert_int_equal(c.cap.status, 200);
        assert_no_cors_headers(&c);
        cap_free(&c.cap);
    }
}

static void test_preflight_204(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, true);
    capture c;
    run(&c, "OPTIONS", PREFLIGHT("https://app.example.com", "POST"));
    assert_false(c.handler_ran);
    assert_int_equal(c.cap.status, 204);
    assert_int_equal(c.cap.body.len, 0);
    assert_int_equal(c.cap.ends, 1);
    assert_string_equal(hdr(&c, "access-control-allow-origin"), "https://app.example.com");
    assert_string_equal(hdr(&c, "access-control-allow-methods"), "GET, POST, PUT, DELETE, OPTIONS");
    assert_string_equal(hdr(&c, "access-control-allow-headers"),
                        "Accept, Authorization, Content-Type, X-CSRF-Token, X-API-Key, X-Request-ID, User-Agent, "
                        "anthropic-version, anthropic-beta, anthropic-dangerous-direct-browser-access, "
                        "OpenAI-Organization, OpenAI-Project, Idempotency-Key");
    assert_string_equal(hdr(&c, "access-control-max-age"), "600");
    assert_string_equal(hdr(&c, "access-control-allow-credentials"), "true");
    assert_string_equal(hdr(&c, "vary"),
                        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    assert_null(hdr(&c, "access-control-expose-headers")); /* actual responses only */
    cap_free(&c.cap);

    use_origins(star_origin, 1, false);
    run(&c, "OPTIONS", PREFLIGHT("https://x.example", "DELETE"));
    assert_int_equal(c.cap.status, 204);
    assert_string_equal(hdr(&c, "access-control-allow-origin"), "*");
    assert_null(hdr(&c, "access-control-allow-credentials"));
    cap_free(&c.cap);
}

/* Is `name` a token of the comma-separated list (any case)? */
static bool has_token(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        if (len == n && strncasecmp(p, name, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* The preflights the official SDKs make from a browser (header names as
 * browsers send them: lower case, sorted, no spaces) pass with the default
 * allow_headers; a pattern allows what it matches and nothing else. */
static void test_preflight_sdk_headers(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, false);
    static const char *const sdk[] = {
        /* openai 4.x */
        "authorization,content-type,openai-organization,openai-project,user-agent,x-stainless-arch,"
        "x-stainless-helper-method,x-stainless-lang,x-stainless-os,x-stainless-package-version,"
        "x-stainless-retry-count,x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout",
        /* @anthropic-ai/sdk */
        "anthropic-beta,anthropic-dangerous-direct-browser-access,anthropic-version,content-type,"
        "idempotency-key,user-agent,x-api-key,x-stainless-arch,x-stainless-lang,x-stainless-os,"
        "x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,"
        "x-stainless-runtime-version,x-stainless-timeout",
    };
    for (size_t i = 0; i < 2; i++) {
        capture c;
        run(&c, "OPTIONS",
            (const char *const[]){"Origin", "https://app.example.com", "Access-Control-Request-Method", "POST",
                                  "Access-Control-Request-Headers", sdk[i], NULL});
        assert_int_equal(c.cap.status, 204);
        const char *allowed = hdr(&c, "access-control-allow-headers");
        assert_non_null(allowed);
        char one[64];
        for (const char *p = sdk[i]; *p;) {
            size_t len = strcspn(p, ",");
            snprintf(one, sizeof one, "%.*s", (int)len, p);
            if (!has_token(allowed, one))
                fail_msg("%s is not allowed: %s", one, allowed);
            p += len + (p[len] == ',');
        }
        assert_false(has_token(allowed, "x-stainless-*")); /* browsers take no patterns */
        cap_free(&c.cap);
    }
    /* only a pattern: the requested names it matches, nothing else */
    static char *pat[] = {"X-Stainless-*", "Content-Type"};
    cfg->cors.allow_headers = (hx_strlist){pat, 2};
    capture c;
    run(&c, "OPTIONS",
        (const char *const[]){"Origin", "https://app.example.com", "Access-Control-Request-Method", "POST",
                              "Access-Control-Request-Headers",
                              " x-stainless-os , x-evil,content-type,X-STAINLESS-LANG", NULL});
    assert_int_equal(c.cap.status, 204);
    assert_string_equal(hdr(&c, "access-control-allow-headers"), "Content-Type, x-stainless-os, X-STAINLESS-LANG");
    cap_free(&c.cap);
    /* a requested list whose answer would pass its bound: 403, not 500 */
    static char big[12000];
    size_t used = 0;
    while (used + 40 < sizeof big)
        used += (size_t)snprintf(big + used, sizeof big - used, "x-stainless-%zu,", used);
    run(&c, "OPTIONS",
        (const char *const[]){"Origin", "https://app.example.com", "Access-Control-Request-Method", "POST",
                              "Access-Control-Request-Headers", big, NULL});
    assert_int_equal(c.cap.status, 403);
    cap_free(&c.cap);
}

static void test_preflight_bad_method_403(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, false);
    capture c;
    run(&c, "OPTIONS", PREFLIGHT("https://app.example.com", "PATCH"));
    assert_false(c.handler_ran);
    assert_int_equal(c.cap.status, 403);
    assert_string_equal(hdr(&c, "content-type"), "application/json");
    assert_non_null(strstr(cap_text(&c.cap), "\"code\":\"forbidden\""));
    assert_non_null(strstr(cap_text(&c.cap), "method is not allowed"));
    assert_no_cors_headers(&c);
    cap_free(&c.cap);
}

static void test_preflight_origin_not_allowed_403(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, false);
    capture c;
    run(&c, "OPTIONS", PREFLIGHT("https://evil.example", "POST"));
    assert_false(c.handler_ran);
    assert_int_equal(c.cap.status, 403);
    assert_non_null(strstr(cap_text(&c.cap), "origin is not allowed"));
    assert_no_cors_headers(&c);
    cap_free(&c.cap);
}

static void test_options_without_request_method_is_actual(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, false);
    capture c;
    run(&c, "OPTIONS", ORIGIN("https://app.example.com"));
    assert_true(c.handler_ran);
    assert_string_equal(hdr(&c, "access-control-allow-origin"), "https://app.example.com");
    assert_null(hdr(&c, "access-control-allow-methods"));
    cap_free(&c.cap);
}

static void test_max_age_seconds(void **state)
{
    (void)state;
    use_origins(star_origin, 1, false);
    const struct {
        int64_t ms;
        const char *want; /* NULL: header left out */
    } cases[] = {{0, NULL}, {999, NULL}, {1000, "1"}, {1500, "1"}, {600000, "600"},
                 {86400000, "86400"}, {7 * 86400000LL, "604800"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cfg->cors.max_age = cases[i].ms;
        capture c;
        run(&c, "OPTIONS", PREFLIGHT("https://a.example", "GET"));
        assert_int_equal(c.cap.status, 204);
        const char *got = hdr(&c, "access-control-max-age");
        if (cases[i].want)
            assert_string_equal(got, cases[i].want);
        else
            assert_null(got);
        cap_free(&c.cap);
    }
}

static void test_out_of_memory(void **state)
{
    (void)state;
    use_origins(exact_origins, 2, true);
    /* Each allocation in turn fails: the step answers or passes on, never
     * crashes or leaks (ASan checks). */
    for (unsigned long n = 1; n < 60; n++) {
        for (int kind = 0; kind < 2; kind++) {
            capture c;
            memset(&c, 0, sizeof c);
            hx_req *r = hx_req_new(&cap_tp, &c.cap, cfg);
            assert_non_null(r);
            r->method = kind ? "OPTIONS" : "GET";
            hx_headers_add(&r->headers, "Origin", "https://app.example.com");
            if (kind)
                hx_headers_add(&r->headers, "Access-Control-Request-Method", "POST");
            r->steps[0] = hx_mw_cors;
            r->nsteps = 1;
            r->handler = handler;
            r->method_ok = true;
            hx_alloc_fail_at(n, 1);
            hx_req_next(r);
            hx_alloc_fail_at(0, 0);
            hx_req_unref(r);
            cap_free(&c.cap);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_origin_passes_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allowed_exact_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expose_headers_omitted_when_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_echo_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_origin_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preflight_204, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preflight_bad_method_403, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preflight_sdk_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preflight_origin_not_allowed_403, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_without_request_method_is_actual, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_max_age_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
