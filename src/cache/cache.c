/* The process's response cache: the configured backend, the entry
 * envelope every backend stores, and the metrics. */
#include "cache/cache.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cache/cache_int.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "util/alloc.h"
#include "util/buf.h"

/* "HXC1", expiry (8 bytes, big-endian, wall-clock ms), flags, the
 * content type's length and bytes, then the body. */
#define MAGIC "HXC1"
#define HEAD_FIXED 14
#define FLAG_STREAM 1

static struct {
    hx_cache_backend *be;
    char *conn; /* what a restart would change, as one string (conn_string) */
    atomic_uint_fast64_t results[HX_CACHE__RESULTS];
    atomic_uint_fast64_t stored, too_large;
    bool collector;
} K;

int64_t hx_cache_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t (*hx_cache_clock)(void) = hx_cache_now_ms;

const char *hx_cache_result_name(hx_cache_result res)
{
    static const char *const names[] = {"hit", "miss", "bypass"};
    return res < HX_CACHE__RESULTS ? names[res] : "bypass";
}

void hx_cache_count(hx_cache_result res)
{
    if (res < HX_CACHE__RESULTS)
        atomic_fetch_add(&K.results[res], 1);
}

int hx_cache_encode(const hx_cache_entry *e, int64_t expires_ms, void **out, size_t *outlen)
{
    size_t cl = e->content_type ? strlen(e->content_type) : 0;
    if (cl > HX_CACHE_CTYPE_MAX || e->len > HX_CACHE_ENTRY_MAX)
        return -1;
    size_t n = HEAD_FIXED + cl + e->len;
    unsigned char *b = hx_malloc(n);
    if (b == NULL)
        return -1;
    memcpy(b, MAGIC, 4);
    uint64_t x = (uint64_t)expires_ms;
    for (int i = 0; i < 8; i++)
        b[4 + i] = (unsigned char)(x >> (56 - 8 * i));
    b[12] = e->stream ? FLAG_STREAM : 0;
    b[13] = (unsigned char)cl;
    if (cl)
        memcpy(b + HEAD_FIXED, e->content_type, cl);
    if (e->len)
        memcpy(b + HEAD_FIXED + cl, e->body, e->len);
    *out = b;
    *outlen = n;
    return 0;
}

int hx_cache_decode(const void *blob, size_t len, int64_t now_ms, hx_cache_entry *e, char ctype[HX_CACHE_CTYPE_MAX + 1])
{
    const unsigned char *b = blob;
    if (b == NULL || len < HEAD_FIXED || memcmp(b, MAGIC, 4) != 0)
        return -1;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | b[4 + i];
    size_t cl = b[13];
    if ((int64_t)x <= now_ms || cl > HX_CACHE_CTYPE_MAX || len - HEAD_FIXED < cl ||
        len - HEAD_FIXED - cl > HX_CACHE_ENTRY_MAX)
        return -1;
    memcpy(ctype, b + HEAD_FIXED, cl);
    ctype[cl] = '\0';
    *e = (hx_cache_entry){.content_type = ctype,
                          .stream = (b[12] & FLAG_STREAM) != 0,
                          .body = b + HEAD_FIXED + cl,
                          .len = len - HEAD_FIXED - cl};
    return 0;
}

static void collect(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    if (K.be == NULL)
        return;
    hx_metrics_write_family(w, "hapax_cache_requests_total",
                            "Cacheable requests by outcome (llm.cache): hit, miss or bypass.", HX_METRIC_COUNTER);
    for (int i = 0; i < HX_CACHE__RESULTS; i++) {
        const char *l[] = {"result", hx_cache_result_name((hx_cache_result)i), NULL};
        hx_metrics_write_sample(w, "hapax_cache_requests_total", l, (double)atomic_load(&K.results[i]));
    }
    hx_metrics_write_family(w, "hapax_cache_stores_total", "Answers handed to the cache to keep.", HX_METRIC_COUNTER);
    hx_metrics_write_sample(w, "hapax_cache_stores_total", NULL, (double)atomic_load(&K.stored));
    hx_metrics_write_family(w, "hapax_cache_too_large_total", "Answers not kept: larger than the entry bound (4 MiB).",
                            HX_METRIC_COUNTER);
    hx_metrics_write_sample(w, "hapax_cache_too_large_total", NULL, (double)atomic_load(&K.too_large));
    size_t n, bytes;
    if (!K.be->vt->usage(K.be, &n, &bytes))
        return;
    hx_metrics_write_family(w, "hapax_cache_entries", "Entries held by the cache (memory and file).", HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_cache_entries", NULL, (double)n);
    hx_metrics_write_family(w, "hapax_cache_bytes", "Bytes held by the cache (memory and file).", HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_cache_bytes", NULL, (double)bytes);
}

/* type, dir, max_size and the Redis connection as one comparable string
 * (NULL: no memory). */
static char *conn_string(const hx_cfg_cache *c)
{
    hx_buf b;
    hx_buf_init(&b, 8192);
    const hx_cfg_redis *r = &c->redis;
    bool redis = strcmp(c->type, "redis") == 0;
    if (hx_buf_printf(&b, "%s\n%s\n%lld", c->type, c->dir, (long long)c->max_size) != 0 ||
        (redis &&
         hx_buf_printf(&b, "\n%s\n%s\n%s\n%s\n%lld\n%lld\n%lld", r->address, r->prefix, r->username, r->password,
                       (long long)r->db, (long long)r->connect_timeout, (long long)r->command_timeout) != 0) ||
        hx_buf_append(&b, "", 1) != 0) {
        hx_buf_free(&b);
        return NULL;
    }
    return hx_buf_steal(&b, NULL);
}

static hx_cache_backend *make_backend(const hx_cfg_cache *c)
{
    size_t max = (size_t)c->max_size;
    if (strcmp(c->type, "file") == 0)
        return hx_cache_file_new(c->dir, max, HX_CACHE_FILE_BYTES_MAX);
    if (strcmp(c->type, "redis") == 0)
        return hx_cache_redis_new(&c->redis);
    return hx_cache_mem_new(max, HX_CACHE_MEM_BYTES_MAX);
}

int hx_cache_init(const hx_config *cfg)
{
    const hx_cfg_cache *c = &cfg->llm.cache;
    for (int i = 0; i < HX_CACHE__RESULTS; i++)
        atomic_store(&K.results[i], 0);
    if (!c->enable)
        return 0;
    if (!K.collector) {
        if (hx_metrics_add_collector(collect, NULL) != 0)
            goto fail;
        K.collector = true;
    }
    if ((K.conn = conn_string(c)) == NULL || (K.be = make_backend(c)) == NULL)
        goto fail;
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lldms", (long long)c->ttl);
    HX_LOG_INFO("response cache on", HX_F_STR("type", c->type), HX_F_STR("scope", c->scope), HX_F_STR("ttl", ttl),
                HX_F_INT("max_size", c->max_size));
    return 0;
fail:
    hx_free(K.conn);
    K.conn = NULL;
    HX_LOG_ERROR("cannot start the response cache", HX_F_STR("type", c->type));
    return -1;
}

void hx_cache_reconfigure(const hx_config *cfg)
{
    const hx_cfg_cache *c = &cfg->llm.cache;
    if (K.be == NULL) {
        if (c->enable)
            HX_LOG_WARN("llm.cache needs a restart to start; no answer is cached until then",
                        HX_F_STR("setting", "llm.cache.enable"));
        return;
    }
    char *now = conn_string(c);
    if (now && strcmp(now, K.conn) != 0)
        HX_LOG_WARN("llm.cache type, dir, max_size and redis need a restart; the running cache stays",
                    HX_F_STR("setting", "llm.cache"));
    hx_free(now);
}

void hx_cache_shutdown(void)
{
    if (K.be)
        K.be->vt->destroy(K.be);
    K.be = NULL;
    hx_free(K.conn);
    K.conn = NULL;
}

int hx_cache_worker_init(void *loop)
{
    return K.be && K.be->vt->worker_init ? K.be->vt->worker_init(K.be, loop) : 0;
}

void hx_cache_worker_fini(void *loop)
{
    if (K.be && K.be->vt->worker_fini)
        K.be->vt->worker_fini(K.be, loop);
}

bool hx_cache_ready(void)
{
    return K.be != NULL;
}

typedef struct {
    hx_cache_get_cb cb;
    void *ud;
} get_ctx;

static void on_blob(void *ud, const void *blob, size_t len)
{
    get_ctx g = *(get_ctx *)ud;
    hx_free(ud);
    hx_cache_entry e;
    char ctype[HX_CACHE_CTYPE_MAX + 1];
    if (blob && hx_cache_decode(blob, len, hx_cache_clock(), &e, ctype) == 0)
        g.cb(g.ud, &e);
    else
        g.cb(g.ud, NULL); /* absent, expired or not ours: a miss */
}

int hx_cache_get(void *loop, const char *key, hx_cache_get_cb cb, void *ud)
{
    if (K.be == NULL) {
        cb(ud, NULL);
        return 0;
    }
    get_ctx *g = hx_malloc(sizeof *g);
    if (g == NULL)
        return -1;
    *g = (get_ctx){cb, ud};
    if (K.be->vt->get(K.be, loop, key, on_blob, g) != 0) {
        hx_free(g);
        return -1;
    }
    return 0;
}

void hx_cache_put(void *loop, const char *key, const hx_cache_entry *e, int64_t ttl_ms)
{
    if (K.be == NULL || ttl_ms <= 0)
        return;
    if (e->len > HX_CACHE_ENTRY_MAX) {
        atomic_fetch_add(&K.too_large, 1);
        return;
    }
    void *blob;
    size_t n;
    if (hx_cache_encode(e, hx_cache_clock() + ttl_ms, &blob, &n) != 0)
        return;
    atomic_fetch_add(&K.stored, 1);
    K.be->vt->put(K.be, loop, key, blob, n, ttl_ms);
}
