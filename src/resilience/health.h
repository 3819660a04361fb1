/* Provider health: what active probes and real traffic say about each
 * provider. Thread-safe (a short mutex section per call): every worker
 * records outcomes, one worker runs the probes.
 *
 * A provider starts healthy (nothing is known against it) but not `known`
 * (/health says "unknown" until a probe or a request has had an outcome); it turns unhealthy
 * after `failure_threshold` consecutive failures (probes and real requests
 * alike) and healthy again after one success. */
#ifndef HX_RESILIENCE_HEALTH_H
#define HX_RESILIENCE_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "resilience/fail.h"

typedef struct hx_health hx_health;

typedef struct {
    bool healthy;
    bool known;                 /* an outcome (probe or request) was recorded */
    int64_t consecutive_failures;
    uint64_t checks;            /* probes run */
    uint64_t probe_failures;
    int64_t last_latency_ms;    /* -1 = never measured */
    int64_t last_change_unix;   /* wall clock of the last healthy/unhealthy switch */
    char last_error[160];       /* "" = none; never contains a key */
    hx_fail_class last_fail;    /* the last failure's class (HX_FAIL_NONE = none or
                                 * not known): decisions read this, never the text */
} hx_health_snap;

/* Returns NULL when out of memory. */
hx_health *hx_health_new(const char *name, int64_t failure_threshold);
void hx_health_free(hx_health *h);

/* One outcome. `error` (may be NULL) is copied, truncated. Returns true when
 * the healthy flag changed (the caller logs the transition). */
bool hx_health_record(hx_health *h, bool ok, const char *error, int64_t latency_ms, bool probe);
/* The same, with the failure's class kept beside its text. */
bool hx_health_record_fail(hx_health *h, bool ok, const char *error, hx_fail_class cls, int64_t latency_ms,
                           bool probe);
bool hx_health_ok(hx_health *h);
void hx_health_snapshot(hx_health *h, hx_health_snap *out);
/* Replaces the state with a snapshot (a reload or the state file). */
void hx_health_restore(hx_health *h, const hx_health_snap *in);
const char *hx_health_name(const hx_health *h);

#endif
