/* Circuit breaker, one per provider. Pure and thread-safe: no I/O, no
 * libuv; every call takes the monotonic time `now_ms` from the caller, and
 * each call holds the breaker's mutex for a few instructions only.
 *
 * The breaker counts REQUESTS, not attempts: the caller takes one admission
 * per request and provider and records one verdict for it (retries of the
 * same request on the same provider are one outcome).
 *
 * States:
 *   closed     every request goes through. Outcomes are kept over a sliding
 *              window of the last `interval` ms (ten buckets; interval 0 =
 *              everything since the breaker last closed). The breaker opens
 *              when, in the window, at least `min_requests` requests had a
 *              verdict, at least `failure_threshold` of them failed, and the
 *              failures are at least `failure_rate` percent of them. So one
 *              or two failed requests never open it (as Envoy's outlier
 *              detection and resilience4j's minimumNumberOfCalls).
 *   open       every request is rejected until `timeout` ms have passed since
 *              the breaker opened; it then turns half-open (lazily, the next
 *              time it is asked: allow, record, state).
 *   half_open  at most `max_requests` trial requests are in flight at once;
 *              others are rejected. The first trial success closes the
 *              breaker (with an empty window); the first trial failure opens
 *              it again with a fresh `timeout`.
 *
 * What counts as a failure is the caller's decision. The rule hapax uses:
 * upstream 5xx, 429, timeouts (connect, first byte, whole request),
 * connection errors and malformed/unparseable answers are failures. A 4xx
 * caused by the client's own request (400, 401, 403, 404, 413, 422 ...) is
 * not a failure: call hx_breaker_release (no verdict), as for a client that
 * went away or a request rejected before it was sent.
 *
 * Protocol: every admitted request (allow returned 1) must end with exactly
 * one hx_breaker_record or hx_breaker_release, so half-open trial slots are
 * never leaked.
 *
 * Generations: each state change starts a new generation. The plain calls
 * apply an outcome to the current state whatever state admitted the request;
 * a result that arrives in half-open while no trial is in flight is taken as
 * stale and only counted. Callers that keep the request across long streams
 * should use the *_gen variants: an outcome from an older generation is then
 * counted in the stats but never changes the state nor frees a slot it did
 * not take (as gobreaker does). */
#ifndef HX_RESILIENCE_BREAKER_H
#define HX_RESILIENCE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

/* These values are exported as the circuit-breaker state metric. */
enum {
    HX_BREAKER_CLOSED = 0,
    HX_BREAKER_OPEN = 1,
    HX_BREAKER_HALF_OPEN = 2,
};

typedef struct hx_breaker hx_breaker;

/* Called after a state change, outside the breaker's mutex, on the thread
 * whose call caused the change. `name` is the breaker's own copy (valid until
 * hx_breaker_free). It may call back into the breaker. */
typedef void (*hx_breaker_transition_cb)(void *ud, const char *name, int from, int to);

typedef struct {
    uint64_t requests;          /* admitted by allow */
    uint64_t successes;         /* recorded successes */
    uint64_t failures;          /* recorded failures */
    uint64_t rejections;        /* refused by allow */
    uint64_t releases;          /* hx_breaker_release calls */
    uint64_t trips;             /* times the breaker opened */
    uint32_t trials_in_flight;  /* half-open slots held right now */
} hx_breaker_counters;

/* Persistent form. `open_until_ms` is absolute on the callers' monotonic
 * clock (CLOCK_MONOTONIC, which uv_now follows, survives a process restart
 * within one boot); restore caps it at now + timeout, so a value from
 * another boot keeps the breaker open for at most one timeout. */
typedef struct {
    int state;                  /* HX_BREAKER_* */
    uint32_t window_requests;   /* verdicts in the sliding window (closed) */
    uint32_t window_failures;   /* failures among them */
    uint64_t open_until_ms;     /* when an open breaker admits a trial */
    uint64_t requests;
    uint64_t successes;
    uint64_t failures;
    uint64_t rejections;
    uint64_t releases;
    uint64_t trips;
} hx_breaker_snap;

/* Copies `name` and the settings. Out-of-range settings are clamped:
 * max_requests, min_requests and failure_threshold to at least 1,
 * failure_rate to 1..100, negative durations to 0.
 * `test_mode` is not used here. Returns NULL when out of memory. */
hx_breaker *hx_breaker_new(const char *name, const hx_cfg_breaker *cfg);
void hx_breaker_free(hx_breaker *b);
const char *hx_breaker_name(const hx_breaker *b);

/* Sets (or clears, with cb NULL) the transition callback. Safe at any time;
 * a call already running may still report to the previous callback. */
void hx_breaker_on_transition(hx_breaker *b, hx_breaker_transition_cb cb, void *ud);

/* Returns 1 when a request may go to the provider, 0 when it is rejected. */
int hx_breaker_allow(hx_breaker *b, uint64_t now_ms);
/* The verdict of an admitted request. */
void hx_breaker_record(hx_breaker *b, bool success, uint64_t now_ms);
/* An admitted request that ended without a verdict: frees its half-open slot
 * (if it holds one) without counting a success or a failure. */
void hx_breaker_release(hx_breaker *b);

/* Generation-checked variants: allow stores the generation that admitted the
 * request in *gen (left untouched when rejected); pass it back when done. */
int hx_breaker_allow_gen(hx_breaker *b, uint64_t now_ms, uint64_t *gen);
void hx_breaker_record_gen(hx_breaker *b, uint64_t gen, bool success, uint64_t now_ms);
void hx_breaker_release_gen(hx_breaker *b, uint64_t gen);

/* The current state; an open breaker whose timeout has passed turns
 * half-open here (and the callback fires). */
int hx_breaker_state(hx_breaker *b, uint64_t now_ms);
/* "closed", "open", "half_open"; "unknown" for anything else. */
const char *hx_breaker_state_name(int state);
/* Time until an open breaker admits a trial; 0 when not open (or due). */
uint64_t hx_breaker_retry_after_ms(hx_breaker *b, uint64_t now_ms);

void hx_breaker_stats(hx_breaker *b, hx_breaker_counters *out);

/* The sliding window as of now_ms: verdicts and failures in it (both 0
 * while open or half-open). */
void hx_breaker_window(hx_breaker *b, uint64_t now_ms, uint32_t *requests, uint32_t *failures);

/* Raw state as stored (no lazy half-open step, no callback). */
void hx_breaker_snapshot(hx_breaker *b, hx_breaker_snap *out);
/* Replaces the state and counters with a snapshot. An open breaker keeps
 * rejecting until min(open_until_ms, now + timeout); a half-open snapshot
 * restores half-open with no trial in flight; a closed one keeps its
 * window's counts (as one bucket starting now); an unknown state
 * restores closed. Fires the callback if the state changed. */
void hx_breaker_restore(hx_breaker *b, const hx_breaker_snap *snap, uint64_t now_ms);

#endif
