/* Route table built from the config's `routes`: exact path match (a path
 * with a "{name}" part matches one segment there, e.g.
 * /health/providers/{name}; "{name...}" matches the rest of the path, '/'
 * included, e.g. /v1/models/{id...} for meta-llama/Llama-3-8b), method
 * check (405 with Allow), per-route middleware set. HEAD is served by a
 * route's GET handler with the body suppressed. */
#ifndef HX_HTTP_ROUTER_H
#define HX_HTTP_ROUTER_H

#include "config/config.h"
#include "http/request.h"

/* The response-side middleware of a route (server.middleware or the
 * route's own list): no step of their own, the HTTP layer applies them
 * (request.c: X-Request-ID, X-Response-Time, containment of internal
 * errors; the application's done hook: the access-log line). The router
 * stores the set in r->mw. */
enum {
    HX_MW_REQUEST_ID = 1u << 0,
    HX_MW_REQUEST_TIMER = 1u << 1,
    HX_MW_PANIC_RECOVERY = 1u << 2,
    HX_MW_LOGGING = 1u << 3,
};

typedef hx_step_fn hx_handler_fn;
/* What a handler name stands for: its function and the dialect its
 * clients speak, applied to every answer of its routes (the middleware's
 * 401/429 too). */
typedef struct {
    hx_handler_fn fn;
    hx_err_render_fn err_render; /* error bodies (NULL = OpenAI's envelope) */
    const char *id_header;       /* also carries the request id (e.g. Anthropic's "request-id"), or NULL */
    unsigned flags;              /* HX_HANDLER_* (config.h): what the middleware and router treat specially */
} hx_handler_def;
/* Maps a handler name from the config to its definition (NULL = unknown). */
typedef const hx_handler_def *(*hx_handler_lookup_fn)(const char *name);
/* Maps a middleware name to its step for a route with `handler`, or NULL
 * for the middleware that act on the response only (request_id,
 * request_timer, panic_recovery, logging: HX_MW_* flags), for a middleware
 * whose section is disabled in cfg, and for one that does not apply to
 * the handler (its hx_handler_def flags) when the route inherits the global chain (`explicit` false;
 * a route's own list is applied as written). */
typedef hx_step_fn (*hx_step_lookup_fn)(const hx_config *cfg, const char *name, unsigned handler_flags,
                                        bool explicit_list);

typedef struct hx_router hx_router;

/* Builds the table; on failure returns NULL and writes a reason to err. */
hx_router *hx_router_build(const hx_config *cfg, hx_handler_lookup_fn lookup, hx_step_lookup_fn steps,
                           char *err, size_t errlen);
void hx_router_free(hx_router *rt);
/* A route's mount path: `version` prefixes `path` ("/completions" + v1 ->
 * "/v1/completions") unless the path already starts with it. NULL when
 * out of memory; hx_free it. */
char *hx_router_mount_path(const char *path, const char *version);

/* The HX_MW_* set of the global chain (server.middleware). */
unsigned hx_router_global_mw(const hx_router *rt);
/* Turns middleware names into an HX_MW_* set (unknown names are ignored:
 * the config validator has already rejected them). */
unsigned hx_router_mw_mask(const hx_strlist *names);

/* Routes the request: answers 404 (and 405 when no step of the route may
 * take the method: only a CORS preflight runs the chain for a method the
 * route does not serve), else sets r->mw, the steps and the handler and
 * runs the chain (hx_req_next). */
void hx_router_dispatch(const hx_router *rt, hx_req *r);

#endif
