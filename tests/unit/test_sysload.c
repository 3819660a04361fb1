/* System health sampling and load shedding (obs/sysload.c), on a real uv
 * loop: thresholds decide, `checks` picks, `threshold` counts samples,
 * and turning the checks off stops shedding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <uv.h>

#include "config/config.h"
#include "obs/sysload.h"

static hx_config *cfg_with(const char *yaml)
{
    hx_config_errors errs = {0};
    hx_config *c = hx_config_load_string(yaml, strlen(yaml), "t.yaml", &errs);
    hx_config_errors_free(&errs);
    assert_non_null(c);
    return c;
}

static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void run_ms(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, stop_loop, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void test_sheds_then_recovers(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    hx_config *on = cfg_with("server:\n  health_check:\n    enabled: true\n    interval: 20ms\n"
                             "    threshold: 2\n    checks: {memory: system}\n    memory_threshold: 0.0001%\n");
    assert_int_equal(hx_sysload_start(&loop, on), 0);
    const char *why = NULL;
    assert_false(hx_sysload_shedding(&why));
    run_ms(&loop, 30); /* one sample: over, but threshold is 2 */
    hx_sysload_status st;
    hx_sysload_get(&st);
    assert_true(st.enabled);
    assert_true(st.memory_percent > 0);
    assert_true(st.cpu_percent < 0); /* not in `checks`: not sampled */
    run_ms(&loop, 100);
    assert_true(hx_sysload_shedding(&why));
    assert_string_equal(why, "memory");
    assert_true(hx_sysload_retry_after_s() >= 1);

    hx_config *off = cfg_with("server:\n  health_check:\n    enabled: false\n");
    hx_sysload_reconfigure(off);
    assert_false(hx_sysload_shedding(NULL));

    hx_config *high = cfg_with("server:\n  health_check:\n    enabled: true\n    interval: 20ms\n"
                               "    threshold: 1\n    checks: {memory: system}\n    memory_threshold: 100%\n");
    hx_sysload_reconfigure(high);
    run_ms(&loop, 60);
    assert_false(hx_sysload_shedding(NULL));
    hx_sysload_get(&st);
    assert_int_equal(st.consecutive_over, 0);

    hx_sysload_stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    hx_config_unref(on);
    hx_config_unref(off);
    hx_config_unref(high);
}

static void test_latency_evidence(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    hx_config *c = cfg_with("server:\n  health_check:\n    enabled: true\n    interval: 20ms\n"
                            "    threshold: 1\n    checks: {latency: http}\n    latency_threshold: 50ms\n");
    assert_int_equal(hx_sysload_start(&loop, c), 0);
    hx_sysload_observe_latency(10ull * 1000000);  /* 10 ms and 190 ms: mean 100 ms */
    hx_sysload_observe_latency(190ull * 1000000);
    run_ms(&loop, 30);
    hx_sysload_status st;
    hx_sysload_get(&st);
    assert_int_equal(st.latency_ms, 100);
    const char *why = NULL;
    assert_true(hx_sysload_shedding(&why));
    assert_string_equal(why, "latency");
    run_ms(&loop, 30); /* no request in the interval: no evidence, not over */
    assert_false(hx_sysload_shedding(NULL));
    hx_sysload_get(&st);
    assert_int_equal(st.latency_ms, -1);
    hx_sysload_stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    hx_config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sheds_then_recovers),
        cmocka_unit_test(test_latency_evidence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
