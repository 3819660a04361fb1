#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "resilience/breaker.h"
#include "util/alloc.h"

/* ---- helpers ---- */

/* `threshold` failures in a row open it: min_requests = threshold, rate
 * 100 %. */
static hx_breaker *mk(int64_t max_requests, int64_t interval, int64_t timeout, int64_t threshold)
{
    hx_cfg_breaker c = {.max_requests = max_requests, .interval = interval, .timeout = timeout,
                        .failure_threshold = threshold, .min_requests = threshold, .failure_rate = 100};
    hx_breaker *b = hx_breaker_new("prov", &c);
    assert_non_null(b);
    return b;
}

static hx_breaker *mk_rate(int64_t interval, int64_t min_requests, int64_t threshold, int64_t rate)
{
    hx_cfg_breaker c = {.max_requests = 1, .interval = interval, .timeout = 1000, .failure_threshold = threshold,
                        .min_requests = min_requests, .failure_rate = rate};
    hx_breaker *b = hx_breaker_new("prov", &c);
    assert_non_null(b);
    return b;
}

static void ok_n(hx_breaker *b, int n, uint64_t now)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(hx_breaker_allow(b, now), 1);
        hx_breaker_record(b, true, now);
    }
}

static void fail_n(hx_breaker *b, int n, uint64_t now)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(hx_breaker_allow(b, now), 1);
        hx_breaker_record(b, false, now);
    }
}

#define MAX_SEEN 16

typedef struct {
    int n;
    int from[MAX_SEEN];
    int to[MAX_SEEN];
    char name[16];
    hx_breaker *b; /* calls back into the breaker: proves the mutex is free */
    uint64_t now;
} seen;

static void on_transition(void *ud, const char *name, int from, int to)
{
    seen *s = ud;
    snprintf(s->name, sizeof s->name, "%s", name);
    if (s->n < MAX_SEEN) {
        s->from[s->n] = from;
        s->to[s->n] = to;
    }
    s->n++;
    if (s->b != NULL) /* would deadlock if called under the breaker's mutex */
        (void)hx_breaker_retry_after_ms(s->b, s->now);
}

static void assert_seen(const seen *s, int i, int from, int to)
{
    assert_true(i < s->n);
    assert_int_equal(s->from[i], from);
    assert_int_equal(s->to[i], to);
}

/* ---- closed ---- */

static void test_breaker_opens_after_threshold(void **state)
{
    (void)state;
    hx_breaker *b = mk(1, 0, 1000, 3);
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_CLOSED);
    fail_n(b, 2, 10);
    assert_int_equal(hx_breaker_state(b, 10), HX_BREAKER_CLOSED);
    fail_n(b, 1, 10);
    assert_int_equal(hx_breaker_state(b, 10), HX_BREAKER_OPEN);
    assert_int_equal(hx_breaker_allow(b, 10), 0);
    assert_int_equal(hx_breaker_allow(b, 500), 0);
    hx_breaker_counters c;
    hx_breaker_stats(b, &c);
    assert_int_equal(c.requests, 3);
    assert_int_equal(c.failures, 3);
    assert_int_equal(c.successes, 0);
    assert_int_equal(c.rejections, 2);
    assert_int_equal(c.trips, 1);
    hx_breaker_free(b);
}

/* One or two failed requests never open it: min_requests. */
static void test_breaker_min_requests(void **state)
{
    (void)state;
    hx_breaker *b = mk_rate(30000, 5, 1, 50);
    fail_n(b, 4, 0);
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_CLOSED);
    uint32_t r, f;
    hx_breaker_window(b, 0, &r, &f);
    assert_int_equal(r, 4);
    assert_int_equal(f, 4);
    fail_n(b, 1, 0); /* the fifth request: 5 of 5 */
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_OPEN);
    hx_breaker_window(b, 0, &r, &f); /* open: no window */
    assert_int_equal(r, 0);
    hx_breaker_free(b);

    /* The request that reaches min_requests may be a success. */
    b = mk_rate(30000, 4, 1, 50);
    fail_n(b, 3, 0);
    ok_n(b, 1, 0);
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_OPEN);
    hx_breaker_free(b);
}

/* Failures must reach failure_rate percent of the window's requests. */
static void test_breaker_failure_rate(void **state)
{
    (void)state;
    hx_breaker *b = mk_rate(30000, 4, 1, 50);
    ok_n(b, 1, 0);
    fail_n(b, 1, 0);
    ok_n(b, 1, 0);
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_CLOSED);
    fail_n(b, 1, 0); /* 2 of 4 = 50 % */
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_OPEN);
    hx_breaker_free(b);

    b = mk_rate(30000, 4, 1, 50);
    ok_n(b, 3, 0);
    fail_n(b, 1, 0); /* 25 % */
    ok_n(b, 2, 0);
    fail_n(b, 2, 0); /* 3 of 8 = 37 % */
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_CLOSED);
    fail_n(b, 1, 0); /* 4 of 9 = 44 % */
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_CLOSED);
    fail_n(b, 1, 0); /* 5 of 10 */
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_OPEN);
    hx_breaker_free(b);
}

/* failure_threshold: at least that many failures, whatever the rate. */
static void test_breaker_failure_threshold_in_window(void **state)
{
    (void)state;
    hx_breaker *b = mk_rate(30000, 1, 3, 1);
    fail_n(b, 2, 0);
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_CLOSED);
    fail_n(b, 1, 0);
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_OPEN);
    hx_breaker_free(b);
}

/* Outcomes older than `interval` leave the window (ten buckets). */
static void test_breaker_sliding_window(void **state)
{
    (void)state;
    hx_breaker *b = mk(1, 1000, 5000, 3);
    fail_n(b, 1, 0);
    fail_n(b, 1, 500);
    fail_n(b, 1, 1050); /* the failure at 0 has left the window */
    assert_int_equal(hx_breaker_state(b, 1050), HX_BREAKER_CLOSED);
    uint32_t r, f;
    hx_breaker_window(b, 1050, &r, &f);
    assert_int_equal(r, 2);
    assert_int_equal(f, 2);
    hx_breaker_window(b, 5000, &r, &f); /* all gone */
    assert_int_equal(r, 0);
    fail_n(b, 1, 1400); /* 500, 1050, 1400 */
    assert_int_equal(hx_breaker_state(b, 1400), HX_BREAKER_OPEN);
    hx_breaker_free(b);

    /* A success in the window keeps the rate under 100 %. */
    b = mk(1, 1000, 5000, 3);
    fail_n(b, 2, 0);
    ok_n(b, 1, 100);
    fail_n(b, 2, 200);
    assert_int_equal(hx_breaker_state(b, 200), HX_BREAKER_CLOSED);
    hx_breaker_free(b);

    /* interval 0: never forgotten by time. */
    b = mk(1, 0, 5000, 3);
    fail_n(b, 1, 0);
    fail_n(b, 1, 1000000);
    fail_n(b, 1, 2000000);
    assert_int_equal(hx_breaker_state(b, 2000000), HX_BREAKER_OPEN);
    hx_breaker_free(b);
}

/* A request without a verdict (the client's own error, an abort) is
 * released: it never counts, however many there are. */
static void test_breaker_releases_never_count(void **state)
{
    (void)state;
    hx_breaker *b = mk_rate(30000, 2, 1, 50);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(hx_breaker_allow(b, 0), 1);
        hx_breaker_release(b);
    }
    uint32_t r, f;
    hx_breaker_window(b, 0, &r, &f);
    assert_int_equal(r, 0);
    fail_n(b, 1, 0);
    assert_int_equal(hx_breaker_state(b, 0), HX_BREAKER_CLOSED);
    hx_breaker_free(b);
}

/* ---- open ---- */

static void test_breaker_open_rejects_until_timeout(void **state)
{
    (void)state;
    hx_breaker *b = mk(1, 0, 1000, 1);
    assert_int_equal(hx_breaker_retry_after_ms(b, 0), 0);
    fail_n(b, 1, 100);
    assert_int_equal(hx_breaker_retry_after_ms(b, 100), 1000);
    assert_int_equal(hx_breaker_retry_after_ms(b, 600), 500);
    assert_int_equal(hx_breaker_allow(b, 100), 0);
    assert_int_equal(hx_breaker_allow(b, 1099), 0);
    assert_int_equal(hx_breaker_state(b, 1099), HX_BREAKER_OPEN);
    assert_int_equal(hx_breaker_retry_after_ms(b, 1100), 0);
    /* A clock sample taken before the breaker opened must not underflow. */
    assert_int_equal(hx_breaker_retry_after_ms(b, 50), 1050);
    assert_int_equal(hx_breaker_allow(b, 1100), 1);
    assert_int_equal(hx_breaker_state(b, 1100), HX_BREAKER_HALF_OPEN);
    assert_int_equal(hx_breaker_retry_after_ms(b, 1100), 0);
    hx_breaker_free(b);
}

static void test_breaker_state_reports_half_open_after_timeout(void **state)
{
    (void)state;
    hx_breaker *b = mk(1, 0, 1000, 1);
    fail_n(b, 1, 0);
    assert_int_equal(hx_breaker_state(b, 999), HX_BREAKER_OPEN);
    assert_int_equal(hx_breaker_state(b, 1000), HX_BREAKER_HALF_OPEN);
    /* No trial was taken by asking the state. */
    assert_int_equal(hx_breaker_allow(b, 1000), 1);
    assert_int_equal(hx_breaker_allow(b, 1000), 0);
    hx_breaker_free(b);
}

/* ---- half-open ---- */

static hx_breaker *half_open(int64_t max_requests, uint64_t *now)
{
    hx_breaker *b = mk(max_requests, 0, 1000, 1);
    fail_n(b, 1, 0);
    *now = 1000;
    assert_int_equal(hx_breaker_state(b, *now), HX_BREAKER_HALF_OPEN);
    return b;
}

static void test_breaker_half_open_admits_max_requests(void **state)
{
    (void)state;
    uint64_t now;
    hx_breaker *b = half_open(3, &now);
    for (int i = 0; i < 3; i++)
        assert_int_equal(hx_breaker_allow(b, now), 1);
    assert_int_equal(hx_breaker_allow(b, now), 0);
    assert_int_equal(hx_breaker_allow(b, now + 5000), 0);
    hx_breaker_counters c;
    hx_breaker_stats(b, &c);
    assert_int_equal(c.trials_in_flight, 3);
    /* release frees one slot without a verdict */
    hx_breaker_release(b);
    hx_breaker_stats(b, &c);
    assert_int_equal(c.trials_in_flight, 2);
    assert_int_equal(c.releases, 1);
    assert_int_equal(c.successes, 0);
    assert_int_equal(c.failures, 1);
    assert_int_equal(hx_breaker_state(b, now), HX_BREAKER_HALF_OPEN);
    assert_int_equal(hx_breaker_allow(b, now), 1);
    assert_int_equal(hx_breaker_allow(b, now), 0);
    hx_breaker_free(b);
}

static void test_breaker_half_open_success_closes(void **state)
{
    (void)state;
    uint64_t now;
    hx_breaker *b = mk(2, 0, 1000, 2);
    fail_n(b, 2, 0);
    now = 1000;
    assert_int_equal(hx_breaker_allow(b, now), 1);
    assert_int_equal(hx_breaker_allow(b, now), 1);
    hx_breaker_record(b, true, now);
    assert_int_equal(hx_breaker_state(b, now), HX_BREAKER_CLOSED);
    /* The other trial ends later: an ordinary closed-state failure. */
    hx_breaker_record(b, false, now);
    assert_int_equal(hx_breaker_state(b, now), HX_BREAKER_CLOSED);
    /* Counts were reset on closing: the next failure is the second. */
    fail_n(b, 1, now);
    assert_int_equal(hx_breaker_state(b, now), HX_BREAKER_OPEN);
    hx_breaker_free(b);
}

static void test_breaker_half_open_failure_reopens(void **state)
{
    (void)state;
    hx_breaker *b = mk(1, 0, 1000, 1);
    fail_n(b, 1, 0);
    assert_int_equal(hx_breaker_allow(b, 1500), 1);
    hx_breaker_record(b, false, 1500);
    assert_int_equal(hx_breaker_state(b, 1500), HX_BREAKER_OPEN);
    assert_int_equal(hx_breaker_retry_after_ms(b, 2000), 500);
    assert_int_equal(hx_breaker_allow(b, 2000), 0);
    assert_int_equal(hx_breaker_allow(b, 2499), 0);
    assert_int_equal(hx_breaker_allow(b, 2500), 1);
    hx_breaker_counters c;
    hx_breaker_stats(b, &c);
    assert_int_equal(c.trips, 2);
    hx_breaker_free(b);
}

static void test_breaker_stale_plain_record_in_half_open(void **state)
{
    (void)state;
    hx_breaker *b = mk(1, 0, 1000, 2);
    assert_int_equal(hx_breaker_allow(b, 0), 1); /* slow request, admitted closed */
    fail_n(b, 2, 0);
    /* It ends once the breaker is half-open, with no trial in flight. */
    hx_breaker_record(b, true, 1000);
    assert_int_equal(hx_breaker_state(b, 1000), HX_BREAKER_HALF_OPEN);
    hx_breaker_release(b); /* no slot to free: must not underflow */
    hx_breaker_counters c;
    hx_breaker_stats(b, &c);
    assert_int_equal(c.trials_in_flight, 0);
    assert_int_equal(c.successes, 1);
    assert_int_equal(hx_breaker_allow(b, 1000), 1);
    assert_int_equal(hx_breaker_allow(b, 1000), 0);
    hx_breaker_free(b);
}

static void test_breaker_generation_ignores_stale(void **state)
{
    (void)state;
    hx_breaker *b = mk(1, 0, 1000, 1);
    uint64_t old = 0, trial = 0;
    assert_int_equal(hx_breaker_allow_gen(b, 0, &old), 1);
    fail_n(b, 1, 0); /* opens */
    assert_int_equal(hx_breaker_allow_gen(b, 1000, &trial), 1);
    assert_true(trial != old);
    /* The stale request neither frees the trial's slot nor decides. */
    hx_breaker_release_gen(b, old);
    assert_int_equal(hx_breaker_allow(b, 1000), 0);
    hx_breaker_record_gen(b, old, true, 1000);
    assert_int_equal(hx_breaker_state(b, 1000), HX_BREAKER_HALF_OPEN);
    hx_breaker_counters c;
    hx_breaker_stats(b, &c);
    assert_int_equal(c.trials_in_flight, 1);
    assert_int_equal(c.successes, 1); /* still counted */
    hx_breaker_record_gen(b, trial, true, 1000);
    assert_int_equal(hx_breaker_state(b, 1000), HX_BREAKER_CLOSED);
    /* Rejected: gen untouched. */
    fail_n(b, 1, 1000);
    uint64_t g = 12345;
    assert_int_equal(hx_breaker_allow_gen(b, 1000, &g), 0);
    assert_int_equal(g, 12345);
    hx_breaker_free(b);
}

/* ---- callback ---- */

static void test_breaker_transition_callback(void **state)
{
    (void)state;
    hx_breaker *b = mk(1, 0, 1000, 2);
    seen s = {.b = b};
    hx_breaker_on_transition(b, on_transition, &s);
    fail_n(b, 1, 0);
    assert_int_equal(s.n, 0);
    fail_n(b, 1, 0);
    assert_int_equal(s.n, 1);
    assert_seen(&s, 0, HX_BREAKER_CLOSED, HX_BREAKER_OPEN);
    assert_string_equal(s.name, "prov");
    (void)hx_breaker_allow(b, 500); /* rejected: no transition */
    assert_int_equal(hx_breaker_state(b, 1000), HX_BREAKER_HALF_OPEN);
    assert_int_equal(hx_breaker_state(b, 1001), HX_BREAKER_HALF_OPEN); /* not again */
    assert_int_equal(s.n, 2);
    assert_seen(&s, 1, HX_BREAKER_OPEN, HX_BREAKER_HALF_OPEN);
    assert_int_equal(hx_breaker_allow(b, 1001), 1);
    hx_breaker_record(b, true, 1001);
    assert_int_equal(s.n, 3);
    assert_seen(&s, 2, HX_BREAKER_HALF_OPEN, HX_BREAKER_CLOSED);
    fail_n(b, 2, 2000);
    assert_int_equal(s.n, 4);
    assert_seen(&s, 3, HX_BREAKER_CLOSED, HX_BREAKER_OPEN);
    /* Lazy step and verdict in one call: two callbacks, in order. */
    hx_breaker_record(b, false, 3000); /* not a trial: no verdict */
    assert_int_equal(s.n, 5);
    assert_seen(&s, 4, HX_BREAKER_OPEN, HX_BREAKER_HALF_OPEN);
    assert_int_equal(hx_breaker_allow(b, 3000), 1);
    hx_breaker_record(b, false, 3000);
    assert_int_equal(s.n, 6);
    assert_seen(&s, 5, HX_BREAKER_HALF_OPEN, HX_BREAKER_OPEN);
    /* Cleared: nothing more reported. */
    hx_breaker_on_transition(b, NULL, NULL);
    (void)hx_breaker_state(b, 9000);
    assert_int_equal(s.n, 6);
    hx_breaker_free(b);
}

static void test_breaker_names_and_alloc(void **state)
{
    (void)state;
    assert_string_equal(hx_breaker_state_name(HX_BREAKER_CLOSED), "closed");
    assert_string_equal(hx_breaker_state_name(HX_BREAKER_OPEN), "open");
    assert_string_equal(hx_breaker_state_name(HX_BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(hx_breaker_state_name(7), "unknown");
    hx_cfg_breaker c = {.max_requests = 1, .timeout = 10, .failure_threshold = 1};
    char name[] = "mutable";
    hx_breaker *b = hx_breaker_new(name, &c);
    name[0] = 'X';
    assert_string_equal(hx_breaker_name(b), "mutable");
    hx_breaker_free(b);
    hx_breaker_free(NULL);
    for (unsigned long n = 1; n <= 2; n++) {
        hx_alloc_fail_at(n, 0);
        assert_null(hx_breaker_new("x", &c));
    }
    hx_alloc_fail_at(0, 0);
}

static void test_breaker_clamps_settings(void **state)
{
    (void)state;
    /* threshold 0 acts as 1, max_requests 0 as 1, negative timeout as 0 */
    hx_breaker *b = mk(0, -5, -5, 0);
    fail_n(b, 1, 10);
    assert_int_equal(hx_breaker_state(b, 10), HX_BREAKER_HALF_OPEN);
    assert_int_equal(hx_breaker_allow(b, 10), 1);
    assert_int_equal(hx_breaker_allow(b, 10), 0);
    hx_breaker_free(b);
}

/* ---- snapshot / restore ---- */

static void test_breaker_snapshot_restore(void **state)
{
    (void)state;
    hx_cfg_breaker ca = {.max_requests = 1, .timeout = 1000, .failure_threshold = 3, .min_requests = 3,
                         .failure_rate = 50};
    hx_breaker *a = hx_breaker_new("prov", &ca);
    assert_non_null(a);
    assert_int_equal(hx_breaker_allow(a, 0), 1);
    hx_breaker_record(a, true, 0);
    fail_n(a, 3, 100);
    (void)hx_breaker_allow(a, 200);
    hx_breaker_snap s;
    hx_breaker_snapshot(a, &s);
    assert_int_equal(s.state, HX_BREAKER_OPEN);
    assert_int_equal(s.open_until_ms, 1100);
    assert_int_equal(s.requests, 4);
    assert_int_equal(s.successes, 1);
    assert_int_equal(s.failures, 3);
    assert_int_equal(s.rejections, 1);
    assert_int_equal(s.trips, 1);

    s.trips = 7;
    hx_breaker *b = mk(1, 0, 1000, 3);
    seen cb = {0};
    hx_breaker_on_transition(b, on_transition, &cb);
    hx_breaker_restore(b, &s, 600);
    assert_int_equal(cb.n, 1);
    assert_seen(&cb, 0, HX_BREAKER_CLOSED, HX_BREAKER_OPEN);
    assert_int_equal(hx_breaker_retry_after_ms(b, 600), 500);
    assert_int_equal(hx_breaker_allow(b, 1099), 0);
    assert_int_equal(hx_breaker_allow(b, 1100), 1);
    hx_breaker_counters c;
    hx_breaker_stats(b, &c);
    assert_int_equal(c.requests, 5);
    assert_int_equal(c.rejections, 2);
    assert_int_equal(c.trips, 7);

    /* A deadline from another boot is capped at now + timeout. */
    s.open_until_ms = UINT64_MAX - 1;
    hx_breaker_restore(b, &s, 50);
    assert_int_equal(hx_breaker_retry_after_ms(b, 50), 1000);
    assert_int_equal(cb.n, 3); /* open -> half_open (allow), half_open -> open */
    hx_breaker_restore(b, &s, 60);
    assert_int_equal(cb.n, 3); /* open -> open is no transition */

    /* Closed with a window of 2 failures: one more failure trips it. */
    s = (hx_breaker_snap){.state = HX_BREAKER_CLOSED, .window_requests = 2, .window_failures = 2};
    hx_breaker_restore(b, &s, 5000);
    assert_int_equal(hx_breaker_state(b, 5000), HX_BREAKER_CLOSED);
    fail_n(b, 1, 5000);
    assert_int_equal(hx_breaker_state(b, 5000), HX_BREAKER_OPEN);

    /* Half-open restores with free slots; garbage restores closed. */
    s = (hx_breaker_snap){.state = HX_BREAKER_HALF_OPEN};
    hx_breaker_restore(b, &s, 9000);
    assert_int_equal(hx_breaker_state(b, 9000), HX_BREAKER_HALF_OPEN);
    assert_int_equal(hx_breaker_allow(b, 9000), 1);
    s.state = 42;
    hx_breaker_restore(b, &s, 9000);
    assert_int_equal(hx_breaker_state(b, 9000), HX_BREAKER_CLOSED);
    hx_breaker_stats(b, &c);
    assert_int_equal(c.trials_in_flight, 0);
    hx_breaker_free(a);
    hx_breaker_free(b);
}

/* ---- threads ---- */

#define HAMMER_THREADS 4
#define HAMMER_OPS 100000

typedef struct {
    hx_breaker *b;
    _Atomic uint64_t *clock;
    int use_gen;
    uint64_t seed;
    uint64_t allowed, rejected, ok, failed, released;
} hammer_arg;

static _Atomic uint64_t hammer_opens;
static _Atomic uint64_t hammer_transitions;

static void hammer_cb(void *ud, const char *name, int from, int to)
{
    (void)ud;
    (void)name;
    (void)from;
    atomic_fetch_add(&hammer_transitions, 1);
    if (to == HX_BREAKER_OPEN)
        atomic_fetch_add(&hammer_opens, 1);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *hammer(void *p)
{
    hammer_arg *a = p;
    for (int i = 0; i < HAMMER_OPS; i++) {
        uint64_t now = atomic_fetch_add(a->clock, 1) / 16;
        uint64_t gen = 0;
        int ok = a->use_gen ? hx_breaker_allow_gen(a->b, now, &gen) : hx_breaker_allow(a->b, now);
        if (!ok) {
            a->rejected++;
            continue;
        }
        a->allowed++;
        uint64_t r = xorshift(&a->seed) % 100;
        now = atomic_load(a->clock) / 16;
        if (r < 5) {
            a->released++;
            if (a->use_gen)
                hx_breaker_release_gen(a->b, gen);
            else
                hx_breaker_release(a->b);
        } else {
            bool success = r >= 35;
            if (success)
                a->ok++;
            else
                a->failed++;
            if (a->use_gen)
                hx_breaker_record_gen(a->b, gen, success, now);
            else
                hx_breaker_record(a->b, success, now);
        }
    }
    return NULL;
}

static void test_breaker_threads_hammer(void **state)
{
    (void)state;
    hx_cfg_breaker cfg = {.max_requests = 2, .interval = 50, .timeout = 5, .failure_threshold = 4,
                          .min_requests = 4, .failure_rate = 25}; /* ~31 % of outcomes fail */
    hx_breaker *b = hx_breaker_new("prov", &cfg);
    assert_non_null(b);
    hx_breaker_on_transition(b, hammer_cb, NULL);
    _Atomic uint64_t clock = 0;
    pthread_t t[HAMMER_THREADS];
    hammer_arg args[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++) {
        args[i] = (hammer_arg){.b = b, .clock = &clock, .use_gen = i % 2,
                               .seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &args[i]), 0);
    }
    uint64_t allowed = 0, rejected = 0, ok = 0, failed = 0, released = 0;
    for (int i = 0; i < HAMMER_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        allowed += args[i].allowed;
        rejected += args[i].rejected;
        ok += args[i].ok;
        failed += args[i].failed;
        released += args[i].released;
    }
    hx_breaker_counters c;
    hx_breaker_stats(b, &c);
    assert_int_equal(allowed + rejected, (uint64_t)HAMMER_THREADS * HAMMER_OPS);
    assert_int_equal(c.requests, allowed);
    assert_int_equal(c.rejections, rejected);
    assert_int_equal(c.successes, ok);
    assert_int_equal(c.failures, failed);
    assert_int_equal(c.releases, released);
    assert_int_equal(c.requests, c.successes + c.failures + c.releases);
    assert_int_equal(c.trials_in_flight, 0);
    assert_true(c.trips > 0);
    assert_true(rejected > 0);
    assert_int_equal(atomic_load(&hammer_opens), c.trips);
    assert_true(atomic_load(&hammer_transitions) >= c.trips);
    hx_breaker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker_opens_after_threshold),
        cmocka_unit_test(test_breaker_min_requests),
        cmocka_unit_test(test_breaker_failure_rate),
        cmocka_unit_test(test_breaker_failure_threshold_in_window),
        cmocka_unit_test(test_breaker_sliding_window),
        cmocka_unit_test(test_breaker_releases_never_count),
        cmocka_unit_test(test_breaker_open_rejects_until_timeout),
        cmocka_unit_test(test_breaker_state_reports_half_open_after_timeout),
        cmocka_unit_test(test_breaker_half_open_admits_max_requests),
        cmocka_unit_test(test_breaker_half_open_success_closes),
        cmocka_unit_test(test_breaker_half_open_failure_reopens),
        cmocka_unit_test(test_breaker_stale_plain_record_in_half_open),
        cmocka_unit_test(test_breaker_generation_ignores_stale),
        cmocka_unit_test(test_breaker_transition_callback),
        cmocka_unit_test(test_breaker_names_and_alloc),
        cmocka_unit_test(test_breaker_clamps_settings),
        cmocka_unit_test(test_breaker_snapshot_restore),
        cmocka_unit_test(test_breaker_threads_hammer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
