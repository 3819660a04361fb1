/* A request through the proxy without a network (test_proxy.c,
 * test_chain.c): a fake upstream (this file defines upstream.h's
 * functions, so the test links without src/upstream/upstream.c) whose
 * calls the test answers by hand, and a fake client transport that
 * records what the client got. Deterministic: retry delays are 0 ms and
 * the loop runs with UV_RUN_NOWAIT. Include once, from the test's .c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "config/config.h"
#include "gateway/gateway.h"
#include "gateway/inbound.h"
#include "gateway/proxy_int.h"
#include "upstream/upstream.h"
#include "util/alloc.h"
#include "util/json.h"

/* ---- fake upstream -------------------------------------------------------- */

struct hx_up_call {
    int n;                      /* index in fk.calls */
    bool live;                  /* not yet done or cancelled */
    const hx_up_callbacks *cb;
    void *ud;
    char url[256];
    bool early;                 /* the request carried Early-Data: 1 */
};

#define FK_CALLS 16
static struct {
    struct hx_up_call calls[FK_CALLS];
    int ncalls;
    int resumes;
    /* the client */
    int status;
    hx_headers head;
    char body[8192];
    size_t body_len;
    bool ended;
    int illegal; /* refused state transitions (px_state_illegal_hook) */
} fk;

struct hx_upstream {
    int unused;
};
static struct hx_upstream fk_up;

hx_upstream *hx_upstream_new(uv_loop_t *loop)
{
    (void)loop;
    return &fk_up;
}

void hx_upstream_free(hx_upstream *up)
{
    (void)up;
}

int hx_upstream_global_init(void)
{
    return 0;
}

hx_up_call *hx_upstream_start(hx_upstream *up, const char *method, const char *url, const hx_headers *headers,
                              const void *body, size_t len, const hx_up_opts *opts, const hx_up_callbacks *cb,
                              void *ud)
{
    (void)up, (void)method, (void)body, (void)len, (void)opts;
    if (fk.ncalls >= FK_CALLS)
        return NULL;
    struct hx_up_call *c = &fk.calls[fk.ncalls];
    *c = (struct hx_up_call){.n = fk.ncalls++, .live = true, .cb = cb, .ud = ud};
    const char *ed = headers ? hx_headers_get(headers, "Early-Data") : NULL;
    c->early = ed && strcmp(ed, "1") == 0;
    snprintf(c->url, sizeof c->url, "%s", url);
    return c;
}

void hx_up_call_cancel(hx_up_call *c)
{
    c->live = false;
}

void hx_up_call_resume(hx_up_call *c)
{
    (void)c;
    fk.resumes++;
}

const char *hx_up_result_str(hx_up_result r)
{
    static const char *const names[] = {
        "ok", "connect_timeout", "first_byte_timeout", "timeout", "connection_error",
        "connection_reset", "tls_error", "protocol_error", "aborted", "out_of_memory", "error",
        "idle_timeout", "connection_reset_after_send",
    };
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "error";
}

/* The test plays the upstream of call n. */
static hx_up_call *fk_call(int n)
{
    assert_true(n < fk.ncalls);
    assert_true(fk.calls[n].live);
    return &fk.calls[n];
}

static void fk_head(int n, int status, const char *retry_after)
{
    hx_up_call *c = fk_call(n);
    hx_headers h = {0};
    if (retry_after)
        assert_int_equal(hx_headers_add(&h, "retry-after", retry_after), 0);
    c->cb->on_head(c->ud, status, &h);
    hx_headers_free(&h);
}

static int fk_data(int n, const char *s)
{
    hx_up_call *c = fk_call(n);
    return c->cb->on_data(c->ud, s, strlen(s));
}

static void fk_done(int n, hx_up_result res)
{
    hx_up_call *c = fk_call(n);
    c->live = false;
    c->cb->on_done(c->ud, res, "");
}

/* A whole answer: head, body, done. */
static void fk_answer(int n, int status, const char *retry_after, const char *body)
{
    fk_head(n, status, retry_after);
    if (body)
        fk_data(n, body);
    fk_done(n, HX_UP_OK);
}

/* ---- fake client transport ------------------------------------------------ */

static int tp_head(hx_req *r, int status, const hx_headers *h, int64_t content_length)
{
    (void)r, (void)content_length;
    fk.status = status;
    for (size_t i = 0; i < h->n; i++)
        assert_int_equal(hx_headers_add(&fk.head, h->items[i].name, h->items[i].value), 0);
    return 0;
}

static int tp_body(hx_req *r, const void *data, size_t len)
{
    (void)r;
    size_t room = sizeof fk.body - 1 - fk.body_len;
    size_t n = len < room ? len : room;
    memcpy(fk.body + fk.body_len, data, n);
    fk.body_len += n;
    fk.body[fk.body_len] = '\0';
    return 0;
}

static int tp_end(hx_req *r)
{
    (void)r;
    fk.ended = true;
    return 0;
}

static void tp_abort(hx_req *r)
{
    (void)r;
}

static const hx_transport fk_tp = {tp_head, tp_body, tp_end, tp_abort, NULL};

/* ---- the gateway and one request ------------------------------------------ */

static const char FK_YAML[] = "llm:\n"
                              "  provider: openai\n"
                              "  model: gpt-4o\n"
                              "  api_key: sk-test-a\n"
                              "  endpoint: http://a.test/v1\n"
                              "  retry:\n"
                              "    max_retries: 2\n"
                              "    initial_delay: 0ms\n"
                              "    max_delay: 0ms\n"
                              "  backup_providers:\n"
                              "    - name: b\n"
                              "      provider: openai\n"
                              "      model: gpt-4o\n"
                              "      api_key: sk-test-b\n"
                              "      endpoint: http://b.test/v1\n";

typedef struct {
    uv_loop_t loop;
    hx_config *cfg;
    hx_gateway *g;
    hx_gw_worker w;
    hx_req *r;
    proxy *p; /* the request's proxy (borrowed: valid while not DONE) */
} fk_env;

static void fk_illegal(px_state from, px_state to)
{
    (void)from, (void)to;
    fk.illegal++;
}

static void fk_setup(fk_env *e, const char *yaml)
{
    memset(&fk, 0, sizeof fk);
    memset(e, 0, sizeof *e);
    px_state_illegal_hook = fk_illegal; /* counted, and every test asserts none */
    assert_int_equal(uv_loop_init(&e->loop), 0);
    hx_config_errors errs = {0};
    e->cfg = hx_config_load_string(yaml, strlen(yaml), "test.yaml", &errs);
    if (e->cfg == NULL)
        fail_msg("config: %s", errs.n ? errs.items[0] : "?");
    hx_config_errors_free(&errs);
    char err[256];
    e->g = hx_gateway_new(e->cfg, NULL, err, sizeof err);
    if (e->g == NULL)
        fail_msg("gateway: %s", err);
    hx_gateway_publish(e->g);
    e->w.gw = hx_gateway_current();
    e->w.loop = &e->loop;
    e->w.up = &fk_up;
}

/* Starts a chat request with `body` (an OpenAI chat body); with
 * fk_early set, as one received in TLS early data. */
static bool fk_early;
static void fk_start(fk_env *e, const char *body)
{
    e->r = hx_req_new(&fk_tp, NULL, e->cfg);
    assert_non_null(e->r);
    e->r->early_data = fk_early;
    e->r->loop = &e->loop;
    hx_req_set_ctx(e->r, HX_REQ_CTX_APP, &e->w);
    snprintf(e->r->request_id, sizeof e->r->request_id, "req-test");
    assert_int_equal(hx_buf_append(&e->r->body, body, strlen(body)), 0);
    json_object *o = hx_json_parse(body, strlen(body));
    assert_non_null(o);
    json_object *canon = NULL;
    hx_in_info info = {0};
    char err[256];
    assert_int_equal(hx_in_openai_chat(o, &canon, &info, err, sizeof err), 0);
    json_object_put(o);
    info.api = HX_API_CHAT;
    hx_proxy_start(e->r, canon, &info);
    e->p = e->w.live; /* the newest live request */
}

/* Runs what is due now (a retry timer of 0 ms), without waiting. */
static void fk_run(fk_env *e)
{
    for (int i = 0; i < 3; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
}

static bool fk_was_live(const fk_env *e)
{
    for (proxy *p = e->w.live; p; p = p->live_next)
        if (p == e->p)
            return true;
    return false;
}

static const char *fk_header(const char *name)
{
    return hx_headers_get(&fk.head, name);
}

static void fk_teardown(fk_env *e)
{
    assert_false(fk_was_live(e)); /* every test ends its request */
    hx_req_unref(e->r);
    fk_run(e); /* the retry timer's close */
    hx_gateway_unref(e->w.gw);
    hx_gateway_publish(NULL);
    hx_gateway_unref(e->g);
    hx_config_unref(e->cfg);
    hx_headers_free(&fk.head);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    assert_int_equal(fk.illegal, 0);
    px_state_illegal_hook = NULL;
}

static const char FK_CHAT[] = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
static const char FK_CHAT_STREAM[] = "{\"model\":\"gpt-4o\",\"stream\":true,"
                                     "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
static const char FK_OK_BODY[] = "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                                 "\"message\":{\"role\":\"assistant\",\"content\":\"hello\"},"
                                 "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,"
                                 "\"completion_tokens\":1,\"total_tokens\":4}}";
