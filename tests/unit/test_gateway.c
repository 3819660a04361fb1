/* gateway.c: a gateway built from a config (providers and their
 * per-index state), what a reload hands over, reference counting across
 * publication, and a worker moving to the new gateway. */
#include "cfg_load.h"

#include <stdlib.h>
#include <uv.h>

#include "gateway/gateway.h"
#include "util/alloc.h"

static const char *const THREE =
    "llm:\n"
    "  provider: openai\n"
    "  model: gpt-test\n"
    "  endpoint: http://127.0.0.1:9/v1\n"
    "  api_key: sk-gw-openai-key\n"
    "  health_check: {enabled: true, interval: 1h, timeout: 1s, failure_threshold: 2}\n"
    "  backup_providers:\n"
    "    - {provider: anthropic, name: claude, model: claude-test, api_key: sk-ant-gw-key,"
    " endpoint: \"http://127.0.0.1:9\"}\n"
    "    - {provider: ollama, name: local, model: llama3.2, endpoint: \"http://127.0.0.1:9\"}\n";

/* The same providers but claude dropped and a new one first: "local" moves
 * from index 2 to index 0. */
static const char *const RELOADED =
    "llm:\n"
    "  provider: ollama\n"
    "  name: local\n"
    "  model: llama3.2\n"
    "  endpoint: http://127.0.0.1:9\n"
    "  health_check: {enabled: true, interval: 1h, timeout: 1s, failure_threshold: 2}\n"
    "  backup_providers:\n"
    "    - {provider: openai, name: other, model: gpt-test, api_key: sk-gw-other,"
    " endpoint: \"http://127.0.0.1:9/v1\"}\n"
    "    - {provider: openai, model: gpt-test, api_key: sk-gw-openai-key,"
    " endpoint: \"http://127.0.0.1:9/v1\"}\n";

static hx_gateway *mk(const char *yaml, hx_gateway *prev)
{
    hx_config *cfg = load_cfg(yaml);
    char err[256] = "";
    hx_gateway *g = hx_gateway_new(cfg, prev, err, sizeof err);
    hx_config_unref(cfg); /* the gateway holds its own reference */
    if (g == NULL)
        fail_msg("gateway: %s", err);
    return g;
}

static size_t index_of(const hx_gateway *g, const char *name)
{
    for (size_t i = 0; i < g->providers.n; i++)
        if (strcmp(g->providers.items[i].name, name) == 0)
            return i;
    fail_msg("no provider %s", name);
    return 0;
}

/* One health, breaker and metric slot per provider, at the provider's
 * index, under its name. */
static void test_new_per_provider_state(void **state)
{
    (void)state;
    hx_gateway *g = mk(THREE, NULL);
    assert_int_equal(atomic_load(&g->refs), 1);
    assert_int_equal(g->providers.n, 3);
    const char *names[] = {"openai", "claude", "local"};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(g->providers.items[i].name, names[i]);
        assert_int_equal(g->providers.items[i].index, (int)i);
        assert_string_equal(hx_health_name(g->health[i]), names[i]);
        assert_non_null(g->breakers[i]);
        assert_true(hx_gateway_provider_up(g, i));
    }
    assert_non_null(g->pm);
    assert_non_null(g->budget);
    assert_non_null(g->scrub);
    assert_false(hx_gateway_provider_up(g, 3)); /* out of range */
    hx_gateway_record(g, 3, false, "x", HX_FAIL_CONNECTION, -1, false); /* out of range: nothing */
    hx_gateway_unref(g);
}

/* Health decides only while probes run; a provider without its key never
 * serves. */
static void test_provider_up(void **state)
{
    (void)state;
    hx_gateway *g = mk(THREE, NULL);
    hx_gateway_record(g, 1, false, "connection refused", HX_FAIL_CONNECTION, -1, false);
    assert_true(hx_gateway_provider_up(g, 1));
    hx_gateway_record(g, 1, false, "connection refused", HX_FAIL_CONNECTION, -1, true);
    assert_false(hx_gateway_provider_up(g, 1));
    assert_true(hx_gateway_provider_up(g, 0));
    hx_gateway_record(g, 1, true, NULL, HX_FAIL_NONE, 3, true);
    assert_true(hx_gateway_provider_up(g, 1));
    hx_gateway_unref(g);

    g = mk("llm:\n  provider: anthropic\n  model: c\n  api_key: \"\"\n", NULL);
    assert_false(g->providers.items[0].usable);
    assert_false(hx_gateway_provider_up(g, 0));
    hx_gateway_unref(g);
}

/* A reload hands each provider's health and breaker to the provider of the
 * same name, wherever it now sits; a new provider starts fresh. */
static void test_reload_hands_over_by_name(void **state)
{
    (void)state;
    hx_gateway *g1 = mk(THREE, NULL);
    for (int i = 0; i < 3; i++)
        hx_gateway_record(g1, 2, false, "connection refused", HX_FAIL_CONNECTION, -1, true); /* local: down */
    hx_gateway_record(g1, 0, false, "connection refused", HX_FAIL_CONNECTION, -1, true);   /* openai: 1 failure */
    hx_gateway *g2 = mk(RELOADED, g1);
    assert_int_equal(g2->providers.n, 3);
    size_t local = index_of(g2, "local"), openai = index_of(g2, "openai"), other = index_of(g2, "other");
    assert_int_equal(local, 0);
    hx_health_snap s;
    hx_health_snapshot(g2->health[local], &s);
    assert_false(s.healthy);
    assert_int_equal(s.consecutive_failures, 3);
    assert_string_equal(s.last_error, "connection refused");
    assert_false(hx_gateway_provider_up(g2, local));
    hx_health_snapshot(g2->health[openai], &s);
    assert_true(s.healthy);
    assert_int_equal(s.consecutive_failures, 1);
    hx_gateway_record(g2, openai, false, "connection refused", HX_FAIL_CONNECTION, -1, true);
    assert_false(hx_gateway_provider_up(g2, openai)); /* the count went on: 2 = threshold */
    hx_health_snapshot(g2->health[other], &s);
    assert_true(s.healthy);
    assert_false(s.known);
    /* The old gateway is untouched by what the new one records. */
    hx_health_snapshot(g1->health[0], &s);
    assert_int_equal(s.consecutive_failures, 1);
    hx_gateway_unref(g1);
    hx_gateway_unref(g2);
}

/* publish takes its own reference and drops the previous one; current
 * hands out a reference; a holder keeps an old gateway alive after a
 * reload (ASan reports a use after free or a leak otherwise). */
static void test_publish_refcount(void **state)
{
    (void)state;
    hx_gateway *g1 = mk(THREE, NULL);
    hx_gateway_publish(g1);
    assert_int_equal(atomic_load(&g1->refs), 2);
    hx_gateway *held = hx_gateway_current(); /* a request in flight */
    assert_ptr_equal(held, g1);
    assert_int_equal(atomic_load(&g1->refs), 3);
    hx_gateway_unref(g1); /* the builder's reference */
    hx_gateway *g2 = mk(RELOADED, held);
    hx_gateway_publish(g2);
    hx_gateway_unref(g2);
    assert_int_equal(atomic_load(&held->refs), 1); /* only the request's */
    assert_string_equal(held->providers.items[0].name, "openai");
    hx_gateway *cur = hx_gateway_current();
    assert_ptr_equal(cur, g2);
    hx_gateway_unref(cur);
    hx_gateway_unref(held); /* freed here */
    hx_gateway_publish(NULL);
    assert_null(hx_gateway_current());
}

/* A worker takes the published gateway; after a reload it moves to the
 * new one on its next sync (and only then), releasing the old one. */
static void test_worker_follows_reload(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    hx_gateway *g1 = mk(THREE, NULL);
    hx_gateway_publish(g1);
    hx_gw_worker *w = hx_gateway_worker_init(&loop, NULL);
    assert_non_null(w);
    assert_ptr_equal(w->gw, g1);
    assert_true(w->prober); /* the first worker runs the probes */
    assert_int_equal(w->nprobes, 3);
    hx_gw_worker_sync(w); /* nothing new: stays */
    assert_ptr_equal(w->gw, g1);
    hx_gateway *g2 = mk(RELOADED, g1);
    hx_gateway_publish(g2);
    assert_ptr_equal(w->gw, g1); /* not before its sync */
    assert_int_equal(atomic_load(&g1->refs), 5); /* ours, the worker's, one per probe */
    hx_gateway_worker_reloaded(w);
    assert_ptr_equal(w->gw, g2);
    assert_int_equal(w->nprobes, 3);
    hx_gateway_worker_fini(w);
    hx_gateway_publish(NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* the probes' timers close: their references go */
    assert_int_equal(atomic_load(&g1->refs), 1);
    assert_int_equal(atomic_load(&g2->refs), 1);
    hx_gateway_unref(g1);
    hx_gateway_unref(g2);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* What messages may show of an endpoint: never userinfo, query or fragment. */
static void test_endpoint_shown(void **state)
{
    (void)state;
    hx_provider pv = {.base_url = (char *)"https://user:secret@api.example.com:8443/v1?key=abc#frag"};
    char out[256];
    hx_gateway_endpoint_shown(&pv, out, sizeof out);
    assert_string_equal(out, "https://api.example.com:8443/v1");
    char small[8];
    hx_gateway_endpoint_shown(&pv, small, sizeof small);
    assert_string_equal(small, ""); /* cut would mislead */
}

/* Every allocation of hx_gateway_new may fail: NULL, "out of memory", no
 * leak (ASan), until it succeeds. */
static void test_new_out_of_memory(void **state)
{
    (void)state;
    hx_config *cfg = load_cfg(THREE);
    hx_gateway *g = NULL;
    unsigned long n = 1;
    for (; g == NULL && n < 10000; n++) {
        char err[64] = "";
        hx_alloc_fail_at(n, 0);
        g = hx_gateway_new(cfg, NULL, err, sizeof err);
        hx_alloc_fail_at(0, 0);
        if (g == NULL)
            assert_string_equal(err, "out of memory");
    }
    assert_non_null(g);
    assert_true(n > 10);
    hx_gateway_unref(g);
    hx_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_per_provider_state),
        cmocka_unit_test(test_provider_up),
        cmocka_unit_test(test_reload_hands_over_by_name),
        cmocka_unit_test(test_publish_refcount),
        cmocka_unit_test(test_worker_follows_reload),
        cmocka_unit_test(test_endpoint_shown),
        cmocka_unit_test(test_new_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
