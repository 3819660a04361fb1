/* llm.cache.type: redis. Each worker loop has its own connection (a
 * state store, state/store.h) made in the worker's init; a registry
 * keyed by loop finds it, because the worker's fini runs on the main
 * thread after the worker ended. Every key is written with a TTL under
 * llm.cache.redis.prefix; Redis down, slow (command_timeout) or full is
 * a miss and a store dropped, never an error. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache_int.h"
#include "obs/log.h"
#include "state/redis_opts.h"
#include "state/store.h"
#include "util/alloc.h"

#define KEY_PREFIX "cache:"

typedef struct rc_worker {
    struct rc_worker *next;
    void *loop;
    hx_store *store;
} rc_worker;

typedef struct {
    hx_cache_backend base;
    hx_store_redis_opts opts; /* strings point into the config copy below */
    char *owned;
    pthread_mutex_t mu;
    rc_worker *workers;
} redis_cache;

static hx_store *store_of(redis_cache *c, void *loop)
{
    hx_store *s = NULL;
    pthread_mutex_lock(&c->mu);
    for (rc_worker *w = c->workers; w && s == NULL; w = w->next)
        if (w->loop == loop)
            s = w->store;
    pthread_mutex_unlock(&c->mu);
    return s;
}

typedef struct {
    hx_cache_blob_cb cb;
    void *ud;
} get_ctx;

static void on_get(void *ud, const hx_store_reply *r)
{
    get_ctx g = *(get_ctx *)ud;
    hx_free(ud);
    if (r->rc == HX_STORE_OK)
        g.cb(g.ud, r->data, r->len);
    else
        g.cb(g.ud, NULL, 0);
}

static int redis_get(hx_cache_backend *b, void *loop, const char *key, hx_cache_blob_cb cb, void *ud)
{
    hx_store *s = store_of((redis_cache *)b, loop);
    char k[sizeof KEY_PREFIX + HX_CACHE_KEY_HEX];
    snprintf(k, sizeof k, KEY_PREFIX "%s", key);
    get_ctx *g = s ? hx_malloc(sizeof *g) : NULL;
    if (g == NULL) {
        if (s)
            return -1;
        cb(ud, NULL, 0); /* not a worker loop: nothing to ask */
        return 0;
    }
    *g = (get_ctx){cb, ud};
    if (s->vt->get(s, k, on_get, g) != 0) {
        hx_free(g);
        return -1;
    }
    return 0;
}

static void on_set(void *ud, const hx_store_reply *r)
{
    (void)ud;
    (void)r; /* best effort: a failed store is a later miss */
}

static void redis_put(hx_cache_backend *b, void *loop, const char *key, void *blob, size_t len, int64_t ttl_ms)
{
    hx_store *s = store_of((redis_cache *)b, loop);
    char k[sizeof KEY_PREFIX + HX_CACHE_KEY_HEX];
    snprintf(k, sizeof k, KEY_PREFIX "%s", key);
    if (s) /* SET key value PX ttl: Redis drops it by itself */
        s->vt->set(s, k, blob, len, ttl_ms, on_set, NULL);
    hx_free(blob);
}

static bool redis_usage(hx_cache_backend *b, size_t *entries, size_t *bytes)
{
    (void)b;
    (void)entries;
    (void)bytes;
    return false; /* Redis holds them; its own INFO tells */
}

static int redis_worker_init(hx_cache_backend *b, void *loop)
{
    redis_cache *c = (redis_cache *)b;
    rc_worker *w = hx_calloc(1, sizeof *w);
    if (w == NULL)
        return -1;
    w->loop = loop;
    char err[256];
    if ((w->store = hx_store_redis_open(loop, &c->opts, err, sizeof err)) == NULL) {
        HX_LOG_ERROR("cannot set up the response cache's Redis", HX_F_STR("error", err));
        hx_free(w);
        return -1;
    }
    pthread_mutex_lock(&c->mu);
    w->next = c->workers;
    c->workers = w;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void redis_worker_fini(hx_cache_backend *b, void *loop)
{
    redis_cache *c = (redis_cache *)b;
    rc_worker *w = NULL;
    pthread_mutex_lock(&c->mu);
    for (rc_worker **pp = &c->workers; *pp; pp = &(*pp)->next)
        if ((*pp)->loop == loop) {
            w = *pp;
            *pp = w->next;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    if (w == NULL)
        return;
    w->store->vt->destroy(w->store); /* pending lookups are answered (misses) now */
    hx_free(w);
}

static void redis_destroy(hx_cache_backend *b)
{
    redis_cache *c = (redis_cache *)b;
    while (c->workers) /* workers that never ran their fini */
        redis_worker_fini(b, c->workers->loop);
    pthread_mutex_destroy(&c->mu);
    hx_free(c->owned);
    hx_free(c);
}

static const hx_cache_backend_vt redis_vt = {.name = "redis",
                                             .get = redis_get,
                                             .put = redis_put,
                                             .usage = redis_usage,
                                             .worker_init = redis_worker_init,
                                             .worker_fini = redis_worker_fini,
                                             .destroy = redis_destroy};

hx_cache_backend *hx_cache_redis_new(const hx_cfg_redis *r)
{
    redis_cache *c = hx_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->base.vt = &redis_vt;
    pthread_mutex_init(&c->mu, NULL);
    if (hx_redis_opts_from_cfg(r, &c->opts, &c->owned) != 0) {
        redis_destroy(&c->base);
        return NULL;
    }
    HX_LOG_INFO("response cache in redis", HX_F_STR("address", r->address), HX_F_STR("prefix", r->prefix));
    return &c->base;
}
