/* Secret scrubbing (util/scrub.c): one-shot and across chunk boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/scrub.h"

#define KEY1 "sk-test-0123456789abcdef"
#define KEY2 "sk-test-0123" /* a prefix of KEY1: the longer one wins */
#define KEY3 "hapax-client-key-42"

static hx_scrub *make_set(void)
{
    hx_scrub *s = hx_scrub_new();
    assert_non_null(s);
    assert_int_equal(hx_scrub_add(s, KEY1, strlen(KEY1)), 0);
    assert_int_equal(hx_scrub_add(s, KEY2, strlen(KEY2)), 0);
    assert_int_equal(hx_scrub_add(s, KEY3, strlen(KEY3)), 0);
    assert_int_equal(hx_scrub_add(s, KEY3, strlen(KEY3)), 0);  /* duplicate */
    assert_int_equal(hx_scrub_add(s, "short", 5), 0);          /* too short */
    assert_int_equal(hx_scrub_count(s), 3);
    return s;
}

static char *oneshot(const hx_scrub *s, const char *in)
{
    hx_buf b;
    hx_buf_init(&b, 1 << 16);
    assert_int_equal(hx_scrub_append(s, &b, in, strlen(in)), 0);
    size_t n;
    char *r = hx_buf_steal(&b, &n);
    return r ? r : hx_strdup("");
}

static void test_scrub_oneshot(void **state)
{
    (void)state;
    hx_scrub *s = make_set();
    char *r = oneshot(s, "your key was Bearer " KEY1 ", and " KEY3 KEY2 " end");
    assert_string_equal(r, "your key was Bearer [redacted], and [redacted][redacted] end");
    hx_free(r);
    r = oneshot(s, "nothing here, short and sk-test-01 only");
    assert_string_equal(r, "nothing here, short and sk-test-01 only");
    hx_free(r);
    char msg[48] = "upstream said " KEY3 " ok";
    hx_scrub_cstr(s, msg, sizeof msg);
    assert_string_equal(msg, "upstream said [redacted] ok");
    hx_scrub_free(s);
}

/* Feeds `in` cut at i and j; returns everything released (caller frees). */
static char *stream_cut(const hx_scrub *s, const char *in, size_t i, size_t j)
{
    size_t len = strlen(in);
    size_t cuts[3] = {i, j, len};
    hx_scrub_stream st;
    hx_scrub_stream_init(&st);
    hx_buf all;
    hx_buf_init(&all, 1 << 16);
    size_t pos = 0;
    for (int k = 0; k < 3; k++) {
        const char *o;
        size_t on;
        assert_int_equal(hx_scrub_feed(s, &st, in + pos, cuts[k] - pos, &o, &on), 0);
        assert_int_equal(hx_buf_append(&all, o, on), 0);
        pos = cuts[k];
    }
    const char *o;
    size_t on;
    assert_int_equal(hx_scrub_flush(&st, &o, &on), 0);
    assert_int_equal(hx_buf_append(&all, o, on), 0);
    hx_scrub_stream_free(&st);
    size_t n;
    char *r = hx_buf_steal(&all, &n);
    return r ? r : hx_strdup("");
}

/* A secret split across any two or three chunks is still found, and the
 * stream releases exactly what the one-shot form gives. */
static void test_scrub_every_split(void **state)
{
    (void)state;
    hx_scrub *s = make_set();
    const char *ins[] = {
        "data: {\"error\":\"your key was Bearer " KEY1 "\"}\n\n",
        KEY3 "x" KEY1 KEY2 "sk-test-01sk-test-0123456789abcdeZ",
        "sssssk-test-sk-test-0123456789abcdef",
        "plain text without anything secret in it, s",
    };
    for (size_t t = 0; t < sizeof ins / sizeof ins[0]; t++) {
        char *want = oneshot(s, ins[t]);
        size_t len = strlen(ins[t]);
        for (size_t i = 0; i <= len; i++)
            for (size_t j = i; j <= len; j++) {
                char *got = stream_cut(s, ins[t], i, j);
                assert_string_equal(got, want);
                assert_null(strstr(got, KEY2));
                hx_free(got);
            }
        hx_free(want);
    }
    hx_scrub_free(s);
}

/* Long chunks take the other search (memmem per secret): same results. */
static void test_scrub_long_text(void **state)
{
    (void)state;
    hx_scrub *s = make_set();
    hx_buf in;
    hx_buf_init(&in, 1 << 16);
    for (int i = 0; i < 60; i++)
        assert_int_equal(hx_buf_append_str(&in, "lorem ipsum sk-test-01 hx-client "), 0);
    assert_int_equal(hx_buf_append_str(&in, KEY1 " mid " KEY3 KEY2 "x"), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(hx_buf_append_str(&in, "dolor sit amet "), 0);
    assert_int_equal(hx_buf_append_str(&in, KEY1), 0);
    assert_true(in.len > 2000);
    char *want = oneshot(s, in.data);
    assert_null(strstr(want, KEY2));
    assert_non_null(strstr(want, "[redacted] mid [redacted][redacted]x"));
    for (size_t i = 0; i <= in.len; i++) {
        char *got = stream_cut(s, in.data, i, i);
        assert_string_equal(got, want);
        hx_free(got);
    }
    /* a few two-cut splits near the secrets too */
    const char *k = strstr(in.data, KEY1);
    size_t at = (size_t)(k - in.data);
    for (size_t i = at - 3; i < at + 30; i++)
        for (size_t j = i; j < at + 60; j += 3) {
            char *got = stream_cut(s, in.data, i, j);
            assert_string_equal(got, want);
            hx_free(got);
        }
    hx_free(want);
    hx_buf_free(&in);
    hx_scrub_free(s);
}

/* A chunk with nothing to hide goes on without a copy. */
static void test_scrub_clean_zero_copy(void **state)
{
    (void)state;
    hx_scrub *s = make_set();
    hx_scrub_stream st;
    hx_scrub_stream_init(&st);
    const char *chunk = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";
    const char *o;
    size_t on;
    assert_int_equal(hx_scrub_feed(s, &st, chunk, strlen(chunk), &o, &on), 0);
    assert_ptr_equal(o, chunk);
    assert_int_equal(on, strlen(chunk));
    /* a tail that may begin a secret is held, the rest still not copied */
    assert_int_equal(hx_scrub_feed(s, &st, "abc sk-te", 9, &o, &on), 0);
    assert_int_equal(on, 4);
    assert_memory_equal(o, "abc ", 4);
    assert_int_equal(hx_scrub_feed(s, &st, "a", 1, &o, &on), 0);
    assert_int_equal(on, 6);
    assert_memory_equal(o, "sk-tea", 6);
    hx_scrub_stream_free(&st);
    /* no set, or an empty one: everything passes */
    hx_scrub *e = hx_scrub_new();
    hx_scrub_stream_init(&st);
    assert_int_equal(hx_scrub_feed(e, &st, chunk, 5, &o, &on), 0);
    assert_ptr_equal(o, chunk);
    assert_int_equal(hx_scrub_feed(NULL, &st, chunk, 5, &o, &on), 0);
    assert_ptr_equal(o, chunk);
    hx_scrub_stream_free(&st);
    hx_scrub_free(e);
    hx_scrub_free(s);
}

static void test_scrub_alloc_failures(void **state)
{
    (void)state;
    const char *in = "x " KEY1 " y";
    for (unsigned long n = 1; n < 40; n++) {
        hx_scrub *s = hx_scrub_new();
        if (s == NULL)
            continue;
        hx_alloc_fail_at(n, 0);
        int rc = hx_scrub_add(s, KEY1, strlen(KEY1));
        hx_scrub_stream st;
        hx_scrub_stream_init(&st);
        const char *o;
        size_t on;
        if (rc == 0 && hx_scrub_feed(s, &st, in, 9, &o, &on) == 0 && hx_scrub_feed(s, &st, in + 9, strlen(in) - 9, &o, &on) == 0)
            assert_null(memmem(o, on, KEY1, strlen(KEY1)));
        hx_alloc_fail_at(0, 0);
        hx_scrub_stream_free(&st);
        hx_scrub_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrub_oneshot),
        cmocka_unit_test(test_scrub_every_split),
        cmocka_unit_test(test_scrub_long_text),
        cmocka_unit_test(test_scrub_clean_zero_copy),
        cmocka_unit_test(test_scrub_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
