/* RFC 9112 checks the HTTP/1.1 adapter adds on top of http-parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "capture.h"
#include "config/config.h"
#include "http/server_int.h"
#include "util/alloc.h"

static void test_token(void **state)
{
    (void)state;
    assert_true(hx_h1_is_token("Content-Length", 14));
    assert_true(hx_h1_is_token("X-Odd_Name.~!#$%&'*+^`|", 23));
    assert_false(hx_h1_is_token("Content-Length ", 15)); /* "Content-Length : 5" */
    assert_false(hx_h1_is_token("Bad Name", 8));
    assert_false(hx_h1_is_token("X(y)", 4));
    assert_false(hx_h1_is_token("a\tb", 3));
    assert_false(hx_h1_is_token("a\0b", 3));
    assert_false(hx_h1_is_token("caf\xc3\xa9", 5));
}

static hx_err framing(int major, int minor, bool chunked, const char *const *names)
{
    hx_headers h = {0};
    for (size_t i = 0; names[i]; i++)
        assert_int_equal(hx_headers_add(&h, names[i], "v"), 0);
    hx_err e = hx_h1_framing_error(major, minor, chunked, &h);
    hx_headers_free(&h);
    return e;
}

static void test_framing(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    const char *host[] = {"Host", NULL};
    const char *hosts[] = {"host", "Accept", "HOST", NULL};
    const char *te[] = {"Transfer-Encoding", NULL};
    assert_int_equal(framing(1, 1, false, host), HX_ERR__COUNT);
    assert_int_equal(framing(1, 0, false, none), HX_ERR__COUNT); /* 1.0 needs no Host */
    assert_int_equal(framing(1, 1, true, host), HX_ERR__COUNT);
    assert_int_equal(framing(1, 1, false, none), HX_ERR_BAD_REQUEST);
    assert_int_equal(framing(1, 1, false, hosts), HX_ERR_BAD_REQUEST);
    assert_int_equal(framing(1, 0, false, hosts), HX_ERR_BAD_REQUEST);
    assert_int_equal(framing(1, 0, true, none), HX_ERR_BAD_REQUEST);
    assert_int_equal(framing(1, 0, false, te), HX_ERR_BAD_REQUEST);
    assert_int_equal(framing(1, 9, false, host), HX_ERR_HTTP_VERSION);
    assert_int_equal(framing(2, 0, false, host), HX_ERR_HTTP_VERSION);
    assert_int_equal(framing(0, 9, false, none), HX_ERR_HTTP_VERSION);
    assert_int_equal(hx_err_get(HX_ERR_HTTP_VERSION)->status, 505);
}

static void check_target(hx_config *cfg, const char *url, const char *path, const char *query)
{
    hx_test_capture c;
    cap_init(&c);
    hx_req *r = hx_req_new(&cap_tp, &c, cfg);
    assert_non_null(r);
    assert_int_equal(hx_h1_set_target(r, url, strlen(url)), 0);
    assert_string_equal(r->path, path);
    if (query)
        assert_string_equal(r->query, query);
    else
        assert_null(r->query);
    hx_req_unref(r);
    cap_free(&c);
}

static void test_target(void **state)
{
    (void)state;
    hx_config *cfg = hx_config_default();
    assert_non_null(cfg);
    check_target(cfg, "/v1/models", "/v1/models", NULL);
    check_target(cfg, "/p?a=1&b", "/p", "a=1&b");
    check_target(cfg, "", "/", NULL);
    check_target(cfg, "?x", "/", "x");
    check_target(cfg, "http://example.com/health?q", "/health", "q");
    check_target(cfg, "HTTPS://example.com", "/", NULL);
    hx_config_unref(cfg);
}

/* The error envelope buffer is bounded (HX_RES_ERROR_MAX): a message too
 * long for it is replaced by the error's default message. */
static void test_error_envelope_bounded(void **state)
{
    (void)state;
    hx_config *cfg = hx_config_default();
    assert_non_null(cfg);
    size_t n = HX_RES_ERROR_MAX * 4;
    char *msg = hx_malloc(n + 1);
    assert_non_null(msg);
    memset(msg, 'm', n);
    msg[n] = '\0';
    hx_test_capture c;
    cap_init(&c);
    hx_req *r = hx_req_new(&cap_tp, &c, cfg);
    assert_non_null(r);
    hx_res_error(r, HX_ERR_INVALID_REQUEST, msg);
    assert_int_equal(c.status, 400);
    assert_true(c.body.len <= HX_RES_ERROR_MAX);
    assert_non_null(strstr(cap_text(&c), hx_err_get(HX_ERR_INVALID_REQUEST)->message));
    hx_req_unref(r);
    cap_reset(&c);
    /* A message that fits is kept. */
    r = hx_req_new(&cap_tp, &c, cfg);
    assert_non_null(r);
    hx_res_error(r, HX_ERR_INVALID_REQUEST, "short and specific");
    assert_non_null(strstr(cap_text(&c), "short and specific"));
    hx_req_unref(r);
    cap_free(&c);
    hx_free(msg);
    hx_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_error_envelope_bounded),
        cmocka_unit_test(test_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
