/* Typed, immutable configuration.
 *
 * The loader parses YAML into these structs once; runtime code never sees
 * YAML. Durations are milliseconds (int64_t), sizes are bytes (int64_t).
 * Strings are heap-owned by the config and freed with it; every string
 * field of a config from hx_config_default or a loader is non-NULL ("" when
 * unset).
 * A config is reference counted so a reload can swap it while requests
 * keep the one they started with (hx_config_ref / hx_config_unref). */
#ifndef HX_CONFIG_CONFIG_H
#define HX_CONFIG_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A list of strings, e.g. methods or retryable_errors. */
typedef struct {
    char **items;
    size_t n;
} hx_strlist;

/* One `key: value` of a string map (route headers, health-check checks,
 * llm.options). `is_string` tells a quoted/text value from a number or
 * bool whose original text is kept as is (a proxy keeps numbers exact). */
typedef struct hx_kv {
    char *key;
    char *value;
    bool is_string;
} hx_kv;

typedef struct {
    hx_kv *items;
    size_t n;
} hx_kvlist;

typedef struct {
    bool enabled;
    int64_t port;
    char *tls_cert_file;
    char *tls_key_file;
    int64_t idle_timeout;                 /* ms */
    int64_t max_bi_streams_concurrent;
    int64_t max_uni_streams_concurrent;
    int64_t max_stream_receive_window;    /* bytes */
    int64_t max_connection_receive_window;/* bytes */
    int64_t udp_receive_buffer_size;      /* bytes */
    bool enable_0rtt;
    int64_t max_0rtt_size;                /* bytes */
    bool allow_0rtt_replay;
    char *address_validation;             /* auto | always | never (Retry before a handshake) */
} hx_cfg_http3;

/* One certificate of server.tls: a PEM chain (leaf first) and its key. */
typedef struct {
    char *cert_file;
    char *key_file;
} hx_cfg_tls_cert;

/* server.tls (docs/tls.md). The shorthand cert_file/key_file is the first
 * (default) certificate; certificates[] follow it, chosen by SNI. */
typedef struct {
    bool enabled;
    int64_t port;              /* HTTPS port; equal to server.port = TLS only there */
    char *cert_file;
    char *key_file;
    hx_cfg_tls_cert *certificates;
    size_t n_certificates;
    char *min_version;         /* "1.2" | "1.3" */
    char *priority;            /* GnuTLS priority string; "" = the built-in default */
    hx_strlist alpn;           /* h2, http/1.1, in preference order */
    char *client_ca_file;
    char *client_auth;         /* none | optional | require */
    bool session_tickets;
    char *ticket_key_file;     /* 64 bytes shared by instances; "" = a per-process key */
    bool redirect_http;        /* the plain port answers 308 to https */
    int64_t handshake_timeout; /* ms */
} hx_cfg_tls;

/* server.http2: the HTTP/2 adapter (src/http/h2*.c) and its defences.
 * Rates are per second per connection (token buckets, burst = rate). */
typedef struct {
    bool enabled;                 /* offered by ALPN on TLS (next round) */
    bool h2c;                     /* prior knowledge on the cleartext port */
    int64_t max_concurrent_streams;
    int64_t max_header_list_size; /* bytes; 0 = server.max_header_bytes */
    int64_t initial_window_size;  /* bytes */
    int64_t max_frame_size;       /* bytes */
    int64_t max_resets_per_second;        /* client RST_STREAM + resets we are provoked into */
    int64_t max_continuations;            /* CONTINUATION frames per header block */
    int64_t max_settings_per_second;
    int64_t max_pings_per_second;
    int64_t max_priority_per_second;
    int64_t max_window_updates_per_second;
    int64_t max_empty_data_per_second;
    int64_t idle_timeout;         /* ms without an open stream (0 = none) */
    int64_t slow_read_timeout;    /* ms without output progress while output waits (0 = none) */
} hx_cfg_http2;

/* System health thresholds (server.health_check). Percentages 0..100. */
typedef struct {
    bool enabled;
    int64_t interval;          /* ms */
    int64_t timeout;           /* ms */
    int64_t threshold;
    hx_kvlist checks;
    double memory_threshold;   /* percent, 0 = off */
    double cpu_threshold;
    double disk_threshold;
    int64_t latency_threshold; /* ms, 0 = off */
} hx_cfg_sys_health;

typedef struct {
    char *host;
    int64_t port;
    int64_t read_timeout;      /* ms */
    int64_t write_timeout;     /* ms */
    int64_t idle_timeout;      /* ms */
    int64_t max_header_bytes;
    int64_t max_body_bytes;
    int64_t max_json_depth;    /* nesting of a client JSON body → 400 */
    int64_t max_json_elements; /* values in a client JSON body → 413 */
    int64_t shutdown_timeout;  /* ms */
    int64_t max_connections;
    int64_t workers;           /* 0 = number of CPUs */
    hx_strlist middleware;     /* global chain, in order */
    hx_cfg_sys_health health_check;
    hx_cfg_http3 http3;
    hx_cfg_tls tls;
    hx_cfg_http2 http2;
    /* Client auth off on a non-loopback host is a config error unless
     * this is true (an explicit opt-in, warned about at start); it also
     * opens /metrics to non-loopback clients while auth is off. */
    bool allow_unauthenticated;
} hx_cfg_server;

typedef struct {
    bool enabled;
    int64_t interval;          /* ms */
    int64_t timeout;           /* ms */
    int64_t failure_threshold;
} hx_cfg_provider_health;

typedef struct {
    int64_t max_retries;
    int64_t initial_delay;     /* ms */
    int64_t max_delay;         /* ms */
    double multiplier;
    hx_strlist retryable_errors; /* rate_limit, timeout, server_error, connection */
    double budget_percent;     /* retries may add at most this share of traffic */
} hx_cfg_retry;

/* Sentinel in front of Redis: the primary named master_name is asked of
 * `addresses` (host:port) before every connect; empty master_name = off. */
typedef struct {
    char *master_name;
    hx_strlist addresses;
} hx_cfg_sentinel;

typedef struct {
    char *address;             /* host:port, [v6]:port */
    char *username;            /* ACL user ("" = the default user) */
    char *password;            /* secret */
    int64_t db;
    char *prefix;              /* before every key: several gateways share one Redis */
    int64_t connect_timeout;   /* ms */
    int64_t command_timeout;   /* ms */
    char *on_failure;          /* state.redis: local | deny */
    bool tls;                  /* TLS to Redis (a relay: hiredis 0.14 has none) */
    char *tls_ca_file;         /* "" = the system's trust store */
    char *tls_server_name;     /* "" = the address's host */
    char *tls_cert_file;       /* a client certificate (Redis tls-auth-clients) */
    char *tls_key_file;
    hx_cfg_sentinel sentinel;
} hx_cfg_redis;

typedef struct {
    bool enable;
    char *type;                /* memory | redis | file */
    int64_t ttl;               /* ms */
    int64_t max_size;
    char *dir;
    char *scope;               /* key | route | global: who shares an entry */
    hx_cfg_redis redis;
} hx_cfg_cache;

/* llm.responses: the store of /v1/responses answers (store: true). */
typedef struct {
    int64_t max_stored;        /* responses kept */
    int64_t max_bytes;         /* their total size */
    int64_t ttl;               /* ms: a response is forgotten this long after it completed */
} hx_cfg_responses;

typedef struct {
    char *name;                /* defaults to provider */
    char *provider;            /* openai | anthropic | ollama */
    char *model;
    char *api_key;             /* secret */
    char *endpoint;
    hx_strlist aliases;        /* model names a request may use; "prefix*" matches a prefix */
    char *responses_api;       /* auto | native | translate: how /v1/responses reaches it */
} hx_cfg_backup;

typedef struct {
    char *name;                /* "" = the provider type */
    char *provider;
    char *model;
    char *api_key;             /* secret */
    char *endpoint;
    hx_strlist aliases;        /* as a backup's: other names, "prefix*" wildcards */
    hx_kvlist model_map;       /* client model name -> a served model name */
    char *system_prompt;
    int64_t max_context_tokens;
    hx_cfg_cache cache;
    hx_cfg_retry retry;
    hx_kvlist options;
    hx_cfg_backup *backup_providers;
    size_t n_backup_providers;
    hx_cfg_provider_health health_check;
    int64_t connect_timeout;   /* ms */
    int64_t first_byte_timeout;/* ms */
    int64_t request_timeout;   /* ms: whole request, retries included */
    int64_t stream_idle_timeout;    /* ms: longest gap between upstream body bytes (0 = none) */
    int64_t upstream_buffer_budget; /* bytes of non-streamed upstream answers held by the process */
    bool panic;                /* every provider of a chain down: still try the least-bad one */
    hx_cfg_responses responses;
    char *responses_api;       /* the primary's: auto | native | translate */
} hx_cfg_llm;

typedef struct {
    char *type;
    char *model;
    char *api_key;             /* secret */
    char *endpoint;
} hx_cfg_named_provider;

typedef struct {
    int64_t max_requests;      /* half-open trials in flight at once */
    int64_t interval;          /* ms: the sliding window (0 = since last closed) */
    int64_t timeout;           /* ms: how long it stays open */
    int64_t failure_threshold; /* least failed requests in the window to open */
    int64_t min_requests;      /* least requests in the window to open */
    int64_t failure_rate;      /* percent of the window's requests that failed */
    bool test_mode;
} hx_cfg_breaker;

typedef struct {
    bool enabled;
    int64_t initial_size;      /* max waiting requests */
    int64_t max_concurrent;    /* requests in flight */
    int64_t max_wait;          /* ms */
    int64_t lease_ttl;         /* ms: a cluster slot's lease (state.backend: redis) */
    char *state_path;
    int64_t save_interval;     /* ms */
} hx_cfg_queue;

typedef struct {
    bool enabled;
    hx_strlist allow_origins;
    hx_strlist allow_methods;
    hx_strlist allow_headers;
    hx_strlist expose_headers;
    bool allow_credentials;
    int64_t max_age;           /* ms, sent in seconds */
} hx_cfg_cors;

typedef struct {
    int64_t requests_per_minute;
    int64_t burst;
    int64_t tokens_per_minute;
} hx_cfg_rate;

/* The longest client certificate subject DN a key may name (and a
 * transport hands to hx_req.peer_cert_subject). */
#define HX_PEER_SUBJECT_MAX 255
#define HX_PEER_SHA256_HEX 64

typedef struct {
    char *name;
    char *key;                 /* secret */
    char *key_sha256;          /* hex */
    char *client_cert;         /* "sha256:HEX" or "subject:DN" of a verified TLS client certificate */
    hx_strlist models;         /* empty = any */
    hx_cfg_rate rate_limit;    /* 0 values = use the global limits */
    bool metrics;              /* may read /metrics */
} hx_cfg_auth_key;

typedef struct {
    bool enabled;
    hx_cfg_auth_key *keys;
    size_t n_keys;
    bool metrics_require_auth;
} hx_cfg_auth;

typedef struct {
    bool enabled;
    hx_cfg_rate limits;        /* requests_per_minute, burst, tokens_per_minute */
    hx_strlist trusted_proxies;/* IPs or CIDRs whose X-Forwarded-For is believed */
} hx_cfg_rate_limit;

typedef struct {
    char *backend;             /* memory | redis */
    hx_cfg_redis redis;
} hx_cfg_state;

typedef struct {
    char *level;               /* debug | info | warn | error */
    char *format;              /* json | text */
    bool access_log;
    char *file;                /* append log lines here ("" = stderr); reopened on SIGUSR1 */
} hx_cfg_logging;

typedef struct {
    bool enabled;
    char *path;
} hx_cfg_metrics;

typedef struct {
    bool enabled;
    int64_t interval;          /* ms */
    int64_t timeout;           /* ms */
    int64_t threshold;
    hx_kvlist checks;
} hx_cfg_route_health;

typedef struct {
    char *path;
    char *handler;
    char *version;
    hx_strlist methods;
    hx_kvlist headers;
    hx_strlist middleware;     /* empty = the global chain */
    hx_cfg_route_health health_check;
} hx_cfg_route;

typedef struct hx_config {
    atomic_int refs;
    char *source_path;         /* file it was loaded from, or NULL */
    hx_cfg_server server;
    hx_cfg_llm llm;
    hx_cfg_named_provider *providers;   /* map name -> provider */
    char **provider_names;
    size_t n_providers;
    hx_strlist provider_preference;
    hx_cfg_breaker circuit_breaker;
    hx_cfg_queue queue;
    hx_cfg_cors cors;
    hx_cfg_auth auth;
    hx_cfg_rate_limit rate_limit;
    hx_cfg_state state;
    hx_cfg_logging logging;
    hx_cfg_metrics metrics;
    hx_cfg_route *routes;
    size_t n_routes;
    /* Private to src/config: YAML positions of loaded values, used to put
     * FILE:LINE:COL on validation errors. NULL for a config built in code. */
    struct hx_config_marks *marks;
} hx_config;

/* Every problem found while loading, each already formatted as
 * "FILE:LINE:COL: path: message" (or "path: message" when no position).
 * Loading and validation stop adding after HX_CONFIG_MAX_ERRORS. */
#define HX_CONFIG_MAX_ERRORS 100
typedef struct {
    char **items;
    size_t n;
} hx_config_errors;

/* Builds the default configuration (the specification's secure defaults).
 * Returns NULL only when an allocation fails. Caller owns: hx_config_unref. */
hx_config *hx_config_default(void);

/* Loads PATH on top of the defaults, expands ${VAR} in scalar values, checks
 * every key, type and range. On success returns the config (refs = 1) and
 * leaves errs empty; on failure returns NULL and fills errs with every error
 * found (sorted by position; errs starts zeroed or holds earlier errors,
 * which are kept). errs can stay empty only when memory ran out. Caller
 * frees errs with hx_config_errors_free either way. Files over 4 MiB, more
 * than one YAML document and an empty document are errors. */
hx_config *hx_config_load_file(const char *path, hx_config_errors *errs);
/* Same for YAML text already in memory; `name` is used in messages. */
hx_config *hx_config_load_string(const char *yaml, size_t len, const char *name,
                                 hx_config_errors *errs);

/* Validation of a built config (also run by the loaders): ranges, allowed
 * values, cross-field rules and "not supported yet" features. Appends to
 * errs; returns the number of errors added. Every string field must be
 * non-NULL (as hx_config_default and the loaders leave them). */
size_t hx_config_validate(const hx_config *cfg, hx_config_errors *errs);

/* Writes the effective configuration as YAML, secrets shown as
 * "[redacted]". Returns 0, or -1 on a write error. */
int hx_config_print(const hx_config *cfg, FILE *out);

/* True for an address that only this machine can reach: 127.0.0.0/8,
 * ::1 (also IPv4-mapped 127.x) and "localhost". Anything else, including
 * 0.0.0.0, ::, and host names, is not. */
bool hx_config_host_is_loopback(const char *host);

/* What a handler is beyond its function: flags the middleware, the router
 * and the validator read instead of comparing handler names. */
#define HX_HANDLER_SPENDS 0x1u  /* reaches providers with their keys: queue applies, auth must guard it */
#define HX_HANDLER_OPEN 0x2u    /* hapax's own status: an inherited auth and rate_limit leave it alone
                                   (load balancers probe it; /metrics has its own check), and there is
                                   nothing upstream to health-check */
#define HX_HANDLER_METRICS 0x4u /* metrics.enabled and metrics.path apply to its routes */
#define HX_HANDLER_POST 0x8u    /* served on POST by default (the others on GET and HEAD) */

/* Every handler a route may name, with its flags: the one list the config
 * schema, the validator and the gateway's handler table
 * (gateway/handlers.c, through HX_HANDLER_FLAGS_<name>) are built from. */
#define HX_HANDLER_LIST(X)                                                                                   \
    X(completion, HX_HANDLER_SPENDS | HX_HANDLER_POST)                                                       \
    X(chat, HX_HANDLER_SPENDS | HX_HANDLER_POST)                                                             \
    X(messages, HX_HANDLER_SPENDS | HX_HANDLER_POST)                                                         \
    X(responses, HX_HANDLER_SPENDS | HX_HANDLER_POST)                                                        \
    X(embeddings, HX_HANDLER_SPENDS | HX_HANDLER_POST)                                                       \
    X(count_tokens, HX_HANDLER_SPENDS | HX_HANDLER_POST)                                                     \
    X(models, 0u)                                                                                            \
    X(model, 0u)                                                                                             \
    X(health, HX_HANDLER_OPEN)                                                                               \
    X(provider_health, HX_HANDLER_OPEN)                                                                      \
    X(metrics, HX_HANDLER_OPEN | HX_HANDLER_METRICS)

#define HX_HANDLER_FLAGS_ENUM_(name, flags) HX_HANDLER_FLAGS_##name = (flags),
enum { HX_HANDLER_LIST(HX_HANDLER_FLAGS_ENUM_) };

/* The handler names of HX_HANDLER_LIST, NULL-terminated. */
extern const char *const hx_config_handler_names[];
/* The flags of a handler name (0 for an unknown one, and for models/model). */
unsigned hx_config_handler_flags(const char *handler);

/* True when a request that spends provider money (a chat, completion,
 * messages, embeddings or count_tokens route) can be served without a client key: auth is off, or
 * such a route's chain (its own, else server.middleware) lacks auth. */
bool hx_config_serves_unauthenticated(const hx_config *cfg);

/* --host / --port and HAPAX_HOST / HAPAX_PORT: they replace server.host
 * and server.port of every config loaded afterwards (start and reload
 * alike), before validation, so the secure-default checks see them.
 * A flag wins over its variable, a variable over the file; an unset or
 * empty variable is ignored. `host_flag` / `port_flag` may be NULL.
 * Returns 0, or -1 after adding an error naming the flag or variable
 * (a port that is not 0..65535, an empty or over-long host). */
int hx_config_overrides_set(const char *host_flag, const char *port_flag, hx_config_errors *errs);
void hx_config_overrides_clear(void);
/* Where the effective host came from: "--host", "HAPAX_HOST" or NULL. */
const char *hx_config_override_host_source(void);

hx_config *hx_config_ref(hx_config *cfg);
void hx_config_unref(hx_config *cfg);

void hx_config_errors_free(hx_config_errors *errs);
/* Appends one formatted error; returns 0 or -1 when out of memory. */
int hx_config_errors_add(hx_config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
