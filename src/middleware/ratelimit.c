#include "middleware/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "middleware/auth.h"
#include "middleware/clientip.h"
#include "middleware/ctx.h"
#include "middleware/middleware.h"
#include "middleware/ratelimit_int.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "state/cluster.h"
#include "util/alloc.h"

/* Striped so workers limiting different clients rarely wait on each
 * other; each stripe is a chained hash map plus a use-ordered list. */
#define STRIPES 16
#define STRIPE_MAX (HX_RATELIMIT_MAX_ENTRIES / STRIPES)
#define FIRST_SLOTS 64
#define IDLE_CHECKS 4
#define EPS 1e-9

typedef struct {
    double level;
    bool known;               /* false: not in use yet, starts full */
} rl_bucket;

typedef struct rl_entry {
    struct rl_entry *next;             /* hash chain */
    struct rl_entry *newer, *older;    /* use order */
    uint64_t hash;
    int64_t updated_ms;                /* monotonic time of the last refill */
    int64_t full_at_ms;                /* both buckets full again: may go */
    rl_bucket req, tpm;
    char id[];
} rl_entry;

typedef struct {
    pthread_mutex_t mu;
    rl_entry **slots;
    size_t nslots;
    size_t count;
    rl_entry *newest, *oldest;
} rl_stripe;

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static rl_stripe stripes[STRIPES];
static uint64_t hash_seed;
/* Limits of the config given to init, for imported buckets (which carry
 * no limits) until they are next used: the global ones and each key's. */
typedef struct {
    char *name;
    hx_cfg_rate rate;
} rl_key_rate;
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static hx_cfg_rate init_rate;
static rl_key_rate *init_keys;
static size_t init_nkeys;
static uint64_t (*clock_hook)(void);

/* ---- setup, time, hashing ---------------------------------------------- */

static void rl_setup(void)
{
    for (size_t i = 0; i < STRIPES; i++)
        pthread_mutex_init(&stripes[i].mu, NULL);
    /* A secret seed keeps clients from choosing addresses that collide. */
    if (getrandom(&hash_seed, sizeof hash_seed, 0) != (ssize_t)sizeof hash_seed)
        hash_seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&hash_seed;
}

static void ensure_setup(void)
{
    pthread_once(&setup_once, rl_setup);
}

void hx_ratelimit_set_clock(uint64_t (*now_ms)(void))
{
    clock_hook = now_ms;
}

static int64_t mono_ms(void)
{
    uint64_t (*f)(void) = clock_hook;
    return (int64_t)(f ? f() : hx_now_ns() / 1000000u);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t id_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull ^ hash_seed;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static void limits_from(const hx_cfg_rate *c, rl_limits *l)
{
    /* Without a refill rate, burst alone would be a one-off allowance. */
    l->req_pm = c->requests_per_minute > 0 ? (double)c->requests_per_minute : 0;
    l->req_cap = l->req_pm > 0 ? (double)(c->burst > 0 ? c->burst : c->requests_per_minute) : 0;
    l->tpm_pm = c->tokens_per_minute > 0 ? (double)c->tokens_per_minute : 0;
    l->tpm_cap = l->tpm_pm;
}

/* A key's own limits > 0 replace the global ones. */
static void rate_merge(hx_cfg_rate *eff, const hx_cfg_rate *key)
{
    if (key->requests_per_minute > 0)
        eff->requests_per_minute = key->requests_per_minute;
    if (key->burst > 0)
        eff->burst = key->burst;
    if (key->tokens_per_minute > 0)
        eff->tokens_per_minute = key->tokens_per_minute;
}

/* ---- buckets ----------------------------------------------------------- */

static void bucket_refill(rl_bucket *b, double cap, double per_min, int64_t elapsed_ms)
{
    if (cap <= 0) {
        b->known = false;
        return;
    }
    if (!b->known) {
        b->level = cap;
        b->known = true;
        return;
    }
    /* Multiply first: whole minutes then refill exactly. */
    b->level += (double)elapsed_ms * per_min / 60000.0;
    if (b->level > cap)
        b->level = cap;
}

/* Milliseconds until the bucket holds `target` (0 when it already does). */
static int64_t ms_until(const rl_bucket *b, double target, double per_min)
{
    if (!b->known || b->level + EPS >= target || per_min <= 0)
        return 0;
    return (int64_t)ceil((target - b->level) * 60000.0 / per_min - EPS);
}

int64_t hx_rl_secs_ceil(int64_t ms)
{
    return (ms + 999) / 1000;
}

static void entry_refill(rl_entry *e, const rl_limits *l, int64_t now)
{
    int64_t elapsed = now > e->updated_ms ? now - e->updated_ms : 0;
    bucket_refill(&e->req, l->req_cap, l->req_pm, elapsed);
    bucket_refill(&e->tpm, l->tpm_cap, l->tpm_pm, elapsed);
    e->updated_ms = now;
}

static void entry_set_full_at(rl_entry *e, const rl_limits *l)
{
    int64_t a = l->req_cap > 0 ? ms_until(&e->req, l->req_cap, l->req_pm) : 0;
    int64_t b = l->tpm_cap > 0 ? ms_until(&e->tpm, l->tpm_cap, l->tpm_pm) : 0;
    e->full_at_ms = e->updated_ms + (a > b ? a : b);
}

/* ---- the table (callers hold the stripe's lock) ------------------------ */

static void list_unlink(rl_stripe *s, rl_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void list_push_newest(rl_stripe *s, rl_entry *e)
{
    e->older = s->newest;
    e->newer = NULL;
    if (s->newest)
        s->newest->newer = e;
    else
        s->oldest = e;
    s->newest = e;
}

static void entry_remove(rl_stripe *s, rl_entry *e)
{
    rl_entry **pp = &s->slots[(e->hash / STRIPES) & (s->nslots - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    list_unlink(s, e);
    s->count--;
    hx_free(e);
}

/* Doubles the slot array; on allocation failure the chains just grow. */
static void stripe_grow(rl_stripe *s)
{
    size_t n = s->nslots ? s->nslots * 2 : FIRST_SLOTS;
    rl_entry **slots = hx_calloc(n, sizeof *slots);
    if (slots == NULL)
        return;
    for (size_t i = 0; i < s->nslots; i++) {
        rl_entry *e = s->slots[i];
        while (e) {
            rl_entry *next = e->next;
            size_t k = (e->hash / STRIPES) & (n - 1);
            e->next = slots[k];
            slots[k] = e;
            e = next;
        }
    }
    hx_free(s->slots);
    s->slots = slots;
    s->nslots = n;
}

/* The entry for id (created when missing and `create`), now the most
 * recently used. NULL when absent or out of memory. */
static rl_entry *stripe_get(rl_stripe *s, const char *id, uint64_t h, int64_t now, bool create)
{
    /* Lazy eviction: the least recently used buckets, if full again. */
    for (int i = 0; i < IDLE_CHECKS && s->oldest && s->oldest->full_at_ms <= now; i++)
        entry_remove(s, s->oldest);
    if (s->nslots > 0) {
        for (rl_entry *e = s->slots[(h / STRIPES) & (s->nslots - 1)]; e; e = e->next) {
            if (e->hash == h && strcmp(e->id, id) == 0) {
                list_unlink(s, e);
                list_push_newest(s, e);
                return e;
            }
        }
    }
    if (!create)
        return NULL;
    /* Full: the least recently used bucket makes room (documented). */
    if (s->count >= STRIPE_MAX && s->oldest)
        entry_remove(s, s->oldest);
    if (s->count >= s->nslots)
        stripe_grow(s);
    if (s->nslots == 0)
        return NULL;
    size_t len = strlen(id);
    rl_entry *e = hx_calloc(1, sizeof *e + len + 1);
    if (e == NULL)
        return NULL;
    memcpy(e->id, id, len + 1);
    e->hash = h;
    e->updated_ms = now;
    e->full_at_ms = now;
    size_t k = (h / STRIPES) & (s->nslots - 1);
    e->next = s->slots[k];
    s->slots[k] = e;
    list_push_newest(s, e);
    s->count++;
    return e;
}

static rl_stripe *stripe_for(uint64_t h)
{
    return &stripes[h % STRIPES];
}

/* ---- decisions --------------------------------------------------------- */

static void decide(rl_entry *e, const rl_limits *l, rl_decision *d)
{
    *d = (rl_decision){.allowed = true};
    bool tpm_view = l->req_cap <= 0;
    if (l->tpm_cap > 0 && e->tpm.level <= 0) {
        d->allowed = false;
        d->kind = "tokens";
        d->retry_s = hx_rl_secs_ceil(ms_until(&e->tpm, 0, l->tpm_pm) + 1);
        tpm_view = true;
    } else if (l->req_cap > 0) {
        if (e->req.level + EPS >= 1) {
            e->req.level -= 1;
            if (e->req.level < 0)
                e->req.level = 0;
        } else {
            d->allowed = false;
            d->kind = "requests";
            d->retry_s = hx_rl_secs_ceil(ms_until(&e->req, 1, l->req_pm));
        }
    }
    if (!d->allowed && d->retry_s < 1)
        d->retry_s = 1;
    const rl_bucket *b = tpm_view ? &e->tpm : &e->req;
    double cap = tpm_view ? l->tpm_cap : l->req_cap;
    double pm = tpm_view ? l->tpm_pm : l->req_pm;
    double left = floor(b->level + EPS);
    d->limit = (int64_t)cap;
    d->remaining = left > 0 ? (int64_t)left : 0;
    d->reset_s = hx_rl_secs_ceil(ms_until(b, cap, pm));
}

int hx_rl_local_take(const char *id, const rl_limits *l, rl_decision *d)
{
    int64_t now = mono_ms();
    uint64_t h = id_hash(id);
    rl_stripe *s = stripe_for(h);
    pthread_mutex_lock(&s->mu);
    rl_entry *e = stripe_get(s, id, h, now, true);
    if (e == NULL) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    entry_refill(e, l, now);
    decide(e, l, d);
    entry_set_full_at(e, l);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* The bucket id and limits of r's client: its key when auth knows it (a
 * key's own limits > 0 replace the global ones), else its IP. */
static void rl_identify(hx_req *r, char id[ID_BUF], rl_limits *l)
{
    hx_client_ip_resolve(r);
    hx_cfg_rate eff = r->cfg->rate_limit.limits;
    const hx_cfg_auth_key *k = r->cfg->auth.enabled ? hx_auth_identify(r, NULL) : NULL;
    if (k) {
        rate_merge(&eff, &k->rate_limit);
        snprintf(id, ID_BUF, "key:%s", k->name);
    } else {
        hx_client_ip_bucket(hx_client_ip(r), id, ID_BUF);
    }
    limits_from(&eff, l);
}

/* ---- the step ---------------------------------------------------------- */

static void set_headers(hx_req *r, const rl_decision *d)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)d->limit);
    hx_res_header(r, "RateLimit-Limit", v);
    snprintf(v, sizeof v, "%lld", (long long)d->remaining);
    hx_res_header(r, "RateLimit-Remaining", v);
    snprintf(v, sizeof v, "%lld", (long long)d->reset_s);
    hx_res_header(r, "RateLimit-Reset", v);
}

void hx_rl_answer(hx_req *r, const char *id, const rl_decision *d)
{
    set_headers(r, d);
    if (d->allowed) {
        hx_req_next(r);
        return;
    }
    char ra[24];
    snprintf(ra, sizeof ra, "%lld", (long long)d->retry_s);
    hx_res_header(r, "Retry-After", ra);
    /* The id holds the key's configured name or the IP, never a key. */
    HX_LOG_WARN("rate limited",
                HX_F_STR("event", "rate_limited"),
                HX_F_STR("kind", d->kind),
                HX_F_STR("bucket", id),
                HX_F_STR("client_ip", hx_client_ip(r)),
                *hx_auth_key_name(r) ? HX_F_STR("key_name", hx_auth_key_name(r)) : (hx_log_field){0},
                HX_F_STR("path", r->path ? r->path : ""),
                HX_F_STR("request_id", r->request_id),
                HX_F_INT("retry_after", d->retry_s));
    hx_metrics_inc(HX_M_RATE_LIMIT_HITS, hx_metrics_series(HX_M_RATE_LIMIT_HITS, d->kind), 1);
    bool tokens = strcmp(d->kind, "tokens") == 0;
    hx_res_error(r, HX_ERR_RATE_LIMITED,
                 tokens ? "Token rate limit exceeded." : "Request rate limit exceeded.");
}

void hx_rl_local_answer(hx_req *r, const char *id, const rl_limits *l)
{
    rl_decision d;
    if (hx_rl_local_take(id, l, &d) != 0) {
        /* Fail open: a memory shortage should not turn into an outage. */
        HX_LOG_WARN("rate limiter out of memory", HX_F_STR("request_id", r->request_id));
        hx_req_next(r);
        return;
    }
    hx_rl_answer(r, id, &d);
}

void hx_mw_rate_limit(hx_req *r)
{
    ensure_setup();
    char id[ID_BUF];
    rl_limits l;
    rl_identify(r, id, &l);
    if (l.req_cap <= 0 && l.tpm_cap <= 0) {
        hx_req_next(r);
        return;
    }
    if (hx_cluster_enabled())
        hx_rl_shared_take(r, id, &l);
    else
        hx_rl_local_answer(r, id, &l);
}

static bool step_ran(const hx_req *r)
{
    for (size_t i = 0; i < r->step_pos && i < r->nsteps; i++)
        if (r->steps[i] == hx_mw_rate_limit)
            return true;
    return false;
}

/* Moves r's client tokens bucket by -delta (a refund when delta < 0, never
 * above capacity). Returns the capacity, or 0 when r has no tokens limit. */
void hx_rl_local_adjust(const char *id, const rl_limits *l, int64_t delta)
{
    ensure_setup();
    int64_t now = mono_ms();
    uint64_t h = id_hash(id);
    rl_stripe *s = stripe_for(h);
    pthread_mutex_lock(&s->mu);
    rl_entry *e = stripe_get(s, id, h, now, true);
    if (e) {
        entry_refill(e, l, now);
        e->tpm.level -= (double)delta;
        if (e->tpm.level > l->tpm_cap)
            e->tpm.level = l->tpm_cap;
        /* Debt is real usage, but an upstream reporting absurd counts must
         * not lock a client out for years: at most HX_RL_MAX_DEBT_MINUTES. */
        if (e->tpm.level < -(double)l->tpm_cap * HX_RL_MAX_DEBT_MINUTES)
            e->tpm.level = -(double)l->tpm_cap * HX_RL_MAX_DEBT_MINUTES;
        entry_set_full_at(e, l);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Moves r's client tokens bucket by -delta (a refund when delta < 0, never
 * above capacity). Returns the capacity, or 0 when r has no tokens limit. */
static int64_t tpm_adjust(hx_req *r, int64_t delta)
{
    if (!step_ran(r))
        return 0;
    ensure_setup();
    char id[ID_BUF];
    rl_limits l;
    rl_identify(r, id, &l);
    if (l.tpm_cap <= 0)
        return 0;
    if (delta == 0)
        return (int64_t)l.tpm_cap;
    if (hx_cluster_enabled())
        hx_rl_shared_adjust(r->loop, id, &l, delta);
    else
        hx_rl_local_adjust(id, &l, delta);
    return (int64_t)l.tpm_cap;
}

void hx_ratelimit_debit_tokens(hx_req *r, int64_t tokens)
{
    if (tokens > 0)
        tpm_adjust(r, tokens);
}

int64_t hx_ratelimit_reserve_tokens(hx_req *r, int64_t tokens)
{
    if (tokens <= 0)
        return 0;
    int64_t cap = tpm_adjust(r, 0);
    if (cap <= 0)
        return 0;
    /* more than the whole bucket would only lock the client out longer */
    int64_t take = tokens < cap ? tokens : cap;
    tpm_adjust(r, take);
    return take;
}

void hx_ratelimit_settle_tokens(hx_req *r, int64_t reserved, int64_t charge)
{
    if (reserved < 0)
        reserved = 0;
    if (charge < 0)
        charge = 0;
    if (charge != reserved)
        tpm_adjust(r, charge - reserved);
}

/* ---- lifetime ---------------------------------------------------------- */

static void init_keys_free(rl_key_rate *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hx_free(keys[i].name);
    hx_free(keys);
}

int hx_ratelimit_init(const hx_config *cfg)
{
    ensure_setup();
    const hx_cfg_auth *a = &cfg->auth;
    rl_key_rate *keys = NULL;
    size_t n = 0;
    if (a->n_keys > 0) {
        keys = hx_calloc(a->n_keys, sizeof *keys);
        if (keys == NULL)
            goto fail;
        for (; n < a->n_keys; n++) {
            keys[n].name = hx_strdup(a->keys[n].name);
            if (keys[n].name == NULL)
                goto fail;
            keys[n].rate = a->keys[n].rate_limit;
        }
    }
    pthread_mutex_lock(&init_mu);
    rl_key_rate *old = init_keys;
    size_t nold = init_nkeys;
    init_rate = cfg->rate_limit.limits;
    init_keys = keys;
    init_nkeys = n;
    pthread_mutex_unlock(&init_mu);
    init_keys_free(old, nold);
    return 0;
fail:
    init_keys_free(keys, n);
    HX_LOG_ERROR("rate limiter: out of memory", HX_F_STR("event", "ratelimit_init_failed"));
    return -1;
}

/* The limits an imported bucket is judged by until it is next used. */
static void import_limits(const char *id, rl_limits *l)
{
    pthread_mutex_lock(&init_mu);
    hx_cfg_rate eff = init_rate;
    if (strncmp(id, "key:", 4) == 0) {
        for (size_t i = 0; i < init_nkeys; i++)
            if (strcmp(init_keys[i].name, id + 4) == 0)
                rate_merge(&eff, &init_keys[i].rate);
    }
    pthread_mutex_unlock(&init_mu);
    limits_from(&eff, l);
}

void hx_ratelimit_shutdown(void)
{
    ensure_setup();
    pthread_mutex_lock(&init_mu);
    init_keys_free(init_keys, init_nkeys);
    init_keys = NULL;
    init_nkeys = 0;
    pthread_mutex_unlock(&init_mu);
    for (size_t i = 0; i < STRIPES; i++) {
        rl_stripe *s = &stripes[i];
        pthread_mutex_lock(&s->mu);
        rl_entry *e = s->newest;
        while (e) {
            rl_entry *older = e->older;
            hx_free(e);
            e = older;
        }
        hx_free(s->slots);
        s->slots = NULL;
        s->nslots = s->count = 0;
        s->newest = s->oldest = NULL;
        pthread_mutex_unlock(&s->mu);
    }
}

size_t hx_ratelimit_count(void)
{
    ensure_setup();
    size_t n = 0;
    for (size_t i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&stripes[i].mu);
        n += stripes[i].count;
        pthread_mutex_unlock(&stripes[i].mu);
    }
    return n;
}

/* ---- snapshots --------------------------------------------------------- */

static json_object *level_json(const rl_bucket *b)
{
    /* json-c's null is a NULL object. */
    return b->known ? json_object_new_double(b->level) : NULL;
}

static json_object *entry_json(const rl_entry *e, int64_t now, int64_t wall)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    json_object *id = json_object_new_string(e->id);
    json_object *upd = json_object_new_int64(wall - (now - e->updated_ms));
    json_object *t = level_json(&e->req), *tt = level_json(&e->tpm);
    if (id == NULL || upd == NULL || (e->req.known && t == NULL) || (e->tpm.known && tt == NULL) ||
        json_object_object_add(o, "id", id) != 0 ||
        json_object_object_add(o, "tokens", t) != 0 ||
        json_object_object_add(o, "tpm_tokens", tt) != 0 ||
        json_object_object_add(o, "updated_unix_ms", upd) != 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

int hx_ratelimit_export(json_object *out_array)
{
    ensure_setup();
    int64_t now = mono_ms(), wall = wall_ms();
    int n = 0;
    for (size_t i = 0; i < STRIPES; i++) {
        rl_stripe *s = &stripes[i];
        pthread_mutex_lock(&s->mu);
        for (rl_entry *e = s->oldest; e; e = e->newer) {
            json_object *o = entry_json(e, now, wall);
            if (o == NULL || json_object_array_add(out_array, o) != 0) {
                json_object_put(o);
                pthread_mutex_unlock(&s->mu);
                return -1;
            }
            n++;
        }
        pthread_mutex_unlock(&s->mu);
    }
    return n;
}

/* Reads a saved level: null is "not in use", a finite number is a level. */
static bool level_read(json_object *o, const char *name, rl_bucket *b)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || v == NULL) {
        b->known = false;
        return true;
    }
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return false;
    double d = json_object_get_double(v);
    if (!isfinite(d) || fabs(d) > 1e15)
        return false;
    b->level = d;
    b->known = true;
    return true;
}

/* One saved bucket; false when malformed. */
static bool entry_read(json_object *o, const char **id, rl_bucket *req, rl_bucket *tpm,
                       int64_t *updated)
{
    json_object *v;
    if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "id", &v) ||
        !json_object_is_type(v, json_type_string))
        return false;
    *id = json_object_get_string(v);
    size_t len = strlen(*id);
    if (len >= ID_BUF || !(strncmp(*id, "key:", 4) == 0 || strncmp(*id, "ip:", 3) == 0))
        return false;
    if (!json_object_object_get_ex(o, "updated_unix_ms", &v) || !json_object_is_type(v, json_type_int))
        return false;
    *updated = json_object_get_int64(v);
    return level_read(o, "tokens", req) && level_read(o, "tpm_tokens", tpm);
}

int hx_ratelimit_import(json_object *array)
{
    ensure_setup();
    if (!json_object_is_type(array, json_type_array))
        return 0;
    int64_t now = mono_ms(), wall = wall_ms();
    int n = 0;
    for (size_t i = 0; i < json_object_array_length(array); i++) {
        const char *id;
        rl_bucket req, tpm;
        int64_t updated;
        if (!entry_read(json_object_array_get_idx(array, i), &id, &req, &tpm, &updated))
            continue;
        /* Wall time since the save counts as refill; a future stamp as none. */
        int64_t elapsed = wall > updated ? wall - updated : 0;
        rl_limits l;
        import_limits(id, &l);
        uint64_t h = id_hash(id);
        rl_stripe *s = stripe_for(h);
        pthread_mutex_lock(&s->mu);
        rl_entry *e = stripe_get(s, id, h, now, true);
        if (e) {
            e->req = req;
            e->tpm = tpm;
            e->updated_ms = now - elapsed;
            entry_set_full_at(e, &l);
        }
        pthread_mutex_unlock(&s->mu);
        if (e == NULL)
            return -1;
        n++;
    }
    return n;
}
