/* The configuration schema (one table per section, each next to its
 * defaults), the defaults and the post-load fixes (finalize). The generic
 * free, the marks and reference counting are in schema_ops.c. */
#include "config/schema.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/json.h"

#define DMAX INT64_MAX
#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)
#define SEC 1000
#define MIN (60 * SEC)

/* F(ST, KEY, MEMBER, TYPE[, designators]): TYPE opens "...", so ISO C. */
#define F(ST, KEY, MEMBER, ...) \
    {.name = KEY, .off = offsetof(ST, MEMBER), .type = __VA_ARGS__}
#define R(LO, HI) .flags = HX_FF_RANGE, .min = (LO), .max = (HI)
#define LIST(ST, KEY, MEMBER, COUNT, SUB) \
    F(ST, KEY, MEMBER, HX_FT_LIST, .count_off = offsetof(ST, COUNT), .sub = &(SUB))
#define TABLE(NAME, ST, INIT, ARR) \
    static const hx_schema NAME = {#ST, sizeof(ST), INIT, ARR, sizeof ARR / sizeof ARR[0]}

/* ---- defaults helpers: record the first allocation failure ---- */

typedef struct {
    bool ok;
} dflt;

static void dset(dflt *d, char **dst, const char *v)
{
    hx_free(*dst);
    *dst = hx_strdup(v);
    if (*dst == NULL)
        d->ok = false;
}

static void dlist(dflt *d, hx_strlist *l, const char *const *v)
{
    hx__strlist_free(l);
    size_t n = 0;
    while (v[n])
        n++;
    if (n == 0)
        return;
    l->items = hx_calloc(n, sizeof *l->items);
    if (l->items == NULL) {
        d->ok = false;
        return;
    }
    for (l->n = 0; l->n < n; l->n++) {
        l->items[l->n] = hx_strdup(v[l->n]);
        if (l->items[l->n] == NULL) {
            d->ok = false;
            return;
        }
    }
}

#define STRS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NOSTRS ((const char *const[]){NULL})

static const char *const provider_names[] = {"openai", "anthropic", "ollama", NULL};
static const char *const middleware_names[] = {"request_id", "request_timer", "panic_recovery",
                                               "cors", "queue", "rate_limit", "auth", "logging",
                                               NULL};

/* ---- server ---- */

static const hx_field http3_fields[] = {
    F(hx_cfg_http3, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_http3, "port", port, HX_FT_INT),
    F(hx_cfg_http3, "tls_cert_file", tls_cert_file, HX_FT_STRING),
    F(hx_cfg_http3, "tls_key_file", tls_key_file, HX_FT_STRING),
    F(hx_cfg_http3, "idle_timeout", idle_timeout, HX_FT_DURATION),
    F(hx_cfg_http3, "max_bi_streams_concurrent", max_bi_streams_concurrent, HX_FT_INT),
    F(hx_cfg_http3, "max_uni_streams_concurrent", max_uni_streams_concurrent, HX_FT_INT),
    F(hx_cfg_http3, "max_stream_receive_window", max_stream_receive_window, HX_FT_SIZE),
    F(hx_cfg_http3, "max_connection_receive_window", max_connection_receive_window, HX_FT_SIZE),
    F(hx_cfg_http3, "udp_receive_buffer_size", udp_receive_buffer_size, HX_FT_SIZE),
    F(hx_cfg_http3, "enable_0rtt", enable_0rtt, HX_FT_BOOL),
    F(hx_cfg_http3, "max_0rtt_size", max_0rtt_size, HX_FT_SIZE),
    F(hx_cfg_http3, "allow_0rtt_replay", allow_0rtt_replay, HX_FT_BOOL),
    F(hx_cfg_http3, "address_validation", address_validation, HX_FT_STRING),
};
TABLE(http3_schema, hx_cfg_http3, NULL, http3_fields);

static int tls_cert_init(void *e)
{
    hx_cfg_tls_cert *c = e;
    dflt d = {true};
    dset(&d, &c->cert_file, "");
    dset(&d, &c->key_file, "");
    return d.ok ? 0 : -1;
}

static const hx_field tls_cert_fields[] = {
    F(hx_cfg_tls_cert, "cert_file", cert_file, HX_FT_STRING),
    F(hx_cfg_tls_cert, "key_file", key_file, HX_FT_STRING),
};
TABLE(tls_cert_schema, hx_cfg_tls_cert, tls_cert_init, tls_cert_fields);

static const hx_field tls_fields[] = {
    F(hx_cfg_tls, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_tls, "port", port, HX_FT_INT, R(1, 65535), .msg = "invalid TLS port"),
    F(hx_cfg_tls, "cert_file", cert_file, HX_FT_STRING),
    F(hx_cfg_tls, "key_file", key_file, HX_FT_STRING),
    LIST(hx_cfg_tls, "certificates", certificates, n_certificates, tls_cert_schema),
    F(hx_cfg_tls, "min_version", min_version, HX_FT_STRING, .values = STRS("1.2", "1.3"),
      .msg = "invalid TLS version (1.2 or 1.3)"),
    F(hx_cfg_tls, "priority", priority, HX_FT_STRING),
    F(hx_cfg_tls, "alpn", alpn, HX_FT_STRLIST, .values = STRS("h2", "http/1.1"),
      .msg = "unknown ALPN protocol (h2 or http/1.1)"),
    F(hx_cfg_tls, "client_ca_file", client_ca_file, HX_FT_STRING),
    F(hx_cfg_tls, "client_auth", client_auth, HX_FT_STRING, .values = STRS("none", "optional", "require"),
      .msg = "invalid client_auth (none, optional or require)"),
    F(hx_cfg_tls, "session_tickets", session_tickets, HX_FT_BOOL),
    F(hx_cfg_tls, "ticket_key_file", ticket_key_file, HX_FT_STRING),
    F(hx_cfg_tls, "redirect_http", redirect_http, HX_FT_BOOL),
    F(hx_cfg_tls, "handshake_timeout", handshake_timeout, HX_FT_DURATION, R(1, 10 * MIN),
      .msg = "invalid TLS handshake timeout"),
};
TABLE(tls_schema, hx_cfg_tls, NULL, tls_fields);

static const hx_field http2_fields[] = {
    F(hx_cfg_http2, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_http2, "h2c", h2c, HX_FT_BOOL),
    F(hx_cfg_http2, "max_concurrent_streams", max_concurrent_streams, HX_FT_INT, R(1, 100000)),
    F(hx_cfg_http2, "max_header_list_size", max_header_list_size, HX_FT_SIZE, R(0, 64 * MIB)),
    F(hx_cfg_http2, "initial_window_size", initial_window_size, HX_FT_SIZE, R(1, 2147483647)),
    F(hx_cfg_http2, "max_frame_size", max_frame_size, HX_FT_SIZE, R(16384, 16777215)),
    F(hx_cfg_http2, "max_resets_per_second", max_resets_per_second, HX_FT_INT, R(1, 1000000)),
    F(hx_cfg_http2, "max_continuations", max_continuations, HX_FT_INT, R(0, 1000)),
    F(hx_cfg_http2, "max_settings_per_second", max_settings_per_second, HX_FT_INT, R(1, 1000000)),
    F(hx_cfg_http2, "max_pings_per_second", max_pings_per_second, HX_FT_INT, R(1, 1000000)),
    F(hx_cfg_http2, "max_priority_per_second", max_priority_per_second, HX_FT_INT, R(1, 1000000)),
    F(hx_cfg_http2, "max_window_updates_per_second", max_window_updates_per_second, HX_FT_INT,
      R(1, 1000000)),
    F(hx_cfg_http2, "max_empty_data_per_second", max_empty_data_per_second, HX_FT_INT, R(1, 1000000)),
    F(hx_cfg_http2, "idle_timeout", idle_timeout, HX_FT_DURATION, R(0, DMAX)),
    F(hx_cfg_http2, "slow_read_timeout", slow_read_timeout, HX_FT_DURATION, R(0, DMAX)),
};
TABLE(http2_schema, hx_cfg_http2, NULL, http2_fields);

static const hx_field sys_health_fields[] = {
    F(hx_cfg_sys_health, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_sys_health, "interval", interval, HX_FT_DURATION, R(1, DMAX)),
    F(hx_cfg_sys_health, "timeout", timeout, HX_FT_DURATION, R(1, DMAX)),
    F(hx_cfg_sys_health, "threshold", threshold, HX_FT_INT, R(1, 1000000)),
    F(hx_cfg_sys_health, "checks", checks, HX_FT_KVMAP),
    F(hx_cfg_sys_health, "memory_threshold", memory_threshold, HX_FT_PERCENT),
    F(hx_cfg_sys_health, "cpu_threshold", cpu_threshold, HX_FT_PERCENT),
    F(hx_cfg_sys_health, "disk_threshold", disk_threshold, HX_FT_PERCENT),
    F(hx_cfg_sys_health, "latency_threshold", latency_threshold, HX_FT_DURATION, R(0, DMAX)),
};
TABLE(sys_health_schema, hx_cfg_sys_health, NULL, sys_health_fields);

static const hx_field server_fields[] = {
    F(hx_cfg_server, "host", host, HX_FT_STRING),
    F(hx_cfg_server, "port", port, HX_FT_INT, R(0, 65535), .msg = "invalid port"),
    F(hx_cfg_server, "read_timeout", read_timeout, HX_FT_DURATION, R(0, DMAX),
      .neg_msg = "negative read timeout"),
    F(hx_cfg_server, "write_timeout", write_timeout, HX_FT_DURATION, R(0, DMAX),
      .neg_msg = "negative write timeout"),
    F(hx_cfg_server, "idle_timeout", idle_timeout, HX_FT_DURATION, R(0, DMAX),
      .neg_msg = "negative idle timeout"),
    F(hx_cfg_server, "max_header_bytes", max_header_bytes, HX_FT_SIZE, R(KIB, 64 * MIB),
      .neg_msg = "negative max header bytes"),
    F(hx_cfg_server, "max_body_bytes", max_body_bytes, HX_FT_SIZE, R(KIB, GIB),
      .neg_msg = "negative max body bytes"),
    F(hx_cfg_server, "max_json_depth", max_json_depth, HX_FT_INT, R(1, HX_JSON_DEPTH_CAP)),
    F(hx_cfg_server, "max_json_elements", max_json_elements, HX_FT_INT, R(1, HX_JSON_ELEMENTS_CAP)),
    F(hx_cfg_server, "shutdown_timeout", shutdown_timeout, HX_FT_DURATION, R(0, DMAX),
      .neg_msg = "negative shutdown timeout"),
    F(hx_cfg_server, "max_connections", max_connections, HX_FT_INT, R(1, 1000000)),
    F(hx_cfg_server, "workers", workers, HX_FT_INT, R(0, 256)),
    F(hx_cfg_server, "middleware", middleware, HX_FT_STRLIST, .values = middleware_names,
      .msg = "unknown middleware"),
    F(hx_cfg_server, "health_check", health_check, HX_FT_STRUCT, .sub = &sys_health_schema),
    F(hx_cfg_server, "http3", http3, HX_FT_STRUCT, .sub = &http3_schema),
    F(hx_cfg_server, "tls", tls, HX_FT_STRUCT, .sub = &tls_schema),
    F(hx_cfg_server, "http2", http2, HX_FT_STRUCT, .sub = &http2_schema),
    F(hx_cfg_server, "allow_unauthenticated", allow_unauthenticated, HX_FT_BOOL),
};
TABLE(server_schema, hx_cfg_server, NULL, server_fields);

static void server_defaults(dflt *d, hx_cfg_server *s)
{
    /* Loopback: without client keys nothing that spends provider money
     * may reach the network unless the operator opts in. */
    dset(d, &s->host, "127.0.0.1");
    s->allow_unauthenticated = false;
    s->port = 8080;
    s->read_timeout = 30 * SEC;
    s->write_timeout = 45 * SEC;
    s->idle_timeout = 60 * SEC;
    s->max_header_bytes = 2 * MIB;
    s->max_body_bytes = 10 * MIB;
    s->max_json_depth = HX_JSON_MAX_DEPTH;
    s->max_json_elements = HX_JSON_MAX_ELEMENTS;
    s->shutdown_timeout = 30 * SEC;
    s->max_connections = 10000;
    s->workers = 0;
    /* Refusals (rate limit, bad key) come before the queue: a keyless
     * flood must not take the slots real clients wait for. */
    dlist(d, &s->middleware, STRS("request_id", "request_timer", "panic_recovery", "cors", "rate_limit",
                                  "auth", "queue", "logging"));
    s->health_check = (hx_cfg_sys_health){.interval = 60 * SEC, .timeout = 5 * SEC,
                                          .threshold = 3, .memory_threshold = 90,
                                          .cpu_threshold = 80, .disk_threshold = 95,
                                          .latency_threshold = 500};
    /* HTTP/2 defaults: nghttp2's and nginx's orders of magnitude; a
     * browser or SDK stays far below every rate. */
    s->http2 = (hx_cfg_http2){.enabled = true, .h2c = false, .max_concurrent_streams = 100,
                              .max_header_list_size = 0, .initial_window_size = 65535,
                              .max_frame_size = 16384, .max_resets_per_second = 100,
                              .max_continuations = 8, .max_settings_per_second = 20,
                              .max_pings_per_second = 20, .max_priority_per_second = 200,
                              .max_window_updates_per_second = 2000, .max_empty_data_per_second = 50,
                              .idle_timeout = 60 * SEC, .slow_read_timeout = 30 * SEC};
    hx_cfg_http3 *h = &s->http3;
    h->port = 443;
    dset(d, &h->tls_cert_file, "");
    dset(d, &h->tls_key_file, "");
    h->idle_timeout = 30 * SEC;
    h->max_bi_streams_concurrent = 100;
    h->max_uni_streams_concurrent = 100;
    h->max_stream_receive_window = 6 * MIB;
    h->max_connection_receive_window = 15 * MIB;
    h->udp_receive_buffer_size = 8 * MIB;
    h->enable_0rtt = true;
    h->max_0rtt_size = 16 * KIB;
    h->allow_0rtt_replay = false;
    dset(d, &h->address_validation, "auto");
    hx_cfg_tls *t = &s->tls;
    t->port = 8443;
    dset(d, &t->cert_file, "");
    dset(d, &t->key_file, "");
    dset(d, &t->min_version, "1.2");
    dset(d, &t->priority, "");
    dlist(d, &t->alpn, STRS("h2", "http/1.1"));
    dset(d, &t->client_ca_file, "");
    dset(d, &t->client_auth, "none");
    t->session_tickets = true;
    dset(d, &t->ticket_key_file, "");
    t->handshake_timeout = 10 * SEC;
}

/* ---- llm ---- */

static const hx_field sentinel_fields[] = {
    F(hx_cfg_sentinel, "master_name", master_name, HX_FT_STRING),
    F(hx_cfg_sentinel, "addresses", addresses, HX_FT_STRLIST),
};
TABLE(sentinel_schema, hx_cfg_sentinel, NULL, sentinel_fields);

static const hx_field redis_fields[] = {
    F(hx_cfg_redis, "address", address, HX_FT_STRING),
    F(hx_cfg_redis, "username", username, HX_FT_STRING),
    F(hx_cfg_redis, "password", password, HX_FT_STRING, .flags = HX_FF_SECRET),
    F(hx_cfg_redis, "db", db, HX_FT_INT, R(0, 1000000)),
    F(hx_cfg_redis, "prefix", prefix, HX_FT_STRING),
    F(hx_cfg_redis, "connect_timeout", connect_timeout, HX_FT_DURATION, R(10, MIN)),
    F(hx_cfg_redis, "command_timeout", command_timeout, HX_FT_DURATION, R(10, MIN)),
    F(hx_cfg_redis, "on_failure", on_failure, HX_FT_STRING, .values = STRS("local", "deny"),
      .msg = "invalid on_failure (local or deny)"),
    F(hx_cfg_redis, "tls", tls, HX_FT_BOOL),
    F(hx_cfg_redis, "tls_ca_file", tls_ca_file, HX_FT_STRING),
    F(hx_cfg_redis, "tls_server_name", tls_server_name, HX_FT_STRING),
    F(hx_cfg_redis, "tls_cert_file", tls_cert_file, HX_FT_STRING),
    F(hx_cfg_redis, "tls_key_file", tls_key_file, HX_FT_STRING),
    F(hx_cfg_redis, "sentinel", sentinel, HX_FT_STRUCT, .sub = &sentinel_schema),
};
TABLE(redis_schema, hx_cfg_redis, NULL, redis_fields);

static const hx_field cache_fields[] = {
    F(hx_cfg_cache, "enable", enable, HX_FT_BOOL),
    F(hx_cfg_cache, "type", type, HX_FT_STRING, .values = STRS("memory", "redis", "file"),
      .msg = "invalid cache type"),
    F(hx_cfg_cache, "ttl", ttl, HX_FT_DURATION, R(0, DMAX)),
    F(hx_cfg_cache, "max_size", max_size, HX_FT_INT, R(0, DMAX)),
    F(hx_cfg_cache, "dir", dir, HX_FT_STRING),
    F(hx_cfg_cache, "scope", scope, HX_FT_STRING, .values = STRS("key", "route", "global"),
      .msg = "invalid cache scope (key, route or global)"),
    F(hx_cfg_cache, "redis", redis, HX_FT_STRUCT, .sub = &redis_schema),
};
TABLE(cache_schema, hx_cfg_cache, NULL, cache_fields);

static const hx_field retry_fields[] = {
    F(hx_cfg_retry, "max_retries", max_retries, HX_FT_INT, R(0, 100)),
    F(hx_cfg_retry, "initial_delay", initial_delay, HX_FT_DURATION, R(0, DMAX)),
    F(hx_cfg_retry, "max_delay", max_delay, HX_FT_DURATION, R(0, DMAX)),
    F(hx_cfg_retry, "multiplier", multiplier, HX_FT_DOUBLE, .flags = HX_FF_RANGE, .dmin = 1,
      .dmax = 100),
    F(hx_cfg_retry, "retryable_errors", retryable_errors, HX_FT_STRLIST,
      .values = STRS("rate_limit", "timeout", "server_error", "connection", "unanswered"),
      .msg = "unknown retryable error"),
    F(hx_cfg_retry, "budget_percent", budget_percent, HX_FT_PERCENT),
};
TABLE(retry_schema, hx_cfg_retry, NULL, retry_fields);

static int backup_init(void *e)
{
    hx_cfg_backup *b = e;
    dflt d = {true};
    dset(&d, &b->name, "");
    dset(&d, &b->provider, "");
    dset(&d, &b->model, "");
    dset(&d, &b->api_key, "");
    dset(&d, &b->endpoint, "");
    dset(&d, &b->responses_api, "auto");
    return d.ok ? 0 : -1;
}

static const hx_field backup_fields[] = {
    F(hx_cfg_backup, "name", name, HX_FT_STRING),
    F(hx_cfg_backup, "provider", provider, HX_FT_STRING, .flags = HX_FF_EMPTY_OK,
      .values = provider_names, .msg = "invalid provider"),
    F(hx_cfg_backup, "model", model, HX_FT_STRING),
    F(hx_cfg_backup, "api_key", api_key, HX_FT_STRING, .flags = HX_FF_SECRET),
    F(hx_cfg_backup, "endpoint", endpoint, HX_FT_STRING),
    F(hx_cfg_backup, "aliases", aliases, HX_FT_STRLIST),
    F(hx_cfg_backup, "responses_api", responses_api, HX_FT_STRING, .values = STRS("auto", "native", "translate"),
      .msg = "invalid responses_api (auto, native or translate)"),
};
TABLE(backup_schema, hx_cfg_backup, backup_init, backup_fields);

static const hx_field provider_health_fields[] = {
    F(hx_cfg_provider_health, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_provider_health, "interval", interval, HX_FT_DURATION),
    F(hx_cfg_provider_health, "timeout", timeout, HX_FT_DURATION),
    F(hx_cfg_provider_health, "failure_threshold", failure_threshold, HX_FT_INT),
};
TABLE(provider_health_schema, hx_cfg_provider_health, NULL, provider_health_fields);

static const hx_field responses_fields[] = {
    F(hx_cfg_responses, "max_stored", max_stored, HX_FT_INT, R(0, 10000000)),
    F(hx_cfg_responses, "max_bytes", max_bytes, HX_FT_SIZE, R(0, 64 * GIB)),
    F(hx_cfg_responses, "ttl", ttl, HX_FT_DURATION, R(SEC, (int64_t)365 * 24 * 60 * MIN)),
};
TABLE(responses_schema, hx_cfg_responses, NULL, responses_fields);

static const hx_field llm_fields[] = {
    F(hx_cfg_llm, "name", name, HX_FT_STRING),
    F(hx_cfg_llm, "provider", provider, HX_FT_STRING, .flags = HX_FF_EMPTY_OK,
      .values = provider_names, .msg = "invalid LLM provider"),
    F(hx_cfg_llm, "model", model, HX_FT_STRING),
    F(hx_cfg_llm, "api_key", api_key, HX_FT_STRING, .flags = HX_FF_SECRET),
    F(hx_cfg_llm, "endpoint", endpoint, HX_FT_STRING),
    F(hx_cfg_llm, "aliases", aliases, HX_FT_STRLIST),
    F(hx_cfg_llm, "model_map", model_map, HX_FT_KVMAP),
    F(hx_cfg_llm, "system_prompt", system_prompt, HX_FT_STRING),
    F(hx_cfg_llm, "max_context_tokens", max_context_tokens, HX_FT_INT, R(0, DMAX),
      .neg_msg = "negative max context tokens"),
    F(hx_cfg_llm, "cache", cache, HX_FT_STRUCT, .sub = &cache_schema),
    F(hx_cfg_llm, "retry", retry, HX_FT_STRUCT, .sub = &retry_schema),
    F(hx_cfg_llm, "options", options, HX_FT_KVMAP),
    LIST(hx_cfg_llm, "backup_providers", backup_providers, n_backup_providers, backup_schema),
    F(hx_cfg_llm, "health_check", health_check, HX_FT_STRUCT, .sub = &provider_health_schema),
    F(hx_cfg_llm, "connect_timeout", connect_timeout, HX_FT_DURATION, R(1, DMAX)),
    F(hx_cfg_llm, "first_byte_timeout", first_byte_timeout, HX_FT_DURATION, R(1, DMAX)),
    F(hx_cfg_llm, "request_timeout", request_timeout, HX_FT_DURATION, R(1, DMAX)),
    F(hx_cfg_llm, "stream_idle_timeout", stream_idle_timeout, HX_FT_DURATION, R(0, DMAX)),
    F(hx_cfg_llm, "upstream_buffer_budget", upstream_buffer_budget, HX_FT_SIZE, R(MIB, 64 * GIB)),
    F(hx_cfg_llm, "panic", panic, HX_FT_BOOL),
    F(hx_cfg_llm, "responses", responses, HX_FT_STRUCT, .sub = &responses_schema),
    F(hx_cfg_llm, "responses_api", responses_api, HX_FT_STRING, .values = STRS("auto", "native", "translate"),
      .msg = "invalid responses_api (auto, native or translate)"),
};
TABLE(llm_schema, hx_cfg_llm, NULL, llm_fields);

static void redis_defaults(dflt *d, hx_cfg_redis *r)
{
    dset(d, &r->address, "localhost:6379");
    dset(d, &r->username, "");
    dset(d, &r->password, "");
    r->db = 0;
    dset(d, &r->prefix, "hapax:");
    r->connect_timeout = SEC;
    r->command_timeout = SEC;
    dset(d, &r->on_failure, "local");
    r->tls = false;
    dset(d, &r->tls_ca_file, "");
    dset(d, &r->tls_server_name, "");
    dset(d, &r->tls_cert_file, "");
    dset(d, &r->tls_key_file, "");
    dset(d, &r->sentinel.master_name, "");
}

static void llm_defaults(dflt *d, hx_cfg_llm *l)
{
    dset(d, &l->name, "");
    dset(d, &l->provider, "ollama");
    dset(d, &l->model, "llama2");
    dset(d, &l->api_key, "");
    dset(d, &l->endpoint, "");
    dset(d, &l->system_prompt, "");
    l->max_context_tokens = 16384;
    l->cache.enable = false;
    dset(d, &l->cache.type, "memory");
    l->cache.ttl = 60 * MIN;
    l->cache.max_size = 1000;
    dset(d, &l->cache.dir, "");
    dset(d, &l->cache.scope, "key");
    redis_defaults(d, &l->cache.redis);
    l->retry.max_retries = 5;
    l->retry.initial_delay = 100;
    l->retry.max_delay = 5 * SEC;
    l->retry.multiplier = 1.5;
    dlist(d, &l->retry.retryable_errors, STRS("rate_limit", "timeout", "server_error", "connection"));
    l->retry.budget_percent = 20;
    l->health_check = (hx_cfg_provider_health){.enabled = true, .interval = 15 * SEC,
                                               .timeout = 5 * SEC, .failure_threshold = 2};
    l->connect_timeout = 10 * SEC;
    l->first_byte_timeout = 60 * SEC;
    l->request_timeout = 300 * SEC;
    l->stream_idle_timeout = 60 * SEC;
    l->upstream_buffer_budget = 256 * MIB;
    l->panic = true;
    l->responses = (hx_cfg_responses){.max_stored = 10000, .max_bytes = 64 * MIB, .ttl = 24 * 60 * MIN};
    dset(d, &l->responses_api, "auto");
}

/* ---- providers, circuit_breaker, queue, cors ---- */

static int named_provider_init(void *e)
{
    hx_cfg_named_provider *p = e;
    dflt d = {true};
    dset(&d, &p->type, "");
    dset(&d, &p->model, "");
    dset(&d, &p->api_key, "");
    dset(&d, &p->endpoint, "");
    return d.ok ? 0 : -1;
}

static const hx_field named_provider_fields[] = {
    F(hx_cfg_named_provider, "type", type, HX_FT_STRING, .flags = HX_FF_EMPTY_OK,
      .values = provider_names, .msg = "invalid provider type"),
    F(hx_cfg_named_provider, "model", model, HX_FT_STRING),
    F(hx_cfg_named_provider, "api_key", api_key, HX_FT_STRING, .flags = HX_FF_SECRET),
    F(hx_cfg_named_provider, "endpoint", endpoint, HX_FT_STRING),
};
TABLE(named_provider_schema, hx_cfg_named_provider, named_provider_init, named_provider_fields);

static const hx_field breaker_fields[] = {
    F(hx_cfg_breaker, "max_requests", max_requests, HX_FT_INT, R(1, UINT32_MAX)),
    F(hx_cfg_breaker, "interval", interval, HX_FT_DURATION, R(0, DMAX)),
    F(hx_cfg_breaker, "timeout", timeout, HX_FT_DURATION, R(1, DMAX)),
    F(hx_cfg_breaker, "failure_threshold", failure_threshold, HX_FT_INT, R(1, UINT32_MAX)),
    F(hx_cfg_breaker, "min_requests", min_requests, HX_FT_INT, R(1, UINT32_MAX)),
    F(hx_cfg_breaker, "failure_rate", failure_rate, HX_FT_INT, R(1, 100)),
    F(hx_cfg_breaker, "test_mode", test_mode, HX_FT_BOOL),
};
TABLE(breaker_schema, hx_cfg_breaker, NULL, breaker_fields);

static const hx_field queue_fields[] = {
    F(hx_cfg_queue, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_queue, "initial_size", initial_size, HX_FT_INT, R(0, 10000000)),
    F(hx_cfg_queue, "max_concurrent", max_concurrent, HX_FT_INT, R(1, 1000000)),
    F(hx_cfg_queue, "max_wait", max_wait, HX_FT_DURATION, R(0, DMAX)),
    F(hx_cfg_queue, "lease_ttl", lease_ttl, HX_FT_DURATION, R(SEC, 10 * MIN)),
    F(hx_cfg_queue, "state_path", state_path, HX_FT_STRING),
    F(hx_cfg_queue, "save_interval", save_interval, HX_FT_DURATION, R(0, DMAX)),
};
TABLE(queue_schema, hx_cfg_queue, NULL, queue_fields);

static const hx_field cors_fields[] = {
    F(hx_cfg_cors, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_cors, "allow_origins", allow_origins, HX_FT_STRLIST),
    F(hx_cfg_cors, "allow_methods", allow_methods, HX_FT_STRLIST),
    F(hx_cfg_cors, "allow_headers", allow_headers, HX_FT_STRLIST),
    F(hx_cfg_cors, "expose_headers", expose_headers, HX_FT_STRLIST),
    F(hx_cfg_cors, "allow_credentials", allow_credentials, HX_FT_BOOL),
    F(hx_cfg_cors, "max_age", max_age, HX_FT_DURATION, R(0, DMAX)),
};
TABLE(cors_schema, hx_cfg_cors, NULL, cors_fields);

static void misc_defaults(dflt *d, hx_config *c)
{
    c->circuit_breaker = (hx_cfg_breaker){.max_requests = 100, .interval = 30 * SEC,
                                          .timeout = 10 * SEC, .failure_threshold = 5,
                                          .min_requests = 10, .failure_rate = 50};
    c->queue.enabled = false;
    c->queue.initial_size = 1000;
    c->queue.max_concurrent = 64;
    c->queue.max_wait = 30 * SEC;
    c->queue.lease_ttl = 10 * SEC;
    dset(d, &c->queue.state_path, "");
    c->queue.save_interval = 30 * SEC;
    hx_cfg_cors *k = &c->cors;
    dlist(d, &k->allow_origins, STRS("*"));
    dlist(d, &k->allow_methods, STRS("GET", "POST", "PUT", "DELETE", "OPTIONS"));
    /* What the official OpenAI and Anthropic SDKs send from a browser. */
    dlist(d, &k->allow_headers, STRS("Accept", "Authorization", "Content-Type", "X-CSRF-Token", "X-API-Key",
                                     "X-Request-ID", "User-Agent", "X-Stainless-*", "anthropic-version",
                                     "anthropic-beta", "anthropic-dangerous-direct-browser-access",
                                     "OpenAI-Organization", "OpenAI-Project", "Idempotency-Key"));
    dlist(d, &k->expose_headers, STRS("X-Request-ID", "Request-ID", "X-Response-Time", "X-Hapax-Provider",
                                      "X-Hapax-Attempts", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
                                      "RateLimit-Reset"));
    k->max_age = 10 * MIN;
}

/* ---- auth, rate_limit, state, logging, metrics ---- */

static const hx_field rate_fields[] = {
    F(hx_cfg_rate, "requests_per_minute", requests_per_minute, HX_FT_INT, R(0, DMAX)),
    F(hx_cfg_rate, "burst", burst, HX_FT_INT, R(0, DMAX)),
    F(hx_cfg_rate, "tokens_per_minute", tokens_per_minute, HX_FT_INT, R(0, DMAX)),
};
TABLE(rate_schema, hx_cfg_rate, NULL, rate_fields);

static int auth_key_init(void *e)
{
    hx_cfg_auth_key *k = e;
    dflt d = {true};
    dset(&d, &k->name, "");
    dset(&d, &k->key, "");
    dset(&d, &k->key_sha256, "");
    dset(&d, &k->client_cert, "");
    return d.ok ? 0 : -1;
}

static const hx_field auth_key_fields[] = {
    F(hx_cfg_auth_key, "name", name, HX_FT_STRING),
    F(hx_cfg_auth_key, "key", key, HX_FT_STRING, .flags = HX_FF_SECRET),
    F(hx_cfg_auth_key, "key_sha256", key_sha256, HX_FT_STRING, .flags = HX_FF_SECRET),
    F(hx_cfg_auth_key, "client_cert", client_cert, HX_FT_STRING),
    F(hx_cfg_auth_key, "models", models, HX_FT_STRLIST),
    F(hx_cfg_auth_key, "rate_limit", rate_limit, HX_FT_STRUCT, .sub = &rate_schema),
    F(hx_cfg_auth_key, "metrics", metrics, HX_FT_BOOL),
};
TABLE(auth_key_schema, hx_cfg_auth_key, auth_key_init, auth_key_fields);

static const hx_field auth_fields[] = {
    F(hx_cfg_auth, "enabled", enabled, HX_FT_BOOL),
    LIST(hx_cfg_auth, "keys", keys, n_keys, auth_key_schema),
    F(hx_cfg_auth, "metrics_require_auth", metrics_require_auth, HX_FT_BOOL),
};
TABLE(auth_schema, hx_cfg_auth, NULL, auth_fields);

/* In YAML the three limits sit directly under rate_limit. */
static const hx_field rate_limit_fields[] = {
    F(hx_cfg_rate_limit, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_rate_limit, "requests_per_minute", limits.requests_per_minute, HX_FT_INT,
      R(0, DMAX)),
    F(hx_cfg_rate_limit, "burst", limits.burst, HX_FT_INT, R(0, DMAX)),
    F(hx_cfg_rate_limit, "tokens_per_minute", limits.tokens_per_minute, HX_FT_INT, R(0, DMAX)),
    F(hx_cfg_rate_limit, "trusted_proxies", trusted_proxies, HX_FT_STRLIST),
};
TABLE(rate_limit_schema, hx_cfg_rate_limit, NULL, rate_limit_fields);

static const hx_field state_fields[] = {
    F(hx_cfg_state, "backend", backend, HX_FT_STRING, .values = STRS("memory", "redis"),
      .msg = "invalid state backend"),
    F(hx_cfg_state, "redis", redis, HX_FT_STRUCT, .sub = &redis_schema),
};
TABLE(state_schema, hx_cfg_state, NULL, state_fields);

static const hx_field logging_fields[] = {
    F(hx_cfg_logging, "level", level, HX_FT_STRING, .values = STRS("debug", "info", "warn", "error"),
      .msg = "invalid log level"),
    F(hx_cfg_logging, "format", format, HX_FT_STRING, .values = STRS("json", "text"),
      .msg = "invalid log format"),
    F(hx_cfg_logging, "access_log", access_log, HX_FT_BOOL),
    F(hx_cfg_logging, "file", file, HX_FT_STRING),
};
TABLE(logging_schema, hx_cfg_logging, NULL, logging_fields);

static const hx_field metrics_fields[] = {
    F(hx_cfg_metrics, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_metrics, "path", path, HX_FT_STRING),
};
TABLE(metrics_schema, hx_cfg_metrics, NULL, metrics_fields);

static void access_defaults(dflt *d, hx_config *c)
{
    c->auth.metrics_require_auth = true;
    c->rate_limit.limits = (hx_cfg_rate){.requests_per_minute = 60, .burst = 10};
    dset(d, &c->state.backend, "memory");
    redis_defaults(d, &c->state.redis);
    dset(d, &c->logging.level, "info");
    dset(d, &c->logging.format, "json");
    c->logging.access_log = true;
    dset(d, &c->logging.file, "");
    c->metrics.enabled = true;
    dset(d, &c->metrics.path, "/metrics");
}

/* ---- routes ---- */

static const hx_field route_health_fields[] = {
    F(hx_cfg_route_health, "enabled", enabled, HX_FT_BOOL),
    F(hx_cfg_route_health, "interval", interval, HX_FT_DURATION, R(1, DMAX)),
    F(hx_cfg_route_health, "timeout", timeout, HX_FT_DURATION, R(1, DMAX)),
    F(hx_cfg_route_health, "threshold", threshold, HX_FT_INT, R(1, 1000000)),
    F(hx_cfg_route_health, "checks", checks, HX_FT_KVMAP),
};
TABLE(route_health_schema, hx_cfg_route_health, NULL, route_health_fields);

static int route_init(void *e)
{
    hx_cfg_route *r = e;
    dflt d = {true};
    dset(&d, &r->path, "");
    dset(&d, &r->handler, "");
    dset(&d, &r->version, ""); /* unversioned: the path is served as written */
    r->health_check = (hx_cfg_route_health){.interval = 30 * SEC, .timeout = 5 * SEC,
                                            .threshold = 3};
    return d.ok ? 0 : -1;
}

static const hx_field route_fields[] = {
    F(hx_cfg_route, "path", path, HX_FT_STRING),
    F(hx_cfg_route, "handler", handler, HX_FT_STRING, .flags = HX_FF_EMPTY_OK,
      .values = hx_config_handler_names,
      .msg = "invalid handler"),
    F(hx_cfg_route, "version", version, HX_FT_STRING),
    F(hx_cfg_route, "methods", methods, HX_FT_STRLIST,
      .values = STRS("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
      .msg = "invalid HTTP method"),
    F(hx_cfg_route, "headers", headers, HX_FT_KVMAP),
    F(hx_cfg_route, "middleware", middleware, HX_FT_STRLIST, .values = middleware_names,
      .msg = "unknown middleware"),
    F(hx_cfg_route, "health_check", health_check, HX_FT_STRUCT, .sub = &route_health_schema),
};
TABLE(route_schema, hx_cfg_route, route_init, route_fields);

static void routes_defaults(dflt *d, hx_config *c)
{
    const struct {
        const char *path, *handler;
        const char *const *methods;
    } def[] = {
        {"/v1/chat/completions", "chat", STRS("POST")},
        {"/v1/completions", "completion", STRS("POST")},
        {"/v1/messages", "messages", STRS("POST")},
        {"/v1/models", "models", STRS("GET", "HEAD")},
        {"/v1/models/{id...}", "model", STRS("GET", "HEAD")},
        {"/health", "health", STRS("GET", "HEAD")},
        {"/health/providers/{name}", "provider_health", STRS("GET", "HEAD")},
        {"/metrics", "metrics", STRS("GET")},
        {"/v1/responses", "responses", STRS("POST")},
        {"/v1/responses/{id}", "responses", STRS("GET", "DELETE")},
        {"/v1/embeddings", "embeddings", STRS("POST")},
        {"/v1/messages/count_tokens", "count_tokens", STRS("POST")},
    };
    size_t n = sizeof def / sizeof def[0];
    c->routes = hx_calloc(n, sizeof *c->routes);
    if (c->routes == NULL) {
        d->ok = false;
        return;
    }
    for (; c->n_routes < n; c->n_routes++) {
        hx_cfg_route *r = &c->routes[c->n_routes];
        if (route_init(r) != 0)
            d->ok = false;
        dset(d, &r->path, def[c->n_routes].path);
        dset(d, &r->handler, def[c->n_routes].handler);
        dlist(d, &r->methods, def[c->n_routes].methods);
        if (strncmp(def[c->n_routes].path, "/v1/", 4) == 0)
            dset(d, &r->version, "v1");
    }
}

/* ---- the whole config ---- */

static const hx_field config_fields[] = {
    F(hx_config, "server", server, HX_FT_STRUCT, .sub = &server_schema),
    F(hx_config, "llm", llm, HX_FT_STRUCT, .sub = &llm_schema),
    F(hx_config, "providers", providers, HX_FT_MAP, .count_off = offsetof(hx_config, n_providers),
      .names_off = offsetof(hx_config, provider_names), .sub = &named_provider_schema),
    F(hx_config, "provider_preference", provider_preference, HX_FT_STRLIST),
    F(hx_config, "circuit_breaker", circuit_breaker, HX_FT_STRUCT, .sub = &breaker_schema),
    F(hx_config, "queue", queue, HX_FT_STRUCT, .sub = &queue_schema),
    F(hx_config, "cors", cors, HX_FT_STRUCT, .sub = &cors_schema),
    F(hx_config, "auth", auth, HX_FT_STRUCT, .sub = &auth_schema),
    F(hx_config, "rate_limit", rate_limit, HX_FT_STRUCT, .sub = &rate_limit_schema),
    F(hx_config, "state", state, HX_FT_STRUCT, .sub = &state_schema),
    F(hx_config, "logging", logging, HX_FT_STRUCT, .sub = &logging_schema),
    F(hx_config, "metrics", metrics, HX_FT_STRUCT, .sub = &metrics_schema),
    LIST(hx_config, "routes", routes, n_routes, route_schema),
};
const hx_schema hx__config_schema = {"hx_config", sizeof(hx_config), NULL, config_fields,
                                     sizeof config_fields / sizeof config_fields[0]};

hx_config *hx_config_default(void)
{
    hx_config *c = hx_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    dflt d = {true};
    server_defaults(&d, &c->server);
    llm_defaults(&d, &c->llm);
    misc_defaults(&d, c);
    access_defaults(&d, c);
    routes_defaults(&d, c);
    if (!d.ok || hx__config_finalize(c) != 0) {
        hx_config_unref(c);
        return NULL;
    }
    return c;
}

/* ---- finalize ---- */

static int normalise_middleware(hx_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i], "rate-limit") != 0)
            continue;
        char *v = hx_strdup("rate_limit");
        if (v == NULL)
            return -1;
        hx_free(l->items[i]);
        l->items[i] = v;
    }
    return 0;
}

static const char *const *handler_methods(const char *handler)
{
    static const char *const post[] = {"POST", NULL};
    static const char *const get[] = {"GET", "HEAD", NULL};
    if (hx_config_handler_flags(handler) & HX_HANDLER_POST)
        return post;
    for (size_t i = 0; hx_config_handler_names[i]; i++)
        if (strcmp(handler, hx_config_handler_names[i]) == 0)
            return get;
    return NULL;
}

int hx__config_finalize(hx_config *cfg)
{
    dflt d = {true};
    if (normalise_middleware(&cfg->server.middleware) != 0 || hx__config_apply_overrides(cfg) != 0)
        return -1;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        hx_cfg_route *r = &cfg->routes[i];
        if (normalise_middleware(&r->middleware) != 0)
            return -1;
        const char *const *m = handler_methods(r->handler);
        if (r->methods.n == 0 && m != NULL)
            dlist(&d, &r->methods, m);
    }
    for (size_t i = 0; i < cfg->llm.n_backup_providers; i++) {
        hx_cfg_backup *b = &cfg->llm.backup_providers[i];
        if (b->name[0] == '\0')
            dset(&d, &b->name, b->provider);
    }
    return d.ok ? 0 : -1;
}
