#include "gateway/gateway.h"

#include <stdio.h>
#include <string.h>

#include "obs/log.h"
#include "util/alloc.h"

int hx_gateway_init(hx_gateway *g, hx_config *cfg, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    if (hx_providers_build(cfg, &g->providers, true, err, errlen) != 0)
        return -1;
    g->cfg = hx_config_ref(cfg);
    g->health = hx_calloc(g->providers.n ? g->providers.n : 1, sizeof *g->health);
    if (g->health == NULL)
        goto oom;
    for (size_t i = 0; i < g->providers.n; i++)
        if ((g->health[i] = hx_health_new(g->providers.items[i].name, cfg->llm.health_check.failure_threshold)) == NULL)
            goto oom;
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
    return !g->cfg->llm.health_check.enabled || hx_health_ok(g->health[idx]);
}

void hx_gateway_free(hx_gateway *g)
{
    for (size_t i = 0; g->health && i < g->providers.n; i++)
        hx_health_free(g->health[i]);
    hx_free(g->health);
    g->health = NULL;
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
