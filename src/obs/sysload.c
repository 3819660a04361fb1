#include "obs/sysload.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "obs/log.h"

enum { CHECK_MEMORY = 1, CHECK_CPU = 2, CHECK_DISK = 4, CHECK_LATENCY = 8 };

typedef struct {
    unsigned checks;
    double memory, cpu, disk;  /* percent, 0 = off */
    int64_t latency_ms;        /* 0 = off */
    int64_t threshold;
    int64_t interval_ms;
    int64_t timeout_ms;
    char disk_path[512];
} settings;

static struct {
    pthread_mutex_t mu;        /* st and set */
    uv_loop_t *loop;
    uv_timer_t timer;
    bool running;
    settings set;
    hx_sysload_status st;
    uint64_t cpu_busy, cpu_total;
    uv_fs_t statfs_req;
    bool statfs_busy;
    uint64_t statfs_started_ms;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_bool shedding;
static atomic_int shed_reason;   /* index into reasons */
static atomic_uint_fast64_t lat_sum_us, lat_count;
static atomic_int_fast64_t retry_after_s = 1;
static atomic_bool latency_on;   /* skip the shared counters when nobody reads them */

static const char *const reasons[] = {NULL, "memory", "cpu", "disk", "latency"};

static unsigned checks_of(const hx_cfg_sys_health *h)
{
    unsigned all = (h->memory_threshold > 0 ? CHECK_MEMORY : 0) | (h->cpu_threshold > 0 ? CHECK_CPU : 0) |
                   (h->disk_threshold > 0 ? CHECK_DISK : 0) | (h->latency_threshold > 0 ? CHECK_LATENCY : 0);
    if (h->checks.n == 0)
        return all;
    unsigned m = 0;
    for (size_t i = 0; i < h->checks.n; i++) {
        const char *k = h->checks.items[i].key;
        m |= strcmp(k, "memory") == 0 ? CHECK_MEMORY : strcmp(k, "cpu") == 0 ? CHECK_CPU
           : strcmp(k, "disk") == 0 ? CHECK_DISK : strcmp(k, "latency") == 0 ? CHECK_LATENCY : 0;
    }
    return m & all;
}

static void load_settings(const hx_config *cfg)
{
    const hx_cfg_sys_health *h = &cfg->server.health_check;
    pthread_mutex_lock(&S.mu);
    S.set.checks = checks_of(h);
    S.set.memory = h->memory_threshold;
    S.set.cpu = h->cpu_threshold;
    S.set.disk = h->disk_threshold;
    S.set.latency_ms = h->latency_threshold;
    S.set.threshold = h->threshold > 0 ? h->threshold : 1;
    S.set.interval_ms = h->interval > 0 ? h->interval : 1000;
    S.set.timeout_ms = h->timeout > 0 ? h->timeout : S.set.interval_ms;
    snprintf(S.set.disk_path, sizeof S.set.disk_path, "%s", *cfg->queue.state_path ? cfg->queue.state_path : "/");
    S.st.enabled = h->enabled;
    atomic_store(&latency_on, h->enabled && (S.set.checks & CHECK_LATENCY));
    pthread_mutex_unlock(&S.mu);
    int64_t ra = (S.set.interval_ms + 999) / 1000;
    atomic_store(&retry_after_s, ra > 0 ? ra : 1);
}

/* ---- samples ------------------------------------------------------------- */

static int64_t read_int_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1)
        v = -1; /* "max": no limit */
    fclose(f);
    return v;
}

/* The cgroup's limit when the gateway runs under one, else the machine. */
static double sample_memory(void)
{
    int64_t max = read_int_file("/sys/fs/cgroup/memory.max");
    int64_t cur = read_int_file("/sys/fs/cgroup/memory.current");
    if (max > 0 && cur >= 0)
        return 100.0 * (double)cur / (double)max;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return -1;
    char line[128];
    long long total = -1, avail = -1, v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemTotal: %lld", &v) == 1)
            total = v;
        else if (sscanf(line, "MemAvailable: %lld", &v) == 1)
            avail = v;
    }
    fclose(f);
    return total > 0 && avail >= 0 ? 100.0 * (double)(total - avail) / (double)total : -1;
}

/* Busy share of all CPUs since the previous sample. */
static double sample_cpu(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    fclose(f);
    if (n < 4)
        return -1;
    uint64_t total = 0;
    for (int i = 0; i < 8; i++)
        total += v[i];
    uint64_t busy = total - v[3] - v[4]; /* minus idle and iowait */
    double pct = -1;
    if (S.cpu_total && total > S.cpu_total)
        pct = 100.0 * (double)(busy - S.cpu_busy) / (double)(total - S.cpu_total);
    S.cpu_busy = busy;
    S.cpu_total = total;
    return pct;
}

static void on_statfs(uv_fs_t *req)
{
    if (req->result == 0 && req->ptr) {
        const uv_statfs_t *sf = req->ptr;
        double used = (double)(sf->f_blocks - sf->f_bfree);
        double usable = used + (double)sf->f_bavail;
        pthread_mutex_lock(&S.mu);
        S.st.disk_percent = usable > 0 ? 100.0 * used / usable : -1;
        pthread_mutex_unlock(&S.mu);
    }
    uv_fs_req_cleanup(req);
    S.statfs_busy = false;
}

/* statfs can block on a network filesystem: it runs in the thread pool and
 * the result serves the next evaluation. Returns true when a previous one
 * is stuck beyond `timeout`. */
static bool kick_statfs(const settings *set)
{
    if (S.statfs_busy)
        return uv_now(S.loop) - S.statfs_started_ms > (uint64_t)set->timeout_ms;
    if (uv_fs_statfs(S.loop, &S.statfs_req, set->disk_path, on_statfs) == 0) {
        S.statfs_busy = true;
        S.statfs_started_ms = uv_now(S.loop);
    }
    return false;
}

/* ---- evaluation ------------------------------------------------------------ */

static int over_reason(const settings *set, const hx_sysload_status *st, bool disk_stuck)
{
    if ((set->checks & CHECK_MEMORY) && st->memory_percent >= set->memory)
        return 1;
    if ((set->checks & CHECK_CPU) && st->cpu_percent >= set->cpu)
        return 2;
    if ((set->checks & CHECK_DISK) && (disk_stuck || st->disk_percent >= set->disk))
        return 3;
    if ((set->checks & CHECK_LATENCY) && st->latency_ms >= 0 && st->latency_ms >= set->latency_ms)
        return 4;
    return 0;
}

static void set_shedding(bool on, int reason, const hx_sysload_status *st)
{
    if (atomic_load(&shedding) == on)
        return;
    atomic_store(&shed_reason, reason);
    atomic_store(&shedding, on);
    if (on)
        HX_LOG_WARN("system overloaded: shedding new completion requests", HX_F_STR("event", "load_shed_start"),
                    HX_F_STR("reason", reasons[reason]), HX_F_DBL("memory_percent", st->memory_percent),
                    HX_F_DBL("cpu_percent", st->cpu_percent), HX_F_DBL("disk_percent", st->disk_percent),
                    HX_F_INT("latency_ms", st->latency_ms));
    else
        HX_LOG_INFO("system recovered: accepting completion requests", HX_F_STR("event", "load_shed_stop"));
}

static void on_sample(uv_timer_t *t)
{
    (void)t;
    pthread_mutex_lock(&S.mu);
    settings set = S.set;
    pthread_mutex_unlock(&S.mu);
    bool disk_stuck = (set.checks & CHECK_DISK) ? kick_statfs(&set) : false;
    double mem = (set.checks & CHECK_MEMORY) ? sample_memory() : -1;
    double cpu = (set.checks & CHECK_CPU) ? sample_cpu() : -1;
    uint64_t n = atomic_exchange(&lat_count, 0), sum = atomic_exchange(&lat_sum_us, 0);
    pthread_mutex_lock(&S.mu);
    S.st.memory_percent = mem;
    S.st.cpu_percent = cpu;
    S.st.latency_ms = n ? (int64_t)(sum / n / 1000) : -1;
    int reason = over_reason(&set, &S.st, disk_stuck);
    S.st.consecutive_over = reason ? S.st.consecutive_over + 1 : 0;
    hx_sysload_status st = S.st;
    pthread_mutex_unlock(&S.mu);
    if (reason && st.consecutive_over >= set.threshold)
        set_shedding(true, reason, &st);
    else if (!reason)
        set_shedding(false, 0, &st);
}

/* ---- interface ------------------------------------------------------------- */

int hx_sysload_start(void *loop, const hx_config *cfg)
{
    S.loop = loop;
    S.st = (hx_sysload_status){.memory_percent = -1, .cpu_percent = -1, .disk_percent = -1, .latency_ms = -1};
    load_settings(cfg);
    if (uv_timer_init(S.loop, &S.timer) != 0)
        return -1;
    S.running = true;
    if (cfg->server.health_check.enabled)
        uv_timer_start(&S.timer, on_sample, (uint64_t)S.set.interval_ms, (uint64_t)S.set.interval_ms);
    return 0;
}

void hx_sysload_reconfigure(const hx_config *cfg)
{
    if (!S.running)
        return;
    load_settings(cfg);
    uv_timer_stop(&S.timer);
    if (cfg->server.health_check.enabled) {
        uv_timer_start(&S.timer, on_sample, (uint64_t)S.set.interval_ms, (uint64_t)S.set.interval_ms);
    } else {
        hx_sysload_status st = S.st;
        set_shedding(false, 0, &st);
    }
}

void hx_sysload_stop(void)
{
    if (!S.running)
        return;
    S.running = false;
    uv_close((uv_handle_t *)&S.timer, NULL);
}

bool hx_sysload_shedding(const char **reason)
{
    if (!atomic_load_explicit(&shedding, memory_order_relaxed))
        return false;
    if (reason)
        *reason = reasons[atomic_load(&shed_reason)];
    return true;
}

void hx_sysload_get(hx_sysload_status *out)
{
    pthread_mutex_lock(&S.mu);
    *out = S.st;
    pthread_mutex_unlock(&S.mu);
    out->shedding = atomic_load(&shedding);
    out->reason = out->shedding ? reasons[atomic_load(&shed_reason)] : NULL;
}

void hx_sysload_observe_latency(uint64_t ns)
{
    if (!atomic_load_explicit(&latency_on, memory_order_relaxed))
        return;
    atomic_fetch_add_explicit(&lat_sum_us, ns / 1000, memory_order_relaxed);
    atomic_fetch_add_explicit(&lat_count, 1, memory_order_relaxed);
}

int64_t hx_sysload_retry_after_s(void)
{
    return atomic_load(&retry_after_s);
}
