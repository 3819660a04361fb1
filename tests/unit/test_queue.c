/* The queue middleware on real uv loops: FIFO admission, full and timeout
 * answers, client disconnects, cross-thread admission, shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config/config.h"
#include "http/request.h"
#include "middleware/ctx.h"
#include "middleware/middleware.h"
#include "middleware/queue.h"
#include "obs/log.h"
#include "util/alloc.h"

#include "capture.h"

#define NREQ 64

/* What the fake transport saw, plus what the handler saw. */
typedef struct {
    hx_test_capture cap;   /* first: it is the request's tp_ctx */
    int id;
    bool admitted;
    bool auto_finish;      /* the handler answers and drops the test's ref */
    uv_thread_t thread;    /* where the handler ran */
    uint64_t wait_ns;
} capture;

static hx_config *cfg;
static capture caps[NREQ];
static hx_req *reqs[NREQ];

/* Admission order, written by handlers on any thread. */
static uv_mutex_t order_mu;
static int order[NREQ];
static int norder;

static int admitted_count(void)
{
    uv_mutex_lock(&order_mu);
    int n = norder;
    uv_mutex_unlock(&order_mu);
    return n;
}

static void handler(hx_req *r)
{
    capture *c = r->tp_ctx;
    c->admitted = true;
    c->thread = uv_thread_self();
    c->wait_ns = hx_queue_wait_ns(r);
    assert_true(hx_queue_holds_slot(r));
    assert_null(r->on_abort);
    /* Answer before recording: the test reads caps once it sees the id. */
    if (c->auto_finish)
        hx_res_send(r, 200, "text/plain", "ok", 2);
    uv_mutex_lock(&order_mu);
    order[norder++] = c->id;
    uv_mutex_unlock(&order_mu);
    if (c->auto_finish) {
        reqs[c->id] = NULL;
        hx_req_unref(r); /* frees the slot: the next waiter goes in */
    }
}

/* A request on `loop` whose only step is the queue. */
static hx_req *mkreq(uv_loop_t *loop, int id, bool auto_finish)
{
    capture *c = &caps[id];
    memset(c, 0, sizeof *c); /* an empty capture */
    c->id = id;
    c->auto_finish = auto_finish;
    hx_req *r = hx_req_new(&cap_tp, &c->cap, cfg);
    assert_non_null(r);
    r->loop = loop;
    r->method = "POST";
    r->method_ok = true;
    r->steps[0] = hx_mw_queue;
    r->nsteps = 1;
    r->handler = handler;
    snprintf(r->request_id, sizeof r->request_id, "req-%d", id);
    reqs[id] = r;
    return r;
}

static void start(hx_req *r)
{
    hx_req_next(r);
}

/* The client got its answer and the adapter drops its reference. */
static void finish(int id)
{
    hx_req *r = reqs[id];
    if (caps[id].admitted && caps[id].cap.status == 0)
        hx_res_send(r, 200, "text/plain", "ok", 2);
    reqs[id] = NULL;
    hx_req_unref(r);
}

static bool has_code(int id, const char *code)
{
    char want[64];
    snprintf(want, sizeof want, "\"code\":\"%s\"", code);
    return strstr(cap_text(&caps[id].cap), want) != NULL;
}

/* The Retry-After header request `id` got, "" if none. */
static const char *retry_after(int id)
{
    return cap_header_or_empty(&caps[id].cap, "retry-after");
}

static void run_for(uv_loop_t *loop, int ms)
{
    for (int i = 0; i < ms; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    uv_run(loop, UV_RUN_NOWAIT);
}

static void run_until_admitted(uv_loop_t *loop, int n)
{
    for (int i = 0; i < 5000 && admitted_count() < n; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(admitted_count(), n);
}

static hx_queue_stats stats(void)
{
    hx_queue_stats s;
    hx_queue_get_stats(&s);
    return s;
}

static int setup(void **state)
{
    (void)state;
    hx_log_set_level(HX_LOG_ERROR);
    cfg = hx_config_default();
    if (cfg == NULL)
        return -1;
    cfg->queue.enabled = true;
    cfg->queue.max_concurrent = 2;
    cfg->queue.initial_size = 3;
    cfg->queue.max_wait = 10000;
    memset(reqs, 0, sizeof reqs);
    norder = 0;
    return hx_queue_init(cfg);
}

static int teardown(void **state)
{
    (void)state;
    hx_queue_shutdown();
    hx_config_unref(cfg);
    for (int i = 0; i < NREQ; i++)
        cap_free(&caps[i].cap);
    return 0;
}

static void loop_open(uv_loop_t *loop)
{
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(hx_queue_worker_init(loop), 0);
}

static void loop_close(uv_loop_t *loop)
{
    hx_queue_worker_fini(loop);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- one loop ----------------------------------------------------------- */

static void test_fifo_and_full(void **state)
{
    (void)state;
    uv_loop_t loop;
    loop_open(&loop);
    for (int i = 0; i < 6; i++)
        start(mkreq(&loop, i, false));
    /* 2 in flight, 3 waiting, the 6th turned away at once. */
    assert_true(caps[0].admitted && caps[1].admitted);
    assert_false(caps[2].admitted || caps[3].admitted || caps[4].admitted);
    assert_int_equal(caps[5].cap.status, 503);
    assert_true(has_code(5, "queue_full"));
    assert_true(strtol(retry_after(5), NULL, 10) >= 1);
    hx_queue_stats s = stats();
    assert_int_equal(s.in_flight, 2);
    assert_int_equal(s.waiting, 3);
    assert_int_equal(s.rejected_full_total, 1);
    finish(5);

    /* Slots freed one by one admit in arrival order. */
    finish(1);
    run_until_admitted(&loop, 3);
    finish(0);
    run_until_admitted(&loop, 4);
    assert_true(caps[2].wait_ns > 0);
    finish(2);
    run_until_admitted(&loop, 5);
    int want[] = {0, 1, 2, 3, 4};
    assert_memory_equal(order, want, sizeof want);
    finish(3);
    finish(4);
    s = stats();
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.admitted_total, 5);
    loop_close(&loop);
}

static void test_timeout_answers_503(void **state)
{
    (void)state;
    hx_config *c2 = hx_config_default();
    c2->queue.max_concurrent = 1;
    c2->queue.initial_size = 10;
    c2->queue.max_wait = 30;
    hx_queue_reconfigure(c2);
    uv_loop_t loop;
    loop_open(&loop);
    start(mkreq(&loop, 0, false));
    start(mkreq(&loop, 1, false));
    /* max_wait is long here, the request deadline short: it wins. */
    c2->queue.max_wait = 60000;
    hx_queue_reconfigure(c2);
    hx_req *r2 = mkreq(&loop, 2, false);
    r2->deadline_ns = hx_now_ns() + 40 * 1000000ull;
    start(r2);
    assert_int_equal(stats().waiting, 2);
    run_for(&loop, 150);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(caps[i].cap.status, 503);
        assert_true(has_code(i, "queue_timeout"));
        assert_true(strtol(retry_after(i), NULL, 10) >= 1);
        assert_false(caps[i].admitted);
    }
    hx_queue_stats s = stats();
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.rejected_timeout_total, 2);
    finish(1);
    finish(2);
    finish(0);
    assert_int_equal(stats().in_flight, 0);
    loop_close(&loop);
    hx_config_unref(c2);
}

static void test_disconnect_while_waiting(void **state)
{
    (void)state;
    cfg->queue.max_concurrent = 1;
    hx_queue_reconfigure(cfg);
    uv_loop_t loop;
    loop_open(&loop);
    start(mkreq(&loop, 0, false));
    start(mkreq(&loop, 1, false));
    start(mkreq(&loop, 2, false));
    start(mkreq(&loop, 3, false));
    assert_int_equal(stats().waiting, 3);
    /* 1 leaves: its place is free at once (a newcomer may take it). */
    hx_req_abort(reqs[1]);
    assert_int_equal(stats().waiting, 2);
    finish(1);
    start(mkreq(&loop, 4, false));
    assert_int_equal(stats().waiting, 3);
    finish(0);
    run_until_admitted(&loop, 2);
    assert_int_equal(order[1], 2);
    assert_false(caps[1].admitted);
    assert_int_equal(caps[1].cap.status, 0);
    finish(2);
    run_until_admitted(&loop, 3);
    finish(3);
    run_until_admitted(&loop, 4);
    finish(4);
    assert_int_equal(stats().in_flight, 0);
    loop_close(&loop);
}

/* The slot was handed over (mailbox) when the client left: it goes on to
 * the next waiter, and nothing runs for the gone one. */
static void test_disconnect_after_admission(void **state)
{
    (void)state;
    cfg->queue.max_concurrent = 1;
    hx_queue_reconfigure(cfg);
    uv_loop_t loop;
    loop_open(&loop);
    start(mkreq(&loop, 0, false));
    start(mkreq(&loop, 1, false));
    start(mkreq(&loop, 2, false));
    finish(0);                  /* 1 is in the mailbox now */
    assert_int_equal(stats().waiting, 1);
    hx_req_abort(reqs[1]);
    finish(1);
    run_until_admitted(&loop, 2);
    assert_false(caps[1].admitted);
    assert_true(caps[2].admitted);
    assert_int_equal(stats().in_flight, 1);
    assert_int_equal(stats().admitted_total, 2);
    finish(2);
    assert_int_equal(stats().in_flight, 0);
    loop_close(&loop);
}

/* The wait timer comes due after the slot was handed over: admitted. */
static void test_timer_after_admission(void **state)
{
    (void)state;
    cfg->queue.max_concurrent = 1;
    cfg->queue.max_wait = 20;
    hx_queue_reconfigure(cfg);
    uv_loop_t loop;
    loop_open(&loop);
    start(mkreq(&loop, 0, false));
    start(mkreq(&loop, 1, false));
    usleep(10 * 1000);
    finish(0);
    usleep(40 * 1000);          /* timer due and mailbox pending together */
    run_until_admitted(&loop, 2);
    run_for(&loop, 30);
    assert_true(caps[1].admitted);
    assert_int_equal(caps[1].cap.status, 0);
    assert_int_equal(stats().rejected_timeout_total, 0);
    finish(1);
    loop_close(&loop);
}

static void test_reconfigure_grows(void **state)
{
    (void)state;
    cfg->queue.max_concurrent = 1;
    hx_queue_reconfigure(cfg);
    uv_loop_t loop;
    loop_open(&loop);
    for (int i = 0; i < 4; i++)
        start(mkreq(&loop, i, false));
    assert_int_equal(stats().waiting, 3);
    cfg->queue.max_concurrent = 3;
    hx_queue_reconfigure(cfg);
    run_until_admitted(&loop, 3);
    assert_int_equal(stats().in_flight, 3);
    assert_int_equal(stats().max_concurrent, 3);
    for (int i = 0; i < 3; i++)
        finish(i);
    run_until_admitted(&loop, 4);
    finish(3);
    loop_close(&loop);
}

static void test_shutdown_answers_waiters(void **state)
{
    (void)state;
    cfg->queue.max_concurrent = 1;
    hx_queue_reconfigure(cfg);
    uv_loop_t loop;
    loop_open(&loop);
    for (int i = 0; i < 4; i++)
        start(mkreq(&loop, i, false));
    finish(0);                  /* 1 sits in the mailbox, 2 and 3 wait */
    hx_queue_worker_fini(&loop);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(caps[i].cap.status, 503);
        assert_true(has_code(i, "shutting_down"));
        finish(i);
    }
    hx_queue_stats s = stats();
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.in_flight, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Out of memory for the waiter, or a loop the queue does not know: the
 * request is answered 503 at once and nothing is held. */
static void test_cannot_wait(void **state)
{
    (void)state;
    cfg->queue.max_concurrent = 1;
    hx_queue_reconfigure(cfg);
    uv_loop_t loop, unknown;
    loop_open(&loop);
    assert_int_equal(uv_loop_init(&unknown), 0);
    start(mkreq(&loop, 0, false));
    hx_req *r = mkreq(&loop, 1, false);
    hx_alloc_fail_at(1, 0);
    start(r);
    hx_alloc_fail_at(0, 0);
    assert_int_equal(caps[1].cap.status, 503);
    assert_true(has_code(1, "service_unavailable"));
    start(mkreq(&unknown, 2, false));
    assert_int_equal(caps[2].cap.status, 503);
    assert_true(strtol(retry_after(2), NULL, 10) >= 1);
    assert_int_equal(stats().waiting, 0);
    finish(1);
    finish(2);
    finish(0);
    assert_int_equal(stats().in_flight, 0);
    loop_close(&loop);
    assert_int_equal(uv_loop_close(&unknown), 0);
}

/* ---- two loops ---------------------------------------------------------- */

/* Loop B on its own thread; the test asks it to start requests. */
typedef struct {
    uv_loop_t loop;
    uv_async_t cmd;
    uv_sem_t done;
    uv_thread_t thread;
    int next_id;           /* request to start, or -1 to stop */
} peer;

static void on_cmd(uv_async_t *a)
{
    peer *p = a->data;
    if (p->next_id < 0) {
        uv_close((uv_handle_t *)&p->cmd, NULL);
        uv_stop(&p->loop);
    } else {
        start(mkreq(&p->loop, p->next_id, true));
    }
    uv_sem_post(&p->done);
}

static void peer_main(void *arg)
{
    peer *p = arg;
    uv_run(&p->loop, UV_RUN_DEFAULT);
    hx_queue_worker_fini(&p->loop);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
}

static void peer_start(peer *p)
{
    loop_open(&p->loop);
    assert_int_equal(uv_async_init(&p->loop, &p->cmd, on_cmd), 0);
    p->cmd.data = p;
    assert_int_equal(uv_sem_init(&p->done, 0), 0);
    assert_int_equal(uv_thread_create(&p->thread, peer_main, p), 0);
}

static void peer_do(peer *p, int id)
{
    p->next_id = id;
    uv_async_send(&p->cmd);
    uv_sem_wait(&p->done);
}

static void peer_stop(peer *p)
{
    peer_do(p, -1);
    uv_thread_join(&p->thread);
    uv_sem_destroy(&p->done);
}

static void test_cross_thread_fifo(void **state)
{
    (void)state;
    cfg->queue.max_concurrent = 1;
    cfg->queue.initial_size = 100;
    hx_queue_reconfigure(cfg);
    uv_loop_t a;
    loop_open(&a);
    peer b;
    peer_start(&b);
    start(mkreq(&a, 0, false)); /* holds the only slot */
    /* Arrivals alternate between the loops. */
    int n = 21;
    for (int i = 1; i < n; i++) {
        if (i % 2)
            peer_do(&b, i);
        else
            start(mkreq(&a, i, true));
    }
    assert_int_equal(stats().waiting, n - 1);
    finish(0);
    run_until_admitted(&a, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(order[i], i);
    uv_thread_t self = uv_thread_self();
    for (int i = 1; i < n; i++) {
        assert_int_equal(caps[i].cap.status, 200);
        assert_int_equal(!!uv_thread_equal(&caps[i].thread, &self), i % 2 == 0);
        assert_true(caps[i].wait_ns > 0);
    }
    hx_queue_stats s = stats();
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.waiting, 0);
    peer_stop(&b);
    loop_close(&a);
}

int main(void)
{
    uv_mutex_init(&order_mu);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifo_and_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_answers_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_after_admission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_after_admission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_grows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_answers_waiters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cannot_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cross_thread_fifo, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_mutex_destroy(&order_mu);
    return rc;
}
