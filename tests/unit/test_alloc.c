#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <curl/curl.h>

#include "upstream/upstream.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/uuid.h"

static void test_fail_at_nth(void **state)
{
    (void)state;
    hx_alloc_fail_at(2, 0);
    void *a = hx_malloc(8);
    void *b = hx_malloc(8);
    void *c = hx_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c); /* not sticky */
    hx_free(a);
    hx_free(c);
    hx_alloc_fail_at(1, 1);
    assert_null(hx_strdup("x"));
    assert_null(hx_calloc(1, 4));
    hx_alloc_fail_at(0, 0);
    char *d = hx_strdup("back");
    assert_string_equal(d, "back");
    hx_free(d);
}

static void test_buf_limits(void **state)
{
    (void)state;
    hx_buf b;
    hx_buf_init(&b, 10);
    assert_int_equal(hx_buf_append_str(&b, "0123456789"), 0);
    assert_int_equal(hx_buf_append(&b, "x", 1), -1); /* max reached */
    assert_int_equal(b.len, 10);
    hx_buf_consume(&b, 4);
    assert_string_equal(b.data, "456789");
    assert_int_equal(hx_buf_printf(&b, "%d", 42), 0);
    assert_string_equal(b.data, "45678942");
    hx_buf_free(&b);

    hx_buf_init(&b, 0);
    hx_alloc_fail_at(1, 0);
    assert_int_equal(hx_buf_append_str(&b, "y"), -1);
    assert_int_equal(hx_buf_append_str(&b, "y"), 0);
    size_t n;
    char *s = hx_buf_steal(&b, &n);
    assert_int_equal(n, 1);
    assert_null(b.data);
    hx_free(s);
}

static void test_buf_int_and_printf(void **state)
{
    (void)state;
    char t[HX_FMT_INT_MAX];
    assert_int_equal(hx_fmt_int(t, 0), 1);
    assert_string_equal(t, "0");
    hx_fmt_int(t, -42);
    assert_string_equal(t, "-42");
    hx_fmt_int(t, LLONG_MIN);
    assert_string_equal(t, "-9223372036854775808");
    hx_fmt_int(t, LLONG_MAX);
    assert_string_equal(t, "9223372036854775807");

    hx_buf b;
    hx_buf_init(&b, 12);
    assert_int_equal(hx_buf_append_int(&b, 200), 0);
    /* printf into spare capacity (256 after the first append) still
     * honours max, and a refusal leaves the text as it was. */
    assert_int_equal(hx_buf_printf(&b, "%s", "0123456789"), -1);
    assert_string_equal(b.data, "200");
    assert_int_equal(hx_buf_printf(&b, " %d-%s", 7, "ab"), 0);
    assert_string_equal(b.data, "200 7-ab");
    assert_int_equal(b.len, 8);
    hx_buf_free(&b);

    hx_buf_init(&b, 0);
    char big[600];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(hx_buf_printf(&b, "<%s>", big), 0); /* the growing pass */
    assert_int_equal(b.len, sizeof big + 1);
    assert_int_equal(b.data[b.len - 1], '>');
    hx_buf_free(&b);
}

static void test_uuid_format(void **state)
{
    (void)state;
    char a[37], b[37];
    hx_uuid4(a);
    hx_uuid4(b);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++)
        assert_non_null(strchr("0123456789abcdef-", a[i]));
}

/* libcurl allocates through the failable wrapper (curl_global_init_mem):
 * its allocations are counted and a failing one reaches curl, which copes. */
static void test_curl_uses_allocator(void **state)
{
    (void)state;
    assert_int_equal(hx_upstream_global_init(), 0);
    unsigned long before = hx_alloc_count();
    CURL *e = curl_easy_init();
    assert_non_null(e);
    assert_true(hx_alloc_count() > before);
    curl_easy_cleanup(e);
    hx_alloc_fail_at(1, 1);
    assert_null(curl_easy_init());
    hx_alloc_fail_at(0, 0);
    for (unsigned long n = 1; n < 60; n++) {
        hx_alloc_fail_at(n, 0);
        e = curl_easy_init();
        if (e) {
            curl_easy_setopt(e, CURLOPT_URL, "http://127.0.0.1:1/v1/models");
            struct curl_slist *l = curl_slist_append(NULL, "Authorization: Bearer x");
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
            curl_easy_cleanup(e);
            curl_slist_free_all(l);
        }
        hx_alloc_fail_at(0, 0);
    }
    curl_global_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curl_uses_allocator),
        cmocka_unit_test(test_fail_at_nth),
        cmocka_unit_test(test_buf_limits),
        cmocka_unit_test(test_buf_int_and_printf),
        cmocka_unit_test(test_uuid_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
