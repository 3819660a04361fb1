/* The gateway: what the LLM handlers share. One hx_gateway per
 * configuration (providers, read-only once built; breakers and health are
 * thread-safe), reference counted: a reload publishes a new one, each
 * worker switches to it before its next request, and a request keeps the
 * one it started with. One hx_gw_worker per worker loop (its upstream
 * client). */
#ifndef HX_GATEWAY_GATEWAY_H
#define HX_GATEWAY_GATEWAY_H

#include <json-c/json.h>
#include <stdatomic.h>

#include "config/config.h"
#include "gateway/inbound.h"
#include "http/request.h"
#include "middleware/ctx.h"
#include "provider/provider.h"
#include "resilience/breaker.h"
#include "resilience/health.h"
#include "resilience/retry.h"
#include "upstream/upstream.h"
#include "util/scrub.h"

/* A provider's metric series, interned when the gateway is built. */
typedef struct {
    int ok, fail, latency, retries, failovers, panics, tok_prompt, tok_completion;
    int retries_by[HX_LEAVE__COUNT];   /* hapax_retries_by_class_total{provider,class} */
    int failovers_by[HX_LEAVE__COUNT]; /* hapax_failovers_by_class_total{from_provider,class} */
    int failures[HX_FAIL_LABEL__COUNT]; /* hapax_provider_failures_total{provider,class} */
    /* breaker verdicts not yet sent to the other instances (shared.c) */
    atomic_uint_fast32_t shared_ok, shared_fail;
} hx_gw_provider_metrics;

typedef struct hx_gateway {
    atomic_int refs;
    hx_config *cfg;
    hx_providers providers;
    hx_health **health;        /* one per provider, same index */
    hx_breaker **breakers;     /* one per provider, same index */
    hx_retry_budget *budget;   /* retries stay under llm.retry.budget_percent */
    unsigned retry_classes;    /* llm.retry.retryable_errors (hx_retry_classes) */
    hx_gw_provider_metrics *pm;/* one per provider, same index */
    hx_scrub *scrub;           /* the config's secrets, removed from what upstreams send */
    struct hx_route_health *rhealth; /* routes with a health check (route_health.h) */
    size_t n_rhealth;
    atomic_bool panic;         /* the last request found its whole chain down (logged on change) */
} hx_gateway;

struct hx_probe;
struct hx_rprobe;

typedef struct {
    hx_gateway *gw;            /* reference held; see hx_gw_worker_sync */
    uint64_t gen;              /* publication it belongs to */
    bool prober;               /* this worker runs the active probes */
    hx_upstream *up;
    void *loop;                /* the worker's uv_loop_t */
    struct proxy *waiting;     /* requests waiting for a retry (proxy.c) */
    bool draining;             /* shutdown started: no more retry waits */
    struct proxy *live;        /* requests being answered (shutdown ends them) */
    struct hx_probe **probes;  /* only on the probing worker */
    size_t nprobes;
    struct hx_rprobe **rprobes; /* route health checks, on the probing worker */
    size_t nrprobes;
} hx_gw_worker;

/* Builds the providers of cfg (warning once per unusable one). A provider
 * of `prev` (may be NULL) with the same name hands over its breaker and
 * health state, so a reload neither forgets an outage nor resets counts.
 * Returns the gateway (refs = 1), or NULL with a reason in err. */
hx_gateway *hx_gateway_new(hx_config *cfg, hx_gateway *prev, char *err, size_t errlen);
hx_gateway *hx_gateway_ref(hx_gateway *g);
void hx_gateway_unref(hx_gateway *g);

/* The process's current gateway. publish takes its own reference (g may be
 * NULL at exit) and drops the previous one; current returns a new
 * reference (NULL when none). Thread-safe. */
void hx_gateway_publish(hx_gateway *g);
hx_gateway *hx_gateway_current(void);

/* Metrics (gw_metrics.c): interns g's per-provider series; registers the
 * scrape-time collectors (breakers, health, queue, system) once. */
int hx_gw_metrics_build(hx_gateway *g);
int hx_gw_metrics_collectors(void);

/* Registers the "providers" section of the state file (state.c). */
int hx_gateway_state_register(void);

/* ---- shared.c: breaker and health evidence across instances ---- */

/* With state.backend: redis, before the workers start: listens to the
 * other instances. */
void hx_gateway_shared_init(void);
/* A breaker verdict (success or failure) for provider idx: counted, sent
 * to the other instances in the next batch. */
void hx_gateway_shared_verdict(hx_gateway *g, size_t idx, bool success);
/* This instance's breaker or health changed: the others hear it, unless
 * the change came from them. */
void hx_gateway_shared_breaker(const char *provider, int to);
void hx_gateway_shared_health(const char *provider, bool healthy, hx_fail_class cls);

/* One message from another instance, parsed (it comes through Redis: any
 * bytes, bounded): kind 'e' (a = successes, b = failures), 'b' (a = the
 * breaker state) or 'h' (a = healthy 0/1, b = failure class); the
 * provider name points into msg. 0, or -1 for anything else. */
typedef struct {
    char kind;
    long a, b;
    const char *name;
    size_t name_len;
} hx_peer_msg;
int hx_gateway_peer_parse(const char *msg, size_t len, hx_peer_msg *out);

/* Server worker hooks (http/server.h hx_server_app); `app` is unused. */
void *hx_gateway_worker_init(void *loop, void *app);
void hx_gateway_worker_fini(void *worker);
/* Shutdown started on this worker (hx_server_app.worker_drain). */
void hx_gateway_worker_drain(void *worker);
void hx_gateway_worker_force(void *worker);
/* A reload reached this worker: switch to the new gateway now, so the
 * probes follow the new config even when no request comes. */
void hx_gateway_worker_reloaded(void *worker);
/* Requests waiting to retry go on at once (proxy.c). */
void hx_proxy_drain(hx_gw_worker *w);
/* Shutdown deadline: every request still being answered ends now, a stream
 * with an error event in its client's format and a proper end, any other
 * with 503. */
void hx_proxy_force(hx_gw_worker *w);
/* On the worker's thread: moves it to the current gateway if a reload
 * published a new one (and restarts the probes it runs). Cheap otherwise. */
void hx_gw_worker_sync(hx_gw_worker *w);

/* Records one outcome for provider idx (probe or real traffic): `error` is
 * the text shown (/health, logs), `cls` what it was. Logs a
 * healthy/unhealthy transition. Thread-safe. */
void hx_gateway_record(hx_gateway *g, size_t idx, bool ok, const char *error, hx_fail_class cls,
                       int64_t latency_ms, bool probe);
/* The one table from a transport result (and the status of a head that
 * came before it, 0 = none) to a failure class (proxy_err.c). */
hx_fail_class hx_gw_transport_fail(hx_up_result res, int status);
/* Monotonic milliseconds (the breakers' and budget's clock). */
uint64_t hx_gateway_now_ms(void);

/* True when provider idx can serve: usable (has its key), breaker not
 * open, and healthy (health only counts while probes run). */
bool hx_gateway_provider_up(hx_gateway *g, size_t idx);

/* The provider's endpoint as messages may show it: scheme://host[:port]
 * and path, never user:password@, ?query or #fragment (keys travel
 * there). Writes "" when out is too small to be useful (prober.c). */
void hx_gateway_endpoint_shown(const hx_provider *pv, char *out, size_t n);
/* What to set or start when pv cannot be reached, or NULL: for Ollama on
 * its shipped default address, or an endpoint that is the value of
 * <TYPE>_ENDPOINT (OLLAMA_ENDPOINT...), it names the variable. */
const char *hx_gateway_provider_hint(const hx_provider *pv, char *buf, size_t n);
/* "ENDPOINT" or "ENDPOINT: HINT", for a connection failure's message. */
void hx_gateway_describe_unreachable(const hx_provider *pv, char *out, size_t n);

/* Active probes on this worker's loop (prober.c). */
int hx_prober_start(hx_gw_worker *w, void *loop);
void hx_prober_stop(hx_gw_worker *w);
/* The route health checks' probes (route_probe.c), started and stopped
 * with the provider probes. */
int hx_route_probes_start(hx_gw_worker *w, void *loop);
void hx_route_probes_stop(hx_gw_worker *w);

/* What the gateway learnt about a request, for its access-log line, the
 * token metrics and the tokens_per_minute debit: its request context slot
 * (HX_CTX_GATEWAY). */
typedef struct {
    char provider[64];         /* the provider tried last */
    char model[128];           /* ... and its model */
    int attempts;              /* upstream calls made */
    uint8_t cache;             /* llm.cache: 0 not cacheable, else hx_cache_result + 1 */
    int64_t prompt_tokens;     /* as the upstream reported them */
    int64_t completion_tokens;
    char failures[512];        /* why earlier providers did not serve */
} hx_gw_reqlog;

/* The request's record, carved in its context area on first use. The
 * area always has room for it (HX_CTX_GATEWAY_BYTES, middleware/ctx.h);
 * should it not, writes go to a per-thread scratch record nobody reads. */
hx_gw_reqlog *hx_gw_log(hx_req *r);
/* The record to read: all zero while nothing was written. */
const hx_gw_reqlog *hx_gw_log_peek(const hx_req *r);
/* The done hook (hx_req_set_done_hook) of every finished request: the
 * server-load latency sample of a proxied request, then the access-log
 * line (when the route runs `logging` and logging.access_log is on). */
void hx_gw_request_done(hx_req *r);

/* Sends the canonical request (owned by the call from now on) along the
 * chain for info->model and renders the answer to r. */
void hx_proxy_start(hx_req *r, json_object *canon, const hx_in_info *info);

#endif
