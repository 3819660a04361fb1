/* FIFO admission: one process-wide count of requests in flight and one FIFO
 * of waiting requests, under one mutex, shared by every worker.
 *
 * A waiter lives on its request's loop (its timer, its abort callback).
 * Other threads only touch it under the mutex: to pop it from the FIFO,
 * hand it a slot (state ADMITTED) and post it to its loop's mailbox, then
 * uv_async_send that loop. The owning thread does everything else: it
 * admits (hx_req_next), answers timeouts, and gives the slot back when the
 * client left after the slot was handed over. */
#include "middleware/queue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <uv.h>

#include "http/request.h"
#include "middleware/ctx.h"
#include "middleware/middleware.h"
#include "middleware/queue_int.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "state/cluster.h"
#include "state/snapshot.h"
#include "util/alloc.h"

/* Bounds of the Retry-After estimate, in seconds. */
#define RETRY_AFTER_MIN 1
#define RETRY_AFTER_MAX 60

typedef struct qloop qloop;
typedef struct waiter waiter;

enum { W_WAITING, W_ADMITTED, W_DONE };

struct waiter {
    waiter *prev, *next;   /* the FIFO (under q.mu) */
    waiter *mnext;         /* its loop's mailbox (under q.mu) */
    hx_req *r;             /* a reference, dropped when the waiter ends */
    qloop *ql;
    uv_timer_t timer;      /* max_wait / deadline; owns the memory (close cb frees) */
    uint64_t since_ns;
    int state;             /* W_* (under q.mu) */
};

struct qloop {
    qloop *next;           /* registry (under q.mu) */
    uv_loop_t *loop;
    uv_async_t async;
    waiter *mbox_head, *mbox_tail;
};

static struct {
    pthread_mutex_t mu;
    int64_t in_flight;
    int64_t waiting;
    int64_t max_concurrent;
    int64_t max_waiting;
    int64_t max_wait_ms;   /* 0: bounded by the request deadline only */
    uint64_t admitted;
    uint64_t rejected_full;
    uint64_t rejected_timeout;
    uint64_t hold_ewma_ns; /* how long a slot is held, for Retry-After */
    waiter *head, *tail;
    qloop *loops;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- under the mutex -------------------------------------------------- */

static void fifo_remove_locked(waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q.head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q.tail = w->prev;
    w->prev = w->next = NULL;
    q.waiting--;
}

static void fifo_push_locked(waiter *w)
{
    w->prev = q.tail;
    w->next = NULL;
    if (q.tail)
        q.tail->next = w;
    else
        q.head = w;
    q.tail = w;
    q.waiting++;
}

/* Hands free slots to the oldest waiters, in arrival order. Always through
 * the owner's mailbox, even for this thread: the caller may be a finish
 * hook of a request being freed, no place to run another request's chain. */
static void pump_locked(void)
{
    while (q.head != NULL && q.in_flight < q.max_concurrent) {
        waiter *w = q.head;
        fifo_remove_locked(w);
        q.in_flight++;
        q.admitted++;
        w->state = W_ADMITTED;
        w->mnext = NULL;
        if (w->ql->mbox_tail)
            w->ql->mbox_tail->mnext = w;
        else
            w->ql->mbox_head = w;
        w->ql->mbox_tail = w;
        /* Under the mutex: worker_fini unregisters the loop under it too,
         * so the async handle is never signalled once it is closing. */
        uv_async_send(&w->ql->async);
    }
}

static void give_back_locked(void)
{
    q.in_flight--;
    pump_locked();
}

static qloop *find_loop_locked(void *loop)
{
    for (qloop *ql = q.loops; ql; ql = ql->next)
        if (ql->loop == loop)
            return ql;
    return NULL;
}

/* Waiting ahead of a newcomer / holding time per slot, rounded up. */
static int retry_after_locked(void)
{
    if (q.hold_ewma_ns == 0 || q.max_concurrent <= 0)
        return RETRY_AFTER_MIN;
    double sec = (double)q.hold_ewma_ns / 1e9 * (double)(q.waiting + 1) / (double)q.max_concurrent;
    int s = (int)sec + ((double)(int)sec < sec);
    return s < RETRY_AFTER_MIN ? RETRY_AFTER_MIN : s > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : s;
}

/* ---- on the request's thread ------------------------------------------ */

static void reject(hx_req *r, hx_err e, const char *reason, int retry_after)
{
    char ra[16];
    snprintf(ra, sizeof ra, "%d", retry_after);
    hx_metrics_inc(HX_M_QUEUE_REJECTIONS, hx_metrics_series(HX_M_QUEUE_REJECTIONS, reason), 1);
    HX_LOG_WARN("request rejected by the queue", HX_F_STR("event", "queue_rejected"),
                HX_F_STR("reason", reason), HX_F_STR("request_id", r->request_id),
                HX_F_INT("retry_after_s", retry_after));
    hx_res_header(r, "Retry-After", ra);
    hx_res_error(r, e, NULL);
}

_Static_assert(sizeof(queue_ctx) <= HX_CTX_QUEUE_BYTES, "queue_ctx outgrew its share");

/* A local slot is held: with instances sharing state, the cluster's slot
 * comes next (queue_lease.c), else the chain goes on. */
static void admitted_next(hx_req *r, uint64_t since_ns)
{
    if (hx_cluster_enabled())
        hx_qlease_admit(r, since_ns);
    else
        hx_req_next(r);
}

bool hx_queue_admitted(const hx_req *r)
{
    const queue_ctx *c = hx_req_ctx(r, HX_CTX_QUEUE);
    return c && c->admitted;
}

uint64_t hx_queue_wait_ns(const hx_req *r)
{
    const queue_ctx *c = hx_req_ctx(r, HX_CTX_QUEUE);
    return c ? c->wait_ns : 0;
}

bool hx_queue_holds_slot(const hx_req *r)
{
    const queue_ctx *c = hx_req_ctx(r, HX_CTX_QUEUE);
    return c && c->queued;
}

/* Finish hook of every request that went through the queue step. */
static void release_slot(hx_req *r, void *ud)
{
    (void)ud;
    queue_ctx *c = hx_req_ctx(r, HX_CTX_QUEUE);
    if (c == NULL || !c->queued)
        return;
    c->queued = false;
    if (c->lease)
        hx_qlease_release(r, c);
    /* Approximate: start_ns is a little before the queue step ran. */
    uint64_t held = hx_now_ns() - (r->start_ns + c->wait_ns);
    pthread_mutex_lock(&q.mu);
    q.hold_ewma_ns = q.hold_ewma_ns ? (q.hold_ewma_ns * 7 + held) / 8 : held;
    give_back_locked();
    pthread_mutex_unlock(&q.mu);
}

/* Close callback of a waiter's timer or a loop's async handle. */
static void free_handle_data(uv_handle_t *h)
{
    hx_free(h->data);
}

static void on_waiter_abort(hx_req *r, void *ud);

/* Ends a waiter that left every list: detaches it from its request and
 * drops its reference (may free the request). */
static void waiter_end(waiter *w)
{
    hx_req *r = w->r;
    if (r->on_abort == on_waiter_abort) {
        r->on_abort = NULL;
        r->cb_ud = NULL;
    }
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, free_handle_data);
    hx_req_unref(r);
}

static void on_waiter_abort(hx_req *r, void *ud)
{
    (void)r;
    waiter *w = ud;
    pthread_mutex_lock(&q.mu);
    bool waiting = w->state == W_WAITING;
    if (waiting) {
        fifo_remove_locked(w);
        w->state = W_DONE;
    }
    pthread_mutex_unlock(&q.mu);
    /* Already handed a slot: the mailbox delivery sees r->aborted and gives
     * the slot back; nothing to do here. */
    if (waiting) {
        hx_metrics_inc(HX_M_QUEUE_REJECTIONS, hx_metrics_series(HX_M_QUEUE_REJECTIONS, "disconnect"), 1);
        waiter_end(w);
    }
}

static void on_waiter_timeout(uv_timer_t *t)
{
    waiter *w = t->data;
    pthread_mutex_lock(&q.mu);
    if (w->state != W_WAITING) {
        /* Admitted meanwhile: the mailbox delivery is on its way. */
        pthread_mutex_unlock(&q.mu);
        return;
    }
    fifo_remove_locked(w);
    w->state = W_DONE;
    q.rejected_timeout++;
    int ra = retry_after_locked();
    pthread_mutex_unlock(&q.mu);
    reject(w->r, HX_ERR_QUEUE_TIMEOUT, "timeout", ra);
    waiter_end(w);
}

/* A waiter that was handed a slot, on its own thread. */
static void deliver(waiter *w)
{
    hx_req *r = w->r;
    w->state = W_DONE; /* off every list: only this thread sees it now */
    if (r->aborted) {
        pthread_mutex_lock(&q.mu);
        q.admitted--;
        give_back_locked();
        pthread_mutex_unlock(&q.mu);
        waiter_end(w);
        return;
    }
    queue_ctx *c = hx_req_ctx(r, HX_CTX_QUEUE); /* carved by hx_mw_queue */
    c->wait_ns = hx_now_ns() - w->since_ns;
    hx_metrics_observe(HX_M_QUEUE_WAIT, 0, (double)c->wait_ns / 1e9);
    c->queued = true;
    c->admitted = true;
    hx_req_ref(r); /* survives waiter_end's unref while the chain runs */
    uint64_t since = w->since_ns;
    waiter_end(w);
    admitted_next(r, since);
    hx_req_unref(r);
}

static void on_mailbox(uv_async_t *a)
{
    qloop *ql = a->data;
    pthread_mutex_lock(&q.mu);
    waiter *w = ql->mbox_head;
    ql->mbox_head = ql->mbox_tail = NULL;
    pthread_mutex_unlock(&q.mu);
    while (w != NULL) {
        waiter *next = w->mnext;
        deliver(w);
        w = next;
    }
}

/* How long a newcomer may wait, in ms: max_wait, never past the deadline.
 * 0 means the deadline has already passed. */
static uint64_t wait_budget_ms(const hx_req *r, int64_t max_wait_ms)
{
    uint64_t now = hx_now_ns();
    if (r->deadline_ns <= now)
        return 0;
    uint64_t left = (r->deadline_ns - now + 999999) / 1000000;
    if (max_wait_ms > 0 && (uint64_t)max_wait_ms < left)
        return (uint64_t)max_wait_ms;
    return left;
}

/* Takes a slot when one is free and nobody waits (FIFO: no overtaking). */
static bool try_admit_locked(hx_req *r)
{
    if (q.head != NULL || q.in_flight >= q.max_concurrent)
        return false;
    q.in_flight++;
    q.admitted++;
    queue_ctx *c = hx_req_ctx(r, HX_CTX_QUEUE); /* carved by hx_mw_queue */
    c->queued = true;
    c->admitted = true;
    c->wait_ns = 0;
    hx_metrics_observe(HX_M_QUEUE_WAIT, 0, 0.0);
    return true;
}

/* Enqueues r (w preallocated); returns the reason when it cannot wait. */
static const char *enqueue_locked(hx_req *r, waiter *w, uint64_t budget_ms, hx_err *e, int *ra)
{
    qloop *ql = find_loop_locked(r->loop);
    const char *why = NULL;
    if (ql == NULL) {
        why = "no_worker";
        *e = HX_ERR_UNAVAILABLE;
    } else if (q.waiting >= q.max_waiting) {
        why = "full";
        *e = HX_ERR_QUEUE_FULL;
        q.rejected_full++;
    } else if (budget_ms == 0) {
        why = "timeout";
        *e = HX_ERR_QUEUE_TIMEOUT;
        q.rejected_timeout++;
    }
    *ra = retry_after_locked();
    if (why != NULL)
        return why;
    w->r = r;
    w->ql = ql;
    w->state = W_WAITING;
    w->since_ns = hx_now_ns();
    fifo_push_locked(w);
    return NULL;
}

void hx_mw_queue(hx_req *r)
{
    if (r->aborted)
        return;
    /* Registered before anything is taken: it frees the slot only when
     * the request's context says it holds one. */
    if (hx_req_ctx_alloc(r, HX_CTX_QUEUE, sizeof(queue_ctx)) == NULL ||
        hx_req_on_finish(r, release_slot, NULL) != 0) {
        HX_LOG_ERROR("queue: no room for its request context or finish hook", HX_F_STR("request_id", r->request_id));
        hx_res_error(r, HX_ERR_UNAVAILABLE, NULL);
        return;
    }
    pthread_mutex_lock(&q.mu);
    bool now = try_admit_locked(r);
    int64_t max_wait_ms = q.max_wait_ms;
    pthread_mutex_unlock(&q.mu);
    if (now) {
        admitted_next(r, hx_now_ns());
        return;
    }
    /* Allocated outside the mutex; the decision is taken again under it. */
    waiter *w = hx_calloc(1, sizeof *w);
    if (w == NULL) {
        hx_res_error(r, HX_ERR_UNAVAILABLE, NULL);
        return;
    }
    uint64_t budget = wait_budget_ms(r, max_wait_ms);
    hx_err e = HX_ERR_QUEUE_FULL;
    int ra = RETRY_AFTER_MIN;
    const char *why = NULL;
    pthread_mutex_lock(&q.mu);
    now = try_admit_locked(r);
    if (!now)
        why = enqueue_locked(r, w, budget, &e, &ra);
    pthread_mutex_unlock(&q.mu);
    if (now || why != NULL) {
        hx_free(w);
        if (now)
            admitted_next(r, hx_now_ns());
        else
            reject(r, e, why, ra);
        return;
    }
    /* Queued. Only this thread handles w's timer and mailbox delivery, and
     * it is busy here, so nothing can reach w before these lines run. */
    hx_req_ref(r);
    uv_timer_init(r->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_waiter_timeout, budget, 0);
    r->on_abort = on_waiter_abort;
    r->cb_ud = w;
}

/* ---- lifecycle -------------------------------------------------------- */

static int save_section(json_object *out, void *ud);
static int restore_section(json_object *in, void *ud);

static void apply_cfg_locked(const hx_config *cfg)
{
    hx_qlease_configure(cfg);
    q.max_concurrent = cfg->queue.max_concurrent > 0 ? cfg->queue.max_concurrent : 1;
    q.max_waiting = cfg->queue.initial_size > 0 ? cfg->queue.initial_size : 0;
    q.max_wait_ms = cfg->queue.max_wait > 0 ? cfg->queue.max_wait : 0;
}

int hx_queue_init(const hx_config *cfg)
{
    pthread_mutex_lock(&q.mu);
    apply_cfg_locked(cfg);
    if (q.head == NULL && q.in_flight == 0) {
        q.admitted = q.rejected_full = q.rejected_timeout = 0;
        q.hold_ewma_ns = 0;
    }
    pthread_mutex_unlock(&q.mu);
    if (hx_snapshot_register("queue", save_section, restore_section, NULL) != 0) {
        HX_LOG_ERROR("queue: cannot register its state section", HX_F_STR("section", "queue"));
        return -1;
    }
    return 0;
}

void hx_queue_reconfigure(const hx_config *cfg)
{
    pthread_mutex_lock(&q.mu);
    apply_cfg_locked(cfg);
    pump_locked(); /* a larger max_concurrent admits waiters at once */
    pthread_mutex_unlock(&q.mu);
}

void hx_queue_shutdown(void)
{
    hx_snapshot_unregister("queue");
    pthread_mutex_lock(&q.mu);
    bool busy = q.loops != NULL || q.head != NULL;
    pthread_mutex_unlock(&q.mu);
    if (busy)
        HX_LOG_WARN("queue shut down before its workers", HX_F_STR("event", "queue_shutdown"));
}

int hx_queue_worker_init(void *loop)
{
    if (hx_qlease_worker_init(loop) != 0)
        return -1;
    qloop *ql = hx_calloc(1, sizeof *ql);
    if (ql == NULL) {
        hx_qlease_worker_fini(loop);
        return -1;
    }
    ql->loop = loop;
    if (uv_async_init(loop, &ql->async, on_mailbox) != 0) {
        hx_free(ql);
        return -1;
    }
    ql->async.data = ql;
    pthread_mutex_lock(&q.mu);
    bool dup = find_loop_locked(loop) != NULL;
    if (!dup) {
        ql->next = q.loops;
        q.loops = ql;
    }
    pthread_mutex_unlock(&q.mu);
    if (dup) {
        uv_close((uv_handle_t *)&ql->async, free_handle_data);
        hx_qlease_worker_fini(loop);
        return -1;
    }
    return 0;
}

/* Unlinks ql and collects its waiters (WAITING ones from the FIFO, admitted
 * ones from the mailbox, whose slots go back to other loops' waiters). */
static waiter *detach_loop_locked(qloop *ql)
{
    for (qloop **pp = &q.loops; *pp; pp = &(*pp)->next)
        if (*pp == ql) {
            *pp = ql->next;
            break;
        }
    waiter *out = NULL;
    for (waiter *w = q.head, *next; w; w = next) {
        next = w->next;
        if (w->ql != ql)
            continue;
        fifo_remove_locked(w);
        w->mnext = out;
        out = w;
    }
    for (waiter *w = ql->mbox_head, *next; w; w = next) {
        next = w->mnext;
        q.admitted--;
        q.in_flight--;
        w->mnext = out;
        out = w;
    }
    ql->mbox_head = ql->mbox_tail = NULL;
    pump_locked();
    return out;
}

void hx_queue_worker_fini(void *loop)
{
    hx_qlease_worker_fini(loop);
    pthread_mutex_lock(&q.mu);
    qloop *ql = find_loop_locked(loop);
    waiter *list = ql ? detach_loop_locked(ql) : NULL;
    for (waiter *w = list; w; w = w->mnext)
        w->state = W_DONE;
    pthread_mutex_unlock(&q.mu);
    if (ql == NULL)
        return;
    while (list != NULL) {
        waiter *next = list->mnext;
        reject(list->r, HX_ERR_SHUTTING_DOWN, "shutdown", RETRY_AFTER_MIN);
        waiter_end(list);
        list = next;
    }
    /* The qloop is freed with its handle: the caller runs the loop once
     * more before closing it. */
    uv_close((uv_handle_t *)&ql->async, free_handle_data);
}

void hx_queue_get_stats(hx_queue_stats *out)
{
    pthread_mutex_lock(&q.mu);
    out->waiting = q.waiting;
    out->in_flight = q.in_flight;
    out->max_concurrent = q.max_concurrent;
    out->max_waiting = q.max_waiting;
    out->admitted_total = q.admitted;
    out->rejected_full_total = q.rejected_full;
    out->rejected_timeout_total = q.rejected_timeout;
    pthread_mutex_unlock(&q.mu);
}

/* ---- state file section ----------------------------------------------- */

static int save_section(json_object *out, void *ud)
{
    (void)ud;
    hx_queue_stats s;
    hx_queue_get_stats(&s);
    const struct {
        const char *k;
        int64_t v;
    } f[] = {
        {"max_concurrent", s.max_concurrent},
        {"initial_size", s.max_waiting},
        {"admitted", (int64_t)s.admitted_total},
        {"rejected_full", (int64_t)s.rejected_full_total},
        {"rejected_timeout", (int64_t)s.rejected_timeout_total},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        json_object *v = json_object_new_int64(f[i].v);
        if (v == NULL || json_object_object_add(out, f[i].k, v) != 0) {
            json_object_put(v);
            return -1;
        }
    }
    return 0;
}

static int get_count(json_object *in, const char *k, uint64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(in, k, &v))
        return 0; /* absent: keep the current value */
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
        return -1;
    *out = (uint64_t)json_object_get_int64(v);
    return 0;
}

/* Counters continue from the file. Sizing comes from the configuration,
 * which the operator may have changed before the restart: the saved values
 * are only compared, and a difference is logged. */
static int restore_section(json_object *in, void *ud)
{
    (void)ud;
    uint64_t adm = 0, full = 0, tmo = 0, mc = 0, is = 0;
    if (get_count(in, "admitted", &adm) != 0 || get_count(in, "rejected_full", &full) != 0 ||
        get_count(in, "rejected_timeout", &tmo) != 0 || get_count(in, "max_concurrent", &mc) != 0 ||
        get_count(in, "initial_size", &is) != 0)
        return -1;
    pthread_mutex_lock(&q.mu);
    q.admitted = adm;
    q.rejected_full = full;
    q.rejected_timeout = tmo;
    bool changed = (mc && (int64_t)mc != q.max_concurrent) || (is && (int64_t)is != q.max_waiting);
    int64_t cur_mc = q.max_concurrent, cur_is = q.max_waiting;
    pthread_mutex_unlock(&q.mu);
    if (changed)
        HX_LOG_INFO("queue sizing differs from the saved state, using the configuration",
                    HX_F_STR("event", "state_restore"), HX_F_INT("saved_max_concurrent", mc),
                    HX_F_INT("saved_initial_size", is), HX_F_INT("max_concurrent", cur_mc),
                    HX_F_INT("initial_size", cur_is));
    return 0;
}
