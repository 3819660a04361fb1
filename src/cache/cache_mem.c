/* llm.cache.type: memory. One LRU index for the whole process behind a
 * mutex held for a lookup or an insert only: a hit copies the entry out
 * and answers after the lock is released. */
#include <pthread.h>
#include <string.h>

#include "cache/cache_int.h"
#include "util/alloc.h"

typedef struct {
    hx_cache_backend base;
    pthread_mutex_t mu;
    hx_cache_lru *lru;
} mem_cache;

static int mem_get(hx_cache_backend *b, void *loop, const char *key, hx_cache_blob_cb cb, void *ud)
{
    (void)loop;
    mem_cache *m = (mem_cache *)b;
    pthread_mutex_lock(&m->mu);
    size_t n = 0;
    const void *d = hx_cache_lru_find(m->lru, key, &n);
    hx_cache_entry e;
    char ctype[HX_CACHE_CTYPE_MAX + 1];
    if (d && hx_cache_decode(d, n, hx_cache_clock(), &e, ctype) != 0) {
        hx_cache_lru_remove(m->lru, key); /* expired: its room goes back now */
        d = NULL;
        n = 0;
    }
    void *copy = d && n ? hx_malloc(n) : NULL;
    if (copy)
        memcpy(copy, d, n);
    pthread_mutex_unlock(&m->mu);
    if (d && copy == NULL)
        return -1;
    cb(ud, copy, n);
    hx_free(copy);
    return 0;
}

static void mem_put(hx_cache_backend *b, void *loop, const char *key, void *blob, size_t len, int64_t ttl_ms)
{
    (void)loop;
    (void)ttl_ms; /* in the envelope */
    mem_cache *m = (mem_cache *)b;
    pthread_mutex_lock(&m->mu);
    hx_cache_lru_put(m->lru, key, blob, len, NULL, NULL);
    pthread_mutex_unlock(&m->mu);
}

static bool mem_usage(hx_cache_backend *b, size_t *entries, size_t *bytes)
{
    mem_cache *m = (mem_cache *)b;
    pthread_mutex_lock(&m->mu);
    hx_cache_lru_usage(m->lru, entries, bytes);
    pthread_mutex_unlock(&m->mu);
    return true;
}

static void mem_destroy(hx_cache_backend *b)
{
    mem_cache *m = (mem_cache *)b;
    hx_cache_lru_free(m->lru);
    pthread_mutex_destroy(&m->mu);
    hx_free(m);
}

static const hx_cache_backend_vt mem_vt = {
    .name = "memory", .get = mem_get, .put = mem_put, .usage = mem_usage, .destroy = mem_destroy};

hx_cache_backend *hx_cache_mem_new(size_t max_entries, size_t max_bytes)
{
    mem_cache *m = hx_calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->base.vt = &mem_vt;
    if ((m->lru = hx_cache_lru_new(max_entries, max_bytes)) == NULL) {
        hx_free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    return &m->base;
}
