/* A bounded map from cache key to entry, least recently used first out:
 * a chained hash table (the keys are SHA-256 digests, so their first
 * bytes index it evenly) threaded on one recency list. */
#include <string.h>

#include "cache/cache_int.h"
#include "util/alloc.h"

/* Buckets: a power of two near max_entries, within these bounds. */
#define BUCKETS_MIN 16
#define BUCKETS_MAX ((size_t)1 << 16)

typedef struct lru_ent {
    char key[HX_CACHE_KEY_HEX + 1];
    void *data;
    size_t size;
    struct lru_ent *chain;
    struct lru_ent *prev, *next; /* recency: head most recent */
} lru_ent;

struct hx_cache_lru {
    lru_ent **buckets;
    size_t nbuckets;
    lru_ent *head, *tail;
    size_t count, bytes;
    size_t max_entries, max_bytes;
};

static size_t bucket_of(const hx_cache_lru *l, const char *key)
{
    size_t h = 0;
    for (int i = 0; i < 12 && key[i]; i++) /* 48 bits of the digest */
        h = h * 16 + (size_t)(key[i] <= '9' ? key[i] - '0' : (key[i] | 0x20) - 'a' + 10);
    return h & (l->nbuckets - 1);
}

hx_cache_lru *hx_cache_lru_new(size_t max_entries, size_t max_bytes)
{
    hx_cache_lru *l = hx_calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->nbuckets = BUCKETS_MIN;
    while (l->nbuckets < max_entries && l->nbuckets < BUCKETS_MAX)
        l->nbuckets *= 2;
    l->buckets = hx_calloc(l->nbuckets, sizeof *l->buckets);
    if (l->buckets == NULL) {
        hx_free(l);
        return NULL;
    }
    l->max_entries = max_entries ? max_entries : 1;
    l->max_bytes = max_bytes;
    return l;
}

static void list_unlink(hx_cache_lru *l, lru_ent *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(hx_cache_lru *l, lru_ent *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    l->head = e;
    if (l->tail == NULL)
        l->tail = e;
}

static lru_ent **slot_of(hx_cache_lru *l, const char *key)
{
    lru_ent **pp = &l->buckets[bucket_of(l, key)];
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->chain;
    return pp;
}

/* Unlinks *pp from both structures and frees it (after `evict` saw it). */
static void drop(hx_cache_lru *l, lru_ent **pp, hx_cache_evict_fn evict, void *ud)
{
    lru_ent *e = *pp;
    if (e == NULL)
        return;
    *pp = e->chain;
    list_unlink(l, e);
    l->count--;
    l->bytes -= e->size;
    if (evict)
        evict(ud, e->key, e->data);
    hx_free(e->data);
    hx_free(e);
}

void hx_cache_lru_free(hx_cache_lru *l)
{
    if (l == NULL)
        return;
    /* Every listed entry is in the table: each turn drops the head. */
    for (lru_ent *h = l->head; h && *slot_of(l, h->key) == h; h = l->head)
        drop(l, slot_of(l, h->key), NULL, NULL);
    hx_free(l->buckets);
    hx_free(l);
}

void *hx_cache_lru_find(hx_cache_lru *l, const char *key, size_t *size)
{
    lru_ent *e = *slot_of(l, key);
    if (e == NULL)
        return NULL;
    list_unlink(l, e);
    list_push_front(l, e);
    *size = e->size;
    return e->data ? e->data : (void *)e; /* non-NULL for a size-only entry */
}

void hx_cache_lru_remove(hx_cache_lru *l, const char *key)
{
    lru_ent **pp = slot_of(l, key);
    if (*pp)
        drop(l, pp, NULL, NULL);
}

void hx_cache_lru_release(hx_cache_lru *l, const char *key, const void *data)
{
    lru_ent *e = *slot_of(l, key);
    if (e && e->data == data) {
        hx_free(e->data);
        e->data = NULL;
    }
}

bool hx_cache_lru_has_data(hx_cache_lru *l, const char *key)
{
    lru_ent *e = *slot_of(l, key);
    return e && e->data;
}

int hx_cache_lru_put(hx_cache_lru *l, const char *key, void *data, size_t size, hx_cache_evict_fn evict, void *ud)
{
    if (strlen(key) != HX_CACHE_KEY_HEX || size > l->max_bytes) {
        hx_free(data);
        return -1;
    }
    lru_ent **pp = slot_of(l, key);
    if (*pp)
        drop(l, pp, NULL, NULL); /* replaced: not an eviction */
    lru_ent *e = hx_calloc(1, sizeof *e);
    if (e == NULL) {
        hx_free(data);
        return -1;
    }
    memcpy(e->key, key, HX_CACHE_KEY_HEX + 1);
    e->data = data;
    e->size = size;
    lru_ent **head = &l->buckets[bucket_of(l, key)];
    e->chain = *head;
    *head = e;
    list_push_front(l, e);
    l->count++;
    l->bytes += size;
    for (lru_ent *t = l->tail; t && t != e && (l->count > l->max_entries || l->bytes > l->max_bytes); t = l->tail)
        drop(l, slot_of(l, t->key), evict, ud);
    return 0;
}

void hx_cache_lru_usage(const hx_cache_lru *l, size_t *entries, size_t *bytes)
{
    *entries = l->count;
    *bytes = l->bytes;
}
