/* The request middleware that may hold a request back or answer it before
 * its handler runs: cors, queue, rate_limit, auth. Each is an hx_step_fn
 * (see http/request.h): it answers, or calls hx_req_next exactly once.
 *
 * Configuration comes from r->cfg (the config the request started with),
 * so a reload applies to new requests without touching running ones.
 * State that outlives a request (queue, rate-limit buckets) is one per
 * process, shared by every worker, and set up by hx_middleware_init. */
#ifndef HX_MIDDLEWARE_MIDDLEWARE_H
#define HX_MIDDLEWARE_MIDDLEWARE_H

#include <stdbool.h>

#include "config/config.h"
#include "http/request.h"

/* The step for a middleware name, or NULL when the name has no step (the
 * response-side ones: request_id, request_timer, panic_recovery, logging)
 * or its section is disabled in cfg. Matches hx_step_lookup_fn.
 * handler_flags are the route's handler's (HX_HANDLER_*, config.h).
 * Where the global chain applies to a route (explicit_list false):
 *   - queue only stands in front of the handlers that spend
 *     (HX_HANDLER_SPENDS): it bounds provider work, not health checks;
 *   - auth and rate_limit leave the HX_HANDLER_OPEN ones: /health and /health/providers/{name}
 *     public (load balancers probe them) and /metrics to its own check
 *     (auth.metrics_require_auth: a key with `metrics: true`).
 * A route's own middleware list is applied as written. */
hx_step_fn hx_middleware_lookup(const hx_config *cfg, const char *name, unsigned handler_flags, bool explicit_list);

/* Process-wide state of the middleware (queue, rate-limit buckets), from
 * cfg. Returns 0 or -1 (reason logged). */
int hx_middleware_init(const hx_config *cfg);
/* Applies a reloaded config to that state (queue sizing...). */
void hx_middleware_reconfigure(const hx_config *cfg);
void hx_middleware_shutdown(void);

/* Per worker loop (the queue wakes waiting requests on their own loop). */
int hx_middleware_worker_init(void *loop);
void hx_middleware_worker_fini(void *loop);

/* The steps. */
void hx_mw_cors(hx_req *r);
void hx_mw_queue(hx_req *r);
void hx_mw_rate_limit(hx_req *r);
void hx_mw_auth(hx_req *r);

#endif
