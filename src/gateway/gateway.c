#include "gateway/gateway.h"

#include <stdio.h>
#include <string.h>

#include "obs/log.h"
#include "util/alloc.h"

/* Retries always allowed per second whatever the traffic, so a quiet
 * gateway can still retry. */
#define HX_RETRY_FLOOR_PER_SECOND 2

uint64_t hx_gateway_now_ms(void)
{
    return hx_now_ns() / 1000000ull;
}

static void log_breaker(void *ud, const char *name, int from, int to)
{
    (void)ud;
    HX_LOG_WARN("circuit breaker state changed", HX_F_STR("event", "breaker_transition"), HX_F_STR("provider", name),
                HX_F_STR("from", hx_breaker_state_name(from)), HX_F_STR("to", hx_breaker_state_name(to)));
}

int hx_gateway_init(hx_gateway *g, hx_config *cfg, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    if (hx_providers_build(cfg, &g->providers, true, err, errlen) != 0)
        return -1;
    g->cfg = hx_config_ref(cfg);
    g->health = hx_calloc(g->providers.n ? g->providers.n : 1, sizeof *g->health);
    if (g->health == NULL)
        goto oom;
    g->breakers = hx_calloc(g->providers.n ? g->providers.n : 1, sizeof *g->breakers);
    g->budget = hx_retry_budget_new(cfg->llm.retry.budget_percent, HX_RETRY_FLOOR_PER_SECOND);
    if (g->breakers == NULL || g->budget == NULL)
        goto oom;
    g->retry_classes = hx_retry_classes(&cfg->llm.retry.retryable_errors);
    for (size_t i = 0; i < g->providers.n; i++) {
        if ((g->health[i] = hx_health_new(g->providers.items[i].name, cfg->llm.health_check.failure_threshold)) == NULL ||
            (g->breakers[i] = hx_breaker_new(g->providers.items[i].name, &cfg->circuit_breaker)) == NULL)
            goto oom;
        hx_breaker_on_transition(g->breakers[i], log_breaker, NULL);
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    hx_gateway_free(g);
    return -1;
}

bool hx_gateway_provider_up(hx_gateway *g, size_t idx)
{
    if (idx >= g->providers.n || !g->providers.items[idx].usable)
        return false;
    /* Without active probes nothing would ever bring an unhealthy provider
     * back, so health only decides while probes run (the breaker covers
     * passive fast-failing). */
    if (hx_breaker_state(g->breakers[idx], hx_gateway_now_ms()) == HX_BREAKER_OPEN)
        return false;
    return !g->cfg->llm.health_check.enabled || hx_health_ok(g->health[idx]);
}

void hx_gateway_free(hx_gateway *g)
{
    for (size_t i = 0; g->health && i < g->providers.n; i++)
        hx_health_free(g->health[i]);
    for (size_t i = 0; g->breakers && i < g->providers.n; i++)
        hx_breaker_free(g->breakers[i]);
    hx_free(g->health);
    hx_free(g->breakers);
    hx_retry_budget_free(g->budget);
    g->health = NULL;
    g->breakers = NULL;
    g->budget = NULL;
    hx_providers_free(&g->providers);
    hx_config_unref(g->cfg);
    g->cfg = NULL;
}

void *hx_gateway_worker_init(void *loop, void *gateway)
{
    hx_gw_worker *w = hx_calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->gw = gateway;
    w->up = hx_upstream_new(loop);
    if (w->up == NULL) {
        hx_free(w);
        return NULL;
    }
    hx_gateway *g = gateway;
    if (atomic_exchange(&g->prober_claimed, 1) == 0 && hx_prober_start(w, loop) != 0)
        HX_LOG_ERROR("cannot start provider health probes", HX_F_STR("error", "out of memory"));
    return w;
}

void hx_gateway_worker_fini(void *worker)
{
    hx_gw_worker *w = worker;
    hx_prober_stop(w);
    hx_upstream_free(w->up);
    hx_free(w);
}
