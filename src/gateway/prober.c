/* Active health probes (llm.health_check): every `interval`, each usable
 * provider gets its cheapest request (model list; Ollama /api/tags) with
 * `timeout`. Probes run on one worker's loop, never overlap per provider,
 * spend no tokens, and stop when the worker stops. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "obs/log.h"
#include "util/alloc.h"

struct hx_probe {
    hx_gw_worker *w;
    hx_gateway *g;       /* reference: the probe's gateway, even after a reload */
    size_t idx;
    uv_timer_t timer;
    hx_up_call *call;
    int status;
    uint64_t started_ns;
};

static void log_transition(const hx_provider *pv, hx_health *h)
{
    hx_health_snap s;
    hx_health_snapshot(h, &s);
    if (s.healthy)
        HX_LOG_INFO("provider healthy", HX_F_STR("event", "provider_health"), HX_F_STR("provider", pv->name),
                    HX_F_STR("state", "healthy"));
    else
        HX_LOG_WARN("provider unhealthy", HX_F_STR("event", "provider_health"), HX_F_STR("provider", pv->name),
                    HX_F_STR("state", "unhealthy"), HX_F_STR("error", s.last_error),
                    HX_F_INT("consecutive_failures", s.consecutive_failures));
}

void hx_gateway_record(hx_gateway *g, size_t idx, bool ok, const char *error, hx_fail_class cls,
                       int64_t latency_ms, bool probe)
{
    if (idx >= g->providers.n || g->health[idx] == NULL)
        return;
    if (hx_health_record_fail(g->health[idx], ok, error, ok ? HX_FAIL_NONE : cls, latency_ms, probe)) {
        log_transition(&g->providers.items[idx], g->health[idx]);
        hx_gateway_shared_health(g->providers.items[idx].name, hx_health_ok(g->health[idx]), cls);
    }
}

/* ---- what an operator is told about an unreachable provider ---- */

void hx_gateway_endpoint_shown(const hx_provider *pv, char *out, size_t n)
{
    const char *u = pv->base_url ? pv->base_url : "";
    const char *sep = strstr(u, "://");
    const char *auth = sep ? sep + 3 : u;
    size_t alen = strcspn(auth, "/?#");
    /* user:password@host: only what follows the last '@' */
    const char *host = auth;
    for (const char *q = auth; q < auth + alen; q++)
        if (*q == '@')
            host = q + 1;
    size_t hlen = alen - (size_t)(host - auth);
    const char *path = auth + alen;
    size_t plen = strcspn(path, "?#");
    int w = snprintf(out, n, "%.*s%.*s%.*s", sep ? (int)(sep + 3 - u) : 0, u, (int)hlen, host, (int)plen, path);
    if (w < 0 || (size_t)w >= n)
        snprintf(out, n, "%s", ""); /* a truncated URL would mislead */
}

/* base_url equal to s, ignoring one trailing '/'. */
static bool same_url(const char *base, const char *s)
{
    size_t a = strlen(base), b = strlen(s);
    if (a && base[a - 1] == '/')
        a--;
    if (b && s[b - 1] == '/')
        b--;
    return a == b && strncmp(base, s, a) == 0;
}

const char *hx_gateway_provider_hint(const hx_provider *pv, char *buf, size_t n)
{
    char var[64];
    const char *type = pv->ad->name;
    size_t i = 0;
    for (; i < 40 && type[i]; i++)
        var[i] = (char)toupper((unsigned char)type[i]);
    snprintf(var + i, sizeof var - i, "_ENDPOINT");
    /* Read only here, on a failure: hapax never changes its environment. */
    const char *env = getenv(var);
    bool ollama = strcmp(type, "ollama") == 0;
    if (env && *env && same_url(pv->base_url, env))
        snprintf(buf, n, "%s at this address, or set %s to where it runs",
                 ollama ? "start Ollama" : "check the provider", var);
    else if (ollama && same_url(pv->base_url, pv->ad->default_endpoint))
        snprintf(buf, n, "start Ollama (ollama serve) or set %s", var);
    else
        return NULL;
    return buf;
}

void hx_gateway_describe_unreachable(const hx_provider *pv, char *out, size_t n)
{
    char url[256], hint[128];
    hx_gateway_endpoint_shown(pv, url, sizeof url);
    const char *h = hx_gateway_provider_hint(pv, hint, sizeof hint);
    snprintf(out, n, "%s%s%s", *url ? url : "its endpoint", h ? ": " : "", h ? h : "");
}

static void on_probe_head(void *ud, int status, const hx_headers *h)
{
    (void)h;
    ((struct hx_probe *)ud)->status = status;
}

static int on_probe_data(void *ud, const char *data, size_t len)
{
    (void)ud, (void)data, (void)len;
    return HX_UP_CONTINUE; /* the body does not matter */
}

static void on_probe_done(void *ud, hx_up_result res, const char *detail)
{
    struct hx_probe *pr = ud;
    pr->call = NULL;
    int64_t ms = (int64_t)((hx_now_ns() - pr->started_ns) / 1000000);
    bool ok = res == HX_UP_OK && pr->status >= 200 && pr->status < 300;
    char err[160];
    if (res != HX_UP_OK)
        snprintf(err, sizeof err, "probe: %s", hx_up_result_str(res));
    else
        snprintf(err, sizeof err, "probe: upstream %d", pr->status);
    (void)detail; /* curl's text may hold a URL; the class is enough */
    hx_gateway_record(pr->g, pr->idx, ok, ok ? NULL : err, hx_gw_transport_fail(res, pr->status), ms, true);
}

static const hx_up_callbacks probe_cb = {on_probe_head, on_probe_data, on_probe_done};

static void on_probe_timer(uv_timer_t *t)
{
    struct hx_probe *pr = t->data;
    if (pr->call)
        return; /* the previous probe is still running: never stack them */
    hx_gateway *g = pr->g;
    const hx_provider *pv = &g->providers.items[pr->idx];
    hx_up_request ur;
    hx_up_request_init(&ur);
    if (pv->ad->build_probe(pv, &ur) == 0) {
        hx_up_opts o = {g->cfg->llm.health_check.timeout, g->cfg->llm.health_check.timeout,
                        g->cfg->llm.health_check.timeout, 0};
        pr->status = 0;
        pr->started_ns = hx_now_ns();
        pr->call = hx_upstream_start(pr->w->up, ur.method, ur.url, &ur.headers, NULL, 0, &o, &probe_cb, pr);
    }
    hx_up_request_free(&ur);
}

int hx_prober_start(hx_gw_worker *w, void *loop)
{
    hx_gateway *g = w->gw;
    const hx_cfg_provider_health *hc = &g->cfg->llm.health_check;
    if (hx_route_probes_start(w, loop) != 0)
        return -1;
    if (!hc->enabled)
        return 0;
    w->probes = hx_calloc(g->providers.n ? g->providers.n : 1, sizeof *w->probes);
    if (w->probes == NULL)
        return -1;
    w->nprobes = g->providers.n; /* set first: hx_prober_stop must reach a partial start */
    for (size_t i = 0; i < g->providers.n; i++) {
        if (!g->providers.items[i].usable)
            continue;
        struct hx_probe *pr = hx_calloc(1, sizeof *pr);
        if (pr == NULL)
            return -1;
        pr->w = w;
        pr->g = hx_gateway_ref(g);
        pr->idx = i;
        uv_timer_init(loop, &pr->timer);
        pr->timer.data = pr;
        /* Every provider starts healthy; the first probe comes after one
         * interval, like every later one (real traffic is evidence meanwhile). */
        uv_timer_start(&pr->timer, on_probe_timer, (uint64_t)hc->interval, (uint64_t)hc->interval);
        w->probes[i] = pr;
    }
    return 0;
}

static void on_probe_closed(uv_handle_t *h)
{
    struct hx_probe *pr = h->data;
    hx_gateway_unref(pr->g);
    hx_free(pr);
}

void hx_prober_stop(hx_gw_worker *w)
{
    hx_route_probes_stop(w);
    for (size_t i = 0; w->probes && i < w->nprobes; i++) {
        struct hx_probe *pr = w->probes[i];
        if (pr == NULL)
            continue;
        if (pr->call)
            hx_up_call_cancel(pr->call);
        uv_timer_stop(&pr->timer);
        uv_close((uv_handle_t *)&pr->timer, on_probe_closed);
    }
    hx_free(w->probes);
    w->probes = NULL;
    w->nprobes = 0;
}
