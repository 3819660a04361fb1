/* Inside the rate limiter: what its in-process table (ratelimit.c) and
 * its shared path over the state store (ratelimit_shared.c) share. */
#ifndef HX_MIDDLEWARE_RATELIMIT_INT_H
#define HX_MIDDLEWARE_RATELIMIT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "http/request.h"

#define ID_BUF 256
/* The most a client can owe, in minutes of its tokens_per_minute. */
#define HX_RL_MAX_DEBT_MINUTES 60

typedef struct {
    double req_cap, req_pm;   /* capacity, refill per minute; cap 0 = no bucket */
    double tpm_cap, tpm_pm;
} rl_limits;

typedef struct {
    bool allowed;
    const char *kind;         /* why refused: "requests" | "tokens" */
    int64_t limit, remaining, reset_s, retry_s;
} rl_decision;

int64_t hx_rl_secs_ceil(int64_t ms);

/* In process: takes one request from id's buckets (0, or -1 out of
 * memory); moves id's tokens bucket by -delta. */
int hx_rl_local_take(const char *id, const rl_limits *l, rl_decision *d);
void hx_rl_local_adjust(const char *id, const rl_limits *l, int64_t delta);
/* The in-process decision, answered (below). */
void hx_rl_local_answer(hx_req *r, const char *id, const rl_limits *l);
/* Sets the RateLimit-* headers and runs the next step, or answers 429. */
void hx_rl_answer(hx_req *r, const char *id, const rl_decision *d);

/* Over the shared store (hx_cluster_store): the same decision, answered
 * later on r's loop; with state.redis.on_failure when Redis cannot
 * answer. */
void hx_rl_shared_take(hx_req *r, const char *id, const rl_limits *l);
/* Moves id's tokens bucket by -delta: sent at the next turn of loop
 * (r->loop), with the other charges of that turn to the same bucket. */
void hx_rl_shared_adjust(void *loop, const char *id, const rl_limits *l, int64_t delta);
int hx_rl_shared_worker_init(void *loop);
void hx_rl_shared_worker_fini(void *loop);

#endif
