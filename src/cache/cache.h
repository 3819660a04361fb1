/* The response cache (llm.cache, docs/cache.md): answers kept by a
 * SHA-256 of the canonical request, in process memory, in files or in
 * Redis. The process has one cache, created at start on the main thread;
 * workers look entries up and store them from their loops. A lookup that
 * cannot be answered (Redis down or slow, a file gone, no memory) is a
 * miss, never an error.
 *
 * Entries are opaque to the backends: an envelope (format, expiry on the
 * wall clock, content type, stream flag) and the body, so every backend
 * honours the TTL the same way and files survive a restart. */
#ifndef HX_CACHE_CACHE_H
#define HX_CACHE_CACHE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Largest answer stored (body bytes): a larger one is served, not kept. */
#define HX_CACHE_ENTRY_MAX ((size_t)4 << 20)
/* Total bytes of the memory backend's entries (and max_size entries). */
#define HX_CACHE_MEM_BYTES_MAX ((size_t)256 << 20)
/* Total bytes of the file backend's files (and max_size files). */
#define HX_CACHE_FILE_BYTES_MAX ((size_t)1 << 30)
/* A key: SHA-256 in lower-case hex. */
#define HX_CACHE_KEY_HEX 64
#define HX_CACHE_CTYPE_MAX 127

typedef enum { HX_CACHE_HIT = 0, HX_CACHE_MISS, HX_CACHE_BYPASS, HX_CACHE__RESULTS } hx_cache_result;

/* What the key covers besides the body: the inbound API, whether the
 * answer streams, the scope ("key:<name>", "route:<path>", "global") and
 * request headers that change the answer (anthropic-version...), "" when
 * none. */
typedef struct {
    const char *api;
    bool stream;
    const char *scope;
    const char *extra;
} hx_cache_key_parts;

/* The key of a parsed request body: its canonical form (object members
 * sorted by name, every value typed and length-prefixed) hashed with the
 * parts above. 0, or -1 (no memory, too deep). */
int hx_cache_key(const hx_cache_key_parts *k, json_object *body, char out[HX_CACHE_KEY_HEX + 1]);

/* An entry as read back; valid during the callback only. */
typedef struct {
    const char *content_type;
    bool stream;
    const void *body;
    size_t len;
} hx_cache_entry;

/* e NULL: a miss (absent, expired, unreadable, backend down). */
typedef void (*hx_cache_get_cb)(void *ud, const hx_cache_entry *e);

/* On the main thread before any worker starts: creates the configured
 * backend (when llm.cache.enable) and registers the metrics. 0 or -1
 * (logged). */
int hx_cache_init(const hx_config *cfg);
/* A reload: enable, ttl and scope are read per request from the new
 * config; type, dir, max_size and redis need a restart (a warning says
 * so and the running cache stays). */
void hx_cache_reconfigure(const hx_config *cfg);
void hx_cache_shutdown(void);
/* On each worker's thread (its Redis connection with type redis). 0/-1. */
int hx_cache_worker_init(void *loop);
/* May run on another thread after the worker's loop ended. */
void hx_cache_worker_fini(void *loop);

/* A backend runs (enabled at start). */
bool hx_cache_ready(void);
/* Looks key up from `loop` (the caller's worker loop). cb runs exactly
 * once, possibly before this returns, unless -1 is returned (no memory).
 * An expired entry is a miss. */
int hx_cache_get(void *loop, const char *key, hx_cache_get_cb cb, void *ud);
/* Stores an answer for ttl_ms (best effort: a full or failing backend
 * drops it; a body above HX_CACHE_ENTRY_MAX is never stored). */
void hx_cache_put(void *loop, const char *key, const hx_cache_entry *e, int64_t ttl_ms);
/* Counts a request's outcome (hapax_cache_requests_total). */
void hx_cache_count(hx_cache_result res);
const char *hx_cache_result_name(hx_cache_result res);

/* The envelope (cache.c), exposed for the backends and tests: encode into
 * a new buffer (*out, *outlen; caller frees) or decode in place. Decode
 * fails (-1) on a malformed or expired entry (now_ms: wall clock). */
int hx_cache_encode(const hx_cache_entry *e, int64_t expires_ms, void **out, size_t *outlen);
int hx_cache_decode(const void *blob, size_t len, int64_t now_ms, hx_cache_entry *e,
                    char ctype[HX_CACHE_CTYPE_MAX + 1]);

#endif
