#include "gateway/handlers.h"

#include <json-c/json.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gateway/anthropic_err.h"
#include "gateway/cache_gw.h"
#include "gateway/gateway.h"
#include "gateway/models.h"
#include "gateway/responses.h"
#include "gateway/route_health.h"
#include "state/cluster.h"
#include "middleware/auth.h"
#include "middleware/ratelimit.h"
#include "obs/metrics.h"
#include "obs/sysload.h"
#include "util/json.h"

/* One provider's entry of /health: status up | down | unknown (usable,
 * but nothing checked it yet: no probe or request had an outcome) |
 * unusable. `detail` adds the endpoint (no credentials or query), for
 * whoever may read /metrics: behind auth it stays private. A down provider
 * gets a hint when there is something obvious to set or start. */
static int provider_json(hx_buf *b, hx_gateway *g, size_t i, bool detail, bool *up)
{
    const hx_provider *pv = &g->providers.items[i];
    hx_health_snap hs;
    hx_health_snapshot(g->health[i], &hs);
    *up = hx_gateway_provider_up(g, i); /* unknown counts: requests try it */
    const char *st = !pv->usable ? "unusable" : !*up ? "down" : hs.known ? "up" : "unknown";
    int rc = hx_json_cstr(b, pv->name) || hx_buf_append_str(b, ":{\"status\":") || hx_json_cstr(b, st) ||
             hx_buf_append_str(b, ",\"type\":") || hx_json_cstr(b, pv->ad->name) ||
             hx_buf_append_str(b, ",\"model\":") || hx_json_cstr(b, pv->model) ||
             hx_buf_printf(b, ",\"healthy\":%s,\"breaker\":\"%s\",\"consecutive_failures\":%lld,\"checks\":%llu",
                           hs.healthy ? "true" : "false",
                           hx_breaker_state_name(hx_breaker_state(g->breakers[i], hx_gateway_now_ms())),
                           (long long)hs.consecutive_failures, (unsigned long long)hs.checks);
    uint32_t wreq, wfail;
    hx_breaker_window(g->breakers[i], hx_gateway_now_ms(), &wreq, &wfail);
    if (rc == 0) /* the breaker's sliding window: requests with a verdict, share failed */
        rc = hx_buf_printf(b, ",\"window_requests\":%u,\"window_failures\":%u,\"failure_rate\":%u", wreq, wfail,
                           wreq ? (unsigned)((uint64_t)wfail * 100 / wreq) : 0u);
    if (rc == 0 && hs.last_latency_ms >= 0)
        rc = hx_buf_printf(b, ",\"latency_ms\":%lld", (long long)hs.last_latency_ms);
    if (rc == 0 && (hs.last_error[0] || !pv->usable))
        rc = hx_buf_append_str(b, ",\"last_error\":") || hx_json_cstr(b, pv->usable ? hs.last_error : pv->reason);
    char url[256], hint[128];
    if (rc == 0 && detail && pv->usable) {
        hx_gateway_endpoint_shown(pv, url, sizeof url);
        if (*url)
            rc = hx_buf_append_str(b, ",\"endpoint\":") || hx_json_cstr(b, url);
    }
    const char *h = pv->usable && !*up ? hx_gateway_provider_hint(pv, hint, sizeof hint) : NULL;
    if (rc == 0 && h)
        rc = hx_buf_append_str(b, ",\"hint\":") || hx_json_cstr(b, h);
    return rc || hx_buf_append(b, "}", 1);
}

/* The system block of /health (server.health_check). */
static int system_json(hx_buf *b, const hx_sysload_status *s)
{
    if (!s->enabled)
        return hx_buf_append_str(b, "\"system\":{\"checks\":\"off\"}");
    int rc = hx_buf_printf(b, "\"system\":{\"shedding\":%s", s->shedding ? "true" : "false");
    if (rc == 0 && s->reason)
        rc = hx_buf_printf(b, ",\"reason\":\"%s\"", s->reason);
    if (rc == 0 && s->memory_percent >= 0)
        rc = hx_buf_printf(b, ",\"memory_percent\":%.1f", s->memory_percent);
    if (rc == 0 && s->cpu_percent >= 0)
        rc = hx_buf_printf(b, ",\"cpu_percent\":%.1f", s->cpu_percent);
    if (rc == 0 && s->disk_percent >= 0)
        rc = hx_buf_printf(b, ",\"disk_percent\":%.1f", s->disk_percent);
    if (rc == 0 && s->latency_ms >= 0)
        rc = hx_buf_printf(b, ",\"latency_ms\":%lld", (long long)s->latency_ms);
    return rc || hx_buf_append(b, "}", 1);
}

/* The shared state block of /health (state.backend: redis). */
static int state_json(hx_buf *b, const hx_cluster_status *c, bool detail)
{
    int rc = hx_buf_printf(b, ",\"state\":{\"backend\":\"redis\",\"status\":\"%s\",\"instances\":%lld,"
                              "\"on_failure\":\"%s\"",
                           c->up ? "ok" : "degraded", (long long)c->instances, c->on_failure);
    /* the host name is in the id: for those who may read /metrics */
    if (rc == 0 && detail)
        rc = hx_buf_append_str(b, ",\"instance\":") || hx_json_cstr(b, c->instance);
    if (rc == 0 && c->degraded_since_ms)
        rc = hx_buf_printf(b, ",\"degraded_since_unix_ms\":%lld", (long long)c->degraded_since_ms);
    return rc || hx_buf_append(b, "}", 1);
}

/* GET /health: ok when every provider can serve (up, or unknown: not
 * checked yet but tried), degraded when some can, unavailable (503) when
 * none can. */
/* A /health answer: a few hundred bytes per provider. */
#define HEALTH_TEXT_MAX ((size_t)1 << 20)

static void handle_health(hx_req *r)
{
    hx_gw_worker *w = hx_req_ctx(r, HX_CTX_APP);
    if (w)
        hx_gw_worker_sync(w);
    hx_buf b;
    hx_buf_init(&b, HEALTH_TEXT_MAX);
    size_t up = 0, n = w ? w->gw->providers.n : 0;
    bool detail = n > 0 && hx_auth_metrics_allowed(r);
    int rc = hx_buf_append_str(&b, "{\"providers\":{");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool u = false; /* unset when the "," append fails and || skips provider_json */
        rc = (i && hx_buf_append(&b, ",", 1)) || provider_json(&b, w->gw, i, detail, &u);
        up += u;
    }
    size_t bad_routes = 0; /* routes[].health_check: an unhealthy one degrades */
    if (rc == 0 && w && w->gw->n_rhealth)
        rc = hx_buf_append_str(&b, "},") || hx_route_health_json(&b, w->gw, &bad_routes) ||
             hx_buf_append(&b, ",", 1);
    else if (rc == 0)
        rc = hx_buf_append_str(&b, "},");
    hx_sysload_status sys;
    hx_sysload_get(&sys);
    hx_cluster_status cs;
    hx_cluster_get_status(&cs);
    bool state_ok = !cs.enabled || cs.up;
    const char *status = sys.shedding ? "overloaded"
                       : (n == 0 || up == n) && bad_routes == 0 && state_ok ? "ok"
                       : up > 0 || n == 0                                   ? "degraded"
                                                                            : "unavailable";
    if (rc == 0)
        rc = system_json(&b, &sys) || (cs.enabled && state_json(&b, &cs, hx_auth_metrics_allowed(r))) || hx_buf_append_str(&b, ",\"status\":") ||
             hx_json_cstr(&b, status) || hx_buf_append_str(&b, "}\n");
    hx_res_header(r, "Cache-Control", "no-store");
    if (rc != 0)
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
    else
        hx_res_send(r, (n > 0 && up == 0) || sys.shedding ? 503 : 200, "application/json", b.data, b.len);
    hx_buf_free(&b);
}

/* GET /health/providers/{name} */
static void handle_provider_health(hx_req *r)
{
    hx_gw_worker *w = hx_req_ctx(r, HX_CTX_APP);
    if (w)
        hx_gw_worker_sync(w);
    const char *name = r->route_param ? r->route_param : ""; /* wherever the route is mounted */
    for (size_t i = 0; w && i < w->gw->providers.n; i++) {
        if (strcmp(w->gw->providers.items[i].name, name) != 0)
            continue;
        hx_buf b;
        hx_buf_init(&b, HEALTH_TEXT_MAX);
        bool up;
        int rc = hx_buf_append(&b, "{", 1) || provider_json(&b, w->gw, i, hx_auth_metrics_allowed(r), &up) ||
                 hx_buf_append_str(&b, "}\n");
        hx_res_header(r, "Cache-Control", "no-store");
        if (rc != 0)
            hx_res_error(r, HX_ERR_INTERNAL, NULL);
        else
            hx_res_send(r, up ? 200 : 503, "application/json", b.data, b.len);
        hx_buf_free(&b);
        return;
    }
    hx_res_error(r, HX_ERR_NOT_FOUND, "No provider has this name.");
}

/* The /metrics text (every series of every worker): far above what a
 * configuration makes. */
#define METRICS_TEXT_MAX ((size_t)64 << 20)

/* GET /metrics: the Prometheus text format. With auth on (and
 * auth.metrics_require_auth), only a key with `metrics: true` reads it. */
static void handle_metrics(hx_req *r)
{
    if (!hx_auth_metrics_allowed(r)) {
        hx_auth_deny_metrics(r);
        return;
    }
    hx_buf b;
    hx_buf_init(&b, METRICS_TEXT_MAX);
    if (hx_metrics_render(&b) != 0)
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
    else {
        hx_res_header(r, "Cache-Control", "no-store");
        hx_res_send(r, 200, HX_METRICS_CONTENT_TYPE, b.data, b.len);
    }
    hx_buf_free(&b);
}

typedef int (*inbound_fn)(json_object *, json_object **, hx_in_info *, char *, size_t);

static bool is_json_type(const char *ct)
{
    if (ct == NULL)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", 16) != 0)
        return false;
    return ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ';
}

/* LLM tokens count against the client's tokens_per_minute once known
 * (both clamped from the upstream's numbers; the sum saturates). */
static void debit_tokens(hx_req *r, void *ud)
{
    (void)ud;
    const hx_gw_reqlog *lg = hx_gw_log_peek(r);
    int64_t t = hx_tokens_add(lg->prompt_tokens, lg->completion_tokens);
    if (t > 0)
        hx_ratelimit_debit_tokens(r, t);
}

/* A request whose JSON was this large hands its memory back when it ends:
 * json-c's many small blocks stay in glibc's arenas otherwise, and each
 * worker thread has its own (RSS would keep every worker's high-water
 * mark). Below these, the memory is simply reused. */
#define TRIM_MIN_ELEMENTS 20000
#define TRIM_MIN_BODY ((size_t)4 << 20)

static void trim_memory(hx_req *r, void *ud)
{
    (void)r;
    (void)ud;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* The strict RFC 8259 check with the configured limits, before anything
 * is built: 400 (syntax, depth, integer range) or 413 (too many values). */
static int check_json(hx_req *r, const char *bad_json_msg, const hx_json_limits *lim, size_t *elements)
{
    hx_json_report rep;
    if (r->body.len > 0 && hx_json_check(r->body.data, r->body.len, lim, &rep) == HX_JSON_OK) {
        *elements = rep.elements;
        return 0;
    }
    char why[160], msg[256];
    if (r->body.len == 0)
        snprintf(why, sizeof why, "the body is empty");
    else
        hx_json_report_text(&rep, lim, why, sizeof why);
    snprintf(msg, sizeof msg, "%s: %s", bad_json_msg, why);
    hx_res_error(r, r->body.len && rep.status == HX_JSON_E_ELEMENTS ? HX_ERR_BODY_TOO_LARGE : HX_ERR_INVALID_REQUEST,
                 msg);
    return -1;
}

/* JSON in, canonical request out (NULL for a plain OpenAI chat body: the
 * scan read what routing needs, and the proxy builds the object only if a
 * provider cannot take the body as it is). Answers 400/413 itself and
 * returns -1 on a bad body. */
static int read_request(hx_req *r, inbound_fn parse, const char *bad_json_msg, json_object **canon,
                        hx_in_info *info)
{
    const hx_json_limits lim = {.max_depth = (int)r->cfg->server.max_json_depth,
                                .max_elements = (size_t)r->cfg->server.max_json_elements,
                                .int_range = true};
    size_t elements = 0;
    if (check_json(r, bad_json_msg, &lim, &elements) != 0)
        return -1;
    if (elements >= TRIM_MIN_ELEMENTS || r->body.len >= TRIM_MIN_BODY)
        hx_req_on_finish(r, trim_memory, NULL); /* best effort: no slot, no trim */
    if (parse == hx_in_openai_chat && hx_in_openai_chat_scan(r->body.data, r->body.len, info) == 1)
        return 0;
    json_object *body = hx_json_parse_limits(r->body.data, r->body.len, &lim);
    if (body == NULL) { /* the check passed: json-c ran out of memory */
        hx_res_error(r, HX_ERR_INTERNAL, "out of memory reading the request body");
        return -1;
    }
    char err[256];
    int rc = parse(body, canon, info, err, sizeof err);
    json_object_put(body);
    if (rc != 0)
        hx_res_error(r, HX_ERR_INVALID_REQUEST, err);
    return rc;
}

/* Common front of every LLM endpoint: JSON in, canonical request out. */
static void handle_llm(hx_req *r, hx_api api, inbound_fn parse, const char *bad_json_msg)
{
    const char *why;
    if (hx_sysload_shedding(&why)) {
        char msg[160], ra[24];
        snprintf(msg, sizeof msg, "The server is overloaded (%s above its threshold); retry later.", why);
        snprintf(ra, sizeof ra, "%lld", (long long)hx_sysload_retry_after_s());
        hx_res_header(r, "Retry-After", ra);
        hx_metrics_inc(HX_M_LOAD_SHED, hx_metrics_series(HX_M_LOAD_SHED, why), 1);
        hx_res_error(r, HX_ERR_OVERLOADED, msg);
        return;
    }
    if (!is_json_type(hx_headers_get(&r->headers, "content-type"))) {
        hx_res_error(r, HX_ERR_INVALID_REQUEST, "Content-Type must be application/json");
        return;
    }
    json_object *canon = NULL;
    hx_in_info info = {0};
    if (read_request(r, parse, bad_json_msg, &canon, &info) != 0)
        return;
    info.api = api;
    /* A key limited to some models names what it may ask for (the
     * default chain serves llm.model); the proxy then also keeps failover
     * to providers the key may use. */
    const char *model = info.model[0] ? info.model : r->cfg->llm.model;
    const hx_cfg_auth_key *key = hx_auth_key(r);
    if (key && !hx_auth_model_allowed(key, model)) {
        json_object_put(canon);
        if (info.ctx_free)
            info.ctx_free(info.ctx);
        hx_auth_deny_model(r, model);
        return;
    }
    hx_req_on_finish(r, debit_tokens, NULL);
    if (parse == hx_in_responses)
        hx_responses_start(r, canon, &info);
    else
        hx_gw_cache_start(r, canon, &info);
}

static void handle_chat(hx_req *r) { handle_llm(r, HX_API_CHAT, hx_in_openai_chat, "Invalid JSON body"); }
static void handle_completion(hx_req *r)
{
    handle_llm(r, HX_API_COMPLETIONS, hx_in_completions, "Invalid completion request format");
}
static void handle_messages(hx_req *r) { handle_llm(r, HX_API_MESSAGES, hx_in_anthropic, "Invalid JSON body"); }

/* POST /v1/responses; GET and DELETE /v1/responses/{id}. */
static void handle_responses(hx_req *r)
{
    if (strcmp(r->method, "POST") == 0)
        handle_llm(r, HX_API_RESPONSES, hx_in_responses, "Invalid JSON body");
    else
        hx_responses_by_id(r);
}

static void handle_embeddings(hx_req *r) { handle_llm(r, HX_API_EMBEDDINGS, hx_in_embeddings, "Invalid JSON body"); }
static void handle_count_tokens(hx_req *r)
{
    handle_llm(r, HX_API_COUNT_TOKENS, hx_in_count_tokens, "Invalid JSON body");
}

/* Each handler with the error dialect of its clients and its flags (from
 * HX_HANDLER_LIST, config.h: the one list of handler names). */
static const struct {
    const char *name;
    hx_handler_def def;
} handlers[] = {
    {"health", {handle_health, NULL, NULL, HX_HANDLER_FLAGS_health}},
    {"completion", {handle_completion, NULL, NULL, HX_HANDLER_FLAGS_completion}},
    {"chat", {handle_chat, NULL, NULL, HX_HANDLER_FLAGS_chat}},
    {"messages", {handle_messages, hx_err_render_anthropic, "request-id", HX_HANDLER_FLAGS_messages}},
    {"responses", {handle_responses, hx_resp_err_render, NULL, HX_HANDLER_FLAGS_responses}},
    {"embeddings", {handle_embeddings, NULL, NULL, HX_HANDLER_FLAGS_embeddings}},
    {"count_tokens", {handle_count_tokens, hx_err_render_anthropic, "request-id", HX_HANDLER_FLAGS_count_tokens}},
    {"models", {hx_handle_models, NULL, NULL, HX_HANDLER_FLAGS_models}},
    {"model", {hx_handle_model, NULL, NULL, HX_HANDLER_FLAGS_model}},
    {"provider_health", {handle_provider_health, NULL, NULL, HX_HANDLER_FLAGS_provider_health}},
    {"metrics", {handle_metrics, NULL, NULL, HX_HANDLER_FLAGS_metrics}},
    /* <path>/health, never named in a config: served like /health */
    {"route_health", {hx_handle_route_health, NULL, NULL, HX_HANDLER_FLAGS_health}},
};

const hx_handler_def *hx_handlers_lookup(const char *name)
{
    for (size_t i = 0; name && i < sizeof handlers / sizeof handlers[0]; i++)
        if (strcmp(handlers[i].name, name) == 0)
            return &handlers[i].def;
    return NULL;
}
