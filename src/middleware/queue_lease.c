/* queue.max_concurrent for the cluster (state.backend: redis): a request
 * that holds a local slot also takes a lease in one shared set, limited to
 * max_concurrent members. A lease expires lease_ttl after its last renewal
 * and each worker renews its leases every lease_ttl / 3, so the slots of
 * an instance that dies come back within lease_ttl.
 *
 * A request that finds the cluster full keeps its local slot (so this
 * instance's FIFO order holds) and asks again every POLL_MS until
 * queue.max_wait; every instance's oldest requests ask at the same pace,
 * which is fair across instances. When Redis cannot answer,
 * state.redis.on_failure: `local` admits up to this instance's share
 * (max_concurrent / instances), `deny` answers 503. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <uv.h>

#include "middleware/ctx.h"
#include "middleware/queue.h"
#include "middleware/queue_int.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "state/cluster.h"
#include "util/alloc.h"

#define POLL_MS 50
#define LEASE_KEY "queue"
#define MEMBER_BUF (HX_STORE_MEMBER_MAX + 1)

typedef struct held {
    struct held *prev, *next;
    uint32_t seq;
    int64_t limit;
} held;

/* Per worker loop: its leases, renewed by its timer. Only that loop's
 * thread touches them. */
typedef struct qlloop {
    struct qlloop *next;
    uv_loop_t *loop;
    uv_timer_t renew;
    held *head;
} qlloop;

/* One request asking for a cluster slot. */
typedef struct {
    uv_timer_t timer; /* the next ask; owns the memory (close cb frees) */
    hx_req *r;        /* a reference */
    uint64_t until_ns;
    uint32_t seq;
    int64_t limit;
} asker;

static atomic_int_fast64_t cfg_max = 1, cfg_ttl_ms = 10000;
static atomic_uint_fast32_t next_seq;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static qlloop *reg;
static _Thread_local qlloop *tls_ql;

void hx_qlease_configure(const hx_config *cfg)
{
    atomic_store(&cfg_max, cfg->queue.max_concurrent > 0 ? cfg->queue.max_concurrent : 1);
    atomic_store(&cfg_ttl_ms, cfg->queue.lease_ttl > 0 ? cfg->queue.lease_ttl : 10000);
}

static void member_of(char *buf, uint32_t seq)
{
    snprintf(buf, MEMBER_BUF, "%.100s:%u", hx_cluster_instance_id(), (unsigned)seq);
}

static void free_data(uv_handle_t *h)
{
    hx_free(h->data);
}

static void asker_end(asker *a)
{
    hx_req *r = a->r;
    uv_close((uv_handle_t *)&a->timer, free_data);
    hx_req_unref(r);
}

static void refuse(hx_req *r, hx_err e, const char *reason)
{
    hx_metrics_inc(HX_M_QUEUE_REJECTIONS, hx_metrics_series(HX_M_QUEUE_REJECTIONS, reason), 1);
    HX_LOG_WARN("request rejected by the queue", HX_F_STR("event", "queue_rejected"), HX_F_STR("reason", reason),
                HX_F_STR("scope", "cluster"), HX_F_STR("request_id", r->request_id));
    hx_res_header(r, "Retry-After", "1");
    hx_res_error(r, e, NULL);
}

static void ask(asker *a);

static void on_ask_timer(uv_timer_t *t)
{
    ask(t->data);
}

/* No slot now: ask again shortly, or give up at the wait's end. */
static void later(asker *a)
{
    if (hx_now_ns() + (uint64_t)POLL_MS * 1000000u > a->until_ns) {
        refuse(a->r, HX_ERR_QUEUE_TIMEOUT, "timeout");
        asker_end(a);
        return;
    }
    uv_timer_start(&a->timer, on_ask_timer, POLL_MS, 0);
}

static void admitted(asker *a, bool leased)
{
    hx_req *r = a->r;
    if (leased) {
        held *h = tls_ql ? hx_calloc(1, sizeof *h) : NULL;
        queue_ctx *c = hx_req_ctx(r, HX_CTX_QUEUE);
        c->lease = a->seq;
        if (h) { /* without it the lease is not renewed: it lasts lease_ttl */
            h->seq = a->seq;
            h->limit = a->limit;
            h->next = tls_ql->head;
            if (h->next)
                h->next->prev = h;
            tls_ql->head = h;
        }
    }
    hx_req_ref(r);
    asker_end(a);
    hx_req_next(r);
    hx_req_unref(r);
}

/* Redis cannot answer: on_failure. */
static void fallback(asker *a)
{
    hx_cluster_note_fallback();
    if (hx_cluster_deny()) {
        refuse(a->r, HX_ERR_UNAVAILABLE, "state_unavailable");
        asker_end(a);
        return;
    }
    hx_queue_stats st;
    hx_queue_get_stats(&st);
    int64_t share = a->limit / hx_cluster_instances();
    if (st.in_flight <= (share > 0 ? share : 1))
        admitted(a, false);
    else
        later(a);
}

static void on_answer(void *ud, const hx_store_reply *rp)
{
    asker *a = ud;
    if (a->r->aborted) {
        if (rp->rc == HX_STORE_OK) {
            queue_ctx *c = hx_req_ctx(a->r, HX_CTX_QUEUE);
            c->lease = a->seq;
            hx_qlease_release(a->r, c);
        }
        asker_end(a);
    } else if (rp->rc == HX_STORE_OK) {
        admitted(a, true);
    } else if (rp->rc == HX_STORE_LIMITED) {
        later(a);
    } else {
        fallback(a);
    }
}

static void ask(asker *a)
{
    if (a->r->aborted) {
        asker_end(a);
        return;
    }
    hx_store *s = hx_cluster_store();
    char m[MEMBER_BUF];
    member_of(m, a->seq);
    if (s == NULL || s->vt->lease_acquire(s, LEASE_KEY, m, a->limit, atomic_load(&cfg_ttl_ms), on_answer, a) != 0)
        fallback(a);
}

void hx_qlease_admit(hx_req *r, uint64_t since_ns)
{
    asker *a = hx_calloc(1, sizeof *a);
    if (a == NULL) {
        hx_res_error(r, HX_ERR_UNAVAILABLE, NULL);
        return;
    }
    uint64_t wait_ns = r->cfg->queue.max_wait > 0 ? (uint64_t)r->cfg->queue.max_wait * 1000000u : UINT64_MAX / 2;
    a->until_ns = since_ns + wait_ns < r->deadline_ns ? since_ns + wait_ns : r->deadline_ns;
    a->r = hx_req_ref(r);
    a->limit = atomic_load(&cfg_max);
    a->seq = (uint32_t)atomic_fetch_add(&next_seq, 1) + 1;
    if (a->seq == 0) /* 0 means none */
        a->seq = (uint32_t)atomic_fetch_add(&next_seq, 1) + 1;
    uv_timer_init(r->loop, &a->timer);
    a->timer.data = a;
    ask(a);
}

void hx_qlease_release(hx_req *r, queue_ctx *c)
{
    (void)r;
    uint32_t seq = c->lease;
    c->lease = 0;
    for (held *h = tls_ql ? tls_ql->head : NULL; h; h = h->next)
        if (h->seq == seq) {
            if (h->prev)
                h->prev->next = h->next;
            else
                tls_ql->head = h->next;
            if (h->next)
                h->next->prev = h->prev;
            hx_free(h);
            break;
        }
    hx_store *s = hx_cluster_store();
    char m[MEMBER_BUF];
    member_of(m, seq);
    /* Not reachable now: the lease runs out by itself. */
    if (s)
        s->vt->lease_release(s, LEASE_KEY, m, NULL, NULL);
}

static void on_renew(uv_timer_t *t)
{
    qlloop *ql = t->data;
    hx_store *s = hx_cluster_store();
    char m[MEMBER_BUF];
    for (held *h = ql->head; s && h; h = h->next) {
        member_of(m, h->seq);
        s->vt->lease_acquire(s, LEASE_KEY, m, h->limit, atomic_load(&cfg_ttl_ms), NULL, NULL);
    }
    uint64_t every = (uint64_t)atomic_load(&cfg_ttl_ms) / 3;
    uv_timer_start(&ql->renew, on_renew, every ? every : 1, 0);
}

int hx_qlease_worker_init(void *loop)
{
    if (!hx_cluster_enabled())
        return 0;
    qlloop *ql = hx_calloc(1, sizeof *ql);
    if (ql == NULL)
        return -1;
    ql->loop = loop;
    uv_timer_init(loop, &ql->renew);
    ql->renew.data = ql;
    on_renew(&ql->renew);
    pthread_mutex_lock(&reg_mu);
    ql->next = reg;
    reg = ql;
    pthread_mutex_unlock(&reg_mu);
    tls_ql = ql;
    return 0;
}

/* On the main thread after the worker ended (its leases run out). */
void hx_qlease_worker_fini(void *loop)
{
    qlloop *ql = NULL;
    pthread_mutex_lock(&reg_mu);
    for (qlloop **pp = &reg; *pp; pp = &(*pp)->next)
        if ((*pp)->loop == loop) {
            ql = *pp;
            *pp = ql->next;
            break;
        }
    pthread_mutex_unlock(&reg_mu);
    if (ql == NULL)
        return;
    if (tls_ql == ql)
        tls_ql = NULL;
    for (held *h = ql->head, *next; h; h = next) {
        next = h->next;
        hx_free(h);
    }
    ql->head = NULL;
    uv_timer_stop(&ql->renew);
    uv_close((uv_handle_t *)&ql->renew, free_data);
}
