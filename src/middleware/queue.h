/* FIFO admission in front of the providers (the `queue` middleware).
 * One queue per process; a slot freed on one worker admits the oldest
 * waiting request, on whichever worker it waits (uv_async_t wake-up). */
#ifndef HX_MIDDLEWARE_QUEUE_H
#define HX_MIDDLEWARE_QUEUE_H

#include <stdint.h>

#include "config/config.h"

typedef struct {
    int64_t waiting;         /* requests in the FIFO now */
    int64_t in_flight;       /* requests holding a slot now */
    int64_t max_concurrent;
    int64_t max_waiting;     /* initial_size */
    uint64_t admitted_total;
    uint64_t rejected_full_total;
    uint64_t rejected_timeout_total;
} hx_queue_stats;

/* The step (hx_mw_queue, declared in middleware.h): takes a slot at once
 * when one is free and nobody waits; else waits in the FIFO (at most
 * queue.max_wait, never past r->deadline_ns) while fewer than initial_size
 * wait; else answers 503 queue_full. A wait that runs out answers 503
 * queue_timeout. Both carry Retry-After (seconds, >= 1). The slot is given
 * back when the request is finished (hx_req_on_finish hook). */

/* Sizing from cfg->queue; registers the "queue" state-file section
 * (state/snapshot.h), so call it before hx_snapshot_restore. Returns 0/-1. */
int hx_queue_init(const hx_config *cfg);
/* New max_concurrent / initial_size / max_wait for new decisions; a larger
 * max_concurrent admits waiters at once. Any thread. */
void hx_queue_reconfigure(const hx_config *cfg);
/* Unregisters the state section. Call after every worker_fini. */
void hx_queue_shutdown(void);
/* On the worker's thread, before it serves: the loop's wake-up handle.
 * Requests of a loop without it cannot wait (503 when no slot is free). */
int hx_queue_worker_init(void *loop);
/* On the thread that owns the loop, once it stopped serving: answers the
 * loop's waiters 503 shutting_down and closes its handles. The loop must
 * run once more (UV_RUN_DEFAULT) before uv_loop_close to free them. */
void hx_queue_worker_fini(void *loop);
/* A consistent copy of the counters. Any thread. */
void hx_queue_get_stats(hx_queue_stats *out);

#endif
