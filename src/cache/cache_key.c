/* The cache key: SHA-256 over a canonical form of the request, so that
 * two bodies meaning the same request (members in another order,
 * whitespace, escapes) share an entry and any difference in a value
 * (model, messages, tools, a parameter) does not. Every value is typed
 * and length-prefixed, so no two different requests serialize alike. */
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "util/alloc.h"

/* Deeper than any body the JSON check lets through (server.max_json_depth). */
#define DEPTH_MAX 1000

typedef struct {
    const char *k;
    json_object *v;
} member;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const member *)a)->k, ((const member *)b)->k);
}

/* A tag byte, a length (or a count: p NULL), then the bytes. */
static int put(gnutls_hash_hd_t h, char tag, const void *p, size_t n)
{
    char head[24];
    int hl = snprintf(head, sizeof head, "%c%zu:", tag, n);
    return gnutls_hash(h, head, (size_t)hl) < 0 || (p && n && gnutls_hash(h, p, n) < 0) ? -1 : 0;
}

static int walk(gnutls_hash_hd_t h, json_object *v, int depth);

static int walk_object(gnutls_hash_hd_t h, json_object *v, int depth)
{
    size_t n = (size_t)json_object_object_length(v), i = 0;
    member *m = n ? hx_malloc(n * sizeof *m) : NULL;
    if (n && m == NULL)
        return -1;
    json_object_object_foreach(v, key, val)
    {
        if (i == n)
            break;
        m[i].k = key;
        m[i++].v = val;
    }
    if (n)
        qsort(m, n, sizeof *m, by_name);
    int rc = put(h, '{', NULL, n);
    for (i = 0; rc == 0 && i < n; i++)
        rc = put(h, 'k', m[i].k, strlen(m[i].k)) || walk(h, m[i].v, depth + 1);
    hx_free(m);
    return rc;
}

static int walk(gnutls_hash_hd_t h, json_object *v, int depth)
{
    char num[40];
    if (depth > DEPTH_MAX)
        return -1;
    switch (json_object_get_type(v)) {
    case json_type_null:
        return put(h, 'n', NULL, 0);
    case json_type_boolean:
        return put(h, json_object_get_boolean(v) ? 't' : 'f', NULL, 0);
    case json_type_int:
        snprintf(num, sizeof num, "%lld", (long long)json_object_get_int64(v));
        return put(h, 'i', num, strlen(num));
    case json_type_double:
        snprintf(num, sizeof num, "%.17g", json_object_get_double(v));
        return put(h, 'd', num, strlen(num));
    case json_type_string:
        return put(h, 's', json_object_get_string(v), (size_t)json_object_get_string_len(v));
    case json_type_array: {
        size_t n = json_object_array_length(v);
        int rc = put(h, '[', NULL, n);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = walk(h, json_object_array_get_idx(v, i), depth + 1);
        return rc;
    }
    case json_type_object:
        return walk_object(h, v, depth);
    }
    return -1;
}

int hx_cache_key(const hx_cache_key_parts *k, json_object *body, char out[HX_CACHE_KEY_HEX + 1])
{
    gnutls_hash_hd_t h;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
        return -1;
    const char *parts[] = {"hapax-cache-v1", k->api ? k->api : "", k->stream ? "stream" : "whole",
                           k->scope ? k->scope : "", k->extra ? k->extra : ""};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof parts / sizeof parts[0]; i++)
        rc = put(h, 'p', parts[i], strlen(parts[i]));
    if (rc == 0)
        rc = walk(h, body, 0);
    unsigned char d[32];
    gnutls_hash_deinit(h, d);
    if (rc != 0)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    return 0;
}
