/* The probes of routes[].health_check (route_health.h), on the worker that
 * runs the provider probes. Every `interval` a round starts (never two at
 * once per route): one op per usable provider and check type, `http` a
 * model-list GET (no tokens), `tcp` a connect to the endpoint. The round
 * ends when every op has; the verdict goes to the route's hx_health. A
 * probe lives while its timer or an op does (refs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "gateway/gateway.h"
#include "gateway/route_health.h"
#include "obs/log.h"
#include "util/alloc.h"
#include "util/units.h"

struct rop;

struct hx_rprobe {
    hx_gw_worker *w;
    hx_gateway *g;       /* reference: rhealth[idx] lives in it */
    size_t idx;
    uv_timer_t timer;
    int refs;            /* the timer + each op */
    bool stopping;
    size_t pending;      /* ops of the round still running */
    size_t started;      /* ops started this round */
    bool ok_http, ok_tcp;
    int64_t ms_http, ms_tcp; /* fastest passing op of each type */
    uint64_t round_ns;
    struct rop *ops;
};

struct rop {
    struct hx_rprobe *p;
    struct rop *next;
    bool tcp, reported, resolving;
    hx_up_call *call;
    int status;
    uint64_t started_ns;
    int handles;         /* tcp: open libuv handles */
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_tcp_t sock;
    uv_timer_t t;
};

static void probe_unref(struct hx_rprobe *p)
{
    if (--p->refs > 0)
        return;
    hx_gateway_unref(p->g);
    hx_free(p);
}

static void op_release(struct rop *op)
{
    struct hx_rprobe *p = op->p;
    for (struct rop **q = &p->ops; *q; q = &(*q)->next)
        if (*q == op) {
            *q = op->next;
            break;
        }
    hx_free(op);
    probe_unref(p);
}

static void log_transition(const hx_route_health *rh)
{
    hx_health_snap s;
    hx_health_snapshot(rh->h, &s);
    if (s.healthy)
        HX_LOG_INFO("route healthy", HX_F_STR("event", "route_health"), HX_F_STR("route", rh->path),
                    HX_F_STR("state", "healthy"));
    else
        HX_LOG_WARN("route unhealthy", HX_F_STR("event", "route_health"), HX_F_STR("route", rh->path),
                    HX_F_STR("state", "unhealthy"), HX_F_STR("error", s.last_error),
                    HX_F_INT("consecutive_failures", s.consecutive_failures));
}

static void finish_round(struct hx_rprobe *p)
{
    const hx_route_health *rh = &p->g->rhealth[p->idx];
    char err[160] = "";
    int64_t ms = (int64_t)((hx_now_ns() - p->round_ns) / 1000000);
    if (p->started == 0)
        snprintf(err, sizeof err, "no usable provider to check");
    else if (rh->http && !p->ok_http)
        snprintf(err, sizeof err, "http: no provider answered its model list with 2xx");
    else if (rh->tcp && !p->ok_tcp)
        snprintf(err, sizeof err, "tcp: no provider endpoint accepted a connection");
    else {
        ms = rh->http ? p->ms_http : 0;
        if (rh->tcp && p->ms_tcp > ms)
            ms = p->ms_tcp;
        if (rh->latency_ms > 0 && ms > rh->latency_ms)
            snprintf(err, sizeof err, "latency: %lld ms, above %lld ms", (long long)ms, (long long)rh->latency_ms);
    }
    if (hx_health_record(rh->h, err[0] == '\0', err[0] ? err : NULL, ms, true))
        log_transition(rh);
}

static void op_report(struct rop *op, bool ok)
{
    struct hx_rprobe *p = op->p;
    if (op->reported)
        return;
    op->reported = true;
    if (ok) {
        int64_t ms = (int64_t)((hx_now_ns() - op->started_ns) / 1000000);
        bool *okp = op->tcp ? &p->ok_tcp : &p->ok_http;
        int64_t *msp = op->tcp ? &p->ms_tcp : &p->ms_http;
        if (!*okp || ms < *msp)
            *msp = ms;
        *okp = true;
    }
    if (--p->pending == 0 && !p->stopping)
        finish_round(p);
}

/* ---- http: the provider probe's request ---- */

static void on_http_head(void *ud, int status, const hx_headers *h)
{
    (void)h;
    ((struct rop *)ud)->status = status;
}

static int on_http_data(void *ud, const char *data, size_t len)
{
    (void)ud, (void)data, (void)len;
    return HX_UP_CONTINUE;
}

static void on_http_done(void *ud, hx_up_result res, const char *detail)
{
    (void)detail;
    struct rop *op = ud;
    op->call = NULL;
    op_report(op, res == HX_UP_OK && op->status >= 200 && op->status < 300);
    op_release(op);
}

static const hx_up_callbacks http_cb = {on_http_head, on_http_data, on_http_done};

static bool http_start(struct rop *op, const hx_provider *pv)
{
    int64_t to = op->p->g->rhealth[op->p->idx].timeout_ms;
    hx_up_request ur;
    hx_up_request_init(&ur);
    if (pv->ad->build_probe(pv, &ur) == 0) {
        hx_up_opts o = {to, to, to, 0};
        op->call = hx_upstream_start(op->p->w->up, ur.method, ur.url, &ur.headers, NULL, 0, &o, &http_cb, op);
    }
    hx_up_request_free(&ur);
    return op->call != NULL;
}

/* ---- tcp: a connect to the endpoint's host:port ---- */

static void on_tcp_closed(uv_handle_t *h)
{
    struct rop *op = h->data;
    if (--op->handles == 0)
        op_release(op);
}

static void tcp_close(struct rop *op)
{
    uv_timer_stop(&op->t);
    if (!uv_is_closing((uv_handle_t *)&op->sock))
        uv_close((uv_handle_t *)&op->sock, on_tcp_closed);
    if (!uv_is_closing((uv_handle_t *)&op->t))
        uv_close((uv_handle_t *)&op->t, on_tcp_closed);
}

static void on_tcp_connect(uv_connect_t *req, int status)
{
    struct rop *op = req->data;
    op_report(op, status == 0);
    tcp_close(op);
}

static void on_tcp_timeout(uv_timer_t *t)
{
    struct rop *op = t->data;
    op_report(op, false);
    tcp_close(op);
}

/* Connects to sa; false when nothing was started (the op is not reported). */
static bool tcp_connect(struct rop *op, const struct sockaddr *sa)
{
    uv_loop_t *loop = op->p->w->loop;
    uv_tcp_init(loop, &op->sock);
    uv_timer_init(loop, &op->t);
    op->sock.data = op->t.data = op->creq.data = op;
    op->handles = 2;
    if (uv_tcp_connect(&op->creq, &op->sock, sa, on_tcp_connect) != 0) {
        op_report(op, false);
        tcp_close(op);
        return true; /* reported and closing: on_tcp_closed releases it */
    }
    uv_timer_start(&op->t, on_tcp_timeout, (uint64_t)op->p->g->rhealth[op->p->idx].timeout_ms, 0);
    return true;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct rop *op = req->data;
    op->resolving = false;
    if (status != 0 || res == NULL || op->p->stopping) {
        op_report(op, false);
        uv_freeaddrinfo(res);
        op_release(op);
        return;
    }
    tcp_connect(op, res->ai_addr);
    uv_freeaddrinfo(res);
}

/* host and port of a base URL ("https://[::1]:8443/v1" -> "::1", "8443"). */
static int url_host_port(const char *url, char *host, size_t hn, char *port, size_t pn)
{
    const char *sep = strstr(url, "://");
    bool tls = sep && (size_t)(sep - url) == 5 && strncmp(url, "https", 5) == 0;
    const char *a = sep ? sep + 3 : url;
    size_t alen = strcspn(a, "/?#");
    for (const char *q = a; q < a + alen; q++)
        if (*q == '@') {
            alen -= (size_t)(q + 1 - a);
            a = q + 1;
        }
    const char *h = a, *he, *colon = NULL;
    if (*a == '[') {
        h = a + 1;
        he = memchr(h, ']', alen);
        if (he == NULL)
            return -1;
        colon = he + 1 < a + alen && he[1] == ':' ? he + 1 : NULL;
    } else {
        colon = memchr(a, ':', alen);
        he = colon ? colon : a + alen;
    }
    size_t pl = colon ? (size_t)(a + alen - colon - 1) : 0;
    if (he == h || (size_t)(he - h) >= hn || pl >= pn)
        return -1;
    snprintf(host, hn, "%.*s", (int)(he - h), h);
    snprintf(port, pn, "%.*s", (int)pl, colon ? colon + 1 : "");
    if (pl == 0)
        snprintf(port, pn, "%s", tls ? "443" : "80");
    return 0;
}

static bool tcp_start(struct rop *op, const hx_provider *pv)
{
    char host[256], port[8];
    if (url_host_port(pv->base_url ? pv->base_url : "", host, sizeof host, port, sizeof port) != 0)
        return false;
    struct sockaddr_storage ss;
    int64_t pnum;
    if (hx_units_parse_int(port, &pnum) != 0 || pnum < 1 || pnum > 65535)
        return false;
    if (uv_ip4_addr(host, (int)pnum, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(host, (int)pnum, (struct sockaddr_in6 *)&ss) == 0)
        return tcp_connect(op, (const struct sockaddr *)&ss);
    /* A name: the system resolver bounds its own time. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    op->gai.data = op;
    op->resolving = true;
    if (uv_getaddrinfo(op->p->w->loop, &op->gai, on_resolved, host, port, &hints) != 0) {
        op->resolving = false;
        return false;
    }
    return true;
}

/* ---- rounds ---- */

static void start_op(struct hx_rprobe *p, const hx_provider *pv, bool tcp)
{
    struct rop *op = hx_calloc(1, sizeof *op);
    if (op == NULL)
        return; /* counts as a failed check: out of memory */
    op->p = p;
    op->tcp = tcp;
    op->started_ns = hx_now_ns();
    op->next = p->ops;
    p->ops = op;
    p->refs++;
    p->pending++;
    p->started++;
    if (!(tcp ? tcp_start(op, pv) : http_start(op, pv))) {
        op_report(op, false);
        op_release(op);
    }
}

static void on_round_timer(uv_timer_t *t)
{
    struct hx_rprobe *p = t->data;
    if (p->pending > 0)
        return; /* the last round still runs: never stack them */
    const hx_route_health *rh = &p->g->rhealth[p->idx];
    p->ok_http = p->ok_tcp = false;
    p->started = 0;
    p->round_ns = hx_now_ns();
    p->pending = 1; /* held while starting: an op failing at once must not end the round */
    for (size_t i = 0; i < p->g->providers.n; i++) {
        const hx_provider *pv = &p->g->providers.items[i];
        if (!pv->usable)
            continue;
        if (rh->http)
            start_op(p, pv, false);
        if (rh->tcp)
            start_op(p, pv, true);
    }
    if (--p->pending == 0)
        finish_round(p);
}

int hx_route_probes_start(hx_gw_worker *w, void *loop)
{
    hx_gateway *g = w->gw;
    if (g->n_rhealth == 0)
        return 0;
    w->rprobes = hx_calloc(g->n_rhealth, sizeof *w->rprobes);
    if (w->rprobes == NULL)
        return -1;
    w->nrprobes = g->n_rhealth;
    for (size_t i = 0; i < g->n_rhealth; i++) {
        struct hx_rprobe *p = hx_calloc(1, sizeof *p);
        if (p == NULL)
            return -1;
        p->w = w;
        p->g = hx_gateway_ref(g);
        p->idx = i;
        p->refs = 1;
        uv_timer_init(loop, &p->timer);
        p->timer.data = p;
        /* The first round at once: a route's state is known from the start. */
        uv_timer_start(&p->timer, on_round_timer, 0, (uint64_t)g->rhealth[i].interval_ms);
        w->rprobes[i] = p;
    }
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    probe_unref(h->data);
}

void hx_route_probes_stop(hx_gw_worker *w)
{
    for (size_t i = 0; w->rprobes && i < w->nrprobes; i++) {
        struct hx_rprobe *p = w->rprobes[i];
        if (p == NULL)
            continue;
        p->stopping = true;
        for (struct rop *op = p->ops, *next; op; op = next) {
            next = op->next;
            if (!op->tcp && op->call) {
                hx_up_call_cancel(op->call); /* never calls back */
                op->call = NULL;
                op_release(op);
            } else if (op->tcp && op->resolving)
                uv_cancel((uv_req_t *)&op->gai); /* on_resolved releases it */
            else if (op->tcp && op->handles > 0)
                tcp_close(op);
        }
        uv_timer_stop(&p->timer);
        uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    }
    hx_free(w->rprobes);
    w->rprobes = NULL;
    w->nrprobes = 0;
}
