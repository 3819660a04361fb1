/* The gateway's metrics: per-provider series (interned once per gateway,
 * so the request path only adds to thread-local counters) and the
 * collectors that read shared state at scrape time (breakers, health,
 * queue, system load). */
#include <stdio.h>
#include <string.h>

#include "gateway/gateway.h"
#include "gateway/route_health.h"
#include "gateway/responses.h"
#include "util/alloc.h"
#include "middleware/queue.h"
#include "obs/metrics.h"
#include "obs/sysload.h"

int hx_gw_metrics_build(hx_gateway *g)
{
    size_t n = g->providers.n ? g->providers.n : 1;
    g->pm = hx_calloc(n, sizeof *g->pm);
    if (g->pm == NULL)
        return -1;
    for (size_t i = 0; i < g->providers.n; i++) {
        const hx_provider *pv = &g->providers.items[i];
        hx_gw_provider_metrics *m = &g->pm[i];
        m->ok = hx_metrics_series(HX_M_PROVIDER_REQUESTS, pv->name, "success");
        m->fail = hx_metrics_series(HX_M_PROVIDER_REQUESTS, pv->name, "failure");
        m->latency = hx_metrics_series(HX_M_PROVIDER_LATENCY, pv->name);
        m->retries = hx_metrics_series(HX_M_RETRIES, pv->name);
        m->failovers = hx_metrics_series(HX_M_FAILOVERS, pv->name);
        m->panics = hx_metrics_series(HX_M_PANIC, pv->name);
        m->tok_prompt = hx_metrics_series(HX_M_TOKENS, pv->name, pv->model, "prompt");
        m->tok_completion = hx_metrics_series(HX_M_TOKENS, pv->name, pv->model, "completion");
        for (int c = 0; c < HX_FAIL_LABEL__COUNT; c++)
            m->failures[c] = hx_metrics_series(HX_M_PROVIDER_FAILURES, pv->name, hx_fail_label_name((hx_fail_label)c));
        for (int c = 0; c < HX_LEAVE__COUNT; c++) {
            const char *name = hx_leave_label_name((hx_leave_label)c);
            m->retries_by[c] = hx_metrics_series(HX_M_RETRIES_BY_CLASS, pv->name, name);
            m->failovers_by[c] = hx_metrics_series(HX_M_FAILOVERS_BY_CLASS, pv->name, name);
        }
    }
    return 0;
}

/* ---- collectors ---------------------------------------------------------------- */

static void collect_providers(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    hx_gateway *g = hx_gateway_current();
    if (g == NULL)
        return;
    uint64_t now = hx_gateway_now_ms();
    hx_metrics_write_family(w, "hapax_circuit_breaker_state",
                            "Circuit breaker state per provider: 0 closed, 1 open, 2 half-open.", HX_METRIC_GAUGE);
    for (size_t i = 0; i < g->providers.n; i++) {
        const char *l[] = {"provider", g->providers.items[i].name, NULL};
        hx_metrics_write_sample(w, "hapax_circuit_breaker_state", l, hx_breaker_state(g->breakers[i], now));
    }
    hx_metrics_write_family(w, "hapax_provider_healthy",
                            "1 when the provider can serve (usable, healthy, breaker not open), else 0.",
                            HX_METRIC_GAUGE);
    for (size_t i = 0; i < g->providers.n; i++) {
        const char *l[] = {"provider", g->providers.items[i].name, NULL};
        hx_metrics_write_sample(w, "hapax_provider_healthy", l, hx_gateway_provider_up(g, i) ? 1 : 0);
    }
    if (g->n_rhealth)
        hx_metrics_write_family(w, "hapax_route_healthy", "1 while the route's health check passes (routes[].health_check).",
                                HX_METRIC_GAUGE);
    for (size_t i = 0; i < g->n_rhealth; i++) {
        const char *l[] = {"route", g->rhealth[i].path, NULL};
        hx_metrics_write_sample(w, "hapax_route_healthy", l, hx_health_ok(g->rhealth[i].h) ? 1 : 0);
    }
    hx_gateway_unref(g);
}

static void collect_queue(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    hx_queue_stats s;
    hx_queue_get_stats(&s);
    hx_metrics_write_family(w, "hapax_queue_depth", "Requests waiting in the queue.", HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_queue_depth", NULL, (double)s.waiting);
    hx_metrics_write_family(w, "hapax_queue_in_flight", "Requests holding a queue slot.", HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_queue_in_flight", NULL, (double)s.in_flight);
    hx_metrics_write_family(w, "hapax_queue_max_concurrent", "Queue slots (queue.max_concurrent).",
                            HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_queue_max_concurrent", NULL, (double)s.max_concurrent);
}

static void collect_system(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    hx_sysload_status s;
    hx_sysload_get(&s);
    hx_metrics_write_family(w, "hapax_load_shedding", "1 while completion requests are shed (server.health_check).",
                            HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_load_shedding", NULL, s.shedding ? 1 : 0);
    if (!s.enabled)
        return;
    hx_metrics_write_family(w, "hapax_system_usage_percent", "Last system health sample (server.health_check).",
                            HX_METRIC_GAUGE);
    const struct {
        const char *kind;
        double v;
    } k[] = {{"memory", s.memory_percent}, {"cpu", s.cpu_percent}, {"disk", s.disk_percent}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        const char *l[] = {"resource", k[i].kind, NULL};
        if (k[i].v >= 0)
            hx_metrics_write_sample(w, "hapax_system_usage_percent", l, k[i].v);
    }
}

int hx_gw_metrics_collectors(void)
{
    if (hx_metrics_add_collector(collect_providers, NULL) != 0 ||
        hx_metrics_add_collector(collect_queue, NULL) != 0 || hx_metrics_add_collector(collect_system, NULL) != 0 ||
        hx_metrics_add_collector(hx_responses_collect, NULL) != 0)
        return -1;
    return 0;
}
