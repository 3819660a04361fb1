/* Breaker and health evidence shared by the instances (state.backend:
 * redis), over the cluster's channel (state/cluster.h):
 *   "e <ok> <fail> <provider>"       breaker verdicts, batched per tick
 *   "b <state> <provider>"           this instance's breaker changed state
 *   "h <healthy> <class> <provider>" this instance's health verdict changed
 * Each instance feeds the others' verdicts to its own breakers, so one
 * instance's evidence counts for all, and takes their transitions as its
 * own within a tick (250 ms) plus the network. Between messages each
 * instance decides with its local copy. A change caused by a message is
 * not sent on again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "obs/log.h"
#include "state/cluster.h"

/* Bound of the verdicts one message may feed a breaker. */
#define VERDICTS_MAX 10000
#define NAME_MAX_LEN 512

static _Thread_local bool from_peer;

void hx_gateway_shared_verdict(hx_gateway *g, size_t idx, bool success)
{
    if (!hx_cluster_enabled() || from_peer || idx >= g->providers.n)
        return;
    atomic_fetch_add(success ? &g->pm[idx].shared_ok : &g->pm[idx].shared_fail, 1);
}

/* "<prefix><name>", or nothing when the name does not fit a message. */
static void send_named(const char *head, const char *provider)
{
    char m[HX_CLUSTER_MSG_MAX];
    int n = snprintf(m, sizeof m, "%s%s", head, provider);
    if (n > 0 && (size_t)n < sizeof m)
        hx_cluster_publish(m, (size_t)n);
}

void hx_gateway_shared_breaker(const char *provider, int to)
{
    if (!hx_cluster_enabled() || from_peer || to == HX_BREAKER_HALF_OPEN)
        return;
    char head[16];
    snprintf(head, sizeof head, "b %d ", to);
    send_named(head, provider);
}

void hx_gateway_shared_health(const char *provider, bool healthy, hx_fail_class cls)
{
    if (!hx_cluster_enabled() || from_peer)
        return;
    char head[32];
    snprintf(head, sizeof head, "h %d %d ", healthy ? 1 : 0, (int)cls);
    send_named(head, provider);
}

/* On the heartbeat worker, every tick: the verdicts since the last one. */
static void flush(void *ud)
{
    (void)ud;
    hx_gateway *g = hx_gateway_current();
    for (size_t i = 0; g && i < g->providers.n; i++) {
        uint32_t ok = (uint32_t)atomic_exchange(&g->pm[i].shared_ok, 0);
        uint32_t fail = (uint32_t)atomic_exchange(&g->pm[i].shared_fail, 0);
        if (ok == 0 && fail == 0)
            continue;
        char head[40];
        snprintf(head, sizeof head, "e %u %u ", (unsigned)ok, (unsigned)fail);
        send_named(head, g->providers.items[i].name);
    }
    hx_gateway_unref(g);
}

/* A decimal number (at most 9 digits) and the space after it. */
static long take_num(const char **p, const char *end)
{
    long v = 0;
    size_t n = 0;
    while (*p + n < end && (*p)[n] >= '0' && (*p)[n] <= '9' && n < 9)
        v = v * 10 + ((*p)[n++] - '0');
    if (n == 0 || *p + n >= end || (*p)[n] != ' ')
        return -1;
    *p += n + 1;
    return v;
}

int hx_gateway_peer_parse(const char *msg, size_t len, hx_peer_msg *out)
{
    if (len < 4 || msg[1] != ' ' || (msg[0] != 'e' && msg[0] != 'b' && msg[0] != 'h'))
        return -1;
    const char *p = msg + 2, *end = msg + len;
    out->kind = msg[0];
    out->a = take_num(&p, end);
    out->b = out->kind == 'b' ? 0 : take_num(&p, end);
    out->name = p;
    out->name_len = (size_t)(end - p);
    if (out->a < 0 || out->b < 0 || out->name_len == 0 || out->name_len > NAME_MAX_LEN)
        return -1;
    return 0;
}

static void apply_breaker(hx_gateway *g, size_t i, int to)
{
    hx_breaker_snap s;
    hx_breaker_snapshot(g->breakers[i], &s);
    s.state = to;
    s.window_requests = s.window_failures = 0;
    s.open_until_ms = UINT64_MAX; /* restore caps it at now + timeout */
    hx_breaker_restore(g->breakers[i], &s, hx_gateway_now_ms());
}

static void apply_health(hx_gateway *g, size_t i, bool healthy, long cls)
{
    hx_health_snap s;
    hx_health_snapshot(g->health[i], &s);
    if (s.healthy == healthy && s.known)
        return;
    s.healthy = healthy;
    s.known = true;
    s.consecutive_failures = healthy ? 0 : s.consecutive_failures + 1;
    s.last_fail = cls > 0 && cls < HX_FAIL__COUNT ? (hx_fail_class)cls : HX_FAIL_OTHER;
    snprintf(s.last_error, sizeof s.last_error, "%s", healthy ? "" : "reported by another instance");
    hx_health_restore(g->health[i], &s);
    HX_LOG_INFO("provider health from another instance", HX_F_STR("event", "provider_health"),
                HX_F_STR("provider", g->providers.items[i].name), HX_F_STR("state", healthy ? "healthy" : "unhealthy"),
                HX_F_STR("source", "cluster"));
}

static void on_peer(void *ud, const char *msg, size_t len)
{
    (void)ud;
    hx_peer_msg m;
    if (hx_gateway_peer_parse(msg, len, &m) != 0)
        return;
    hx_gateway *g = hx_gateway_current();
    size_t i = 0;
    for (; g && i < g->providers.n; i++)
        if (strlen(g->providers.items[i].name) == m.name_len &&
            memcmp(g->providers.items[i].name, m.name, m.name_len) == 0)
            break;
    if (g && i < g->providers.n) {
        from_peer = true;
        uint64_t now = hx_gateway_now_ms();
        if (m.kind == 'e' && g->breakers[i]) {
            for (long k = 0; k < m.a && k < VERDICTS_MAX; k++)
                hx_breaker_record(g->breakers[i], true, now);
            for (long k = 0; k < m.b && k < VERDICTS_MAX; k++)
                hx_breaker_record(g->breakers[i], false, now);
        } else if (m.kind == 'b' && g->breakers[i] && (m.a == HX_BREAKER_OPEN || m.a == HX_BREAKER_CLOSED)) {
            apply_breaker(g, i, (int)m.a);
        } else if (m.kind == 'h' && g->health[i] && m.a <= 1) {
            apply_health(g, i, m.a == 1, m.b);
        }
        from_peer = false;
    }
    hx_gateway_unref(g);
}

void hx_gateway_shared_init(void)
{
    hx_cluster_listen(on_peer, NULL);
    hx_cluster_every_tick(flush, NULL);
}
