/* System health and load shedding (server.health_check).
 *
 * Every `interval` the main loop samples memory use (the cgroup's limit
 * when one is set, else the machine's), CPU use since the last sample,
 * disk use of the state directory (or "/") and the mean time to response
 * headers of LLM requests in the interval. `checks` picks which of memory,
 * cpu, disk, latency run (empty: every one whose threshold is set). After
 * `threshold` consecutive samples over a threshold the gateway sheds new
 * completion requests (503 overloaded, Retry-After) until one sample is
 * back under every threshold. A disk sample that takes longer than
 * `timeout` counts as over. /health reports the samples and the state. */
#ifndef HX_OBS_SYSLOAD_H
#define HX_OBS_SYSLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

typedef struct {
    bool enabled;
    bool shedding;
    const char *reason;        /* "memory", "cpu", "disk", "latency" or NULL */
    double memory_percent;     /* -1 = not sampled */
    double cpu_percent;
    double disk_percent;
    int64_t latency_ms;        /* -1 = no LLM request in the last interval */
    int64_t consecutive_over;
} hx_sysload_status;

/* Main thread: starts sampling on `loop` (a uv_loop_t) when enabled. */
int hx_sysload_start(void *loop, const hx_config *cfg);
void hx_sysload_reconfigure(const hx_config *cfg);
void hx_sysload_stop(void);

/* Any thread. True while shedding; *reason names the check. */
bool hx_sysload_shedding(const char **reason);
void hx_sysload_get(hx_sysload_status *out);
/* Any thread: one LLM request's time to response headers. */
void hx_sysload_observe_latency(uint64_t ns);
/* Seconds a shed client should wait: one sampling interval. */
int64_t hx_sysload_retry_after_s(void);

#endif
