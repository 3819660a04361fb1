/* Route table built from the config's `routes`: exact path match (a path
 * with a "{name}" part matches one segment there, e.g.
 * /health/providers/{name}), method
 * check (405 with Allow), per-route middleware set. HEAD is served by a
 * route's GET handler with the body suppressed. */
#ifndef HX_HTTP_ROUTER_H
#define HX_HTTP_ROUTER_H

#include "config/config.h"
#include "http/request.h"

typedef void (*hx_handler_fn)(hx_req *r);
/* Maps a handler name from the config to its function (NULL = unknown). */
typedef hx_handler_fn (*hx_handler_lookup_fn)(const char *name);

typedef struct hx_router hx_router;

/* Builds the table; on failure returns NULL and writes a reason to err. */
hx_router *hx_router_build(const hx_config *cfg, hx_handler_lookup_fn lookup, char *err, size_t errlen);
void hx_router_free(hx_router *rt);

/* The HX_MW_* set of the global chain (server.middleware). */
unsigned hx_router_global_mw(const hx_router *rt);
/* Turns middleware names into an HX_MW_* set (unknown names are ignored:
 * the config validator has already rejected them). */
unsigned hx_router_mw_mask(const hx_strlist *names);

/* Routes the request: answers 404/405 itself, else sets r->mw and calls
 * the handler. */
void hx_router_dispatch(const hx_router *rt, hx_req *r);

#endif
