/* The instances of one gateway sharing state (state.backend: redis):
 * each worker loop's connection to the shared store, this instance's
 * heartbeat and the live instance count, and whether the shared store is
 * reachable (degraded / recovered: a log event, a metric, a /health
 * field). Features ask hx_cluster_store() for this thread's store and,
 * when it is NULL while the backend is shared, apply state.redis.on_failure
 * (hx_cluster_deny / hx_cluster_instances for the local share).
 *
 * With state.backend: memory nothing here runs and hx_cluster_enabled()
 * is false. */
#ifndef HX_STATE_CLUSTER_H
#define HX_STATE_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "state/store.h"

/* How often an instance renews its heartbeat, and how long one lives:
 * an instance that stops renewing leaves the count within the TTL. */
#define HX_CLUSTER_HEARTBEAT_MS 1000
#define HX_CLUSTER_HEARTBEAT_TTL_MS 5000

/* On the main thread before any worker starts: the backend, this
 * instance's id, the metrics. 0, or -1 (out of memory, logged). */
int hx_cluster_init(const hx_config *cfg);
/* A reload: on_failure applies at once; the backend and the connection
 * keys need a restart (a warning says so when they changed). */
void hx_cluster_reconfigure(const hx_config *cfg);
void hx_cluster_shutdown(void);
/* On each worker's thread: its connection (and, on one worker, the
 * heartbeat). 0 or -1. */
int hx_cluster_worker_init(void *loop);
void hx_cluster_worker_fini(void *loop);

bool hx_cluster_enabled(void);
/* This thread's shared store when it can answer now, else NULL (backend
 * memory, not a worker thread, or Redis unreachable). */
hx_store *hx_cluster_store(void);
/* This thread's worker loop (uv_loop_t) when it has a shared store, else NULL. */
void *hx_cluster_loop(void);
/* This instance's id: unique among the instances, stable for the process. */
const char *hx_cluster_instance_id(void);
/* state.redis.on_failure is deny. */
bool hx_cluster_deny(void);
/* The live instances at the last heartbeat (>= 1): the local fallback
 * divides cluster-wide limits by it. */
int64_t hx_cluster_instances(void);
/* A feature fell back because the shared store could not answer
 * (counted per action: local | deny). */
void hx_cluster_note_fallback(void);

/* Messages between instances (one channel): fn hears the other
 * instances' messages (never this one's), on one worker's thread. Set
 * before the workers start. */
typedef void (*hx_cluster_msg_fn)(void *ud, const char *msg, size_t len);
void hx_cluster_listen(hx_cluster_msg_fn fn, void *ud);
/* Sends msg (at most HX_CLUSTER_MSG_MAX bytes) to the other instances
 * through this thread's connection; -1 when it cannot go now. */
#define HX_CLUSTER_MSG_MAX 1024
int hx_cluster_publish(const char *msg, size_t len);
/* Runs fn every tick (250 ms) on the worker that keeps the heartbeat:
 * for messages sent in batches. Set before the workers start. */
void hx_cluster_every_tick(void (*fn)(void *ud), void *ud);

typedef struct {
    bool enabled;
    bool up;              /* every worker connected */
    int64_t instances;
    const char *instance; /* this instance's id (static storage) */
    const char *on_failure;
    uint64_t degraded_total, fallbacks_total;
    int64_t degraded_since_ms; /* wall clock, 0 while up */
} hx_cluster_status;
void hx_cluster_get_status(hx_cluster_status *st);

#endif
