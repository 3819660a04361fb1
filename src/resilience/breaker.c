#include "resilience/breaker.h"

#include <pthread.h>
#include <string.h>

#include "util/alloc.h"

/* A call changes state at most twice: the lazy open -> half-open step, then
 * the verdict of a trial. */
#define HX_BREAKER_MAX_PENDING 2

/* The sliding window is this many buckets of interval/HX_BREAKER_BUCKETS. */
#define HX_BREAKER_BUCKETS 10

typedef struct {
    uint64_t epoch;             /* now / width when the bucket was filled */
    uint32_t requests;
    uint32_t failures;
} bucket;

typedef struct {
    hx_breaker_transition_cb cb;
    void *ud;
    int n;
    int from[HX_BREAKER_MAX_PENDING];
    int to[HX_BREAKER_MAX_PENDING];
} pending;

struct hx_breaker {
    pthread_mutex_t mu;
    char *name;
    /* settings, fixed at creation */
    uint32_t max_requests;
    uint32_t threshold;         /* least failures in the window to open */
    uint32_t min_requests;      /* least verdicts in the window to open */
    uint32_t rate;              /* failure percentage, 1..100 */
    uint64_t width;             /* bucket width in ms; 0 = one bucket forever */
    uint64_t timeout;
    hx_breaker_transition_cb cb;
    void *ud;
    /* state, under mu */
    int state;
    uint64_t gen;
    bucket win[HX_BREAKER_BUCKETS];
    uint64_t open_until;
    uint32_t trials;
    hx_breaker_counters c;
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint32_t clamp_u32(int64_t v)
{
    if (v < 1)
        return 1;
    return v > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static uint64_t clamp_ms(int64_t v)
{
    return v < 0 ? 0 : (uint64_t)v;
}

hx_breaker *hx_breaker_new(const char *name, const hx_cfg_breaker *cfg)
{
    hx_breaker *b = hx_calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->name = hx_strdup(name ? name : "");
    if (b->name == NULL) {
        hx_free(b);
        return NULL;
    }
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        hx_free(b->name);
        hx_free(b);
        return NULL;
    }
    b->max_requests = clamp_u32(cfg ? cfg->max_requests : 1);
    b->threshold = clamp_u32(cfg ? cfg->failure_threshold : 1);
    b->min_requests = clamp_u32(cfg ? cfg->min_requests : 1);
    b->rate = clamp_u32(cfg ? cfg->failure_rate : 100);
    if (b->rate > 100)
        b->rate = 100;
    uint64_t interval = clamp_ms(cfg ? cfg->interval : 0);
    b->width = interval == 0 ? 0 : (interval + HX_BREAKER_BUCKETS - 1) / HX_BREAKER_BUCKETS;
    b->timeout = clamp_ms(cfg ? cfg->timeout : 0);
    b->state = HX_BREAKER_CLOSED;
    return b;
}

void hx_breaker_free(hx_breaker *b)
{
    if (b == NULL)
        return;
    pthread_mutex_destroy(&b->mu);
    hx_free(b->name);
    hx_free(b);
}

const char *hx_breaker_name(const hx_breaker *b)
{
    return b->name;
}

void hx_breaker_on_transition(hx_breaker *b, hx_breaker_transition_cb cb, void *ud)
{
    pthread_mutex_lock(&b->mu);
    b->cb = cb;
    b->ud = ud;
    pthread_mutex_unlock(&b->mu);
}

const char *hx_breaker_state_name(int state)
{
    switch (state) {
    case HX_BREAKER_CLOSED:
        return "closed";
    case HX_BREAKER_OPEN:
        return "open";
    case HX_BREAKER_HALF_OPEN:
        return "half_open";
    default:
        return "unknown";
    }
}

/* ---- under the mutex ---- */

static void lock(hx_breaker *b, pending *p)
{
    pthread_mutex_lock(&b->mu);
    p->n = 0;
    p->cb = b->cb;
    p->ud = b->ud;
}

/* Releases the mutex, then reports the transitions collected meanwhile. */
static void unlock_and_fire(hx_breaker *b, pending *p)
{
    pthread_mutex_unlock(&b->mu);
    if (p->cb == NULL)
        return;
    for (int i = 0; i < p->n; i++)
        p->cb(p->ud, b->name, p->from[i], p->to[i]);
}

/* Every state change starts a new generation with fresh counts. */
static void set_state(hx_breaker *b, int to, uint64_t now_ms, pending *p)
{
    int from = b->state;
    b->state = to;
    b->gen++;
    b->trials = 0;
    memset(b->win, 0, sizeof b->win);
    if (to == HX_BREAKER_OPEN) {
        b->open_until = sat_add(now_ms, b->timeout);
        b->c.trips++;
    }
    if (from != to && p->n < HX_BREAKER_MAX_PENDING) {
        p->from[p->n] = from;
        p->to[p->n] = to;
        p->n++;
    }
}

/* The lazy open -> half-open step. */
static void advance(hx_breaker *b, uint64_t now_ms, pending *p)
{
    if (b->state == HX_BREAKER_OPEN && now_ms >= b->open_until)
        set_state(b, HX_BREAKER_HALF_OPEN, now_ms, p);
}

static int admit(hx_breaker *b, uint64_t now_ms, uint64_t *gen, pending *p)
{
    advance(b, now_ms, p);
    bool ok;
    switch (b->state) {
    case HX_BREAKER_CLOSED:
        ok = true;
        break;
    case HX_BREAKER_HALF_OPEN:
        ok = b->trials < b->max_requests;
        if (ok)
            b->trials++;
        break;
    default:
        ok = false;
        break;
    }
    if (!ok) {
        b->c.rejections++;
        return 0;
    }
    b->c.requests++;
    if (gen != NULL)
        *gen = b->gen;
    return 1;
}

static uint64_t epoch_of(const hx_breaker *b, uint64_t now_ms)
{
    return b->width ? now_ms / b->width : 0;
}

/* Sums the buckets still inside the window. Epochs start at 1 so an empty
 * bucket (epoch 0) never counts. */
static void window_sum(const hx_breaker *b, uint64_t now_ms, uint32_t *req, uint32_t *fail)
{
    uint64_t cur = epoch_of(b, now_ms) + 1;
    uint64_t r = 0, f = 0;
    for (int i = 0; i < HX_BREAKER_BUCKETS; i++) {
        const bucket *k = &b->win[i];
        if (k->epoch != 0 && k->epoch <= cur && cur - k->epoch < HX_BREAKER_BUCKETS) {
            r += k->requests;
            f += k->failures;
        }
    }
    *req = r > UINT32_MAX ? UINT32_MAX : (uint32_t)r;
    *fail = f > UINT32_MAX ? UINT32_MAX : (uint32_t)f;
}

static bucket *current_bucket(hx_breaker *b, uint64_t now_ms)
{
    uint64_t cur = epoch_of(b, now_ms) + 1;
    bucket *k = &b->win[cur % HX_BREAKER_BUCKETS];
    if (k->epoch != cur)
        *k = (bucket){.epoch = cur};
    return k;
}

static void closed_outcome(hx_breaker *b, bool success, uint64_t now_ms, pending *p)
{
    bucket *k = current_bucket(b, now_ms);
    if (k->requests < UINT32_MAX)
        k->requests++;
    if (!success && k->failures < UINT32_MAX)
        k->failures++;
    /* Judged on every verdict, as resilience4j does: the request that brings
     * the window to min_requests may be a success. */
    uint32_t req, fail;
    window_sum(b, now_ms, &req, &fail);
    if (req >= b->min_requests && fail >= b->threshold && (uint64_t)fail * 100 >= (uint64_t)b->rate * req)
        set_state(b, HX_BREAKER_OPEN, now_ms, p);
}

/* any_gen: the plain API, which cannot tell which generation admitted the
 * request. */
static void outcome(hx_breaker *b, bool any_gen, uint64_t gen, bool success, uint64_t now_ms,
                    pending *p)
{
    if (success)
        b->c.successes++;
    else
        b->c.failures++;
    advance(b, now_ms, p);
    if (!any_gen && gen != b->gen)
        return;
    switch (b->state) {
    case HX_BREAKER_CLOSED:
        closed_outcome(b, success, now_ms, p);
        break;
    case HX_BREAKER_HALF_OPEN:
        if (b->trials == 0)
            return; /* not a trial: admitted before this half-open period */
        b->trials--;
        set_state(b, success ? HX_BREAKER_CLOSED : HX_BREAKER_OPEN, now_ms, p);
        break;
    default:
        break; /* open: admitted before the breaker opened */
    }
}

static void release(hx_breaker *b, bool any_gen, uint64_t gen)
{
    b->c.releases++;
    if (!any_gen && gen != b->gen)
        return;
    if (b->state == HX_BREAKER_HALF_OPEN && b->trials > 0)
        b->trials--;
}

/* ---- public calls ---- */

int hx_breaker_allow(hx_breaker *b, uint64_t now_ms)
{
    return hx_breaker_allow_gen(b, now_ms, NULL);
}

int hx_breaker_allow_gen(hx_breaker *b, uint64_t now_ms, uint64_t *gen)
{
    pending p;
    lock(b, &p);
    int ok = admit(b, now_ms, gen, &p);
    unlock_and_fire(b, &p);
    return ok;
}

void hx_breaker_record(hx_breaker *b, bool success, uint64_t now_ms)
{
    pending p;
    lock(b, &p);
    outcome(b, true, 0, success, now_ms, &p);
    unlock_and_fire(b, &p);
}

void hx_breaker_record_gen(hx_breaker *b, uint64_t gen, bool success, uint64_t now_ms)
{
    pending p;
    lock(b, &p);
    outcome(b, false, gen, success, now_ms, &p);
    unlock_and_fire(b, &p);
}

void hx_breaker_release(hx_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    release(b, true, 0);
    pthread_mutex_unlock(&b->mu);
}

void hx_breaker_release_gen(hx_breaker *b, uint64_t gen)
{
    pthread_mutex_lock(&b->mu);
    release(b, false, gen);
    pthread_mutex_unlock(&b->mu);
}

int hx_breaker_state(hx_breaker *b, uint64_t now_ms)
{
    pending p;
    lock(b, &p);
    advance(b, now_ms, &p);
    int s = b->state;
    unlock_and_fire(b, &p);
    return s;
}

uint64_t hx_breaker_retry_after_ms(hx_breaker *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    uint64_t left = 0;
    if (b->state == HX_BREAKER_OPEN && now_ms < b->open_until)
        left = b->open_until - now_ms;
    pthread_mutex_unlock(&b->mu);
    return left;
}

void hx_breaker_stats(hx_breaker *b, hx_breaker_counters *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->c;
    out->trials_in_flight = b->trials;
    pthread_mutex_unlock(&b->mu);
}

void hx_breaker_window(hx_breaker *b, uint64_t now_ms, uint32_t *requests, uint32_t *failures)
{
    pthread_mutex_lock(&b->mu);
    *requests = *failures = 0;
    if (b->state == HX_BREAKER_CLOSED)
        window_sum(b, now_ms, requests, failures);
    pthread_mutex_unlock(&b->mu);
}

void hx_breaker_snapshot(hx_breaker *b, hx_breaker_snap *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&b->mu);
    out->state = b->state;
    /* now is not known here: the newest bucket's time stands in for it */
    uint64_t newest = 0;
    for (int i = 0; i < HX_BREAKER_BUCKETS; i++)
        if (b->win[i].epoch > newest)
            newest = b->win[i].epoch;
    if (newest > 0 && b->state == HX_BREAKER_CLOSED)
        window_sum(b, b->width ? (newest - 1) * b->width : 0, &out->window_requests, &out->window_failures);
    if (b->state == HX_BREAKER_OPEN)
        out->open_until_ms = b->open_until;
    out->requests = b->c.requests;
    out->successes = b->c.successes;
    out->failures = b->c.failures;
    out->rejections = b->c.rejections;
    out->releases = b->c.releases;
    out->trips = b->c.trips;
    pthread_mutex_unlock(&b->mu);
}

static int valid_state(int s)
{
    return s == HX_BREAKER_OPEN || s == HX_BREAKER_HALF_OPEN ? s : HX_BREAKER_CLOSED;
}

void hx_breaker_restore(hx_breaker *b, const hx_breaker_snap *snap, uint64_t now_ms)
{
    pending p;
    lock(b, &p);
    int to = valid_state(snap->state);
    uint64_t trips = snap->trips;
    set_state(b, to, now_ms, &p); /* counts a trip when `to` is open: overwritten below */
    if (to == HX_BREAKER_OPEN) {
        uint64_t cap = sat_add(now_ms, b->timeout);
        b->open_until = snap->open_until_ms < cap ? snap->open_until_ms : cap;
    } else if (to == HX_BREAKER_CLOSED && snap->window_requests > 0) {
        bucket *k = current_bucket(b, now_ms);
        k->requests = snap->window_requests;
        k->failures = snap->window_failures < snap->window_requests ? snap->window_failures : snap->window_requests;
    }
    b->c.requests = snap->requests;
    b->c.successes = snap->successes;
    b->c.failures = snap->failures;
    b->c.rejections = snap->rejections;
    b->c.releases = snap->releases;
    b->c.trips = trips;
    unlock_and_fire(b, &p);
}
