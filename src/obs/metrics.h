/* Prometheus metrics: a registry of families, per-thread shards, and the
 * text exposition format 0.0.4.
 *
 * Families are registered at startup, each with fixed label names. A series
 * is one tuple of label values, interned once into a small int id that the
 * caller keeps:
 *
 *   int s = hx_metrics_series(HX_M_ERRORS, "rate_limit_exceeded");
 *   hx_metrics_inc(HX_M_ERRORS, s, 1);
 *
 * Hot path: every write goes to memory owned by the writing thread (its
 * shard, created on the thread's first write), with relaxed atomics and no
 * lock. /metrics sums the shards, including those of threads that exited.
 * A family without labels has exactly one series, id 0. A series id < 0
 * (a failed hx_metrics_series) makes every write a no-op, so callers never
 * need to check.
 *
 * Each family caps its series (HX_METRICS_DEFAULT_MAX_SERIES unless set):
 * beyond the cap, new tuples share one overflow series whose label values
 * are all "other", so a client sending random model names cannot grow
 * memory or /metrics without bound.
 *
 * Collectors add families whose values live elsewhere (breaker state,
 * provider health, queue depth): they run at render time and write through
 * hx_metrics_writer, which validates names and escapes values so they
 * cannot produce invalid text. They run without the registry lock held, so
 * they may take their own module's locks. */
#ifndef HX_OBS_METRICS_H
#define HX_OBS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define HX_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#define HX_METRICS_MAX_FAMILIES 64
#define HX_METRICS_MAX_LABELS 8
#define HX_METRICS_MAX_BUCKETS 32
#define HX_METRICS_DEFAULT_MAX_SERIES 128
/* Longer label values are cut (at a UTF-8 character boundary). */
#define HX_METRICS_MAX_VALUE_LEN 128

typedef enum {
    HX_METRIC_COUNTER = 0,   /* name ends in _total; only goes up */
    HX_METRIC_GAUGE,
    HX_METRIC_HISTOGRAM,
} hx_metric_type;

typedef struct {
    const char *name;
    const char *help;
    hx_metric_type type;
    const char *const *labels;   /* NULL-terminated label names; NULL = none */
    const double *buckets;       /* histogram: upper bounds, strictly increasing,
                                    finite; +Inf is implicit */
    size_t nbuckets;
    size_t max_series;           /* 0 = HX_METRICS_DEFAULT_MAX_SERIES */
    /* A gauge without labels may instead be read at render time. */
    double (*value_fn)(void *ud);
    void *value_ud;
} hx_metric_def;

/* ---- registry ------------------------------------------------------------ */

/* Registers a family; returns its id (registration order, from 0) or -1
 * (invalid definition, duplicate name, table full, out of memory; logged).
 * The strings and bucket array are copied. Thread-safe. */
int hx_metrics_register(const hx_metric_def *def);

/* The series id for a tuple of label values, one per label name, in the
 * order they were registered:
 *   hx_metrics_series(HX_M_TOKENS, provider, model, "prompt")
 * NULL values count as "". Returns -1 for an unknown family or a wrong
 * number of values (logged), or when memory runs out. Takes a mutex: call
 * it once and keep the id. */
#define hx_metrics_series(...) hx__metrics_series(__VA_ARGS__, NULL)
/* The appended NULL keeps the array (and the variadic part) non-empty for a
 * family without labels (ISO C, -Wpedantic); it is not counted. */
#define hx__metrics_series(family, ...)                                   \
    hx_metrics_seriesv((family), (const char *const[]){__VA_ARGS__},     \
                       sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *) - 1)
int hx_metrics_seriesv(int family, const char *const *values, size_t n);

/* ---- hot path (lock-free, thread-local) ---------------------------------- */

/* Counter += n. */
void hx_metrics_inc(int family, int series, uint64_t n);
/* Gauge += delta (negative to decrease). Adds from all threads are summed. */
void hx_metrics_gauge_add(int family, int series, double delta);
/* Gauge = value. Meant for a gauge with one writer; it is stored as
 * value minus the current sum of adds, so mixing it with concurrent adds
 * from other threads is approximate. Takes the registry mutex. */
void hx_metrics_gauge_set(int family, int series, double value);
/* Histogram observation. */
void hx_metrics_observe(int family, int series, double value);

static inline void hx_metrics_gauge_inc(int family, int series)
{
    hx_metrics_gauge_add(family, series, 1.0);
}
static inline void hx_metrics_gauge_dec(int family, int series)
{
    hx_metrics_gauge_add(family, series, -1.0);
}

/* "1xx".."5xx" for an HTTP status; "other" outside 100..599. */
const char *hx_metrics_status_class(int status);

/* ---- render and collectors ----------------------------------------------- */

typedef struct hx_metrics_writer hx_metrics_writer;
typedef void (*hx_metrics_collect_fn)(hx_metrics_writer *w, void *ud);

/* Adds fn to run at every render, after the registered families, in the
 * order added. Returns 0 or -1. Thread-safe. */
int hx_metrics_add_collector(hx_metrics_collect_fn fn, void *ud);

/* Starts a family: writes # HELP and # TYPE. Returns 0, or -1 when the name
 * is invalid, was already written in this render, or a counter name does
 * not end in _total; the family's samples are then dropped too. */
int hx_metrics_write_family(hx_metrics_writer *w, const char *name, const char *help,
                            hx_metric_type type);
/* Writes one sample of the current family. `name` is the family name (or,
 * for a histogram, the name plus _bucket, _sum or _count). `labels` is a
 * NULL-terminated list of name, value pairs, or NULL:
 *   hx_metrics_write_sample(w, "hapax_circuit_breaker_state",
 *                           (const char *const[]){"provider", p, NULL}, 2);
 * Values are escaped. Returns 0, or -1 when the sample was dropped. */
int hx_metrics_write_sample(hx_metrics_writer *w, const char *name, const char *const *labels,
                            double value);

/* Appends the text exposition of every family, then the process metrics,
 * then the collectors' output. Returns 0, or -1 when out is full or memory
 * runs out. Thread-safe; any thread may render. */
int hx_metrics_render(hx_buf *out);

/* The process collector (process_cpu_seconds_total, process_open_fds...):
 * always part of hx_metrics_render; exposed for tests. */
void hx_metrics_collect_process(hx_metrics_writer *w, void *ud);

/* ---- hapax's own families ------------------------------------------------ */

/* Family ids of the catalog; hx_metrics_init registers them first, so the
 * ids are also their registration order. */
typedef enum {
    HX_M_REQUEST_DURATION = 0,  /* hapax_request_duration_seconds{route,method,status_class} histogram */
    HX_M_REQUEST_SIZE,          /* hapax_request_size_bytes{route} histogram */
    HX_M_RESPONSE_SIZE,         /* hapax_response_size_bytes{route} histogram */
    HX_M_ACTIVE_REQUESTS,       /* hapax_active_requests gauge */
    HX_M_ERRORS,                /* hapax_errors_total{type} */
    HX_M_PROVIDER_REQUESTS,     /* hapax_provider_requests_total{provider,outcome} (success|failure) */
    HX_M_PROVIDER_LATENCY,      /* hapax_provider_latency_seconds{provider} histogram */
    HX_M_PROVIDER_FAILURES,     /* hapax_provider_failures_total{provider,class} (rate_limit|timeout|
                                   server_error|connection|client_error|auth|other) */
    HX_M_RETRIES,               /* hapax_retries_total{provider} */
    HX_M_FAILOVERS,             /* hapax_failovers_total{from_provider} */
    HX_M_TOKENS,                /* hapax_tokens_total{provider,model,kind} (prompt|completion) */
    HX_M_QUEUE_WAIT,            /* hapax_queue_wait_seconds histogram */
    HX_M_QUEUE_REJECTIONS,      /* hapax_queue_rejections_total{reason} (full|timeout|disconnect) */
    HX_M_RATE_LIMIT_HITS,       /* hapax_rate_limit_hits_total{kind} (requests|tokens) */
    HX_M_AUTH_FAILURES,         /* hapax_auth_failures_total{reason} (missing_key|invalid_key|
                                   forbidden_model|metrics_forbidden) */
    HX_M_CONFIG_RELOADS,        /* hapax_config_reloads_total{result} (success|failure) */
    HX_M_LOAD_SHED,             /* hapax_load_shed_total{reason} (memory|cpu|disk|latency) */
    HX_M_PANIC,                 /* hapax_panic_requests_total{provider} */
    HX_M_RETRIES_BY_CLASS,      /* hapax_retries_by_class_total{provider,class} */
    HX_M_FAILOVERS_BY_CLASS,    /* hapax_failovers_by_class_total{from_provider,class} */
    HX_M_HTTP2_GOAWAY,          /* hapax_http2_goaway_total{reason} (abuse kind, or idle) */
    HX_M_HTTP3_EARLY_DATA,      /* hapax_http3_early_data_total{outcome} (accepted|replay|rejected|disabled|
                                   too_large|register_error) */
    HX_M_HTTP3_EVENTS,          /* hapax_http3_events_total{kind} (retry|version_negotiation|stateless_reset|
                                   refused|invalid_token|migration) */
    HX_M__COUNT
} hx_metric_id;

/* Registers the catalog. Call once at startup, before any other
 * registration. Returns 0 or -1 (logged). */
int hx_metrics_init(void);
/* Frees every family, series, shard and collector; the registry is empty
 * again (hx_metrics_init may run again). Call after the workers stopped. */
void hx_metrics_shutdown(void);

#endif
