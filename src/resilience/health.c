#include "resilience/health.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"

struct hx_health {
    pthread_mutex_t mu;
    char *name;
    int64_t threshold;
    hx_health_snap s;
};

hx_health *hx_health_new(const char *name, int64_t failure_threshold)
{
    hx_health *h = hx_calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    if ((h->name = hx_strdup(name)) == NULL) {
        hx_free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->threshold = failure_threshold > 0 ? failure_threshold : 1;
    h->s.healthy = true;
    h->s.last_latency_ms = -1;
    h->s.last_change_unix = (int64_t)time(NULL);
    return h;
}

void hx_health_free(hx_health *h)
{
    if (h == NULL)
        return;
    pthread_mutex_destroy(&h->mu);
    hx_free(h->name);
    hx_free(h);
}

const char *hx_health_name(const hx_health *h)
{
    return h->name;
}

bool hx_health_record(hx_health *h, bool ok, const char *error, int64_t latency_ms, bool probe)
{
    return hx_health_record_fail(h, ok, error, ok ? HX_FAIL_NONE : HX_FAIL_OTHER, latency_ms, probe);
}

bool hx_health_record_fail(hx_health *h, bool ok, const char *error, hx_fail_class cls, int64_t latency_ms,
                           bool probe)
{
    pthread_mutex_lock(&h->mu);
    bool was = h->s.healthy;
    h->s.known = true;
    if (probe) {
        h->s.checks++;
        if (!ok)
            h->s.probe_failures++;
    }
    if (latency_ms >= 0)
        h->s.last_latency_ms = latency_ms;
    if (ok) {
        h->s.consecutive_failures = 0;
        h->s.healthy = true;
    } else {
        h->s.consecutive_failures++;
        snprintf(h->s.last_error, sizeof h->s.last_error, "%s", error ? error : "failed");
        h->s.last_fail = cls;
        if (h->s.consecutive_failures >= h->threshold)
            h->s.healthy = false;
    }
    bool changed = was != h->s.healthy;
    if (changed)
        h->s.last_change_unix = (int64_t)time(NULL);
    pthread_mutex_unlock(&h->mu);
    return changed;
}

bool hx_health_ok(hx_health *h)
{
    pthread_mutex_lock(&h->mu);
    bool ok = h->s.healthy;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

void hx_health_snapshot(hx_health *h, hx_health_snap *out)
{
    pthread_mutex_lock(&h->mu);
    *out = h->s;
    pthread_mutex_unlock(&h->mu);
}

void hx_health_restore(hx_health *h, const hx_health_snap *in)
{
    pthread_mutex_lock(&h->mu);
    h->s = *in;
    h->s.last_error[sizeof h->s.last_error - 1] = '\0';
    pthread_mutex_unlock(&h->mu);
}
