#include "http/request.h"

#include <stdalign.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config.h"
#include "http/router.h"
#include "obs/metrics.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/uuid.h"

uint64_t hx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- headers ---------------------------------------------------------- */

const char *hx_headers_get(const hx_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->items[i].name, name) == 0)
            return h->items[i].value;
    return NULL;
}

int hx_headers_addn(hx_headers *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        hx_header *p = hx_realloc(h->items, cap * sizeof *p);
        if (p == NULL)
            return -1;
        h->items = p;
        h->cap = cap;
    }
    /* One allocation holds both: "name\0value\0". */
    char *n = hx_malloc(nlen + vlen + 2);
    if (n == NULL)
        return -1;
    memcpy(n, name, nlen);
    n[nlen] = '\0';
    char *v = n + nlen + 1;
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    h->items[h->n].name = n;
    h->items[h->n].value = v;
    h->n++;
    return 0;
}

int hx_headers_add(hx_headers *h, const char *name, const char *value)
{
    return hx_headers_addn(h, name, strlen(name), value, strlen(value));
}

int hx_headers_set(hx_headers *h, const char *name, const char *value)
{
    size_t out = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->items[i].name, name) == 0) {
            hx_free(h->items[i].name); /* the value shares its block */
            continue;
        }
        h->items[out++] = h->items[i];
    }
    h->n = out;
    return hx_headers_add(h, name, value);
}

void hx_headers_free(hx_headers *h)
{
    for (size_t i = 0; i < h->n; i++)
        hx_free(h->items[i].name); /* the value shares its block */
    hx_free(h->items);
    h->items = NULL;
    h->n = h->cap = 0;
}

/* ---- lifetime --------------------------------------------------------- */

/* Finished requests are kept per thread for the next ones: an hx_req is
 * over 1 KB, and glibc answers every such allocation by consolidating its
 * fast bins first, which showed at 1.3% of the gateway's CPU. */
#if defined(__SANITIZE_ADDRESS__)
#define HX_REQ_POOL_MAX 0 /* let ASan see a use after free of a request */
#else
#define HX_REQ_POOL_MAX 256
#endif
static _Thread_local hx_req *req_pool[HX_REQ_POOL_MAX + 1];
static _Thread_local size_t req_pool_n;

static hx_req *req_alloc(void)
{
    if (req_pool_n > 0) {
        hx_req *r = req_pool[--req_pool_n];
        memset(r, 0, sizeof *r);
        return r;
    }
    return hx_calloc(1, sizeof(hx_req));
}

static void req_release(hx_req *r)
{
    if (req_pool_n + 1 <= HX_REQ_POOL_MAX)
        req_pool[req_pool_n++] = r;
    else
        hx_free(r);
}

void hx_req_pool_drain(void)
{
    while (req_pool_n > 0)
        hx_free(req_pool[--req_pool_n]);
}

hx_req *hx_req_new(const hx_transport *tp, void *tp_ctx, hx_config *cfg)
{
    hx_req *r = req_alloc();
    if (r == NULL)
        return NULL;
    r->refs = 1;
    r->tp = tp;
    r->tp_ctx = tp_ctx;
    r->cfg = hx_config_ref(cfg);
    r->start_ns = hx_now_ns();
    r->deadline_ns = r->start_ns + (uint64_t)cfg->llm.request_timeout * 1000000ull;
    r->http_minor = 1;
    r->method = "";
    hx_buf_init(&r->body, (size_t)cfg->server.max_body_bytes);
    hx_metrics_gauge_inc(HX_M_ACTIVE_REQUESTS, 0);
    return r;
}

hx_req *hx_req_ref(hx_req *r)
{
    r->refs++;
    return r;
}

/* Set once at start (hx_req_set_done_hook), read by every worker. */
static hx_req_done_fn done_hook;

void hx_req_set_done_hook(hx_req_done_fn fn)
{
    done_hook = fn;
}

_Static_assert(HX_REQ_CTX_SLOTS <= 8, "ctx_carved holds one bit per slot");
_Static_assert(HX_REQ_CTX_BYTES <= UINT16_MAX, "ctx_used counts the area's bytes");

void hx_req_set_ctx(hx_req *r, unsigned id, void *p)
{
    if (id < HX_REQ_CTX_SLOTS) {
        r->ctx[id] = p;
        r->ctx_carved = (uint8_t)(r->ctx_carved & ~(1u << id));
    }
}

void *hx_req_ctx_alloc(hx_req *r, unsigned id, size_t size)
{
    if (id >= HX_REQ_CTX_SLOTS)
        return NULL;
    if (r->ctx[id] != NULL) /* storage set with hx_req_set_ctx is not ours to hand out */
        return r->ctx_carved & (1u << id) ? r->ctx[id] : NULL;
    size_t left = sizeof r->ctx_mem - r->ctx_used;
    if (size == 0 || size > left) /* before rounding: a huge size must not wrap */
        return NULL;
    const size_t align = alignof(max_align_t);
    size_t need = (size + align - 1) / align * align;
    if (need > left)
        return NULL;
    /* The pool zeroed the area when it handed the request out. */
    r->ctx[id] = r->ctx_mem + r->ctx_used;
    r->ctx_used = (uint16_t)(r->ctx_used + need);
    r->ctx_carved = (uint8_t)(r->ctx_carved | 1u << id);
    return r->ctx[id];
}

/* Series ids of the request metrics, cached per thread: interning takes
 * the registry's lock, and the same few (route, method, status class)
 * tuples repeat. Labels are bounded: a configured route's path (or
 * "unmatched"), the parser's method name, the status class. */
typedef struct {
    const char *route, *method;
    int status_class;
    int duration, req_size, resp_size;
} series_slot;

static _Thread_local series_slot series_cache[64];

static const series_slot *request_series(const char *route, const char *method, int status)
{
    int cls = status / 100;
    size_t h = (((uintptr_t)route >> 4) ^ ((uintptr_t)method >> 3) ^ (uintptr_t)cls * 31u) & 63u;
    series_slot *s = &series_cache[h];
    if (s->route == route && s->method == method && s->status_class == cls)
        return s;
    const char *sc = hx_metrics_status_class(status);
    s->duration = hx_metrics_series(HX_M_REQUEST_DURATION, route, method, sc);
    s->req_size = hx_metrics_series(HX_M_REQUEST_SIZE, route);
    s->resp_size = hx_metrics_series(HX_M_RESPONSE_SIZE, route);
    s->route = route;
    s->method = method;
    s->status_class = cls;
    return s;
}

/* Error codes are the static strings of the error table: cache their
 * series per thread too, so a flood of errors takes no lock. */
static int error_series(const char *code)
{
    static _Thread_local struct {
        const char *code;
        int series;
    } cache[32];
    size_t h = ((uintptr_t)code >> 3) & 31u;
    if (cache[h].code != code) {
        cache[h].series = hx_metrics_series(HX_M_ERRORS, code);
        cache[h].code = code;
    }
    return cache[h].series;
}

static void record_metrics(hx_req *r)
{
    hx_metrics_gauge_dec(HX_M_ACTIVE_REQUESTS, 0);
    if (r->path == NULL)
        return; /* never parsed: nothing to label */
    int status = r->head_sent ? r->status : 499;
    const series_slot *s = request_series(r->route_label ? r->route_label : "unmatched", r->method, status);
    hx_metrics_observe(HX_M_REQUEST_DURATION, s->duration, (double)(hx_now_ns() - r->start_ns) / 1e9);
    hx_metrics_observe(HX_M_REQUEST_SIZE, s->req_size, (double)r->bytes_in);
    hx_metrics_observe(HX_M_RESPONSE_SIZE, s->resp_size, (double)r->bytes_out);
    if (r->error_code)
        hx_metrics_inc(HX_M_ERRORS, error_series(r->error_code), 1);
}

void hx_req_next(hx_req *r)
{
    if (r->step_pos < r->nsteps) {
        hx_step_fn step = r->steps[r->step_pos++];
        step(r);
        return;
    }
    if (!r->method_ok) {
        if (r->allow)
            hx_res_header(r, "Allow", r->allow);
        hx_res_error(r, HX_ERR_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    for (size_t i = 0; i < r->nrequired; i++) {
        const char *v = hx_headers_get(&r->headers, r->required[i].key);
        if (v == NULL || strcmp(v, r->required[i].value) != 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "missing or invalid header: %.120s", r->required[i].key);
            hx_res_error(r, HX_ERR_INVALID_REQUEST, msg);
            return;
        }
    }
    if (r->handler)
        r->handler(r);
    else
        hx_res_error(r, HX_ERR_NOT_FOUND, NULL);
}

int hx_req_on_finish(hx_req *r, hx_req_fin_fn fn, void *ud)
{
    if (r->nfins >= HX_REQ_MAX_FINS)
        return -1;
    r->fins[r->nfins].fn = fn;
    r->fins[r->nfins].ud = ud;
    r->nfins++;
    return 0;
}

void hx_req_unref(hx_req *r)
{
    if (r == NULL || --r->refs > 0)
        return;
    /* Last in, first out: a later step's hook sees the earlier ones' state. */
    while (r->nfins > 0) {
        r->nfins--;
        r->fins[r->nfins].fn(r, r->fins[r->nfins].ud);
    }
    record_metrics(r);
    if (done_hook)
        done_hook(r);
    hx_free(r->path);
    hx_free(r->query);
    hx_headers_free(&r->headers);
    hx_headers_free(&r->res_headers);
    hx_buf_free(&r->body);
    hx_config_unref(r->cfg);
    req_release(r);
}

void hx_req_abort(hx_req *r)
{
    if (r->aborted)
        return;
    r->aborted = true;
    r->tp = NULL;
    r->tp_ctx = NULL;
    if (r->on_abort) {
        hx_req_cb cb = r->on_abort;
        r->on_abort = NULL;
        cb(r, r->cb_ud);
    }
}

static bool id_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == ':';
}

void hx_req_assign_id(hx_req *r, bool trust_incoming)
{
    const char *in = trust_incoming ? hx_headers_get(&r->headers, "x-request-id") : NULL;
    if (in) {
        size_t n = strlen(in);
        bool ok = n > 0 && n <= HX_REQUEST_ID_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = id_char_ok(in[i]);
        if (ok) {
            memcpy(r->request_id, in, n + 1);
            return;
        }
    }
    hx_uuid4(r->request_id);
}

/* ---- response --------------------------------------------------------- */

int hx_res_header(hx_req *r, const char *name, const char *value)
{
    if (r->head_sent)
        return HX_RES_ESTATE;
    return hx_headers_add(&r->res_headers, name, value) == 0 ? HX_RES_OK : HX_RES_ENOMEM;
}

/* Go-style duration text that time.ParseDuration accepts: three decimals
 * rounded as %.3f would, in fixed point (printf's float formatting costs
 * more than the rest of the head). out holds at least 32 bytes. */
static void format_elapsed(uint64_t ns, char out[32])
{
    uint64_t v = ns;
    const char *unit = "us";
    if (ns >= 1000000000ull) {
        v = ns / 1000000 + (ns % 1000000 >= 500000);
        unit = "s";
    } else if (ns >= 1000000ull) {
        v = ns / 1000 + (ns % 1000 >= 500);
        unit = "ms";
    }
    size_t n = hx_fmt_int(out, (long long)(v / 1000));
    uint64_t frac = v % 1000;
    out[n++] = '.';
    out[n++] = (char)('0' + frac / 100);
    out[n++] = (char)('0' + frac / 10 % 10);
    out[n++] = (char)('0' + frac % 10);
    memcpy(out + n, unit, strlen(unit) + 1);
}

static int send_head(hx_req *r, int status, int64_t content_length)
{
    if (r->aborted || r->tp == NULL)
        return HX_RES_EGONE;
    if (r->head_sent)
        return HX_RES_ESTATE;
    if (r->mw & HX_MW_REQUEST_ID) {
        if (hx_headers_set(&r->res_headers, "X-Request-ID", r->request_id) != 0)
            return HX_RES_ENOMEM;
    }
    if (r->mw & HX_MW_REQUEST_TIMER) {
        char t[32];
        format_elapsed(hx_now_ns() - r->start_ns, t);
        if (hx_headers_set(&r->res_headers, "X-Response-Time", t) != 0)
            return HX_RES_ENOMEM;
    }
    r->status = status;
    r->head_sent = true;
    r->head_ns = hx_now_ns();
    return r->tp->head(r, status, &r->res_headers, content_length);
}

int hx_res_start(hx_req *r, int status)
{
    return send_head(r, status, -1);
}

int hx_res_write(hx_req *r, const void *data, size_t len)
{
    if (r->aborted || r->tp == NULL)
        return HX_RES_EGONE;
    if (!r->head_sent || r->ended)
        return HX_RES_ESTATE;
    if (len == 0 || r->head_only)
        return HX_RES_OK;
    return r->tp->body(r, data, len);
}

int hx_res_end(hx_req *r)
{
    if (r->aborted || r->tp == NULL)
        return HX_RES_EGONE;
    if (!r->head_sent || r->ended)
        return HX_RES_ESTATE;
    r->ended = true;
    return r->tp->end(r);
}

int hx_res_send(hx_req *r, int status, const char *content_type, const void *body, size_t len)
{
    if (content_type && hx_res_header(r, "Content-Type", content_type) != HX_RES_OK)
        return HX_RES_ENOMEM;
    int rc = send_head(r, status, (int64_t)len);
    if (rc < 0)
        return rc;
    if (len && !r->head_only) {
        rc = r->tp->body(r, body, len);
        if (rc < 0)
            return rc;
    }
    r->ended = true;
    return r->tp->end(r);
}

int hx_res_error(hx_req *r, hx_err e, const char *message)
{
    if (r->aborted || r->tp == NULL)
        return HX_RES_EGONE;
    if (r->head_sent) {
        /* Too late for a status: the adapter cuts the stream instead. */
        r->tp->abort(r);
        return HX_RES_ESTATE;
    }
    const hx_err_info *info = hx_err_get(e);
    if (info->status >= 500 && e == HX_ERR_INTERNAL && !(r->mw & HX_MW_PANIC_RECOVERY)) {
        /* Without fault containment an internal error drops the connection. */
        r->error_code = info->code;
        r->tp->abort(r);
        return HX_RES_EGONE;
    }
    hx_buf b;
    hx_buf_init(&b, HX_RES_ERROR_MAX);
    /* A message too long for the bound falls back to the default one. */
    hx_err_render_fn render = r->err_render ? r->err_render : hx_err_render;
    if (render(&b, e, message, r->request_id) != 0 &&
        (message == NULL || (hx_buf_reset(&b), render(&b, e, NULL, r->request_id) != 0))) {
        hx_buf_free(&b);
        r->tp->abort(r);
        return HX_RES_ENOMEM;
    }
    r->error_code = info->code;
    int rc = hx_res_send(r, info->status, "application/json", b.data, b.len);
    hx_buf_free(&b);
    return rc;
}
