/* The in-process responses store: a chained hash table of entries plus a
 * list in insertion order, so the oldest entry is the first to expire and
 * the first to make room. */
#include "state/responses_store.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"

/* Bucket count: from max_stored at creation, within these bounds (later
 * limits only lengthen the chains). */
#define RS_BUCKETS_MIN 64
#define RS_BUCKETS_MAX ((size_t)1 << 20)

typedef struct rs_entry {
    struct rs_entry *hnext;          /* bucket chain */
    struct rs_entry *prev, *next;    /* insertion order, oldest first */
    uint64_t hash;
    int64_t expires_ms;
    size_t bytes;
    char *id, *owner, *response, *conv;
    size_t rlen, clen;
} rs_entry;

typedef struct {
    hx_resp_store base;
    pthread_mutex_t mu;
    hx_resp_store_limits lim;
    int64_t (*now_ms)(void);
    rs_entry **buckets;
    size_t nbuckets;                 /* a power of two */
    rs_entry *oldest, *newest;
    size_t count, bytes;
} rs_mem;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a. */
static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static rs_entry **slot_of(rs_mem *m, const char *id, uint64_t h)
{
    rs_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && strcmp((*pp)->id, id) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

/* Unlinks e (found at *pp in its bucket) and frees it. */
static void drop(rs_mem *m, rs_entry **pp)
{
    rs_entry *e = *pp;
    if (e == NULL) /* not in the table: callers only pass entries that are */
        return;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        m->oldest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        m->newest = e->prev;
    m->count--;
    m->bytes -= e->bytes;
    hx_free(e);
}

static void drop_entry(rs_mem *m, rs_entry *e)
{
    drop(m, slot_of(m, e->id, e->hash));
}

/* Expired entries and whatever passes the limits, oldest first, leaving
 * room for `extra` bytes and one more entry when `extra` is set. */
static void evict(rs_mem *m, int64_t now, size_t extra)
{
    while (m->oldest && m->oldest->expires_ms <= now)
        drop_entry(m, m->oldest);
    size_t more = extra ? 1 : 0;
    while (m->oldest && (m->count + more > m->lim.max_stored || m->bytes + extra > m->lim.max_bytes))
        drop_entry(m, m->oldest);
}

static bool entry_fits(const rs_mem *m, size_t bytes)
{
    return m->lim.max_stored > 0 && bytes <= m->lim.max_bytes;
}

static rs_entry *entry_new(const char *id, const char *owner, const hx_resp_entry *in)
{
    size_t il = strlen(id) + 1, ol = strlen(owner) + 1;
    size_t total = sizeof(rs_entry) + il + ol + in->response_len + 1 + in->conversation_len + 1;
    rs_entry *e = hx_malloc(total);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof *e);
    char *p = (char *)(e + 1);
    e->id = memcpy(p, id, il);
    e->owner = memcpy(p += il, owner, ol);
    e->response = p += ol;
    memcpy(e->response, in->response, in->response_len);
    e->response[in->response_len] = '\0';
    e->conv = p + in->response_len + 1;
    memcpy(e->conv, in->conversation, in->conversation_len);
    e->conv[in->conversation_len] = '\0';
    e->rlen = in->response_len;
    e->clen = in->conversation_len;
    e->bytes = total;
    return e;
}

static int mem_put(hx_resp_store *s, const char *id, const char *owner, const hx_resp_entry *in, hx_resp_done_cb cb,
                   void *ud)
{
    rs_mem *m = (rs_mem *)s;
    rs_entry *e = entry_new(id, owner, in);
    int status = e ? 0 : -1;
    pthread_mutex_lock(&m->mu);
    int64_t now = m->now_ms();
    if (e && !entry_fits(m, e->bytes)) {
        hx_free(e);
        e = NULL;
        status = -1;
    }
    if (e) {
        e->hash = hash_id(id);
        e->expires_ms = now + m->lim.ttl_ms;
        rs_entry **pp = slot_of(m, id, e->hash);
        if (*pp)
            drop(m, pp);
        evict(m, now, e->bytes);
        pp = slot_of(m, id, e->hash);
        *pp = e;
        e->prev = m->newest;
        if (m->newest)
            m->newest->next = e;
        else
            m->oldest = e;
        m->newest = e;
        m->count++;
        m->bytes += e->bytes;
    } else {
        evict(m, now, 0);
    }
    pthread_mutex_unlock(&m->mu);
    if (cb)
        cb(ud, status);
    return 0;
}

/* The live entry id of owner, or NULL (with the lock held). */
static rs_entry **find(rs_mem *m, const char *id, const char *owner, int64_t now)
{
    rs_entry **pp = slot_of(m, id, hash_id(id));
    if (*pp && (*pp)->expires_ms <= now) {
        drop(m, pp);
        return NULL;
    }
    return *pp && strcmp((*pp)->owner, owner) == 0 ? pp : NULL;
}

static int mem_get(hx_resp_store *s, const char *id, const char *owner, hx_resp_get_cb cb, void *ud)
{
    rs_mem *m = (rs_mem *)s;
    char *copy = NULL;
    hx_resp_entry out = {0};
    int status = 1;
    pthread_mutex_lock(&m->mu);
    rs_entry **pp = find(m, id, owner, m->now_ms());
    if (pp) {
        /* A copy: the callback runs without the lock, and the entry may go. */
        rs_entry *e = *pp;
        copy = hx_malloc(e->rlen + e->clen + 2);
        if (copy) {
            memcpy(copy, e->response, e->rlen + 1);
            memcpy(copy + e->rlen + 1, e->conv, e->clen + 1);
            out = (hx_resp_entry){copy, e->rlen, copy + e->rlen + 1, e->clen};
            status = 0;
        } else {
            status = -1;
        }
    }
    pthread_mutex_unlock(&m->mu);
    cb(ud, status, status == 0 ? &out : NULL);
    hx_free(copy);
    return 0;
}

static int mem_del(hx_resp_store *s, const char *id, const char *owner, hx_resp_done_cb cb, void *ud)
{
    rs_mem *m = (rs_mem *)s;
    pthread_mutex_lock(&m->mu);
    rs_entry **pp = find(m, id, owner, m->now_ms());
    if (pp)
        drop(m, pp);
    pthread_mutex_unlock(&m->mu);
    if (cb)
        cb(ud, pp ? 0 : 1);
    return 0;
}

static void mem_destroy(hx_resp_store *s)
{
    rs_mem *m = (rs_mem *)s;
    if (m == NULL)
        return;
    while (m->oldest)
        drop_entry(m, m->oldest);
    pthread_mutex_destroy(&m->mu);
    hx_free(m->buckets);
    hx_free(m);
}

static const hx_resp_store_vt mem_vt = {mem_put, mem_get, mem_del, mem_destroy};

hx_resp_store *hx_resp_store_memory_new(const hx_resp_store_limits *lim)
{
    rs_mem *m = hx_calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    size_t n = RS_BUCKETS_MIN;
    while (n < RS_BUCKETS_MAX && n < lim->max_stored)
        n <<= 1;
    m->buckets = hx_calloc(n, sizeof *m->buckets);
    if (m->buckets == NULL || pthread_mutex_init(&m->mu, NULL) != 0) {
        hx_free(m->buckets);
        hx_free(m);
        return NULL;
    }
    m->nbuckets = n;
    m->lim = *lim;
    m->now_ms = mono_ms;
    m->base.vt = &mem_vt;
    return &m->base;
}

void hx_resp_store_memory_limits(hx_resp_store *s, const hx_resp_store_limits *lim)
{
    rs_mem *m = (rs_mem *)s;
    pthread_mutex_lock(&m->mu);
    m->lim = *lim;
    pthread_mutex_unlock(&m->mu);
}

void hx_resp_store_memory_clock(hx_resp_store *s, int64_t (*now_ms)(void))
{
    rs_mem *m = (rs_mem *)s;
    pthread_mutex_lock(&m->mu);
    m->now_ms = now_ms ? now_ms : mono_ms;
    pthread_mutex_unlock(&m->mu);
}

void hx_resp_store_memory_usage(hx_resp_store *s, size_t *count, size_t *bytes)
{
    rs_mem *m = (rs_mem *)s;
    pthread_mutex_lock(&m->mu);
    *count = m->count;
    *bytes = m->bytes;
    pthread_mutex_unlock(&m->mu);
}
