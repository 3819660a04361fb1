#include "state/cluster.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "obs/log.h"
#include "obs/metrics.h"
#include "state/redis_opts.h"
#include "util/alloc.h"

/* Connection state is looked at this often; the heartbeat goes every
 * HEARTBEAT_TICKS of them. */
#define TICK_MS 250
#define HEARTBEAT_TICKS (HX_CLUSTER_HEARTBEAT_MS / TICK_MS)
#define INSTANCES_KEY "instances"
#define ID_MAX 96

typedef struct cl_worker {
    struct cl_worker *next; /* the registry: fini runs off the worker's thread */
    uv_loop_t *loop;
    hx_store *store;
    uv_timer_t tick;
    unsigned ticks;
    bool connected;
    bool heartbeat;     /* this worker renews the instance's heartbeat */
    bool hb_pending;
    hx_store *sub;      /* the heartbeat worker's subscription to the instances' channel */
} cl_worker;

static struct {
    bool enabled;
    hx_store_redis_opts opts; /* strings point into `owned` */
    char *owned;
    char instance[ID_MAX];
    atomic_bool deny;
    atomic_int_fast64_t instances;
    atomic_int down;          /* workers whose connection is not up */
    int64_t grace_until_ms;   /* start: a first connect is not an outage yet */
    atomic_bool degraded;
    atomic_int_fast64_t degraded_since_ms;
    atomic_uint_fast64_t degraded_total, fallback_local, fallback_deny;
    atomic_int hb_claimed;
    hx_cluster_msg_fn listen_fn;
    void *listen_ud;
    void (*tick_fn)(void *ud);
    void *tick_ud;
} C;

#define CHANNEL "instances"

static _Thread_local cl_worker *tls_worker;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static cl_worker *reg_head;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* host:pid:random: unique among instances, stable for the process. */
static void make_instance_id(void)
{
    char host[48] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !*host)
        snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)wall_ms();
    snprintf(C.instance, sizeof C.instance, "%s:%ld:%08x", host, (long)getpid(), rnd);
}

static void collect(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    if (!C.enabled)
        return;
    hx_metrics_write_family(w, "hapax_state_backend_up",
                            "1 while every worker reaches the shared state store (state.backend: redis).",
                            HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_state_backend_up", NULL, atomic_load(&C.degraded) ? 0 : 1);
    hx_metrics_write_family(w, "hapax_state_instances", "Gateway instances sharing the state store (heartbeats).",
                            HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_state_instances", NULL, (double)hx_cluster_instances());
    hx_metrics_write_family(w, "hapax_state_degraded_total", "Times the shared state store became unreachable.",
                            HX_METRIC_COUNTER);
    hx_metrics_write_sample(w, "hapax_state_degraded_total", NULL, (double)atomic_load(&C.degraded_total));
    hx_metrics_write_family(w, "hapax_state_fallbacks_total",
                            "Decisions taken without the shared store, by state.redis.on_failure action.",
                            HX_METRIC_COUNTER);
    hx_metrics_write_sample(w, "hapax_state_fallbacks_total", (const char *const[]){"action", "local", NULL},
                            (double)atomic_load(&C.fallback_local));
    hx_metrics_write_sample(w, "hapax_state_fallbacks_total", (const char *const[]){"action", "deny", NULL},
                            (double)atomic_load(&C.fallback_deny));
}

int hx_cluster_init(const hx_config *cfg)
{
    hx_cluster_msg_fn lf = C.listen_fn;
    void *lud = C.listen_ud;
    void (*tf)(void *) = C.tick_fn;
    void *tud = C.tick_ud;
    memset(&C, 0, sizeof C);
    C.listen_fn = lf, C.listen_ud = lud, C.tick_fn = tf, C.tick_ud = tud;
    atomic_store(&C.instances, 1);
    if (strcmp(cfg->state.backend, "redis") != 0)
        return 0;
    const hx_cfg_redis *r = &cfg->state.redis;
    if (hx_redis_opts_from_cfg(r, &C.opts, &C.owned) != 0) {
        HX_LOG_ERROR("cannot start", HX_F_STR("error", "out of memory"));
        return -1;
    }
    atomic_store(&C.deny, strcmp(r->on_failure, "deny") == 0);
    make_instance_id();
    if (hx_metrics_add_collector(collect, NULL) != 0) {
        hx_free(C.owned);
        C.owned = NULL;
        return -1;
    }
    C.enabled = true;
    C.grace_until_ms = wall_ms() + r->connect_timeout + TICK_MS;
    HX_LOG_INFO("sharing state through redis",
                HX_F_STR(*r->sentinel.master_name ? "sentinel_master" : "address",
                         *r->sentinel.master_name ? r->sentinel.master_name : r->address),
                HX_F_STR("prefix", r->prefix),
                HX_F_STR("instance", C.instance), HX_F_STR("on_failure", r->on_failure));
    return 0;
}

void hx_cluster_reconfigure(const hx_config *cfg)
{
    if (!C.enabled) {
        if (strcmp(cfg->state.backend, "redis") == 0)
            HX_LOG_WARN("state.backend changes need a restart; state stays in process",
                        HX_F_STR("setting", "state.backend"));
        return;
    }
    const hx_cfg_redis *r = &cfg->state.redis;
    atomic_store(&C.deny, strcmp(r->on_failure, "deny") == 0);
    if (strcmp(cfg->state.backend, "redis") != 0 || strcmp(r->address, C.opts.address) != 0 ||
        strcmp(r->prefix, C.opts.prefix) != 0 || strcmp(r->username, C.opts.username) != 0 ||
        strcmp(r->password, C.opts.password) != 0 || r->db != C.opts.db ||
        r->connect_timeout != C.opts.connect_timeout_ms || r->command_timeout != C.opts.command_timeout_ms)
        HX_LOG_WARN("state.backend and the state.redis connection need a restart; the running connection stays",
                    HX_F_STR("setting", "state.redis"));
}

void hx_cluster_shutdown(void)
{
    hx_free(C.owned);
    C.owned = NULL;
    C.enabled = false;
}

/* Whether the shared store is reachable, from the workers' connections;
 * a change is an event (a security-relevant one: limits are now local or
 * refused). */
static void evaluate(void)
{
    bool deg = atomic_load(&C.down) > 0;
    if (deg && wall_ms() < C.grace_until_ms)
        return; /* still connecting for the first time */
    if (atomic_exchange(&C.degraded, deg) == deg)
        return;
    if (deg) {
        atomic_store(&C.degraded_since_ms, wall_ms());
        atomic_fetch_add(&C.degraded_total, 1);
        HX_LOG_WARN("shared state unreachable: limits fall back", HX_F_STR("event", "state_backend_degraded"),
                    HX_F_STR("backend", "redis"), HX_F_STR("address", C.opts.address),
                    HX_F_STR("on_failure", atomic_load(&C.deny) ? "deny" : "local"),
                    HX_F_INT("instances", hx_cluster_instances()));
    } else {
        int64_t since = atomic_exchange(&C.degraded_since_ms, 0);
        HX_LOG_INFO("shared state reachable again", HX_F_STR("event", "state_backend_recovered"),
                    HX_F_STR("backend", "redis"), HX_F_STR("address", C.opts.address),
                    HX_F_INT("degraded_ms", since ? wall_ms() - since : 0));
    }
}

static void on_heartbeat(void *ud, const hx_store_reply *r)
{
    cl_worker *w = ud;
    w->hb_pending = false;
    if (r->rc == HX_STORE_OK && r->value >= 1)
        atomic_store(&C.instances, r->value);
}

static void on_tick(uv_timer_t *t)
{
    cl_worker *w = t->data;
    bool c = hx_store_redis_connected(w->store);
    if (c != w->connected) {
        w->connected = c;
        atomic_fetch_add(&C.down, c ? -1 : 1);
    }
    evaluate();
    if (w->heartbeat && c && C.tick_fn)
        C.tick_fn(C.tick_ud);
    if (w->heartbeat && c && !w->hb_pending && w->ticks++ % HEARTBEAT_TICKS == 0) {
        w->hb_pending = true;
        if (w->store->vt->lease_acquire(w->store, INSTANCES_KEY, C.instance, INT64_MAX, HX_CLUSTER_HEARTBEAT_TTL_MS,
                                        on_heartbeat, w) != 0)
            w->hb_pending = false;
    }
}

/* "<instance> <message>": this instance's own are not for it. */
static void on_message(void *ud, const char *channel, const void *msg, size_t len)
{
    (void)ud;
    (void)channel;
    size_t il = strlen(C.instance);
    const char *m = msg;
    if (len > il && m[il] == ' ' && memcmp(m, C.instance, il) == 0)
        return;
    const char *sp = memchr(m, ' ', len);
    if (sp == NULL || C.listen_fn == NULL)
        return;
    C.listen_fn(C.listen_ud, sp + 1, len - (size_t)(sp + 1 - m));
}

static void on_tick_closed(uv_handle_t *h);

static int start_listening(cl_worker *w)
{
    if ((w->sub = hx_store_redis_new(w->loop, &C.opts)) == NULL)
        return -1;
    if (w->sub->vt->subscribe(w->sub, CHANNEL, on_message, w) != 0) {
        w->sub->vt->destroy(w->sub);
        w->sub = NULL;
        return -1;
    }
    return 0;
}

void hx_cluster_listen(hx_cluster_msg_fn fn, void *ud)
{
    C.listen_fn = fn;
    C.listen_ud = ud;
}

void hx_cluster_every_tick(void (*fn)(void *ud), void *ud)
{
    C.tick_fn = fn;
    C.tick_ud = ud;
}

int hx_cluster_publish(const char *msg, size_t len)
{
    hx_store *s = hx_cluster_store();
    char buf[ID_MAX + 1 + HX_CLUSTER_MSG_MAX];
    size_t il = strlen(C.instance);
    if (s == NULL || len > HX_CLUSTER_MSG_MAX)
        return -1;
    memcpy(buf, C.instance, il);
    buf[il] = ' ';
    memcpy(buf + il + 1, msg, len);
    return s->vt->publish(s, CHANNEL, buf, il + 1 + len, NULL, NULL);
}

int hx_cluster_worker_init(void *loop)
{
    if (!C.enabled)
        return 0;
    cl_worker *w = hx_calloc(1, sizeof *w);
    if (w == NULL)
        return -1;
    w->loop = loop;
    char err[256];
    if ((w->store = hx_store_redis_open(loop, &C.opts, err, sizeof err)) == NULL) {
        HX_LOG_ERROR("cannot set up the shared state store", HX_F_STR("error", err));
        hx_free(w);
        return -1;
    }
    uv_timer_init(loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    /* Down until its connection answers; at start that is not reported as
     * an outage before connect_timeout (evaluate). */
    atomic_fetch_add(&C.down, 1);
    w->heartbeat = atomic_exchange(&C.hb_claimed, 1) == 0;
    if (w->heartbeat && C.listen_fn && start_listening(w) != 0) {
        w->store->vt->destroy(w->store);
        uv_close((uv_handle_t *)&w->tick, on_tick_closed);
        atomic_store(&C.hb_claimed, 0);
        return -1;
    }
    tls_worker = w;
    pthread_mutex_lock(&reg_mu);
    w->next = reg_head;
    reg_head = w;
    pthread_mutex_unlock(&reg_mu);
    return 0;
}

static void on_tick_closed(uv_handle_t *h)
{
    hx_free(h->data);
}

void hx_cluster_worker_fini(void *loop)
{
    cl_worker *w = NULL;
    pthread_mutex_lock(&reg_mu);
    for (cl_worker **pp = &reg_head; *pp; pp = &(*pp)->next)
        if ((*pp)->loop == loop) {
            w = *pp;
            *pp = w->next;
            break;
        }
    pthread_mutex_unlock(&reg_mu);
    if (w == NULL)
        return;
    if (tls_worker == w)
        tls_worker = NULL;
    if (!w->connected)
        atomic_fetch_sub(&C.down, 1);
    if (w->heartbeat)
        atomic_store(&C.hb_claimed, 0);
    w->store->vt->destroy(w->store); /* pending answers (the heartbeat's) are heard now */
    if (w->sub)
        w->sub->vt->destroy(w->sub);
    uv_timer_stop(&w->tick);
    uv_close((uv_handle_t *)&w->tick, on_tick_closed);
}

bool hx_cluster_enabled(void)
{
    return C.enabled;
}

hx_store *hx_cluster_store(void)
{
    cl_worker *w = tls_worker;
    return w && hx_store_redis_connected(w->store) ? w->store : NULL;
}

void *hx_cluster_loop(void)
{
    return tls_worker ? tls_worker->loop : NULL;
}

const char *hx_cluster_instance_id(void)
{
    return C.instance;
}

bool hx_cluster_deny(void)
{
    return atomic_load(&C.deny);
}

int64_t hx_cluster_instances(void)
{
    int64_t n = atomic_load(&C.instances);
    return n >= 1 ? n : 1;
}

void hx_cluster_note_fallback(void)
{
    atomic_fetch_add(atomic_load(&C.deny) ? &C.fallback_deny : &C.fallback_local, 1);
}

void hx_cluster_get_status(hx_cluster_status *st)
{
    *st = (hx_cluster_status){
        .enabled = C.enabled,
        .up = C.enabled && atomic_load(&C.down) == 0,
        .instances = hx_cluster_instances(),
        .instance = C.instance,
        .on_failure = atomic_load(&C.deny) ? "deny" : "local",
        .degraded_total = atomic_load(&C.degraded_total),
        .fallbacks_total = atomic_load(&C.fallback_local) + atomic_load(&C.fallback_deny),
        .degraded_since_ms = atomic_load(&C.degraded_since_ms),
    };
}
