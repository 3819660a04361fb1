/* Token buckets per client (the `rate_limit` middleware): one process-wide
 * table, keyed by the client key's name when auth identified one, else by
 * the client IP.
 *
 * Each client has up to two buckets, with limits from r->cfg (a key's own
 * rate_limit values > 0 replace the global ones):
 *  - requests: capacity `burst` (or requests_per_minute when burst is 0),
 *    refilled continuously at requests_per_minute / 60 per second; each
 *    request takes one token.
 *  - tokens (when tokens_per_minute > 0): capacity tokens_per_minute,
 *    refilled at tokens_per_minute / 60 per second. An LLM request
 *    reserves its likely cost when it starts and settles it when it ends:
 *    with the reported usage, or an estimate of what was generated when
 *    the usage never arrives (client gone, stream cut), so leaving early
 *    does not escape the limit. It may go negative; while it is <= 0 new
 *    requests get 429.
 *
 * Every response of a limited route carries RateLimit-Limit,
 * RateLimit-Remaining and RateLimit-Reset (seconds until the bucket is
 * full); a 429 also carries Retry-After.
 *
 * The table is bounded (HX_RATELIMIT_MAX_ENTRIES). Buckets idle long
 * enough to be full again are dropped lazily; when the table is full, the
 * least recently used bucket is dropped even if it is not full (that
 * client starts again with a full bucket) so new clients are never
 * refused for lack of room. */
#ifndef HX_MIDDLEWARE_RATELIMIT_H
#define HX_MIDDLEWARE_RATELIMIT_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "http/request.h"

#define HX_RATELIMIT_MAX_ENTRIES 100000

int hx_ratelimit_init(const hx_config *cfg);
/* Drops every bucket. */
void hx_ratelimit_shutdown(void);

/* Debits `tokens` of LLM usage from the tokens bucket of r's client. Does
 * nothing when the request's route has no rate_limit step or the client
 * has no tokens_per_minute limit. Thread-safe. */
void hx_ratelimit_debit_tokens(hx_req *r, int64_t tokens);
/* Takes up to `tokens` (at most the bucket's capacity) from r's client up
 * front, before the answer's usage is known; returns what was taken (0
 * when r has no tokens limit). Settle it once the request ends:
 * hx_ratelimit_settle_tokens gives back `reserved` and charges `charge`
 * (0 when the real usage goes through hx_ratelimit_debit_tokens). */
int64_t hx_ratelimit_reserve_tokens(hx_req *r, int64_t tokens);
void hx_ratelimit_settle_tokens(hx_req *r, int64_t reserved, int64_t charge);

/* State file support. Export appends one object per bucket:
 *   {"id":"key:NAME"|"ip:ADDR","tokens":N|null,"tpm_tokens":N|null,
 *    "updated_unix_ms":N}
 * (null: that bucket is not in use, it starts full). Import restores them,
 * counting the wall time elapsed since updated_unix_ms as refill, and
 * skips malformed entries. Both return the number of buckets handled, or
 * -1 when memory runs out. */
int hx_ratelimit_export(json_object *out_array);
int hx_ratelimit_import(json_object *array);

/* Test hooks: the monotonic clock in milliseconds (NULL restores the real
 * one), and the number of buckets in the table. */
void hx_ratelimit_set_clock(uint64_t (*now_ms)(void));
size_t hx_ratelimit_count(void);

#endif
