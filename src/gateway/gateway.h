/* The gateway: what the LLM handlers share. One hx_gateway per
 * configuration (providers, read-only once built) and one hx_gw_worker per
 * worker loop (its upstream client). */
#ifndef HX_GATEWAY_GATEWAY_H
#define HX_GATEWAY_GATEWAY_H

#include <json-c/json.h>
#include <stdatomic.h>

#include "config/config.h"
#include "gateway/inbound.h"
#include "http/request.h"
#include "provider/provider.h"
#include "resilience/breaker.h"
#include "resilience/health.h"
#include "resilience/retry.h"
#include "upstream/upstream.h"

typedef struct {
    hx_config *cfg;
    hx_providers providers;
    hx_health **health;        /* one per provider, same index */
    hx_breaker **breakers;     /* one per provider, same index */
    hx_retry_budget *budget;   /* retries stay under llm.retry.budget_percent */
    unsigned retry_classes;    /* HX_RETRY_* of llm.retry.retryable_errors */
    atomic_int prober_claimed; /* the first worker to start runs the probes */
} hx_gateway;

struct hx_probe;

typedef struct {
    hx_gateway *gw;
    hx_upstream *up;
    struct hx_probe **probes;  /* only on the probing worker */
    size_t nprobes;
} hx_gw_worker;

/* Builds the providers of cfg (warning once per unusable one). Returns 0, or
 * -1 with a reason in err. */
int hx_gateway_init(hx_gateway *g, hx_config *cfg, char *err, size_t errlen);
void hx_gateway_free(hx_gateway *g);

/* Server worker hooks (http/server.h). */
void *hx_gateway_worker_init(void *loop, void *gateway);
void hx_gateway_worker_fini(void *worker);

/* Records one outcome for provider idx (probe or real traffic) and logs a
 * healthy/unhealthy transition. Thread-safe. */
void hx_gateway_record(hx_gateway *g, size_t idx, bool ok, const char *error, int64_t latency_ms, bool probe);
/* Monotonic milliseconds (the breakers' and budget's clock). */
uint64_t hx_gateway_now_ms(void);

/* True when provider idx can serve: usable (has its key), breaker not
 * open, and healthy (health only counts while probes run). */
bool hx_gateway_provider_up(hx_gateway *g, size_t idx);

/* Active probes on this worker's loop (prober.c). */
int hx_prober_start(hx_gw_worker *w, void *loop);
void hx_prober_stop(hx_gw_worker *w);

/* Sends the canonical request (owned by the call from now on) along the
 * chain for info->model and renders the answer to r. */
void hx_proxy_start(hx_req *r, json_object *canon, const hx_in_info *info);

#endif
