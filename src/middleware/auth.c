#include "middleware/auth.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "middleware/clientip.h"
#include "middleware/ctx.h"
#include "middleware/middleware.h"
#include "middleware/ratelimit.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "util/alloc.h"

#define DIGEST_LEN 32
#define CACHE_SLOTS 4
#define MODEL_SHOWN_MAX 128

/* The SHA-256 digests of one config's client keys.
 *
 * Why a cache: hashing every configured key on every request costs
 * ~n x 0.2-0.5 us and grows with the key list; the digests only change on
 * reload. A set holds a reference to its config, so the config's address
 * cannot be reused by a newer config while the set is cached (a pointer
 * key would otherwise risk matching stale digests). Sets whose config only
 * the cache still holds are dropped at the next miss, so old configs (and
 * their secrets) do not outlive their last request by more than one
 * reload. */
typedef struct {
    hx_config *cfg;
    size_t n;
    unsigned char (*dig)[DIGEST_LEN];
    unsigned char *usable;     /* 1 when dig[i] holds a real digest */
    uint64_t built;            /* insertion order: the oldest is replaced */
} digest_set;

static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;
static digest_set *cache[CACHE_SLOTS];
static uint64_t cache_gen;
static _Thread_local unsigned long compare_count;

unsigned long hx_auth_test_compare_count(void)
{
    return compare_count;
}

/* GnuTLS (nettle) for the digest: the one crypto library of the server
 * side (src/tls/), no OpenSSL headers needed to build. */
static int sha256(const void *data, size_t len, unsigned char out[DIGEST_LEN])
{
    return gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out) == 0 ? 0 : -1;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex_decode(const char *hex, unsigned char out[DIGEST_LEN])
{
    if (strlen(hex) != 2 * DIGEST_LEN)
        return -1;
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static void set_free(digest_set *s)
{
    if (s == NULL)
        return;
    if (s->dig)
        explicit_bzero(s->dig, s->n * sizeof *s->dig); /* not optimised away */
    hx_free(s->dig);
    hx_free(s->usable);
    hx_config_unref(s->cfg);
    hx_free(s);
}

static digest_set *set_build(hx_config *cfg)
{
    const hx_cfg_auth *a = &cfg->auth;
    digest_set *s = hx_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->n = a->n_keys;
    if (s->n > 0) {
        s->dig = hx_calloc(s->n, sizeof *s->dig);
        s->usable = hx_calloc(s->n, 1);
        if (s->dig == NULL || s->usable == NULL)
            goto fail;
    }
    for (size_t i = 0; i < s->n; i++) {
        const hx_cfg_auth_key *k = &a->keys[i];
        /* A key with neither form stays unusable: it can never match. */
        if (k->key && *k->key)
            s->usable[i] = sha256(k->key, strlen(k->key), s->dig[i]) == 0;
        else if (k->key_sha256 && *k->key_sha256)
            s->usable[i] = hex_decode(k->key_sha256, s->dig[i]) == 0;
    }
    s->cfg = hx_config_ref(cfg);
    return s;
fail:
    set_free(s);
    return NULL;
}

/* Index of the key whose digest equals d, or -1. Every digest is compared
 * and the result is folded in with masks, so the time taken does not
 * depend on which key matched or how many bytes did. */
static long set_match(const digest_set *s, const unsigned char d[DIGEST_LEN])
{
    size_t found = 0; /* index + 1; 0 = none */
    for (size_t i = 0; i < s->n; i++) {
        int diff = gnutls_memcmp(s->dig[i], d, DIGEST_LEN); /* constant time */
        compare_count++;
        size_t eq = (size_t)((unsigned)(diff == 0) & s->usable[i]);
        size_t mask = (size_t)0 - eq;
        found = (found & ~mask) | ((i + 1) & mask);
    }
    return (long)found - 1;
}

static digest_set *cache_find(const hx_config *cfg)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        if (cache[i] && cache[i]->cfg == cfg)
            return cache[i];
    return NULL;
}

/* Inserts s under the write lock. Sets nobody but the cache uses any more
 * (their config's only reference is ours) and the replaced slot go to
 * `gone`, freed by the caller outside the lock. */
static void cache_insert(digest_set *s, digest_set *gone[CACHE_SLOTS + 1], size_t *ngone)
{
    size_t slot = CACHE_SLOTS;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i] && atomic_load(&cache[i]->cfg->refs) == 1) {
            gone[(*ngone)++] = cache[i];
            cache[i] = NULL;
        }
        if (cache[i] == NULL && slot == CACHE_SLOTS)
            slot = i;
    }
    if (slot == CACHE_SLOTS) {
        slot = 0;
        for (size_t i = 1; i < CACHE_SLOTS; i++)
            if (cache[i]->built < cache[slot]->built)
                slot = i;
        gone[(*ngone)++] = cache[slot];
    }
    s->built = ++cache_gen;
    cache[slot] = s;
}

/* Index of the matching key of cfg, -1 for none, -2 when out of memory. */
static long cached_match(hx_config *cfg, const unsigned char d[DIGEST_LEN])
{
    pthread_rwlock_rdlock(&cache_lock);
    digest_set *s = cache_find(cfg);
    if (s) {
        long m = set_match(s, d);
        pthread_rwlock_unlock(&cache_lock);
        return m;
    }
    pthread_rwlock_unlock(&cache_lock);

    /* Built outside the lock: the request holds its own reference to cfg. */
    digest_set *fresh = set_build(cfg);
    if (fresh == NULL)
        return -2;
    digest_set *gone[CACHE_SLOTS + 1];
    size_t ngone = 0;
    pthread_rwlock_wrlock(&cache_lock);
    s = cache_find(cfg);
    if (s == NULL) {
        cache_insert(fresh, gone, &ngone);
        s = fresh;
        fresh = NULL;
    }
    long m = set_match(s, d);
    pthread_rwlock_unlock(&cache_lock);
    set_free(fresh); /* another thread inserted first */
    for (size_t i = 0; i < ngone; i++)
        set_free(gone[i]);
    return m;
}

void hx_auth_cache_flush(void)
{
    digest_set *gone[CACHE_SLOTS];
    pthread_rwlock_wrlock(&cache_lock);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        gone[i] = cache[i];
        cache[i] = NULL;
    }
    pthread_rwlock_unlock(&cache_lock);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        set_free(gone[i]);
}

/* Points at the value with surrounding blanks trimmed; *len its length. */
static const char *trim(const char *v, size_t *len)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *len = n;
    return v;
}

/* The presented key (not NUL-terminated), or NULL when none. */
static const char *presented_key(const hx_req *r, size_t *len)
{
    const char *v = hx_headers_get(&r->headers, "authorization");
    if (v && strncasecmp(v, "bearer", 6) == 0 && (v[6] == ' ' || v[6] == '\t')) {
        const char *k = trim(v + 6, len);
        if (*len > 0)
            return k;
    }
    v = hx_headers_get(&r->headers, "x-api-key");
    if (v) {
        const char *k = trim(v, len);
        if (*len > 0)
            return k;
    }
    return NULL;
}

/* This module's slot (HX_CTX_AUTH): the key that authenticated. */
typedef struct {
    const hx_cfg_auth_key *key; /* in r->cfg */
    char name[64];              /* its name, for logs and metrics */
} auth_ctx;
_Static_assert(sizeof(auth_ctx) <= HX_CTX_AUTH_BYTES, "auth_ctx outgrew its share");

const hx_cfg_auth_key *hx_auth_key(const hx_req *r)
{
    const auth_ctx *a = hx_req_ctx(r, HX_CTX_AUTH);
    return a ? a->key : NULL;
}

const char *hx_auth_key_name(const hx_req *r)
{
    const auth_ctx *a = hx_req_ctx(r, HX_CTX_AUTH);
    return a ? a->name : "";
}

_Static_assert(HX_PEER_SUBJECT_MAX == HX_REQ_PEER_SUBJECT_MAX, "config and request disagree on the DN bound");

/* The key naming the client certificate the transport verified, or NULL.
 * Fingerprints and subjects are not secrets: a plain comparison. */
static long cert_match(const hx_req *r)
{
    const hx_cfg_auth *a = &r->cfg->auth;
    if (!r->peer_cert_sha256[0] && !r->peer_cert_subject[0])
        return -1;
    for (size_t i = 0; i < a->n_keys; i++) {
        const char *cc = a->keys[i].client_cert;
        if (cc == NULL || !*cc)
            continue;
        if (strncmp(cc, "sha256:", 7) == 0 && r->peer_cert_sha256[0] &&
            strcasecmp(cc + 7, r->peer_cert_sha256) == 0)
            return (long)i;
        if (strncmp(cc, "subject:", 8) == 0 && r->peer_cert_subject[0] &&
            strcmp(cc + 8, r->peer_cert_subject) == 0)
            return (long)i;
    }
    return -1;
}

static const hx_cfg_auth_key *remember(hx_req *r, long m)
{
    const hx_cfg_auth_key *k = &r->cfg->auth.keys[m];
    auth_ctx *a = hx_req_ctx_alloc(r, HX_CTX_AUTH, sizeof *a);
    if (a) { /* else not remembered: a later call matches again */
        a->key = k;
        snprintf(a->name, sizeof a->name, "%s", k->name);
    }
    return k;
}

const hx_cfg_auth_key *hx_auth_identify(hx_req *r, int *why)
{
    int unused;
    if (why == NULL)
        why = &unused;
    const hx_cfg_auth_key *known = hx_auth_key(r);
    if (known) {
        *why = HX_AUTH_OK;
        return known;
    }
    /* A verified client certificate named by a key identifies the client
     * before any bearer key (it was proven by the handshake). */
    long cm = cert_match(r);
    if (cm >= 0) {
        *why = HX_AUTH_OK;
        return remember(r, cm);
    }
    size_t len = 0;
    const char *key = presented_key(r, &len);
    if (key == NULL) {
        *why = HX_AUTH_MISSING;
        return NULL;
    }
    unsigned char d[DIGEST_LEN];
    long m = -1;
    if (sha256(key, len, d) == 0)
        m = cached_match(r->cfg, d);
    explicit_bzero(d, sizeof d);
    if (m < 0) {
        *why = HX_AUTH_INVALID;
        return NULL;
    }
    *why = HX_AUTH_OK;
    return remember(r, m);
}

/* One line per refusal. Only the configured key name may appear. */
static void log_failure(hx_req *r, const char *reason, const char *model)
{
    hx_client_ip_resolve(r); /* cheap, and only on a refusal */
    hx_metrics_inc(HX_M_AUTH_FAILURES, hx_metrics_series(HX_M_AUTH_FAILURES, reason), 1);
    HX_LOG_WARN("authentication failed",
                HX_F_STR("event", "auth_failure"),
                HX_F_STR("reason", reason),
                HX_F_STR("client_ip", hx_client_ip(r)),
                HX_F_STR("path", r->path ? r->path : ""),
                HX_F_STR("request_id", r->request_id),
                *hx_auth_key_name(r) ? HX_F_STR("key_name", hx_auth_key_name(r)) : (hx_log_field){0},
                model ? HX_F_STR("model", model) : (hx_log_field){0});
}

static void deny_unauthorized(hx_req *r, int why)
{
    bool missing = why == HX_AUTH_MISSING;
    log_failure(r, missing ? "missing_key" : "invalid_key", NULL);
    hx_res_header(r, "WWW-Authenticate", "Bearer realm=\"hapax\"");
    hx_res_error(r, HX_ERR_UNAUTHORIZED,
                 missing ? "An API key is required: send Authorization: Bearer <key> or X-API-Key."
                         : "The API key is not valid.");
}

void hx_mw_auth(hx_req *r)
{
    /* Behind a trusted proxy the peer is not the client: the access log
     * and the failure line name the real one. */
    hx_client_ip_resolve(r);
    int why = HX_AUTH_OK;
    if (hx_auth_identify(r, &why)) {
        hx_req_next(r);
        return;
    }
    deny_unauthorized(r, why);
}

bool hx_auth_model_allowed(const hx_cfg_auth_key *k, const char *model)
{
    if (k == NULL || k->models.n == 0)
        return true;
    if (model == NULL)
        return false;
    for (size_t i = 0; i < k->models.n; i++)
        if (strcmp(k->models.items[i], model) == 0)
            return true;
    return false;
}

void hx_auth_deny_model(hx_req *r, const char *model)
{
    /* The model comes from the client: bound what is echoed back. */
    char shown[MODEL_SHOWN_MAX + 1];
    snprintf(shown, sizeof shown, "%s", model ? model : "");
    char msg[MODEL_SHOWN_MAX + 64];
    snprintf(msg, sizeof msg, "This API key may not use the model \"%s\".", shown);
    log_failure(r, "forbidden_model", shown);
    hx_res_error(r, HX_ERR_FORBIDDEN, msg);
}

/* With auth off, /metrics is for this machine only (the client behind a
 * trusted proxy counts, not the proxy) unless the operator opted in. */
static bool metrics_open_to(hx_req *r)
{
    if (r->cfg->server.allow_unauthenticated)
        return true;
    hx_client_ip_resolve(r);
    return hx_config_host_is_loopback(hx_client_ip(r));
}

bool hx_auth_metrics_allowed(hx_req *r)
{
    const hx_cfg_auth *a = &r->cfg->auth;
    if (!a->enabled)
        return metrics_open_to(r);
    if (!a->metrics_require_auth)
        return true;
    const hx_cfg_auth_key *k = hx_auth_identify(r, NULL);
    return k != NULL && k->metrics;
}

void hx_auth_deny_metrics(hx_req *r)
{
    if (!r->cfg->auth.enabled) {
        log_failure(r, "metrics_not_loopback", NULL);
        hx_res_error(r, HX_ERR_FORBIDDEN,
                     "Metrics are served only to loopback clients while client authentication is off: "
                     "configure auth keys with metrics: true, or set server.allow_unauthenticated: true.");
        return;
    }
    int why = HX_AUTH_OK;
    if (hx_auth_identify(r, &why) == NULL) {
        deny_unauthorized(r, why);
        return;
    }
    log_failure(r, "metrics_forbidden", NULL);
    hx_res_error(r, HX_ERR_FORBIDDEN, "This API key may not read metrics.");
}
