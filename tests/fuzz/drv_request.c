/* Request target: a parsed request (no sockets) through the router and the
 * request middleware (CORS, rate limits, client keys, queue) to an echo
 * handler, with a transport that only records. Cheaper than the http
 * target and free of sockets, so the allocation-failure torture runs it.
 *
 * Input: "METHOD TARGET" on the first line, then "Name: value" lines up to
 * an empty line, then the body.
 * Invariants: every request is answered exactly once (synchronously, as
 * every step here is), and no configured client key the client did not
 * send reaches the answer. */
#include <string.h>
#include <uv.h>

#include "config/config.h"
#include "fuzz.h"
#include "http/request.h"
#include "http/router.h"
#include "middleware/middleware.h"
#include "util/alloc.h"

typedef struct {
    hx_buf out;
    int heads, ends;
} rec;

static int tp_head(hx_req *r, int status, const hx_headers *h, int64_t cl)
{
    rec *c = r->tp_ctx;
    c->heads++;
    int rc = hx_buf_printf(&c->out, "%d %lld\n", status, (long long)cl);
    for (size_t i = 0; rc == 0 && i < h->n; i++)
        rc = hx_buf_printf(&c->out, "%s: %s\n", h->items[i].name, h->items[i].value);
    return rc;
}

static int tp_body(hx_req *r, const void *data, size_t len)
{
    rec *c = r->tp_ctx;
    return hx_buf_append(&c->out, data, len);
}

static int tp_end(hx_req *r)
{
    rec *c = r->tp_ctx;
    c->ends++;
    return 0;
}

static void tp_abort(hx_req *r)
{
    (void)r;
}

static const hx_transport rec_tp = {tp_head, tp_body, tp_end, tp_abort, NULL};

/* Echoes the shape, not the bytes: the key check below must not see the
 * client's own body. */
static void echo(hx_req *r)
{
    char msg[64];
    int n = snprintf(msg, sizeof msg, "%zu headers, %zu bytes\n", r->headers.n, r->body.len);
    hx_res_send(r, 200, "text/plain", msg, (size_t)n);
}

/* Every handler echoes, with the flags of its name. */
static const hx_handler_def *lookup(const char *name)
{
    return hx_fuzz_handler_def(echo, name);
}

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};

/* Fills r from the input; -1 when out of memory. */
static int fill(hx_req *r, const char *s, size_t len)
{
    const char *end = s + len;
    const char *nl = memchr(s, '\n', len);
    const char *line_end = nl ? nl : end;
    const char *sp = memchr(s, ' ', (size_t)(line_end - s));
    r->method = "GET";
    for (size_t i = 0; sp && i < sizeof methods / sizeof methods[0]; i++)
        if ((size_t)(sp - s) == strlen(methods[i]) && memcmp(s, methods[i], (size_t)(sp - s)) == 0)
            r->method = methods[i];
    r->head_only = strcmp(r->method, "HEAD") == 0;
    const char *t = sp ? sp + 1 : line_end;
    const char *q = memchr(t, '?', (size_t)(line_end - t));
    const char *pend = q ? q : line_end;
    r->path = pend > t ? hx_strndup(t, (size_t)(pend - t)) : hx_strdup("/");
    if (r->path == NULL || (q && (r->query = hx_strndup(q + 1, (size_t)(line_end - q - 1))) == NULL))
        return -1;
    const char *p = nl ? nl + 1 : end;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        line_end = nl ? nl : end;
        if (line_end == p) {
            p++;
            break; /* empty line: the body follows */
        }
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon) {
            const char *v = colon + 1;
            while (v < line_end && *v == ' ')
                v++;
            if (hx_headers_addn(&r->headers, p, (size_t)(colon - p), v, (size_t)(line_end - v)) != 0)
                return -1;
        }
        p = nl ? nl + 1 : end;
    }
    return p < end ? hx_buf_append(&r->body, p, (size_t)(end - p)) : 0;
}

int hx_fuzz_request(const uint8_t *data, size_t size)
{
    hx_config *cfg = hx_fuzz_mw_config();
    static uv_loop_t loop;
    static int loop_ready;
    if (!loop_ready) {
        uv_loop_init(&loop);
        hx_middleware_worker_init(&loop);
        loop_ready = 1;
    }
    char err[256];
    hx_router *rt = hx_router_build(cfg, lookup, hx_middleware_lookup, err, sizeof err);
    FUZZ_CHECK(rt != NULL);
    if (rt == NULL)
        return 0;
    rec c;
    memset(&c, 0, sizeof c);
    hx_buf_init(&c.out, 0);
    hx_req *r = hx_req_new(&rec_tp, &c, cfg);
    if (r != NULL) {
        r->mw = hx_router_global_mw(rt);
        r->loop = &loop;
        snprintf(r->peer_ip, sizeof r->peer_ip, "%s", size & 1 ? "10.1.2.3" : "2001:db8::7");
        r->http_minor = 1;
        if (fill(r, (const char *)data, size) == 0) {
            hx_req_assign_id(r, (r->mw & HX_MW_REQUEST_ID) != 0);
            hx_req_ref(r);
            hx_router_dispatch(rt, r);
            FUZZ_CHECK(c.heads == 1 && c.ends == 1);
            hx_req_unref(r);
        } else {
            hx_res_error(r, HX_ERR_INTERNAL, NULL);
        }
        hx_req_unref(r);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    /* A configured key the client did not send never reaches the answer
     * (the client's own bytes may come back: X-Request-ID, a 404 path). */
    static const char *const keys[] = {"sk-fuzz-client", "sk-fuzz-all"};
    for (size_t i = 0; c.out.len && i < 2; i++)
        if (memmem(data, size, keys[i], strlen(keys[i])) == NULL)
            FUZZ_CHECK(memmem(c.out.data, c.out.len, keys[i], strlen(keys[i])) == NULL);
    hx_buf_free(&c.out);
    hx_router_free(rt);
    return 0;
}
