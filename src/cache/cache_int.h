/* Internals shared by the cache's files: the backend interface and the
 * bounded LRU index the memory and file backends keep. Not for use
 * outside src/cache/ (tests excepted). */
#ifndef HX_CACHE_CACHE_INT_H
#define HX_CACHE_CACHE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

/* blob NULL: a miss. The blob is valid during the call only. */
typedef void (*hx_cache_blob_cb)(void *ud, const void *blob, size_t len);

typedef struct hx_cache_backend hx_cache_backend;

typedef struct {
    const char *name;
    /* cb exactly once, possibly before returning, unless -1 (no memory). */
    int (*get)(hx_cache_backend *b, void *loop, const char *key, hx_cache_blob_cb cb, void *ud);
    /* Takes the blob (hx_malloc'd): kept or freed. */
    void (*put)(hx_cache_backend *b, void *loop, const char *key, void *blob, size_t len, int64_t ttl_ms);
    /* Entries and bytes held (false: the backend cannot tell). */
    bool (*usage)(hx_cache_backend *b, size_t *entries, size_t *bytes);
    int (*worker_init)(hx_cache_backend *b, void *loop);
    void (*worker_fini)(hx_cache_backend *b, void *loop);
    void (*destroy)(hx_cache_backend *b);
} hx_cache_backend_vt;

struct hx_cache_backend {
    const hx_cache_backend_vt *vt;
};

/* Backends; each NULL with the reason logged. */
hx_cache_backend *hx_cache_mem_new(size_t max_entries, size_t max_bytes);
hx_cache_backend *hx_cache_file_new(const char *dir, size_t max_entries, size_t max_bytes);
hx_cache_backend *hx_cache_redis_new(const hx_cfg_redis *r);

/* ---- the LRU index (cache_lru.c): not locked, its owner locks ---- */

typedef struct hx_cache_lru hx_cache_lru;

/* Called for each entry pushed out by a put (oldest first); data is
 * freed by the index after the call. */
typedef void (*hx_cache_evict_fn)(void *ud, const char *key, void *data);

hx_cache_lru *hx_cache_lru_new(size_t max_entries, size_t max_bytes);
void hx_cache_lru_free(hx_cache_lru *l);
/* The entry's data and size, made the most recent; NULL when absent,
 * non-NULL but not data (do not read it) for an entry without data. */
void *hx_cache_lru_find(hx_cache_lru *l, const char *key, size_t *size);
/* Adds or replaces key with `data` (owned from now on, NULL allowed:
 * the file backend keeps sizes only) of `size` bytes, then evicts the
 * least recently used entries past the bounds. -1 (data freed) when size
 * alone exceeds the byte bound or on no memory. */
int hx_cache_lru_put(hx_cache_lru *l, const char *key, void *data, size_t size, hx_cache_evict_fn evict, void *ud);
void hx_cache_lru_remove(hx_cache_lru *l, const char *key);
/* Frees the entry's data and keeps its size, when the data is still
 * `data` (the file backend's copy, once the file is written). */
void hx_cache_lru_release(hx_cache_lru *l, const char *key, const void *data);
/* The entry holds data (not only a size). */
bool hx_cache_lru_has_data(hx_cache_lru *l, const char *key);
void hx_cache_lru_usage(const hx_cache_lru *l, size_t *entries, size_t *bytes);

/* Wall-clock milliseconds (entries' expiry; tests may move it). */
int64_t hx_cache_now_ms(void);
extern int64_t (*hx_cache_clock)(void);

#endif
