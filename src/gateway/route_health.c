/* Per-route health state, /health's "routes" member and GET <path>/health
 * (route_health.h). The probes are in route_probe.c. */
#include "gateway/route_health.h"

#include <string.h>

#include "gateway/gateway.h"
#include "http/router.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/units.h"

/* The checks map: http/tcp, and a latency bound (`threshold` or a
 * duration). validate.c refused anything else. */
static void read_checks(hx_route_health *rh, const hx_config *cfg, const hx_cfg_route_health *hc)
{
    for (size_t i = 0; i < hc->checks.n; i++) {
        const char *t = hc->checks.items[i].value ? hc->checks.items[i].value : "";
        int64_t ms;
        if (strcmp(t, "http") == 0)
            rh->http = true;
        else if (strcmp(t, "tcp") == 0)
            rh->tcp = true;
        else if (strcmp(t, "threshold") == 0)
            rh->latency_ms = cfg->server.health_check.latency_threshold > 0
                                 ? cfg->server.health_check.latency_threshold
                                 : hc->timeout;
        else if (hx_units_parse_duration(t, &ms) == 0 && ms > 0)
            rh->latency_ms = ms;
    }
    if (!rh->http && !rh->tcp)
        rh->http = true;
}

static void inherit(hx_route_health *rh, const struct hx_gateway *prev)
{
    for (size_t j = 0; prev && j < prev->n_rhealth; j++)
        if (strcmp(prev->rhealth[j].path, rh->path) == 0) {
            hx_health_snap s;
            hx_health_snapshot(prev->rhealth[j].h, &s);
            hx_health_restore(rh->h, &s);
            return;
        }
}

int hx_route_health_build(struct hx_gateway *g, struct hx_gateway *prev)
{
    const hx_config *cfg = g->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_routes; i++)
        n += cfg->routes[i].health_check.enabled;
    if (n == 0)
        return 0;
    g->rhealth = hx_calloc(n, sizeof *g->rhealth);
    if (g->rhealth == NULL)
        return -1;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const hx_cfg_route *cr = &cfg->routes[i];
        if (!cr->health_check.enabled)
            continue;
        hx_route_health *rh = &g->rhealth[g->n_rhealth];
        rh->path = hx_router_mount_path(cr->path, cr->version);
        if (rh->path == NULL)
            return -1;
        g->n_rhealth++; /* from here hx_route_health_free reaches it */
        rh->h = hx_health_new(rh->path, cr->health_check.threshold);
        if (rh->h == NULL)
            return -1;
        rh->interval_ms = cr->health_check.interval;
        rh->timeout_ms = cr->health_check.timeout;
        read_checks(rh, cfg, &cr->health_check);
        inherit(rh, prev);
    }
    return 0;
}

void hx_route_health_free(struct hx_gateway *g)
{
    for (size_t i = 0; i < g->n_rhealth; i++) {
        hx_free(g->rhealth[i].path);
        hx_health_free(g->rhealth[i].h);
    }
    hx_free(g->rhealth);
    g->rhealth = NULL;
    g->n_rhealth = 0;
}

int hx_route_health_json(hx_buf *b, struct hx_gateway *g, size_t *bad)
{
    int rc = hx_buf_append_str(b, "\"routes\":{");
    for (size_t i = 0; rc == 0 && i < g->n_rhealth; i++) {
        hx_health_snap s;
        hx_health_snapshot(g->rhealth[i].h, &s);
        *bad += !s.healthy;
        rc = (i && hx_buf_append(b, ",", 1)) || hx_json_cstr(b, g->rhealth[i].path) ||
             hx_buf_printf(b, ":{\"status\":\"%s\",\"consecutive_failures\":%lld,\"checks\":%llu",
                           s.healthy ? "healthy" : "unhealthy", (long long)s.consecutive_failures,
                           (unsigned long long)s.checks);
        if (rc == 0 && s.last_latency_ms >= 0)
            rc = hx_buf_printf(b, ",\"latency_ms\":%lld", (long long)s.last_latency_ms);
        if (rc == 0 && s.last_error[0])
            rc = hx_buf_append_str(b, ",\"last_error\":") || hx_json_cstr(b, s.last_error);
        if (rc == 0)
            rc = hx_buf_append(b, "}", 1);
    }
    return rc || hx_buf_append(b, "}", 1);
}

void hx_handle_route_health(hx_req *r)
{
    hx_gw_worker *w = hx_req_ctx(r, HX_CTX_APP);
    if (w)
        hx_gw_worker_sync(w);
    /* The router's label is "<mount path>/health". */
    const char *label = r->route_label ? r->route_label : "";
    size_t n = strlen(label);
    n = n >= 7 ? n - 7 : 0;
    for (size_t i = 0; w && i < w->gw->n_rhealth; i++) {
        const hx_route_health *rh = &w->gw->rhealth[i];
        if (strlen(rh->path) != n || strncmp(rh->path, label, n) != 0)
            continue;
        bool ok = hx_health_ok(rh->h);
        static const char healthy[] = "{\"status\":\"healthy\"}\n", unhealthy[] = "{\"status\":\"unhealthy\"}\n";
        hx_res_header(r, "Cache-Control", "no-store");
        hx_res_send(r, ok ? 200 : 503, "application/json", ok ? healthy : unhealthy,
                    ok ? sizeof healthy - 1 : sizeof unhealthy - 1);
        return;
    }
    /* A reload removed the check after the router was built. */
    hx_res_error(r, HX_ERR_NOT_FOUND, NULL);
}
