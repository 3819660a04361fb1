/* Per-route health checks (routes[].health_check): each route with one is
 * checked in the background without spending tokens, against what it
 * depends on, the gateway's providers:
 *  - `http`: a GET of each usable provider's model list (the provider
 *    probe's request); passes when one answers 2xx within `timeout`;
 *  - `tcp`: a TCP connect to each usable provider's endpoint host:port;
 *    passes when one accepts within `timeout`;
 *  - `threshold` or a duration (usually under the name `latency`): the
 *    round fails when its passing checks took longer than that
 *    (`threshold` = server.health_check.latency_threshold, read even when
 *    the system checks are off, or the route's `timeout` when it is 0).
 * No http/tcp check listed means `http`. The route turns unhealthy after
 * `threshold` failed rounds in a row and healthy after one good round
 * (resilience/health.h). Served at GET <path>/health, in /health under
 * "routes", and as hapax_route_healthy{route}. */
#ifndef HX_GATEWAY_ROUTE_HEALTH_H
#define HX_GATEWAY_ROUTE_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "http/request.h"
#include "resilience/health.h"
#include "util/buf.h"

typedef struct hx_route_health {
    char *path;           /* mount path (version applied): the label */
    hx_health *h;
    bool http, tcp;
    int64_t latency_ms;   /* 0 = no latency check */
    int64_t interval_ms, timeout_ms;
} hx_route_health;

struct hx_gateway;

/* Builds g->rhealth from g->cfg (prev: state carried over by path).
 * 0, or -1 when out of memory. */
int hx_route_health_build(struct hx_gateway *g, struct hx_gateway *prev);
void hx_route_health_free(struct hx_gateway *g);

/* `"routes":{...}` member of /health; *bad counts unhealthy routes. */
int hx_route_health_json(hx_buf *b, struct hx_gateway *g, size_t *bad);

/* GET <path>/health: 200 {"status":"healthy"} or 503 {"status":"unhealthy"}. */
void hx_handle_route_health(hx_req *r);

#endif
