#include "http/router.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

enum { M_GET = 1, M_HEAD = 2, M_POST = 4, M_PUT = 8, M_DELETE = 16, M_PATCH = 32, M_OPTIONS = 64 };

static const struct {
    const char *name;
    unsigned bit;
} method_bits[] = {
    {"GET", M_GET}, {"HEAD", M_HEAD}, {"POST", M_POST}, {"PUT", M_PUT},
    {"DELETE", M_DELETE}, {"PATCH", M_PATCH}, {"OPTIONS", M_OPTIONS},
};

typedef struct {
    char *path;
    size_t prefix_len;  /* > 0: "/a/{name}" matches "/a/" + one segment */
    bool rest;          /* "/a/{name...}": the rest of the path, '/' included */
    hx_handler_fn fn;
    hx_err_render_fn err_render;
    const char *id_header;
    unsigned methods;
    unsigned mw;
    hx_step_fn steps[HX_REQ_MAX_STEPS];
    uint8_t nsteps;
    bool has_cors;
    hx_kv *required;     /* copy of the route's `headers` */
    size_t nrequired;
    unsigned flags;      /* the handler's HX_HANDLER_* */
    char allow[64];
} route;

struct hx_router {
    route *routes;
    size_t n;
    unsigned global_mw;
    hx_step_fn unmatched_cors; /* CORS for a 404, so a browser can read it */
};

static unsigned method_bit(const char *m)
{
    for (size_t i = 0; i < sizeof method_bits / sizeof method_bits[0]; i++)
        if (strcmp(m, method_bits[i].name) == 0)
            return method_bits[i].bit;
    return 0;
}

unsigned hx_router_mw_mask(const hx_strlist *names)
{
    unsigned m = 0;
    for (size_t i = 0; i < names->n; i++) {
        const char *s = names->items[i];
        if (strcmp(s, "request_id") == 0) m |= HX_MW_REQUEST_ID;
        else if (strcmp(s, "request_timer") == 0) m |= HX_MW_REQUEST_TIMER;
        else if (strcmp(s, "panic_recovery") == 0) m |= HX_MW_PANIC_RECOVERY;
        else if (strcmp(s, "logging") == 0) m |= HX_MW_LOGGING;
    }
    return m;
}

static void build_allow(route *rt)
{
    size_t off = 0;
    rt->allow[0] = '\0';
    unsigned ms = rt->methods;
    if (ms & M_GET)
        ms |= M_HEAD;
    for (size_t i = 0; i < sizeof method_bits / sizeof method_bits[0]; i++) {
        if (!(ms & method_bits[i].bit))
            continue;
        int n = snprintf(rt->allow + off, sizeof rt->allow - off, "%s%s", off ? ", " : "", method_bits[i].name);
        if (n < 0 || (size_t)n >= sizeof rt->allow - off)
            break;
        off += (size_t)n;
    }
}

/* The active steps of a chain, in the configured order. */
static void build_steps(route *r, const hx_config *cfg, const hx_cfg_route *cr, unsigned handler_flags,
                        hx_step_lookup_fn lookup)
{
    bool own = cr->middleware.n > 0;
    const hx_strlist *names = own ? &cr->middleware : &cfg->server.middleware;
    for (size_t i = 0; lookup && i < names->n && r->nsteps < HX_REQ_MAX_STEPS; i++) {
        hx_step_fn fn = lookup(cfg, names->items[i], handler_flags, own);
        if (fn == NULL)
            continue;
        r->steps[r->nsteps++] = fn;
        if (strcmp(names->items[i], "cors") == 0)
            r->has_cors = true;
    }
}

static int copy_required(route *r, const hx_kvlist *h)
{
    if (h->n == 0)
        return 0;
    r->required = hx_calloc(h->n, sizeof *r->required);
    if (r->required == NULL)
        return -1;
    for (size_t i = 0; i < h->n; i++, r->nrequired++) {
        r->required[i].key = hx_strdup(h->items[i].key);
        r->required[i].value = hx_strdup(h->items[i].value);
        if (r->required[i].key == NULL || r->required[i].value == NULL) {
            r->nrequired++;
            return -1;
        }
    }
    return 0;
}

/* The mount path: `version` prefixes the path ("/completions" + v1 ->
 * "/v1/completions") unless the path already starts with it. */
char *hx_router_mount_path(const char *path, const char *version)
{
    size_t vl = strlen(version);
    if (vl == 0 || (path[0] == '/' && strncmp(path + 1, version, vl) == 0 &&
                    (path[vl + 1] == '/' || path[vl + 1] == '\0')))
        return hx_strdup(path);
    size_t n = vl + strlen(path) + 2;
    char *p = hx_malloc(n);
    if (p)
        snprintf(p, n, "/%s%s", version, path);
    return p;
}

/* GET/HEAD `<mounted path>/health` (routes[].health_check): the route's
 * chain, with what applies to a health handler (auth and rate_limit leave
 * it alone unless the route lists its own chain, as for /health). */
static int add_health_route(hx_router *rt, const hx_config *cfg, const hx_cfg_route *cr, hx_handler_lookup_fn lookup,
                            hx_step_lookup_fn steps)
{
    const hx_handler_def *def = lookup("route_health");
    if (def == NULL)
        return 0; /* a table without it (unit tests): nothing to serve */
    char *mount = hx_router_mount_path(cr->path, cr->version);
    if (mount == NULL)
        return -1;
    size_t n = strlen(mount) + sizeof "/health";
    route *r = &rt->routes[rt->n];
    r->path = hx_malloc(n);
    if (r->path)
        snprintf(r->path, n, "%s/health", mount);
    hx_free(mount);
    if (r->path == NULL)
        return -1;
    rt->n++;
    r->fn = def->fn;
    r->methods = M_GET | M_HEAD;
    const hx_strlist *chain = cr->middleware.n ? &cr->middleware : &cfg->server.middleware;
    r->mw = hx_router_mw_mask(chain);
    r->flags = def->flags;
    build_steps(r, cfg, cr, def->flags, steps);
    build_allow(r);
    return 0;
}

hx_router *hx_router_build(const hx_config *cfg, hx_handler_lookup_fn lookup, hx_step_lookup_fn steps,
                           char *err, size_t errlen)
{
    hx_router *rt = hx_calloc(1, sizeof *rt);
    if (rt == NULL)
        goto oom;
    rt->global_mw = hx_router_mw_mask(&cfg->server.middleware);
    for (size_t i = 0; steps && i < cfg->server.middleware.n; i++)
        if (strcmp(cfg->server.middleware.items[i], "cors") == 0)
            rt->unmatched_cors = steps(cfg, "cors", 0, false);
    rt->routes = hx_calloc(cfg->n_routes ? 2 * cfg->n_routes : 1, sizeof *rt->routes);
    if (rt->routes == NULL)
        goto oom;
    /* `<path>/health` of routes with a health check come first: a pattern
     * route ("/v1/models/{id...}") would match them otherwise. */
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i].health_check.enabled && add_health_route(rt, cfg, &cfg->routes[i], lookup, steps) != 0)
            goto oom;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const hx_cfg_route *cr = &cfg->routes[i];
        route *r = &rt->routes[rt->n];
        const char *path = cr->path;
        const hx_handler_def *def = lookup(cr->handler);
        if (def == NULL) {
            snprintf(err, errlen, "route %s: unknown handler '%s'", cr->path, cr->handler);
            goto fail;
        }
        if (def->flags & HX_HANDLER_METRICS) {
            /* metrics.enabled switches the endpoint off; metrics.path moves
             * the default route. */
            if (!cfg->metrics.enabled)
                continue;
            if (strcmp(path, "/metrics") == 0)
                path = cfg->metrics.path;
        }
        r->fn = def->fn;
        r->err_render = def->err_render;
        r->id_header = def->id_header;
        r->path = hx_router_mount_path(path, cr->version);
        if (r->path == NULL)
            goto oom;
        const char *brace = strchr(r->path, '{');
        r->prefix_len = brace ? (size_t)(brace - r->path) : 0;
        r->rest = brace && strstr(brace, "...}") != NULL;
        rt->n++;
        for (size_t j = 0; j < cr->methods.n; j++)
            r->methods |= method_bit(cr->methods.items[j]);
        const hx_strlist *chain = cr->middleware.n ? &cr->middleware : &cfg->server.middleware;
        r->mw = hx_router_mw_mask(chain);
        r->flags = def->flags;
    build_steps(r, cfg, cr, def->flags, steps);
        if (copy_required(r, &cr->headers) != 0)
            goto oom;
        build_allow(r);
    }
    return rt;
oom:
    snprintf(err, errlen, "out of memory building the route table");
fail:
    hx_router_free(rt);
    return NULL;
}

void hx_router_free(hx_router *rt)
{
    if (rt == NULL)
        return;
    /* routes is NULL only when n is 0 (its allocation failed). */
    for (size_t i = 0; rt->routes && i < rt->n; i++) {
        hx_free(rt->routes[i].path);
        for (size_t j = 0; j < rt->routes[i].nrequired; j++) {
            hx_free(rt->routes[i].required[j].key);
            hx_free(rt->routes[i].required[j].value);
        }
        hx_free(rt->routes[i].required);
    }
    hx_free(rt->routes);
    hx_free(rt);
}

unsigned hx_router_global_mw(const hx_router *rt)
{
    return rt->global_mw;
}

static void run_route(const route *found, hx_req *r)
{
    memcpy(r->steps, found->steps, sizeof r->steps);
    r->nsteps = found->nsteps;
    r->step_pos = 0;
    r->handler = found->fn;
    r->required = found->required;
    r->nrequired = found->nrequired;
    hx_req_next(r);
}

/* The handshake completed: the held request is no longer replayable. The
 * route table outlives its requests (a reload retires it, never frees it
 * under them). */
static void on_confirmed(hx_req *r, void *ud)
{
    r->early_data = false;
    run_route(ud, r);
}

/* RFC 8470: a request received in TLS early data may be a replay. GET and
 * HEAD of a route that spends nothing (health, models, metrics) are safe
 * to serve from it. Anything else is held until the handshake completes
 * when the transport can wait, or answered 425 Too Early; with
 * server.http3.allow_0rtt_replay the operator accepts replays and it goes
 * on (the upstream request then carries Early-Data: 1). true when it
 * answered or held the request. */
static bool early_data_stops(const route *found, hx_req *r)
{
    bool safe_method = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (safe_method && !(found->flags & HX_HANDLER_SPENDS))
        return false;
    if (r->cfg->server.http3.allow_0rtt_replay)
        return false;
    if (r->tp->when_confirmed && r->tp->when_confirmed(r, on_confirmed, (void *)(uintptr_t)found) == 0)
        return true;
    hx_res_error(r, HX_ERR_TOO_EARLY, NULL);
    return true;
}

void hx_router_dispatch(const hx_router *rt, hx_req *r)
{
    const route *found = NULL;
    for (size_t i = 0; i < rt->n && !found; i++) {
        const route *c = &rt->routes[i];
        if (c->prefix_len ? strncmp(c->path, r->path, c->prefix_len) == 0 && r->path[c->prefix_len] &&
                                (c->rest || strchr(r->path + c->prefix_len, '/') == NULL)
                          : strcmp(c->path, r->path) == 0)
            found = c;
    }
    if (found == NULL) {
        if (rt->unmatched_cors) {
            /* The CORS step, then hx_req_next's 404 (no handler). */
            r->steps[0] = rt->unmatched_cors;
            r->nsteps = 1;
            r->step_pos = 0;
            r->method_ok = true;
            r->handler = NULL;
            hx_req_next(r);
            return;
        }
        hx_res_error(r, HX_ERR_NOT_FOUND, NULL);
        return;
    }
    r->mw = found->mw;
    r->err_render = found->err_render;
    if (found->id_header)
        hx_res_header(r, found->id_header, r->request_id);
    r->route_label = found->path;
    r->route_param = found->prefix_len ? r->path + found->prefix_len : NULL;
    r->allow = found->allow;
    unsigned bit = method_bit(r->method);
    if (bit == M_HEAD && (found->methods & M_GET) && !(found->methods & M_HEAD))
        bit = M_GET;
    r->method_ok = (found->methods & bit) != 0;
    if (!r->method_ok && !(bit == M_OPTIONS && found->has_cors)) {
        hx_res_header(r, "Allow", found->allow);
        hx_res_error(r, HX_ERR_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    if (r->early_data && early_data_stops(found, r))
        return;
    run_route(found, r);
}
