/* The in-process state store: one chained hash table behind one mutex.
 * Expired entries go lazily (when met) and a few chains per operation, so
 * nothing lingers long after its expiry; a new key past the limits sweeps
 * everything expired first and is refused when still full. */
#include "state/store.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <uv.h>

#include "util/alloc.h"

typedef enum { V_BYTES, V_COUNTER, V_BUCKET, V_MARK, V_LEASES } vkind;

typedef struct entry {
    struct entry *next; /* chain */
    uint32_t hash;
    vkind kind;
    int64_t expires_ms; /* 0: never */
    int64_t counter;
    double tokens;
    int64_t refilled_ms;
    unsigned char *val;
    size_t vlen;
    size_t klen;
    char key[]; /* NUL-terminated */
} entry;

typedef struct {
    hx_store base;
    pthread_mutex_t mu;
    entry **chains;
    size_t nchains; /* a power of two */
    size_t sweep_at;
    size_t count, bytes;
    hx_store_limits lim;
    int64_t (*now_ms)(void);
    struct {
        char *channel;
        hx_store_msg_fn fn;
        void *ud;
    } sub;
} mem_store;

#define SWEEP_PER_OP 4

static int64_t default_now_ms(void)
{
    return (int64_t)(uv_hrtime() / 1000000u);
}

static uint32_t hash_key(const char *k, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h;
}

static size_t entry_bytes(const entry *e)
{
    return e->klen + e->vlen;
}

static void entry_free(mem_store *s, entry *e)
{
    s->count--;
    s->bytes -= entry_bytes(e);
    hx_free(e->val);
    hx_free(e);
}

static bool expired(const entry *e, int64_t now)
{
    return e->expires_ms > 0 && e->expires_ms <= now;
}

/* Drops the expired entries of n chains from the sweep cursor on. */
static void sweep(mem_store *s, size_t n, int64_t now)
{
    for (size_t i = 0; i < n && i < s->nchains; i++) {
        size_t at = s->sweep_at++ & (s->nchains - 1);
        for (entry **pp = &s->chains[at]; *pp;) {
            entry *e = *pp;
            if (expired(e, now)) {
                *pp = e->next;
                entry_free(s, e);
            } else {
                pp = &e->next;
            }
        }
    }
}

/* The live entry of key, or NULL (an expired one met is dropped). */
static entry *find(mem_store *s, const char *key, size_t klen, uint32_t h, int64_t now)
{
    for (entry **pp = &s->chains[h & (s->nchains - 1)]; *pp; pp = &(*pp)->next) {
        entry *e = *pp;
        if (e->hash != h || e->klen != klen || memcmp(e->key, key, klen) != 0)
            continue;
        if (expired(e, now)) {
            *pp = e->next;
            entry_free(s, e);
            return NULL;
        }
        return e;
    }
    return NULL;
}

static void grow(mem_store *s)
{
    size_t n = s->nchains * 2;
    entry **t = hx_calloc(n, sizeof *t);
    if (t == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->nchains; i++)
        for (entry *e = s->chains[i], *next; e; e = next) {
            next = e->next;
            e->next = t[e->hash & (n - 1)];
            t[e->hash & (n - 1)] = e;
        }
    hx_free(s->chains);
    s->chains = t;
    s->nchains = n;
}

/* A new entry for key, linked in; NULL with *rc FULL or NOMEM. */
static entry *insert(mem_store *s, const char *key, size_t klen, uint32_t h, vkind kind, size_t vlen, int64_t now,
                     hx_store_rc *rc)
{
    if (s->count + 1 > s->lim.max_entries || s->bytes + klen + vlen > s->lim.max_bytes) {
        sweep(s, s->nchains, now);
        if (s->count + 1 > s->lim.max_entries || s->bytes + klen + vlen > s->lim.max_bytes) {
            *rc = HX_STORE_FULL;
            return NULL;
        }
    }
    entry *e = hx_calloc(1, sizeof *e + klen + 1);
    if (e == NULL) {
        *rc = HX_STORE_NOMEM;
        return NULL;
    }
    memcpy(e->key, key, klen);
    e->klen = klen;
    e->hash = h;
    e->kind = kind;
    size_t at = h & (s->nchains - 1);
    e->next = s->chains[at];
    s->chains[at] = e;
    s->count++;
    s->bytes += klen;
    if (s->count > s->nchains)
        grow(s);
    return e;
}

static void unlink_entry(mem_store *s, entry *e)
{
    for (entry **pp = &s->chains[e->hash & (s->nchains - 1)]; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            entry_free(s, e);
            return;
        }
}

/* Replaces e's value by a copy of val (bytes accounted); false: no memory
 * or past the byte bound, e unchanged. */
static bool set_value(mem_store *s, entry *e, const void *val, size_t len, hx_store_rc *rc)
{
    if (s->bytes - e->vlen + len > s->lim.max_bytes) {
        *rc = HX_STORE_FULL;
        return false;
    }
    unsigned char *v = hx_malloc(len ? len : 1);
    if (v == NULL) {
        *rc = HX_STORE_NOMEM;
        return false;
    }
    if (len)
        memcpy(v, val, len);
    s->bytes = s->bytes - e->vlen + len;
    hx_free(e->val);
    e->val = v;
    e->vlen = len;
    return true;
}

static int64_t expiry(int64_t now, int64_t ttl_ms)
{
    return ttl_ms > 0 ? now + ttl_ms : 0;
}

/* Checks the key and takes the lock: the key's length and hash in *klen,
 * *h; the time in *now. -1 for a key that is empty, too long or holds a
 * NUL before its end (never truncated). */
static int enter(mem_store *s, const char *key, size_t *klen, uint32_t *h, int64_t *now)
{
    if (key == NULL)
        return -1;
    size_t n = strnlen(key, HX_STORE_KEY_MAX + 1);
    if (n == 0 || n > HX_STORE_KEY_MAX)
        return -1;
    *klen = n;
    *h = hash_key(key, n);
    pthread_mutex_lock(&s->mu);
    *now = s->now_ms();
    sweep(s, SWEEP_PER_OP, *now);
    return 0;
}

static int answer(hx_store_cb cb, void *ud, const hx_store_reply *r)
{
    if (cb)
        cb(ud, r);
    return 0;
}

static int mem_get(hx_store *base, const char *key, hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen;
    uint32_t h;
    int64_t now;
    if (enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_NOT_FOUND};
    unsigned char *copy = NULL;
    entry *e = find(s, key, klen, h, now);
    if (e && e->kind == V_COUNTER) {
        r.rc = HX_STORE_OK;
        r.value = e->counter;
    } else if (e && e->kind == V_BYTES) {
        copy = hx_malloc(e->vlen ? e->vlen : 1); /* the value outlives the lock */
        if (copy == NULL) {
            r.rc = HX_STORE_NOMEM;
        } else {
            memcpy(copy, e->val, e->vlen);
            r.rc = HX_STORE_OK;
            r.data = copy;
            r.len = e->vlen;
        }
    } else if (e) {
        r.rc = HX_STORE_WRONG_TYPE;
    }
    pthread_mutex_unlock(&s->mu);
    answer(cb, ud, &r);
    hx_free(copy);
    return 0;
}

static int mem_set(hx_store *base, const char *key, const void *val, size_t len, int64_t ttl_ms, hx_store_cb cb,
                   void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen;
    uint32_t h;
    int64_t now;
    if ((val == NULL && len > 0) || enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_OK};
    entry *e = find(s, key, klen, h, now);
    bool fresh = e == NULL;
    if (e == NULL)
        e = insert(s, key, klen, h, V_BYTES, len, now, &r.rc);
    if (e && set_value(s, e, val, len, &r.rc)) {
        e->kind = V_BYTES;
        e->expires_ms = expiry(now, ttl_ms);
    } else if (e && fresh) {
        unlink_entry(s, e);
    }
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

static int mem_add_once(hx_store *base, const char *key, int64_t ttl_ms, hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen;
    uint32_t h;
    int64_t now;
    if (enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_EXISTS};
    if (find(s, key, klen, h, now) == NULL) {
        entry *e = insert(s, key, klen, h, V_MARK, 0, now, &r.rc);
        if (e) {
            e->expires_ms = expiry(now, ttl_ms);
            r.rc = HX_STORE_OK;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

static int mem_incr(hx_store *base, const char *key, int64_t delta, int64_t ttl_ms, hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen;
    uint32_t h;
    int64_t now;
    if (enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_OK};
    entry *e = find(s, key, klen, h, now);
    if (e == NULL && (e = insert(s, key, klen, h, V_COUNTER, 0, now, &r.rc)) != NULL)
        e->expires_ms = expiry(now, ttl_ms);
    if (e && e->kind != V_COUNTER) {
        r.rc = HX_STORE_WRONG_TYPE;
    } else if (e) {
        /* Saturates instead of wrapping: a counter never turns negative by overflow. */
        if (delta > 0 && e->counter > INT64_MAX - delta)
            e->counter = INT64_MAX;
        else if (delta < 0 && e->counter < INT64_MIN - delta)
            e->counter = INT64_MIN;
        else
            e->counter += delta;
        r.value = e->counter;
    }
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

static int mem_cas(hx_store *base, const char *key, const void *expect, size_t elen, const void *val, size_t vlen,
                   int64_t ttl_ms, hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen;
    uint32_t h;
    int64_t now;
    if ((val == NULL && vlen > 0) || enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_OK};
    entry *e = find(s, key, klen, h, now);
    if (expect == NULL && e != NULL) {
        r.rc = HX_STORE_CONFLICT;
    } else if (expect != NULL && e == NULL) {
        r.rc = HX_STORE_NOT_FOUND;
    } else if (e != NULL && e->kind != V_BYTES) {
        r.rc = HX_STORE_WRONG_TYPE;
    } else if (e != NULL && (e->vlen != elen || (elen && memcmp(e->val, expect, elen) != 0))) {
        r.rc = HX_STORE_CONFLICT;
    } else {
        bool fresh = e == NULL;
        if (e == NULL)
            e = insert(s, key, klen, h, V_BYTES, vlen, now, &r.rc);
        if (e && set_value(s, e, val, vlen, &r.rc))
            e->expires_ms = expiry(now, ttl_ms);
        else if (e && fresh)
            unlink_entry(s, e);
    }
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

/* bucket_take under the lock. */
static void take_locked(mem_store *s, const char *key, size_t klen, uint32_t h, int64_t now, double rate, double burst,
                        double n, hx_store_reply *r)
{
    entry *e = find(s, key, klen, h, now);
    if (e == NULL && (e = insert(s, key, klen, h, V_BUCKET, 0, now, &r->rc)) != NULL) {
        e->tokens = burst;
        e->refilled_ms = now;
    }
    if (e && e->kind != V_BUCKET) {
        r->rc = HX_STORE_WRONG_TYPE;
    } else if (e) {
        e->tokens = fmin(burst, e->tokens + (double)(now - e->refilled_ms) * rate / 1000.0);
        e->refilled_ms = now;
        if (e->tokens >= n) {
            e->tokens -= n;
        } else {
            r->rc = HX_STORE_LIMITED;
            r->retry_ms = n > burst ? -1 : (int64_t)ceil((n - e->tokens) * 1000.0 / rate);
        }
        r->tokens = e->tokens;
        /* A full bucket is the same as none: it may go once refilled. */
        e->expires_ms = now + (int64_t)ceil((burst - e->tokens) * 1000.0 / rate) + 1;
    }
}

static bool bucket_args_ok(double rate, double burst, double n)
{
    return rate > 0 && burst > 0 && n >= 0 && isfinite(rate) && isfinite(burst) && isfinite(n);
}

static int mem_bucket_take(hx_store *base, const char *key, double rate, double burst, double n, hx_store_cb cb,
                           void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen;
    uint32_t h;
    int64_t now;
    if (!bucket_args_ok(rate, burst, n) || enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_OK};
    take_locked(s, key, klen, h, now, rate, burst, n, &r);
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

/* The refilled level of bucket key (full when missing), under the lock. */
static double level_locked(mem_store *s, const char *key, double rate, double burst, int64_t now)
{
    size_t klen = strlen(key);
    entry *e = find(s, key, klen, hash_key(key, klen), now);
    if (e == NULL || e->kind != V_BUCKET)
        return burst;
    return fmin(burst, e->tokens + (double)(now - e->refilled_ms) * rate / 1000.0);
}

static int mem_bucket_take_gated(hx_store *base, const char *key, double rate, double burst, double n,
                                 const char *gate, double grate, double gburst, hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen, glen = gate ? strnlen(gate, HX_STORE_KEY_MAX + 1) : 0;
    uint32_t h;
    int64_t now;
    if (glen == 0 || glen > HX_STORE_KEY_MAX || !bucket_args_ok(grate, gburst, 0) || !bucket_args_ok(rate, burst, n) ||
        enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_OK};
    r.gate_tokens = level_locked(s, gate, grate, gburst, now);
    if (r.gate_tokens <= 0) {
        r.rc = HX_STORE_LIMITED;
        r.value = 1;
        r.tokens = level_locked(s, key, rate, burst, now);
    } else {
        take_locked(s, key, klen, h, now, rate, burst, n, &r);
    }
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

static int mem_bucket_charge(hx_store *base, const char *key, double rate, double burst, double n, double floor,
                             hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen;
    uint32_t h;
    int64_t now;
    if (!(rate > 0) || !(burst > 0) || !isfinite(rate) || !isfinite(burst) || !isfinite(n) || !isfinite(floor) ||
        floor > burst || enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_OK};
    entry *e = find(s, key, klen, h, now);
    if (e == NULL && (e = insert(s, key, klen, h, V_BUCKET, 0, now, &r.rc)) != NULL) {
        e->tokens = burst;
        e->refilled_ms = now;
    }
    if (e && e->kind != V_BUCKET) {
        r.rc = HX_STORE_WRONG_TYPE;
    } else if (e) {
        e->tokens = fmin(burst, e->tokens + (double)(now - e->refilled_ms) * rate / 1000.0);
        e->refilled_ms = now;
        e->tokens = fmax(floor, fmin(burst, e->tokens - n));
        r.tokens = e->tokens;
        e->expires_ms = now + (int64_t)ceil((burst - e->tokens) * 1000.0 / rate) + 1;
    }
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

/* A lease set's value: records of [int64 expiry ms][uint8 length][member]. */
#define LEASE_HEAD 9

static size_t lease_next(const entry *e, size_t at)
{
    return at + LEASE_HEAD + e->val[at + 8];
}

static int64_t lease_expiry(const entry *e, size_t at)
{
    int64_t x;
    memcpy(&x, e->val + at, sizeof x);
    return x;
}

/* Drops the expired records of e (in place); the live count in *live and
 * the offset of member's record (or SIZE_MAX) in *found. */
static void lease_scan(mem_store *s, entry *e, const char *member, size_t mlen, int64_t now, int64_t *live,
                       size_t *found)
{
    size_t w = 0;
    *live = 0;
    *found = SIZE_MAX;
    for (size_t at = 0; at < e->vlen;) {
        size_t next = lease_next(e, at), len = next - at;
        if (lease_expiry(e, at) > now) {
            memmove(e->val + w, e->val + at, len);
            if (e->val[w + 8] == mlen && memcmp(e->val + w + LEASE_HEAD, member, mlen) == 0)
                *found = w;
            w += len;
            (*live)++;
        }
        at = next;
    }
    s->bytes -= e->vlen - w;
    e->vlen = w;
}

static int member_check(const char *member, size_t *mlen)
{
    if (member == NULL)
        return -1;
    *mlen = strnlen(member, HX_STORE_MEMBER_MAX + 1);
    return *mlen == 0 || *mlen > HX_STORE_MEMBER_MAX ? -1 : 0;
}

/* Appends member's record to e with expiry x; false: no room or memory. */
static bool lease_append(mem_store *s, entry *e, const char *member, size_t mlen, int64_t x, hx_store_rc *rc)
{
    size_t add = LEASE_HEAD + mlen;
    if (s->bytes + add > s->lim.max_bytes) {
        *rc = HX_STORE_FULL;
        return false;
    }
    unsigned char *v = hx_realloc(e->val, e->vlen + add);
    if (v == NULL) {
        *rc = HX_STORE_NOMEM;
        return false;
    }
    e->val = v;
    memcpy(v + e->vlen, &x, sizeof x);
    v[e->vlen + 8] = (unsigned char)mlen;
    memcpy(v + e->vlen + LEASE_HEAD, member, mlen);
    e->vlen += add;
    s->bytes += add;
    return true;
}

static int mem_lease_acquire(hx_store *base, const char *key, const char *member, int64_t limit, int64_t ttl_ms,
                             hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen, mlen;
    uint32_t h;
    int64_t now;
    if (limit < 1 || ttl_ms < 1 || member_check(member, &mlen) != 0 || enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_OK};
    entry *e = find(s, key, klen, h, now);
    bool fresh = e == NULL;
    if (e == NULL)
        e = insert(s, key, klen, h, V_LEASES, 0, now, &r.rc);
    if (e && e->kind != V_LEASES) {
        r.rc = HX_STORE_WRONG_TYPE;
    } else if (e) {
        int64_t live;
        size_t at;
        lease_scan(s, e, member, mlen, now, &live, &at);
        int64_t x = now + ttl_ms;
        r.value = live;
        if (at != SIZE_MAX) {
            memcpy(e->val + at, &x, sizeof x);
        } else if (live >= limit || live >= HX_STORE_LEASES_MAX) {
            r.rc = HX_STORE_LIMITED;
        } else if (lease_append(s, e, member, mlen, x, &r.rc)) {
            r.value = live + 1;
        }
        if (r.rc == HX_STORE_OK || r.rc == HX_STORE_LIMITED) {
            if (x > e->expires_ms) /* the set goes with its last lease */
                e->expires_ms = x;
        } else if (fresh) {
            unlink_entry(s, e);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

static int mem_lease_release(hx_store *base, const char *key, const char *member, hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen, mlen;
    uint32_t h;
    int64_t now;
    if (member_check(member, &mlen) != 0 || enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_NOT_FOUND};
    entry *e = find(s, key, klen, h, now);
    if (e && e->kind != V_LEASES) {
        r.rc = HX_STORE_WRONG_TYPE;
    } else if (e) {
        int64_t live;
        size_t at;
        lease_scan(s, e, member, mlen, now, &live, &at);
        if (at != SIZE_MAX) {
            size_t len = LEASE_HEAD + mlen;
            memmove(e->val + at, e->val + at + len, e->vlen - at - len);
            e->vlen -= len;
            s->bytes -= len;
            r.rc = HX_STORE_OK;
        }
        if (e->vlen == 0)
            unlink_entry(s, e);
    }
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

/* In process, the subscribers are this store's own. */
static int mem_publish(hx_store *base, const char *channel, const void *msg, size_t len, hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    if (channel == NULL || (msg == NULL && len > 0))
        return -1;
    pthread_mutex_lock(&s->mu);
    hx_store_msg_fn fn = s->sub.channel && strcmp(s->sub.channel, channel) == 0 ? s->sub.fn : NULL;
    void *fud = s->sub.ud;
    pthread_mutex_unlock(&s->mu);
    if (fn)
        fn(fud, channel, msg, len);
    hx_store_reply r = {.rc = HX_STORE_OK, .value = fn != NULL};
    return answer(cb, ud, &r);
}

static int mem_subscribe(hx_store *base, const char *channel, hx_store_msg_fn fn, void *ud)
{
    mem_store *s = (mem_store *)base;
    if (channel == NULL || fn == NULL || s->sub.channel)
        return -1;
    char *c = hx_strdup(channel);
    if (c == NULL)
        return -1;
    pthread_mutex_lock(&s->mu);
    s->sub.channel = c;
    s->sub.fn = fn;
    s->sub.ud = ud;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int mem_del(hx_store *base, const char *key, hx_store_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    size_t klen;
    uint32_t h;
    int64_t now;
    if (enter(s, key, &klen, &h, &now) != 0)
        return -1;
    hx_store_reply r = {.rc = HX_STORE_NOT_FOUND};
    entry *e = find(s, key, klen, h, now);
    if (e) {
        unlink_entry(s, e);
        r.rc = HX_STORE_OK;
    }
    pthread_mutex_unlock(&s->mu);
    return answer(cb, ud, &r);
}

static void mem_destroy(hx_store *base)
{
    mem_store *s = (mem_store *)base;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nchains; i++)
        for (entry *e = s->chains[i], *next; e; e = next) {
            next = e->next;
            hx_free(e->val);
            hx_free(e);
        }
    hx_free(s->chains);
    hx_free(s->sub.channel);
    pthread_mutex_destroy(&s->mu);
    hx_free(s);
}

static const hx_store_vt mem_vt = {
    .name = "memory",
    .get = mem_get,
    .set = mem_set,
    .add_once = mem_add_once,
    .incr = mem_incr,
    .cas = mem_cas,
    .bucket_take = mem_bucket_take,
    .bucket_take_gated = mem_bucket_take_gated,
    .bucket_charge = mem_bucket_charge,
    .lease_acquire = mem_lease_acquire,
    .lease_release = mem_lease_release,
    .publish = mem_publish,
    .subscribe = mem_subscribe,
    .del = mem_del,
    .destroy = mem_destroy,
};

hx_store *hx_store_memory_new(const hx_store_limits *lim)
{
    mem_store *s = hx_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->nchains = 64;
    s->chains = hx_calloc(s->nchains, sizeof *s->chains);
    if (s->chains == NULL || pthread_mutex_init(&s->mu, NULL) != 0) {
        hx_free(s->chains);
        hx_free(s);
        return NULL;
    }
    s->base.vt = &mem_vt;
    s->lim = *lim;
    s->now_ms = default_now_ms;
    return &s->base;
}

void hx_store_memory_clock(hx_store *base, int64_t (*now_ms)(void))
{
    mem_store *s = (mem_store *)base;
    pthread_mutex_lock(&s->mu);
    s->now_ms = now_ms ? now_ms : default_now_ms;
    pthread_mutex_unlock(&s->mu);
}

void hx_store_memory_usage(hx_store *base, size_t *count, size_t *bytes)
{
    mem_store *s = (mem_store *)base;
    pthread_mutex_lock(&s->mu);
    *count = s->count;
    *bytes = s->bytes;
    pthread_mutex_unlock(&s->mu);
}

const char *hx_store_rc_str(hx_store_rc rc)
{
    static const char *const names[] = {
        "ok", "exists", "not_found", "conflict", "limited", "full", "wrong_type", "unavailable", "out_of_memory",
    };
    return (unsigned)rc < sizeof names / sizeof names[0] ? names[rc] : "error";
}
