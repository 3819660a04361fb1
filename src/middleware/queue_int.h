/* Inside the queue: what the local FIFO (queue.c) and the cluster's slots
 * (queue_lease.c, state.backend: redis) share. */
#ifndef HX_MIDDLEWARE_QUEUE_INT_H
#define HX_MIDDLEWARE_QUEUE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "http/request.h"

/* The queue's request context (HX_CTX_QUEUE), carved when the step runs. */
typedef struct {
    uint64_t wait_ns; /* time spent waiting in the queue */
    uint32_t lease;   /* the cluster slot's lease number, 0 = none */
    bool queued;      /* holds a queue slot */
    bool admitted;    /* went through the queue (for the access log) */
} queue_ctx;

/* queue.max_concurrent and lease_ttl for new leases. Any thread. */
void hx_qlease_configure(const hx_config *cfg);
/* r holds a local slot (since since_ns, when it started waiting): takes a
 * cluster slot, waiting for one at most until queue.max_wait from
 * since_ns, then runs the chain; or answers 503. On r's thread. */
void hx_qlease_admit(hx_req *r, uint64_t since_ns);
/* Gives r's cluster slot back (c->lease). */
void hx_qlease_release(hx_req *r, queue_ctx *c);
int hx_qlease_worker_init(void *loop);
void hx_qlease_worker_fini(void *loop);

#endif
