/* prober.c against a loopback upstream (up_harness.h): what a probe asks,
 * how its result moves the provider's health (failures up to the
 * threshold, recovery on one success), that probes never stack, and that
 * stopping releases everything. */
#include "up_harness.h"
#include "cfg_load.h"

#include "gateway/gateway.h"
#include "util/alloc.h"

typedef struct {
    uv_loop_t loop;
    uph_server srv;
    hx_config *cfg;
    hx_gateway *g;
    hx_gw_worker w;
} fixture;

static void start(fixture *f, const char *interval, const char *timeout, bool second_refused)
{
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uph_start(&f->srv, &f->loop);
    int other = second_refused ? uph_closed_port(&f->loop) : f->srv.port;
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "llm:\n"
             "  provider: openai\n"
             "  model: gpt-test\n"
             "  endpoint: http://127.0.0.1:%d/v1\n"
             "  api_key: sk-test-probe\n"
             "  health_check: {enabled: true, interval: %s, timeout: %s, failure_threshold: 2}\n"
             "  backup_providers:\n"
             "    - {provider: ollama, name: local, model: llama3.2, endpoint: \"http://127.0.0.1:%d\"}\n",
             f->srv.port, interval, timeout, other);
    f->cfg = load_cfg(yaml);
    char err[256];
    f->g = hx_gateway_new(f->cfg, NULL, err, sizeof err);
    if (f->g == NULL)
        fail_msg("gateway: %s", err);
    f->w = (hx_gw_worker){.gw = f->g, .loop = &f->loop, .prober = true, .up = hx_upstream_new(&f->loop)};
    assert_non_null(f->w.up);
    assert_int_equal(hx_prober_start(&f->w, &f->loop), 0);
}

static int teardown(void **state)
{
    fixture *f = *state;
    hx_prober_stop(&f->w);
    hx_upstream_free(f->w.up);
    uph_stop(&f->srv);
    uph_loop_close(&f->loop); /* the probes' timers close: their gateway references go */
    hx_gateway_unref(f->g);
    hx_config_unref(f->cfg);
    free(f);
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    *state = f;
    return 0;
}

typedef struct {
    fixture *f;
    size_t idx;
    uint64_t checks;
} want_checks;

static bool checks_reached(void *ud)
{
    want_checks *w = ud;
    hx_health_snap s;
    hx_health_snapshot(w->f->g->health[w->idx], &s);
    return s.checks >= w->checks;
}

static void wait_checks(fixture *f, size_t idx, uint64_t n, hx_health_snap *out)
{
    want_checks w = {f, idx, n};
    uph_wait(&f->loop, checks_reached, &w);
    hx_health_snapshot(f->g->health[idx], out);
}

#define FAIL_500 "HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\n{}"

/* A probe is the provider's cheapest request (the model list, with its
 * key), counted as a check; a 2xx makes the provider known and healthy. */
static void test_probe_ok(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0}});
    start(f, "20ms", "2s", false);
    hx_health_snap s;
    hx_health_snapshot(f->g->health[0], &s);
    assert_false(s.known); /* nothing probed yet at start */
    wait_checks(f, 0, 1, &s);
    assert_true(s.known);
    assert_true(s.healthy);
    assert_int_equal(s.probe_failures, 0);
    assert_true(s.last_latency_ms >= 0);
    assert_true(strstr(f->srv.last_head, "GET /") == f->srv.last_head);
}

/* A non-2xx probe fails; failure_threshold (2) of them in a row mark the
 * provider down, with the status named (never curl's text); one success
 * brings it back. */
static void test_probe_failures_then_recovery(void **state)
{
    fixture *f = *state;
    /* The two providers share the server: steps are per request, in order
     * of arrival, so answer every request with a 500 first... */
    uph_script(&f->srv, 1, (uph_step[]){{UPH_REPLY, FAIL_500, 0}});
    start(f, "20ms", "2s", false);
    hx_health_snap s;
    wait_checks(f, 0, 1, &s);
    assert_true(s.healthy); /* one failure is below the threshold */
    assert_int_equal(s.consecutive_failures, 1);
    assert_string_equal(s.last_error, "probe: upstream 500");
    wait_checks(f, 0, 2, &s);
    assert_false(s.healthy);
    assert_true(s.probe_failures >= 2);
    assert_false(hx_gateway_provider_up(f->g, 0));
    /* ...then 200s: the next probe brings it back. */
    uph_script(&f->srv, 1, (uph_step[]){{UPH_REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0}});
    f->srv.requests = 0;
    wait_checks(f, 0, s.checks + 2, &s);
    assert_true(s.healthy);
    assert_int_equal(s.consecutive_failures, 0);
    assert_true(hx_gateway_provider_up(f->g, 0));
}

/* A provider nobody listens for: the probe's failure names the class. */
static void test_probe_unreachable(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0}});
    start(f, "20ms", "2s", true);
    hx_health_snap s;
    wait_checks(f, 1, 2, &s);
    assert_false(s.healthy);
    assert_string_equal(s.last_error, "probe: connection_error");
    hx_health_snapshot(f->g->health[0], &s);
    assert_true(s.healthy); /* the other provider is not touched */
}

static bool got_requests(void *ud)
{
    return ((fixture *)ud)->srv.requests >= 2;
}

/* A probe still running when the next interval comes is not doubled: with
 * the upstream silent and a long timeout, each provider has one request
 * out however many intervals pass; stopping cancels them. */
static void test_probes_never_stack(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_SILENT, NULL, 0}});
    start(f, "5ms", "30s", false);
    uph_wait(&f->loop, got_requests, f); /* one per provider */
    /* Many more intervals on the clock (a timer of 20 intervals). */
    bool later = false;
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    t.data = &later;
    uv_timer_start(&t, uph_guard_fired, 100, 0);
    uph_run_until(&f->loop, &later);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* t lives on this stack */
    assert_int_equal(f->srv.requests, 2);
    hx_health_snap s;
    hx_health_snapshot(f->g->health[0], &s);
    assert_int_equal(s.checks, 0); /* no outcome yet */
}

/* Disabled health checks start no probe (and health does not decide). */
static void test_probes_disabled(void **state)
{
    fixture *f = *state;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uph_start(&f->srv, &f->loop);
    f->cfg = load_cfg("llm:\n  provider: openai\n  model: m\n  endpoint: http://127.0.0.1:9/v1\n"
                      "  api_key: k\n  health_check: {enabled: false}\n");
    char err[256];
    f->g = hx_gateway_new(f->cfg, NULL, err, sizeof err);
    assert_non_null(f->g);
    f->w = (hx_gw_worker){.gw = f->g, .loop = &f->loop, .prober = true, .up = hx_upstream_new(&f->loop)};
    assert_int_equal(hx_prober_start(&f->w, &f->loop), 0);
    assert_null(f->w.probes);
    for (int i = 0; i < 5; i++)
        hx_gateway_record(f->g, 0, false, "x", HX_FAIL_CONNECTION, -1, false);
    assert_false(hx_health_ok(f->g->health[0]));
    assert_true(hx_gateway_provider_up(f->g, 0)); /* nothing would bring it back */
}

int main(void)
{
    if (hx_upstream_global_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_probe_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_failures_then_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probes_never_stack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probes_disabled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
