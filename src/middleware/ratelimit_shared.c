/* The rate limiter over the shared state store (state.backend: redis):
 * every instance takes from the same buckets, updated atomically on the
 * Redis server and refilled on its clock, so a limit holds for the
 * cluster and RateLimit-* headers show the cluster's view.
 *
 * A request's decision is one atomic operation on the worker's
 * connection: the take of one request, gated by the tokens bucket (empty:
 * refused for tokens, nothing taken). Token usage (reservations,
 * settlements) is charged without waiting for an answer, and the charges
 * of one loop turn go as one per bucket: under load a hot key costs Redis
 * one command per turn, not three per request.
 *
 * When Redis cannot answer (down, slow past command_timeout, too many
 * commands in flight), state.redis.on_failure decides: `local` limits
 * in process with the limits divided by the instances last seen, `deny`
 * answers 503. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "middleware/ratelimit_int.h"
#include "obs/log.h"
#include "state/cluster.h"
#include "util/alloc.h"

#define KEY_BUF (ID_BUF + 8)

/* ---- token charges, one per bucket and loop turn ------------------------------------ */

#define BATCH_MAX 64

/* Request tokens this worker took from a shared bucket ahead of need
 * (a grant): while a bucket holds at least GRANT_MIN_LEVEL and 16 times
 * what each instance takes, one take reserves up to GRANT_MAX requests,
 * which are then admitted without asking Redis.
 * Nothing is admitted that Redis did not give out; what is not used within
 * GRANT_IDLE_MS goes back. Near empty, every request asks (exact). */
#define GRANT_MAX 64
#define GRANT_MIN_LEVEL 1000 /* below it every request asks: small limits stay exact */
#define GRANTS 64
#define GRANT_IDLE_MS 100

typedef struct {
    char id[ID_BUF];
    rl_limits l;
    double left;       /* taken, not yet used */
    double level;      /* the shared bucket after the last take */
    double gate;       /* the tokens bucket then */
    uint64_t at_ms;    /* the last take */
    bool valid;
} rl_grant;

typedef struct rl_batch {
    struct rl_batch *next; /* the registry: fini runs off the worker's thread */
    uv_loop_t *loop;
    uv_timer_t timer;      /* 0 ms: the next loop turn */
    bool armed;
    size_t n;
    struct {
        char id[ID_BUF];
        rl_limits l;
        int64_t delta;
    } e[BATCH_MAX];
    uv_timer_t grant_timer; /* gives unused grants back */
    bool grant_armed;
    int closing;            /* handles still closing: the last one frees */
    rl_grant grants[GRANTS];
} rl_batch;

static _Thread_local rl_batch *tls_batch;



typedef struct {
    hx_req *r;
    rl_limits l;
    int waiting;              /* answers still to come, plus 1 while sending */
    bool unavailable;
    hx_store_reply req, tpm;  /* rc, tokens, retry_ms (no data) */
    int n;                    /* request tokens asked: this one, and a grant's */
    char id[ID_BUF];
} sh_take;

static void key_of(char *buf, char kind, const char *id)
{
    snprintf(buf, KEY_BUF, "rl:%c:%s", kind, id);
}

/* The limits of this instance's share, when it decides alone. */
static rl_limits local_share(const rl_limits *l)
{
    double n = (double)hx_cluster_instances();
    rl_limits s = *l;
    if (n > 1) {
        s.req_pm /= n, s.tpm_pm /= n;
        s.req_cap = s.req_cap > 0 ? fmax(1, floor(s.req_cap / n)) : 0;
        s.tpm_cap = s.tpm_cap > 0 ? fmax(1, floor(s.tpm_cap / n)) : 0;
    }
    return s;
}

/* Redis could not answer: on_failure. */
static void fallback(hx_req *r, const char *id, const rl_limits *l)
{
    hx_cluster_note_fallback();
    if (hx_cluster_deny()) {
        hx_res_header(r, "Retry-After", "1");
        hx_res_error(r, HX_ERR_UNAVAILABLE, "Rate limit state is unavailable.");
        return;
    }
    rl_limits s = local_share(l);
    hx_rl_local_answer(r, id, &s);
}

static void view(rl_decision *d, const hx_store_reply *b, double cap, double pm)
{
    double left = floor(b->tokens + 1e-9);
    d->limit = (int64_t)cap;
    d->remaining = left > 0 ? (int64_t)left : 0;
    d->reset_s = b->tokens >= cap ? 0 : (int64_t)ceil((cap - b->tokens) * 60.0 / pm);
}

static void decide(sh_take *t, rl_decision *d)
{
    const rl_limits *l = &t->l;
    *d = (rl_decision){.allowed = true};
    bool tpm_view = l->req_cap <= 0;
    if (l->tpm_cap > 0 && t->tpm.tokens <= 0) {
        d->allowed = false;
        d->kind = "tokens";
        /* until the level is above 0 again */
        d->retry_s = (int64_t)ceil((1e-9 - t->tpm.tokens) * 60.0 / l->tpm_pm) + 1;
        tpm_view = true;
    } else if (l->req_cap > 0 && t->req.rc != HX_STORE_OK) {
        d->allowed = false;
        d->kind = "requests";
        d->retry_s = hx_rl_secs_ceil(t->req.retry_ms);
    }
    if (!d->allowed && d->retry_s < 1)
        d->retry_s = 1;
    if (tpm_view)
        view(d, &t->tpm, l->tpm_cap, l->tpm_pm);
    else
        view(d, &t->req, l->req_cap, l->req_pm);
}

/* ---- grants ----------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    return hx_now_ns() / 1000000u;
}

static rl_grant *grant_find(rl_batch *b, const char *id, const rl_limits *l)
{
    for (size_t i = 0; b && i < GRANTS; i++)
        if (b->grants[i].valid && strcmp(b->grants[i].id, id) == 0 && memcmp(&b->grants[i].l, l, sizeof *l) == 0)
            return &b->grants[i];
    return NULL;
}

/* Gives g's unused requests back to the shared bucket. */
static void grant_return(rl_grant *g)
{
    hx_store *s = hx_cluster_store();
    if (g->left >= 1 && s) {
        char k[KEY_BUF];
        key_of(k, 'r', g->id);
        s->vt->bucket_charge(s, k, g->l.req_pm / 60.0, g->l.req_cap, -floor(g->left), 0, NULL, NULL);
    }
    g->left = 0;
}

static void on_grant_timer(uv_timer_t *t)
{
    rl_batch *b = t->data;
    bool more = false;
    uint64_t now = now_ms();
    for (size_t i = 0; i < GRANTS; i++) {
        rl_grant *g = &b->grants[i];
        if (g->valid && g->left >= 1 && now - g->at_ms >= GRANT_IDLE_MS)
            grant_return(g);
        more |= g->valid && g->left >= 1;
    }
    b->grant_armed = more;
    if (more)
        uv_timer_start(&b->grant_timer, on_grant_timer, GRANT_IDLE_MS / 2, 0);
}

/* How many requests the next take asks for: one near empty (exact), more
 * when the bucket holds several times what every instance could take. */
static int grant_size(const rl_grant *g, const rl_limits *l)
{
    if (g == NULL || l->req_cap <= 0 || g->level < GRANT_MIN_LEVEL || (l->tpm_cap > 0 && g->gate < l->tpm_cap / 2))
        return 1;
    double k = floor(g->level / (16.0 * (double)hx_cluster_instances()));
    return k >= GRANT_MAX ? GRANT_MAX : k < 1 ? 1 : (int)k;
}

/* A take of t->n answered: this request used one, the rest is a grant. */
static void grant_note(sh_take *t)
{
    rl_batch *b = tls_batch;
    if (b == NULL || b->loop != t->r->loop || t->l.req_cap <= 0)
        return;
    rl_grant *g = grant_find(b, t->id, &t->l);
    if (g == NULL) { /* a free slot, or the oldest one's (given back first) */
        g = &b->grants[0];
        for (size_t i = 0; i < GRANTS && g->valid; i++)
            if (!b->grants[i].valid || b->grants[i].at_ms < g->at_ms)
                g = &b->grants[i];
        if (g->valid)
            grant_return(g);
        *g = (rl_grant){.l = t->l, .valid = true};
        snprintf(g->id, sizeof g->id, "%s", t->id);
    }
    g->level = t->req.tokens;
    g->gate = t->l.tpm_cap > 0 ? t->tpm.tokens : 0;
    g->at_ms = now_ms();
    bool gate_refused = t->l.tpm_cap > 0 && t->tpm.tokens <= 0; /* then nothing was taken */
    if (t->req.rc == HX_STORE_OK && t->n > 1 && !gate_refused) {
        g->left += t->n - 1;
        if (!b->grant_armed) {
            b->grant_armed = true;
            uv_timer_start(&b->grant_timer, on_grant_timer, GRANT_IDLE_MS, 0);
        }
    }
}

/* A request admitted from this worker's grant: no Redis round trip. */
static bool grant_use(hx_req *r, const char *id, const rl_limits *l)
{
    rl_batch *b = tls_batch;
    rl_grant *g = b && b->loop == r->loop ? grant_find(b, id, l) : NULL;
    if (g == NULL || g->left < 1 || now_ms() - g->at_ms >= GRANT_IDLE_MS)
        return false;
    g->left -= 1;
    rl_decision d = {.allowed = true, .limit = (int64_t)l->req_cap};
    double shown = floor(g->level + g->left);
    d.remaining = shown > 0 ? (int64_t)shown : 0;
    d.reset_s = shown >= l->req_cap ? 0 : (int64_t)ceil((l->req_cap - shown) * 60.0 / l->req_pm);
    hx_rl_answer(r, id, &d);
    return true;
}

static void finish(sh_take *t)
{
    hx_req *r = t->r;
    if (!t->unavailable)
        grant_note(t);
    if (!r->aborted) {
        if (t->unavailable) {
            fallback(r, t->id, &t->l);
        } else if (t->n > 1 && t->req.rc == HX_STORE_LIMITED && !(t->l.tpm_cap > 0 && t->tpm.tokens <= 0)) {
            hx_rl_shared_take(r, t->id, &t->l); /* fewer left than a grant: ask for this one alone */
        } else {
            rl_decision d;
            decide(t, &d);
            hx_rl_answer(r, t->id, &d);
        }
    }
    hx_free(t);
    hx_req_unref(r);
}

static void got(sh_take *t, hx_store_reply *into, const hx_store_reply *rp)
{
    if (rp->rc == HX_STORE_UNAVAILABLE || rp->rc == HX_STORE_NOMEM || rp->rc == HX_STORE_WRONG_TYPE ||
        rp->rc == HX_STORE_FULL)
        t->unavailable = true;
    into->rc = rp->rc;
    into->tokens = rp->tokens;
    into->retry_ms = rp->retry_ms;
    if (--t->waiting == 0)
        finish(t);
}

static void on_req(void *ud, const hx_store_reply *rp)
{
    sh_take *t = ud;
    got(t, &t->req, rp);
}

static void on_tpm(void *ud, const hx_store_reply *rp)
{
    sh_take *t = ud;
    got(t, &t->tpm, rp);
}

/* Both limits: one step, the request take gated by the tokens bucket. */
static void on_gated(void *ud, const hx_store_reply *rp)
{
    sh_take *t = ud;
    hx_store_reply tpm = {.rc = HX_STORE_OK, .tokens = rp->gate_tokens};
    hx_store_reply req = *rp;
    if (rp->rc == HX_STORE_LIMITED && rp->value == 1) /* the gate was empty: no request was taken */
        req.rc = HX_STORE_OK;
    t->waiting++;
    got(t, &t->tpm, rp->rc == HX_STORE_OK || rp->rc == HX_STORE_LIMITED ? &tpm : rp);
    got(t, &t->req, &req);
}

void hx_rl_shared_take(hx_req *r, const char *id, const rl_limits *l)
{
    if (grant_use(r, id, l))
        return;
    hx_store *s = hx_cluster_store();
    sh_take *t = s ? hx_calloc(1, sizeof *t) : NULL;
    if (t == NULL) {
        fallback(r, id, l);
        return;
    }
    t->r = hx_req_ref(r);
    t->l = *l;
    snprintf(t->id, sizeof t->id, "%s", id);
    t->waiting = 2; /* the answer, plus 1 while sending: the store may answer before the call returns */
    rl_batch *b = tls_batch;
    t->n = grant_size(b && b->loop == r->loop ? grant_find(b, id, l) : NULL, l);
    char k[KEY_BUF], g[KEY_BUF];
    static const hx_store_reply failed = {.rc = HX_STORE_UNAVAILABLE};
    key_of(k, l->req_cap > 0 ? 'r' : 't', id);
    key_of(g, 't', id);
    int rc;
    if (l->req_cap > 0 && l->tpm_cap > 0)
        rc = s->vt->bucket_take_gated(s, k, l->req_pm / 60.0, l->req_cap, t->n, g, l->tpm_pm / 60.0, l->tpm_cap,
                                      on_gated, t);
    else if (l->req_cap > 0)
        rc = s->vt->bucket_take(s, k, l->req_pm / 60.0, l->req_cap, t->n, on_req, t);
    else
        rc = s->vt->bucket_take(s, k, l->tpm_pm / 60.0, l->tpm_cap, 0, on_tpm, t); /* a look */
    if (rc != 0)
        (l->req_cap > 0 ? on_req : on_tpm)(t, &failed);
    if (--t->waiting == 0)
        finish(t);
}

static pthread_mutex_t batch_mu = PTHREAD_MUTEX_INITIALIZER;
static rl_batch *batches;

static void charge_now(const char *id, const rl_limits *l, int64_t delta)
{
    hx_store *s = hx_cluster_store();
    char k[KEY_BUF];
    key_of(k, 't', id);
    double floor_level = -l->tpm_cap * HX_RL_MAX_DEBT_MINUTES;
    if (delta == 0 ||
        (s && s->vt->bucket_charge(s, k, l->tpm_pm / 60.0, l->tpm_cap, (double)delta, floor_level, NULL, NULL) == 0))
        return;
    /* Redis cannot take it now: this instance's share remembers it. */
    rl_limits share = local_share(l);
    hx_rl_local_adjust(id, &share, delta);
}

static void flush(uv_timer_t *t)
{
    rl_batch *b = t->data;
    b->armed = false;
    for (size_t i = 0; i < b->n; i++)
        charge_now(b->e[i].id, &b->e[i].l, b->e[i].delta);
    b->n = 0;
}

void hx_rl_shared_adjust(void *loop, const char *id, const rl_limits *l, int64_t delta)
{
    rl_batch *b = tls_batch;
    if (b == NULL || b->loop != loop) {
        charge_now(id, l, delta);
        return;
    }
    size_t i = 0;
    while (i < b->n && (strcmp(b->e[i].id, id) != 0 || memcmp(&b->e[i].l, l, sizeof *l) != 0))
        i++;
    if (i == BATCH_MAX) { /* full: the batch goes now */
        flush(&b->timer);
        i = 0;
    }
    if (i == b->n) {
        snprintf(b->e[i].id, sizeof b->e[i].id, "%s", id);
        b->e[i].l = *l;
        b->e[i].delta = 0;
        b->n++;
    }
    b->e[i].delta += delta;
    if (!b->armed) {
        b->armed = true;
        uv_timer_start(&b->timer, flush, 0, 0);
    }
}

int hx_rl_shared_worker_init(void *loop)
{
    if (!hx_cluster_enabled())
        return 0;
    rl_batch *b = hx_calloc(1, sizeof *b);
    if (b == NULL)
        return -1;
    b->loop = loop;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    uv_timer_init(loop, &b->grant_timer);
    b->grant_timer.data = b;
    pthread_mutex_lock(&batch_mu);
    b->next = batches;
    batches = b;
    pthread_mutex_unlock(&batch_mu);
    tls_batch = b;
    return 0;
}

static void batch_closed(uv_handle_t *h)
{
    rl_batch *b = h->data;
    if (--b->closing == 0)
        hx_free(b);
}

/* On the main thread once the worker ended: charges of its last turn that
 * did not go are lost (at most one loop turn's). */
void hx_rl_shared_worker_fini(void *loop)
{
    rl_batch *b = NULL;
    pthread_mutex_lock(&batch_mu);
    for (rl_batch **pp = &batches; *pp; pp = &(*pp)->next)
        if ((*pp)->loop == loop) {
            b = *pp;
            *pp = b->next;
            break;
        }
    pthread_mutex_unlock(&batch_mu);
    if (b == NULL)
        return;
    if (tls_batch == b)
        tls_batch = NULL;
    uv_timer_stop(&b->timer);
    uv_timer_stop(&b->grant_timer);
    b->closing = 2;
    uv_close((uv_handle_t *)&b->timer, batch_closed);
    uv_close((uv_handle_t *)&b->grant_timer, batch_closed);
}
