/* resilience/health.c: the health state of one provider. It starts
 * healthy but unknown, goes down after failure_threshold failures in a
 * row (probes and requests alike) and up again after one success. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "resilience/health.h"
#include "util/alloc.h"

static hx_health *mk(int64_t threshold)
{
    hx_health *h = hx_health_new("prov", threshold);
    assert_non_null(h);
    return h;
}

static void test_starts_healthy_unknown(void **state)
{
    (void)state;
    hx_health *h = mk(3);
    hx_health_snap s;
    hx_health_snapshot(h, &s);
    assert_true(s.healthy);
    assert_false(s.known);
    assert_int_equal(s.consecutive_failures, 0);
    assert_int_equal(s.checks, 0);
    assert_int_equal(s.last_latency_ms, -1);
    assert_string_equal(s.last_error, "");
    assert_string_equal(hx_health_name(h), "prov");
    assert_true(hx_health_ok(h));
    hx_health_free(h);
}

/* Down exactly at the threshold; the call that switches says so, the
 * others do not (the caller logs transitions, once each). */
static void test_down_at_threshold_up_after_one_success(void **state)
{
    (void)state;
    hx_health *h = mk(3);
    assert_false(hx_health_record(h, false, "connect refused", -1, false));
    assert_false(hx_health_record(h, false, "connect refused", -1, true));
    assert_true(hx_health_ok(h));
    assert_true(hx_health_record(h, false, "connect refused", -1, false)); /* third: down */
    assert_false(hx_health_ok(h));
    assert_false(hx_health_record(h, false, "again", -1, true)); /* already down: no transition */
    hx_health_snap s;
    hx_health_snapshot(h, &s);
    assert_true(s.known);
    assert_int_equal(s.consecutive_failures, 4);
    assert_int_equal(s.checks, 2);          /* only probes are checks */
    assert_int_equal(s.probe_failures, 2);
    assert_string_equal(s.last_error, "again");
    assert_true(hx_health_record(h, true, NULL, 12, true)); /* one success: up */
    hx_health_snapshot(h, &s);
    assert_true(s.healthy);
    assert_int_equal(s.consecutive_failures, 0);
    assert_int_equal(s.last_latency_ms, 12);
    assert_string_equal(s.last_error, "again"); /* kept for /health: the last one seen */
    hx_health_free(h);
}

/* A success in between restarts the count: failures must be in a row. */
static void test_failures_must_be_consecutive(void **state)
{
    (void)state;
    hx_health *h = mk(2);
    hx_health_record(h, false, "x", -1, false);
    hx_health_record(h, true, NULL, 5, false);
    assert_false(hx_health_record(h, false, "x", -1, false));
    assert_true(hx_health_ok(h));
    assert_true(hx_health_record(h, false, "x", -1, false));
    assert_false(hx_health_ok(h));
    hx_health_free(h);
}

/* A threshold of 0 or less means 1; no error text reads "failed"; a long
 * one is cut to the snapshot's buffer; -1 latency keeps the last one. */
static void test_edges(void **state)
{
    (void)state;
    hx_health *h = mk(0);
    hx_health_record(h, true, NULL, 40, true);
    assert_true(hx_health_record(h, false, NULL, -1, true));
    hx_health_snap s;
    hx_health_snapshot(h, &s);
    assert_string_equal(s.last_error, "failed");
    assert_int_equal(s.last_latency_ms, 40);
    char long_err[600];
    memset(long_err, 'e', sizeof long_err - 1);
    long_err[sizeof long_err - 1] = '\0';
    hx_health_record(h, false, long_err, -1, false);
    hx_health_snapshot(h, &s);
    assert_int_equal(strlen(s.last_error), sizeof s.last_error - 1);
    hx_health_free(h);
}

/* Restore (a reload or the state file) replaces the state whole, and a
 * last_error without its NUL is terminated. */
static void test_restore(void **state)
{
    (void)state;
    hx_health *h = mk(2);
    hx_health_snap in = {.healthy = false, .known = true, .consecutive_failures = 7, .checks = 3,
                         .probe_failures = 3, .last_latency_ms = 9, .last_change_unix = 1000};
    memset(in.last_error, 'z', sizeof in.last_error);
    hx_health_restore(h, &in);
    hx_health_snap s;
    hx_health_snapshot(h, &s);
    assert_false(s.healthy);
    assert_int_equal(s.consecutive_failures, 7);
    assert_int_equal(s.last_change_unix, 1000);
    assert_int_equal(strlen(s.last_error), sizeof s.last_error - 1);
    assert_false(hx_health_ok(h));
    assert_true(hx_health_record(h, true, NULL, 1, false));
    hx_health_free(h);
}

static void test_new_out_of_memory(void **state)
{
    (void)state;
    for (unsigned long n = 1; n <= 2; n++) {
        hx_alloc_fail_at(n, 0);
        assert_null(hx_health_new("prov", 1));
        hx_alloc_fail_at(0, 0);
    }
    hx_health_free(NULL);
}

/* Workers record from their own threads: counts add up. */
static void *hammer(void *ud)
{
    for (int i = 0; i < 1000; i++)
        hx_health_record(ud, i % 2 == 0, "x", i, true);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    hx_health *h = mk(1000000);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, h), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    hx_health_snap s;
    hx_health_snapshot(h, &s);
    assert_int_equal(s.checks, 4000);
    assert_int_equal(s.probe_failures, 2000);
    hx_health_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_healthy_unknown),
        cmocka_unit_test(test_down_at_threshold_up_after_one_success),
        cmocka_unit_test(test_failures_must_be_consecutive),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_restore),
        cmocka_unit_test(test_new_out_of_memory),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
