/* Client API keys (the `auth` middleware and the checks the gateway and the
 * /metrics handler make with them).
 *
 * A key is presented as `Authorization: Bearer <key>` or `X-API-Key: <key>`
 * (the bearer form wins when both are sent). It is matched against every
 * configured key in constant time: the presented key is hashed with
 * SHA-256 and compared with CRYPTO_memcmp against the digest of each
 * configured key, with no early exit. Digests of the configured keys are
 * computed once per config (see auth.c) rather than per request.
 *
 * A presented key never reaches a log line, an error body or a metric
 * label: only the configured name of a matching key does. */
#ifndef HX_MIDDLEWARE_AUTH_H
#define HX_MIDDLEWARE_AUTH_H

#include <stdbool.h>

#include "config/config.h"
#include "http/request.h"

/* Why hx_auth_identify found no key. */
enum {
    HX_AUTH_OK = 0,
    HX_AUTH_MISSING = 1,  /* no key presented */
    HX_AUTH_INVALID = 2,  /* a key was presented but matches none */
};

/* The configured key (in r->cfg) the request presents, or NULL with *why
 * set to HX_AUTH_MISSING or HX_AUTH_INVALID (why may be NULL). A match is
 * remembered in auth's request slot (hx_auth_key, middleware/ctx.h), so a
 * second call is cheap.
 * Does not look at auth.enabled: callers decide whether auth applies.
 * Also NULL (HX_AUTH_INVALID) when memory runs out building the digests. */
const hx_cfg_auth_key *hx_auth_identify(hx_req *r, int *why);

/* True when key k may use `model`: k NULL or its model list empty means
 * any model; otherwise an exact match. */
bool hx_auth_model_allowed(const hx_cfg_auth_key *k, const char *model);

/* Answers 403 naming the model (never the key) and logs auth_failure with
 * reason=forbidden_model. */
void hx_auth_deny_model(hx_req *r, const char *model);

/* /metrics: when auth.enabled and auth.metrics_require_auth, the request
 * must present a valid key whose `metrics` flag is set. With auth off, only
 * a loopback client (after trusted proxies) may read it, unless
 * server.allow_unauthenticated. Otherwise true. */
bool hx_auth_metrics_allowed(hx_req *r);

/* Answers a request hx_auth_metrics_allowed refused: 401 with
 * WWW-Authenticate for a missing or invalid key, 403 for a valid key
 * without the metrics flag, 403 to a non-loopback client while auth is
 * off. Logs auth_failure. */
void hx_auth_deny_metrics(hx_req *r);

/* Drops every cached digest set (and the config references they hold).
 * For shutdown and tests; safe while no request is being authenticated. */
void hx_auth_cache_flush(void);

/* Test hook: digest comparisons made by this thread so far. */
unsigned long hx_auth_test_compare_count(void);

#endif
