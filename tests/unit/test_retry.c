#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "resilience/retry.h"
#include "util/alloc.h"

static hx_cfg_retry cfg(int64_t initial, int64_t max, double mult)
{
    return (hx_cfg_retry){.max_retries = 5, .initial_delay = initial, .max_delay = max,
                          .multiplier = mult};
}

/* ---- delays ---- */

static void test_retry_delay_growth_and_cap(void **state)
{
    (void)state;
    hx_cfg_retry c = cfg(100, 5000, 2.0);
    /* UINT64_MAX gives the full value, 0 exactly half. */
    assert_int_equal(hx_retry_delay_ms(&c, 1, UINT64_MAX), 100);
    assert_int_equal(hx_retry_delay_ms(&c, 1, 0), 50);
    assert_int_equal(hx_retry_delay_ms(&c, 2, UINT64_MAX), 200);
    assert_int_equal(hx_retry_delay_ms(&c, 3, UINT64_MAX), 400);
    assert_int_equal(hx_retry_delay_ms(&c, 6, UINT64_MAX), 3200);
    assert_int_equal(hx_retry_delay_ms(&c, 7, UINT64_MAX), 5000); /* 6400 capped */
    assert_int_equal(hx_retry_delay_ms(&c, 7, 0), 2500);
    assert_int_equal(hx_retry_delay_ms(&c, 0, UINT64_MAX), 0);
    assert_int_equal(hx_retry_delay_ms(&c, -3, UINT64_MAX), 0);
    assert_int_equal(hx_retry_delay_ms(NULL, 1, UINT64_MAX), 0);

    c = cfg(100, 5000, 1.5);
    assert_int_equal(hx_retry_delay_ms(&c, 3, UINT64_MAX), 225);
    /* A multiplier below 1 (or NaN) does not shrink the delay. */
    c = cfg(100, 5000, 0.5);
    assert_int_equal(hx_retry_delay_ms(&c, 4, UINT64_MAX), 100);
    c = cfg(100, 5000, NAN);
    assert_int_equal(hx_retry_delay_ms(&c, 4, UINT64_MAX), 100);
    /* initial above max: the cap still wins */
    c = cfg(9000, 5000, 2.0);
    assert_int_equal(hx_retry_delay_ms(&c, 1, UINT64_MAX), 5000);
    /* negative settings count as 0 */
    c = cfg(-1, -1, 2.0);
    assert_int_equal(hx_retry_delay_ms(&c, 1, UINT64_MAX), 0);
}

static void test_retry_delay_jitter_bounds(void **state)
{
    (void)state;
    hx_cfg_retry c = cfg(5, 1000, 1.0);
    /* Odd value: floor(5/2) = 2 .. 5 */
    assert_int_equal(hx_retry_delay_ms(&c, 1, 0), 2);
    assert_int_equal(hx_retry_delay_ms(&c, 1, UINT64_MAX), 5);
    c = cfg(1000, 1000, 1.0);
    assert_int_equal(hx_retry_delay_ms(&c, 1, UINT64_MAX / 2), 750);
    uint64_t r = 0x243f6a8885a308d3ull, lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t d = hx_retry_delay_ms(&c, 1, r);
        assert_in_range(d, 500, 1000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* The whole range is used, not a corner of it. */
    assert_true(lo < 520);
    assert_true(hi > 980);
    /* Monotonic in random64. */
    assert_true(hx_retry_delay_ms(&c, 1, 1ull << 62) <= hx_retry_delay_ms(&c, 1, 1ull << 63));
}

static void test_retry_delay_no_overflow(void **state)
{
    (void)state;
    hx_cfg_retry c = cfg(100, 5000, 2.0);
    assert_int_equal(hx_retry_delay_ms(&c, 64, UINT64_MAX), 5000);
    assert_int_equal(hx_retry_delay_ms(&c, 1100, UINT64_MAX), 5000);
    assert_int_equal(hx_retry_delay_ms(&c, INT_MAX, UINT64_MAX), 5000);
    assert_int_equal(hx_retry_delay_ms(&c, INT_MAX, 0), 2500);
    /* Largest settings: no wrap past the cap. */
    c = cfg(INT64_MAX, INT64_MAX, 10.0);
    assert_int_equal(hx_retry_delay_ms(&c, 1, UINT64_MAX), (uint64_t)INT64_MAX);
    assert_int_equal(hx_retry_delay_ms(&c, INT_MAX, UINT64_MAX), (uint64_t)INT64_MAX);
    assert_int_equal(hx_retry_delay_ms(&c, INT_MAX, 0), (uint64_t)INT64_MAX / 2);
    c = cfg(1, INT64_MAX, 1e300);
    assert_int_equal(hx_retry_delay_ms(&c, 3, UINT64_MAX), (uint64_t)INT64_MAX);
}

/* ---- classes ---- */

static void test_retry_classes(void **state)
{
    (void)state;
    char *names[] = {"rate_limit", "connection", "bogus"};
    hx_strlist l = {.items = names, .n = 3};
    unsigned set = hx_retry_classes(&l);
    assert_int_equal(set, (1u << HX_FAIL_RATE_LIMIT) | (1u << HX_FAIL_CONNECTION));
    assert_true(hx_retry_allowed(set, HX_FAIL_RATE_LIMIT));
    assert_true(hx_retry_allowed(set, HX_FAIL_CONNECTION));
    assert_false(hx_retry_allowed(set, HX_FAIL_TIMEOUT));
    assert_false(hx_retry_allowed(set, HX_FAIL_SERVER_ERROR));
    assert_false(hx_retry_allowed(set, HX_FAIL_NONE));
    assert_false(hx_retry_allowed(~0u, HX_FAIL_NONE));

    char *all[] = {"timeout", "server_error", "rate_limit", "connection"};
    l = (hx_strlist){.items = all, .n = 4};
    assert_int_equal(hx_retry_classes(&l), (1u << HX_FAIL_TIMEOUT) | (1u << HX_FAIL_SERVER_ERROR) |
                                              (1u << HX_FAIL_RATE_LIMIT) | (1u << HX_FAIL_CONNECTION));
    char *cased[] = {"Timeout", "server-error"};
    l = (hx_strlist){.items = cased, .n = 2};
    assert_int_equal(hx_retry_classes(&l), 0);
    l = (hx_strlist){0};
    assert_int_equal(hx_retry_classes(&l), 0);
    assert_int_equal(hx_retry_classes(NULL), 0);
}

/* "unanswered" (sent, may be billed) is a class of its own: the old names
 * never include it, so the defaults never resend an accepted request. */
static void test_retry_class_unanswered(void **state)
{
    (void)state;
    char *old[] = {"timeout", "server_error", "rate_limit", "connection"};
    hx_strlist l = {.items = old, .n = 4};
    assert_false(hx_retry_allowed(hx_retry_classes(&l), HX_FAIL_UNANSWERED));
    char *opt[] = {"unanswered"};
    l = (hx_strlist){.items = opt, .n = 1};
    assert_int_equal(hx_retry_classes(&l), 1u << HX_FAIL_UNANSWERED);
    assert_true(hx_retry_allowed(hx_retry_classes(&l), HX_FAIL_UNANSWERED));
    assert_false(hx_retry_allowed(hx_retry_classes(&l), HX_FAIL_TIMEOUT));
    assert_string_equal(hx_fail_name(HX_FAIL_UNANSWERED), "unanswered");
    assert_string_equal(hx_fail_name(HX_FAIL_TIMEOUT), "timeout");
    assert_string_equal(hx_fail_name(HX_FAIL_NONE), "none");
    assert_string_equal(hx_fail_name((hx_fail_class)99), "none");
    /* the finer failures retry as their class: sent-then-dropped is unanswered */
    assert_true(hx_retry_allowed(hx_retry_classes(&l), HX_FAIL_DROPPED));
    assert_true(hx_retry_allowed(hx_retry_classes(&l), HX_FAIL_MALFORMED));
    assert_false(hx_retry_allowed(~0u, HX_FAIL_MID_STREAM));
}

/* ---- budget ---- */

static int withdraw_n(hx_retry_budget *b, int n, uint64_t now)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += hx_retry_budget_withdraw(b, now);
    return ok;
}

static void deposit_n(hx_retry_budget *b, int n, uint64_t now)
{
    for (int i = 0; i < n; i++)
        hx_retry_budget_deposit(b, now);
}

static void test_retry_budget_percent(void **state)
{
    (void)state;
    hx_retry_budget *b = hx_retry_budget_new(20, 0);
    assert_non_null(b);
    assert_false(hx_retry_budget_withdraw(b, 0)); /* no traffic, no floor */
    deposit_n(b, 100, 0);
    assert_int_equal(withdraw_n(b, 30, 500), 20);
    /* More traffic in the window buys more retries. */
    deposit_n(b, 50, 3000);
    assert_int_equal(withdraw_n(b, 30, 3000), 10);
    hx_retry_budget_free(b);

    b = hx_retry_budget_new(0, 0);
    deposit_n(b, 1000, 0);
    assert_false(hx_retry_budget_withdraw(b, 0));
    hx_retry_budget_free(b);

    b = hx_retry_budget_new(250, 0); /* clamped to 100 */
    deposit_n(b, 10, 0);
    assert_int_equal(withdraw_n(b, 30, 0), 10);
    hx_retry_budget_free(b);
}

static void test_retry_budget_floor(void **state)
{
    (void)state;
    hx_retry_budget *b = hx_retry_budget_new(20, 1);
    /* 1 per second over a 10 s window: 10 retries with no traffic at all. */
    assert_int_equal(withdraw_n(b, 15, 0), 10);
    assert_int_equal(withdraw_n(b, 5, 9999), 0);
    /* The floor adds to the percentage. */
    deposit_n(b, 50, 9999);
    assert_int_equal(withdraw_n(b, 20, 9999), 10);
    hx_retry_budget_free(b);
}

static void test_retry_budget_window_slides(void **state)
{
    (void)state;
    hx_retry_budget *b = hx_retry_budget_new(20, 0);
    deposit_n(b, 50, 0);       /* second 0 */
    deposit_n(b, 50, 5000);    /* second 5 */
    assert_int_equal(withdraw_n(b, 15, 5500), 15); /* 100 requests: 20 allowed */
    assert_int_equal(withdraw_n(b, 10, 9999), 5);  /* second 9: still all in */
    /* Second 10: second 0 left the window: 50 requests, 20 retries. */
    assert_false(hx_retry_budget_withdraw(b, 10000));
    /* Second 15: second 5 left; second 9's retries still count. */
    deposit_n(b, 30, 15000);
    assert_int_equal(withdraw_n(b, 5, 15000), 1); /* 30 -> 6 allowed, 5 used */
    /* Second 19: only second 15 is left. */
    assert_int_equal(withdraw_n(b, 10, 19999), 5);
    /* A long silence empties every bucket, even ones the ring reuses. */
    deposit_n(b, 100, 1000000);
    assert_int_equal(withdraw_n(b, 30, 1000000), 20);
    /* A clock sample behind the newest second counts in the newest one;
     * 10 s behind maps to the current bucket's slot and must not wipe it. */
    assert_false(hx_retry_budget_withdraw(b, 990000));
    deposit_n(b, 5, 990000);
    assert_true(hx_retry_budget_withdraw(b, 1000000)); /* 105 requests: 21 */
    assert_false(hx_retry_budget_withdraw(b, 1000000));
    hx_retry_budget_free(b);
}

typedef struct {
    hx_retry_budget *b;
    int granted;
} budget_arg;

static void *budget_thread(void *p)
{
    budget_arg *a = p;
    for (int i = 0; i < 20000; i++) {
        if (i % 10 == 0)
            hx_retry_budget_deposit(a->b, 1000);
        a->granted += hx_retry_budget_withdraw(a->b, 1000);
    }
    return NULL;
}

static void test_retry_budget_threads(void **state)
{
    (void)state;
    hx_retry_budget *b = hx_retry_budget_new(10, 0);
    deposit_n(b, 4000, 1000);
    pthread_t t[4];
    budget_arg a[4] = {{.b = b}, {.b = b}, {.b = b}, {.b = b}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, budget_thread, &a[i]), 0);
    int granted = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        granted += a[i].granted;
    }
    /* 4000 + 4 * 2000 requests at 10%: exactly 1200 retries, never more. */
    assert_int_equal(granted, 1200);
    hx_retry_budget_free(b);
}

static void test_retry_budget_alloc(void **state)
{
    (void)state;
    hx_alloc_fail_at(1, 0);
    assert_null(hx_retry_budget_new(20, 1));
    hx_alloc_fail_at(0, 0);
    hx_retry_budget_free(NULL);
}

/* ---- Retry-After ---- */

#define NOV6 784111777ull /* Sun, 06 Nov 1994 08:49:37 GMT */

static void test_retry_after_seconds(void **state)
{
    (void)state;
    assert_int_equal(hx_retry_after_ms("2", 0), 2000);
    assert_int_equal(hx_retry_after_ms(" \t2 ", 0), 2000);
    assert_int_equal(hx_retry_after_ms("0.5", 0), 500);
    assert_int_equal(hx_retry_after_ms("1.25", 0), 1250);
    assert_int_equal(hx_retry_after_ms("0.0001", 0), 1); /* rounded up */
    assert_int_equal(hx_retry_after_ms("0.0000", 0), 0);
    assert_int_equal(hx_retry_after_ms("0", 0), 0);
    assert_int_equal(hx_retry_after_ms("120", NOV6), 120000); /* wall clock irrelevant */
    assert_int_equal(hx_retry_after_ms("3599.999", 0), 3599999);
    assert_int_equal(hx_retry_after_ms("3600", 0), HX_RETRY_AFTER_MAX_MS);
    assert_int_equal(hx_retry_after_ms("3601", 0), HX_RETRY_AFTER_MAX_MS);
    assert_int_equal(hx_retry_after_ms("3599.9999", 0), HX_RETRY_AFTER_MAX_MS);
    assert_int_equal(hx_retry_after_ms("99999999999999999999999999", 0), HX_RETRY_AFTER_MAX_MS);
}

static void test_retry_after_garbage(void **state)
{
    (void)state;
    const char *bad[] = {"", "   ", "abc", "-1", "+1", "1e3", "2 s", "2s", "1.", ".5", "1.2.3",
                         "0x10", "1,5", "1 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(hx_retry_after_ms(bad[i], 0), 0);
    assert_int_equal(hx_retry_after_ms(NULL, 0), 0);
}

static void test_retry_after_http_date(void **state)
{
    (void)state;
    assert_int_equal(hx_retry_after_ms("Sun, 06 Nov 1994 08:50:37 GMT", NOV6), 60000);
    assert_int_equal(hx_retry_after_ms("  Sun, 06 Nov 1994 08:49:38 GMT ", NOV6), 1000);
    assert_int_equal(hx_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", NOV6), 0); /* now */
    assert_int_equal(hx_retry_after_ms("Sun, 06 Nov 1994 07:49:37 GMT", NOV6), 0); /* past */
    assert_int_equal(hx_retry_after_ms("Mon, 07 Nov 1994 08:49:37 GMT", NOV6),
                     HX_RETRY_AFTER_MAX_MS);
    assert_int_equal(hx_retry_after_ms("Sun, 06 Nov 1994 09:49:36 GMT", NOV6), 3599000);
    /* Across a month and a leap day. */
    assert_int_equal(hx_retry_after_ms("Thu, 29 Feb 2024 00:00:10 GMT", 1709164800ull), 10000);
    assert_int_equal(hx_retry_after_ms("Fri, 01 Mar 2024 00:00:05 GMT", 1709251200ull), 5000);
}

static void test_retry_after_bad_dates(void **state)
{
    (void)state;
    const char *bad[] = {
        "Sun, 31 Feb 1994 08:49:37 GMT", /* no such day */
        "Sun, 29 Feb 1994 08:49:37 GMT", /* not a leap year */
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 06 Nov 1994 08:60:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nox 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT junk",
        "Sunday, 06-Nov-94 08:49:37 GMT", /* RFC 850: not accepted */
        "Sun Nov  6 08:49:37 1994",       /* asctime: not accepted */
        "Sun, 0a Nov 1994 08:49:37 GMT",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(hx_retry_after_ms(bad[i], 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_delay_growth_and_cap),
        cmocka_unit_test(test_retry_delay_jitter_bounds),
        cmocka_unit_test(test_retry_delay_no_overflow),
        cmocka_unit_test(test_retry_classes),
        cmocka_unit_test(test_retry_class_unanswered),
        cmocka_unit_test(test_retry_budget_percent),
        cmocka_unit_test(test_retry_budget_floor),
        cmocka_unit_test(test_retry_budget_window_slides),
        cmocka_unit_test(test_retry_budget_threads),
        cmocka_unit_test(test_retry_budget_alloc),
        cmocka_unit_test(test_retry_after_seconds),
        cmocka_unit_test(test_retry_after_garbage),
        cmocka_unit_test(test_retry_after_http_date),
        cmocka_unit_test(test_retry_after_bad_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
