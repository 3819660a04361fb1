/* Retry policy pieces: backoff delays, retryable error classes, a retry
 * budget and Retry-After parsing. Pure: no I/O, no libuv; time and
 * randomness come from the caller so tests are deterministic. The budget is
 * thread-safe (a short mutex section per call); everything else is
 * stateless. */
#ifndef HX_RESILIENCE_RETRY_H
#define HX_RESILIENCE_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "resilience/fail.h"

/* Retry-After values above this are capped to it. */
#define HX_RETRY_AFTER_MAX_MS (3600u * 1000u)
/* The retry budget's sliding window: this many one-second buckets. */
#define HX_RETRY_BUDGET_WINDOW_S 10

/* The delay before retry number `attempt` (1 = the first retry):
 * initial_delay * multiplier^(attempt - 1), capped at max_delay, then
 * jittered to between 50% and 100% of that value, picked by `random64`
 * (0 gives exactly 50% rounded down, UINT64_MAX exactly 100%). attempt < 1
 * gives 0. Negative settings count as 0 and a multiplier below 1 as 1.
 * Never overflows, whatever the attempt. */
uint64_t hx_retry_delay_ms(const hx_cfg_retry *cfg, int attempt, uint64_t random64);

/* The set named by `retryable_errors` ("rate_limit", "timeout",
 * "server_error", "connection", "unanswered": the five retry classes of
 * resilience/fail.h), one bit (1u << class) each; unknown names are
 * ignored (config validation rejects them). NULL gives the empty set. */
unsigned hx_retry_classes(const hx_strlist *retryable_errors);
/* True when failure `c` counts as a retry class (hx_fail_retry_class) that
 * is in `classes`. */
bool hx_retry_allowed(unsigned classes, hx_fail_class c);

/* Retry budget (as in Finagle and Envoy): over a sliding window of the last
 * HX_RETRY_BUDGET_WINDOW_S seconds, retries may number at most
 *     percent% of first attempts + min_per_second * window seconds,
 * so retries cannot multiply load during an outage, while low traffic can
 * still retry. */
typedef struct hx_retry_budget hx_retry_budget;

/* percent: 0..100 (clamped). Returns NULL when out of memory. */
hx_retry_budget *hx_retry_budget_new(double percent, uint32_t min_per_second);
void hx_retry_budget_free(hx_retry_budget *b);
/* Counts one first attempt (call it for every request, retried or not). */
void hx_retry_budget_deposit(hx_retry_budget *b, uint64_t now_ms);
/* Before each retry: true (and the retry is counted) when the budget allows
 * it, false when the retry must not happen. */
bool hx_retry_budget_withdraw(hx_retry_budget *b, uint64_t now_ms);

/* Parses a Retry-After header value: delta-seconds ("2"; a fraction such as
 * "0.5" is accepted and gives 500, rounded up to the millisecond) or an
 * IMF-fixdate HTTP-date ("Sun, 06 Nov 1994 08:49:37 GMT"), compared with
 * `now_wall_s` (Unix seconds). Returns the wait in ms, capped at
 * HX_RETRY_AFTER_MAX_MS; 0 when NULL, empty, invalid or in the past. The
 * obsolete RFC 850 and asctime date forms are not accepted. */
uint64_t hx_retry_after_ms(const char *retry_after_header, uint64_t now_wall_s);

#endif
