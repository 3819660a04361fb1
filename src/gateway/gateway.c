#include "gateway/gateway.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache.h"
#include "gateway/route_health.h"
#include "middleware/middleware.h"
#include "state/cluster.h"
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
    hx_gateway_shared_breaker(name, to);
}

static void gateway_free(hx_gateway *g);

static int scrub_add_str(hx_scrub *s, const char *v)
{
    return v ? hx_scrub_add(s, v, strlen(v)) : 0;
}

/* Credentials inside an endpoint URL: the userinfo password and query
 * values (`?key=...`) travel upstream and may come back in an error. */
static int scrub_add_url(hx_scrub *s, const char *url)
{
    if (url == NULL)
        return 0;
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t hl = strcspn(host, "/?#");
    const char *at = memchr(host, '@', hl);
    const char *colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
    if (colon && hx_scrub_add(s, colon + 1, (size_t)(at - colon - 1)) != 0)
        return -1;
    const char *q = strchr(url, '?');
    while (q && *q) {
        q++;
        size_t n = strcspn(q, "&#");
        const char *eq = memchr(q, '=', n);
        if (eq && hx_scrub_add(s, eq + 1, n - (size_t)(eq + 1 - q)) != 0)
            return -1;
        q = q[n] == '&' ? q + n : NULL;
    }
    return 0;
}

/* Every secret of cfg that an upstream could echo back to a client. */
static hx_scrub *scrub_build(const hx_config *cfg, const hx_providers *ps)
{
    hx_scrub *s = hx_scrub_new();
    if (s == NULL)
        return NULL;
    int rc = scrub_add_str(s, cfg->llm.api_key) | scrub_add_url(s, cfg->llm.endpoint) |
             scrub_add_str(s, cfg->llm.cache.redis.password) | scrub_add_str(s, cfg->state.redis.password);
    for (size_t i = 0; i < cfg->llm.n_backup_providers; i++)
        rc |= scrub_add_str(s, cfg->llm.backup_providers[i].api_key) |
              scrub_add_url(s, cfg->llm.backup_providers[i].endpoint);
    for (size_t i = 0; i < cfg->n_providers; i++)
        rc |= scrub_add_str(s, cfg->providers[i].api_key) | scrub_add_url(s, cfg->providers[i].endpoint);
    for (size_t i = 0; i < ps->n; i++)
        rc |= scrub_add_str(s, ps->items[i].api_key) | scrub_add_url(s, ps->items[i].base_url);
    for (size_t i = 0; i < cfg->auth.n_keys; i++)
        rc |= scrub_add_str(s, cfg->auth.keys[i].key);
    if (rc != 0) {
        hx_scrub_free(s);
        return NULL;
    }
    return s;
}

/* Same provider in the previous gateway: its breaker and health carry on. */
static void inherit_state(hx_gateway *g, size_t i, hx_gateway *prev)
{
    for (size_t j = 0; prev && j < prev->providers.n; j++) {
        if (strcmp(prev->providers.items[j].name, g->providers.items[i].name) != 0)
            continue;
        uint64_t now = hx_gateway_now_ms();
        hx_breaker_snap bs;
        hx_breaker_snapshot(prev->breakers[j], &bs);
        hx_breaker_restore(g->breakers[i], &bs, now);
        hx_health_snap hs;
        hx_health_snapshot(prev->health[j], &hs);
        hx_health_restore(g->health[i], &hs);
        return;
    }
}

hx_gateway *hx_gateway_new(hx_config *cfg, hx_gateway *prev, char *err, size_t errlen)
{
    hx_gateway *g = hx_calloc(1, sizeof *g);
    if (g == NULL)
        goto oom;
    atomic_init(&g->refs, 1);
    if (hx_providers_build(cfg, &g->providers, true, err, errlen) != 0) {
        hx_free(g);
        return NULL;
    }
    g->cfg = hx_config_ref(cfg);
    g->health = hx_calloc(g->providers.n ? g->providers.n : 1, sizeof *g->health);
    if (g->health == NULL)
        goto oom;
    g->breakers = hx_calloc(g->providers.n ? g->providers.n : 1, sizeof *g->breakers);
    g->budget = hx_retry_budget_new(cfg->llm.retry.budget_percent, HX_RETRY_FLOOR_PER_SECOND);
    if (g->breakers == NULL || g->budget == NULL)
        goto oom;
    g->retry_classes = hx_retry_classes(&cfg->llm.retry.retryable_errors);
    if ((g->scrub = scrub_build(cfg, &g->providers)) == NULL)
        goto oom;
    if (hx_gw_metrics_build(g) != 0)
        goto oom;
    if (hx_route_health_build(g, prev) != 0)
        goto oom;
    for (size_t i = 0; i < g->providers.n; i++) {
        if ((g->health[i] = hx_health_new(g->providers.items[i].name, cfg->llm.health_check.failure_threshold)) == NULL ||
            (g->breakers[i] = hx_breaker_new(g->providers.items[i].name, &cfg->circuit_breaker)) == NULL)
            goto oom;
        inherit_state(g, i, prev);
        hx_breaker_on_transition(g->breakers[i], log_breaker, NULL);
    }
    return g;
oom:
    snprintf(err, errlen, "out of memory");
    if (g)
        gateway_free(g);
    return NULL;
}

hx_gateway *hx_gateway_ref(hx_gateway *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void hx_gateway_unref(hx_gateway *g)
{
    if (g && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
        gateway_free(g);
}

/* ---- the published gateway ---------------------------------------------------- */

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static hx_gateway *current;
static atomic_uint_fast64_t current_gen;
static atomic_int prober_claimed; /* the first worker to start runs the probes */

void hx_gateway_publish(hx_gateway *g)
{
    pthread_mutex_lock(&current_mu);
    hx_gateway *old = current;
    current = g ? hx_gateway_ref(g) : NULL;
    atomic_fetch_add(&current_gen, 1);
    pthread_mutex_unlock(&current_mu);
    hx_gateway_unref(old);
}

hx_gateway *hx_gateway_current(void)
{
    pthread_mutex_lock(&current_mu);
    hx_gateway *g = current ? hx_gateway_ref(current) : NULL;
    pthread_mutex_unlock(&current_mu);
    return g;
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

static void gateway_free(hx_gateway *g)
{
    hx_route_health_free(g);
    for (size_t i = 0; g->health && i < g->providers.n; i++)
        hx_health_free(g->health[i]);
    for (size_t i = 0; g->breakers && i < g->providers.n; i++)
        hx_breaker_free(g->breakers[i]);
    hx_free(g->health);
    hx_free(g->breakers);
    hx_free(g->pm);
    hx_retry_budget_free(g->budget);
    hx_scrub_free(g->scrub);
    hx_providers_free(&g->providers);
    hx_config_unref(g->cfg);
    hx_free(g);
}

void *hx_gateway_worker_init(void *loop, void *app)
{
    (void)app;
    hx_gw_worker *w = hx_calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->gen = atomic_load(&current_gen);
    w->gw = hx_gateway_current();
    w->loop = loop;
    w->up = w->gw ? hx_upstream_new(loop) : NULL;
    if (w->up == NULL)
        goto fail;
    if (hx_cluster_worker_init(loop) != 0) {
        HX_LOG_ERROR("cannot connect this worker to the shared state store", HX_F_STR("error", "out of memory"));
        hx_upstream_free(w->up);
        goto fail;
    }
    if (hx_cache_worker_init(loop) != 0) {
        HX_LOG_ERROR("cannot connect this worker to the response cache", HX_F_STR("error", "out of memory"));
        hx_cluster_worker_fini(loop);
        hx_upstream_free(w->up);
        goto fail;
    }
    if (hx_middleware_worker_init(loop) != 0) {
        hx_cache_worker_fini(loop);
        hx_cluster_worker_fini(loop);
        hx_upstream_free(w->up);
        goto fail;
    }
    w->prober = atomic_exchange(&prober_claimed, 1) == 0;
    if (w->prober && hx_prober_start(w, loop) != 0)
        HX_LOG_ERROR("cannot start provider health probes", HX_F_STR("error", "out of memory"));
    return w;
fail:
    hx_gateway_unref(w->gw);
    hx_free(w);
    return NULL;
}

void hx_gw_worker_sync(hx_gw_worker *w)
{
    if (atomic_load_explicit(&current_gen, memory_order_acquire) == w->gen)
        return;
    w->gen = atomic_load(&current_gen);
    hx_gateway *g = hx_gateway_current();
    if (g == NULL || g == w->gw) {
        hx_gateway_unref(g);
        return;
    }
    if (w->prober)
        hx_prober_stop(w);
    hx_gateway_unref(w->gw);
    w->gw = g;
    if (w->prober && hx_prober_start(w, w->loop) != 0)
        HX_LOG_ERROR("cannot start provider health probes", HX_F_STR("error", "out of memory"));
}

void hx_gateway_worker_fini(void *worker)
{
    hx_gw_worker *w = worker;
    hx_prober_stop(w);
    hx_middleware_worker_fini(w->loop);
    hx_cache_worker_fini(w->loop);
    hx_cluster_worker_fini(w->loop);
    hx_upstream_free(w->up);
    hx_gateway_unref(w->gw);
    hx_free(w);
}

void hx_gateway_worker_drain(void *worker)
{
    hx_proxy_drain(worker);
}

void hx_gateway_worker_force(void *worker)
{
    hx_proxy_force(worker);
}

void hx_gateway_worker_reloaded(void *worker)
{
    hx_gw_worker_sync(worker);
}
