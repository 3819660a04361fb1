#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cfg_load.h"
#include "config/config.h"
#include "gateway/handlers.h"
#include "http/request.h"
#include "http/router.h"
#include "util/alloc.h"

#include "capture.h"

static hx_config *cfg;
static hx_router *rt;

static int setup(void **state)
{
    (void)state;
    cfg = hx_config_default();
    char err[128];
    rt = hx_router_build(cfg, hx_handlers_lookup, NULL, err, sizeof err);
    return cfg && rt ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    hx_router_free(rt);
    hx_config_unref(cfg);
    return 0;
}

static void run(hx_test_capture *c, const char *method, const char *path)
{
    cap_init(c);
    hx_req *r = hx_req_new(&cap_tp, c, cfg);
    assert_non_null(r);
    r->method = method;
    r->path = hx_strdup(path);
    r->head_only = strcmp(method, "HEAD") == 0;
    snprintf(r->peer_ip, sizeof r->peer_ip, "127.0.0.1"); /* /metrics without auth: loopback only */
    r->mw = hx_router_global_mw(rt);
    hx_req_assign_id(r, false);
    hx_router_dispatch(rt, r);
    hx_req_unref(r);
}

static void test_health_ok(void **state)
{
    (void)state;
    hx_test_capture c;
    run(&c, "GET", "/health");
    assert_int_equal(c.status, 200);
    assert_non_null(strstr(cap_text(&c), "\"status\":\"ok\""));
    assert_int_equal(c.ends, 1);
    assert_int_equal(strlen(cap_header_or_empty(&c, "x-request-id")), 36);
    assert_non_null(cap_header(&c, "x-response-time"));
    cap_free(&c);
}

static void test_head_has_length_no_body(void **state)
{
    (void)state;
    hx_test_capture c;
    run(&c, "HEAD", "/health");
    assert_int_equal(c.status, 200);
    assert_int_equal(c.content_length, (int64_t)strlen("{\"providers\":{},\"system\":{\"checks\":\"off\"},\"status\":\"ok\"}\n"));
    assert_int_equal(c.body.len, 0);
    cap_free(&c);
}

static void test_not_found_and_method(void **state)
{
    (void)state;
    hx_test_capture c;
    run(&c, "GET", "/nope");
    assert_int_equal(c.status, 404);
    assert_non_null(strstr(cap_text(&c), "\"not_found\""));
    cap_free(&c);

    run(&c, "DELETE", "/health");
    assert_int_equal(c.status, 405);
    assert_string_equal(cap_header_or_empty(&c, "allow"), "GET, HEAD");
    assert_non_null(strstr(cap_text(&c), "\"method_not_allowed\""));
    cap_free(&c);

    run(&c, "GET", "/v1/completions");
    assert_int_equal(c.status, 405);
    assert_string_equal(cap_header_or_empty(&c, "allow"), "POST");
    cap_free(&c);
}

static void test_metrics_and_llm_front(void **state)
{
    (void)state;
    hx_test_capture c;
    run(&c, "GET", "/metrics"); /* auth is off: open to this (loopback) client */
    assert_int_equal(c.status, 200);
    assert_non_null(strstr(cap_text(&c), "process_start_time_seconds"));
    cap_free(&c);
    /* An LLM endpoint checks the body type before anything else. */
    run(&c, "POST", "/v1/completions");
    assert_int_equal(c.status, 400);
    assert_non_null(strstr(cap_text(&c), "Content-Type must be application/json"));
    cap_free(&c);
}

/* GET /v1/models/{id...}: ids with '/' (raw or %2F) reach the model
 * handler; a "{name}" route still takes one segment only. */
static void test_model_route_takes_slashes(void **state)
{
    (void)state;
    hx_test_capture c;
    run(&c, "GET", "/v1/models/meta-llama/Llama-3-8b");
    assert_int_equal(c.status, 404);
    assert_non_null(strstr(cap_text(&c), "\"model_not_found\""));
    assert_non_null(strstr(cap_text(&c), "'meta-llama/Llama-3-8b'"));
    cap_free(&c);
    run(&c, "GET", "/v1/models/meta-llama%2FLlama-3-8b");
    assert_non_null(strstr(cap_text(&c), "'meta-llama/Llama-3-8b'"));
    cap_free(&c);
    run(&c, "GET", "/v1/models/x%00y"); /* a NUL is no model name */
    assert_int_equal(c.status, 404);
    assert_non_null(strstr(cap_text(&c), "(unreadable id)"));
    cap_free(&c);
    run(&c, "DELETE", "/v1/models/llama3.2:latest");
    assert_int_equal(c.status, 405);
    assert_string_equal(cap_header_or_empty(&c, "allow"), "GET, HEAD");
    cap_free(&c);
    run(&c, "GET", "/v1/models/");
    assert_int_equal(c.status, 404);
    assert_non_null(strstr(cap_text(&c), "\"not_found\""));
    cap_free(&c);
    run(&c, "GET", "/health/providers/a/b");
    assert_int_equal(c.status, 404);
    assert_non_null(strstr(cap_text(&c), "\"not_found\""));
    cap_free(&c);
}

static void test_mw_mask(void **state)
{
    (void)state;
    char *names[] = {"request_id", "logging", "auth"};
    hx_strlist l = {names, 3};
    unsigned m = hx_router_mw_mask(&l);
    assert_true(m & HX_MW_REQUEST_ID);
    assert_true(m & HX_MW_LOGGING);
    assert_false(m & HX_MW_REQUEST_TIMER);
    assert_false(m & HX_MW_PANIC_RECOVERY);
}

static void test_unknown_handler_rejected(void **state)
{
    (void)state;
    hx_config *c2 = hx_config_default();
    hx_free(c2->routes[0].handler);
    c2->routes[0].handler = hx_strdup("nonsense");
    char err[128] = "";
    assert_null(hx_router_build(c2, hx_handlers_lookup, NULL, err, sizeof err));
    assert_non_null(strstr(err, "nonsense"));
    hx_config_unref(c2);
}

/* A route's `headers` are required request headers (exact values). */
static void test_route_required_headers(void **state)
{
    (void)state;
    const char *y = "routes:\n  - path: /health\n    handler: health\n    headers: {X-Team: blue}\n"
                    "  - path: /metrics\n    handler: metrics\n    headers: {X-Scraper: \"1\"}\n";
    hx_config *c2 = load_cfg(y);
    char err[128];
    hx_router *rt2 = hx_router_build(c2, hx_handlers_lookup, NULL, err, sizeof err);
    assert_non_null(rt2);
    hx_router *saved_rt = rt;
    hx_config *saved_cfg = cfg;
    rt = rt2;
    cfg = c2;
    hx_test_capture c;
    run(&c, "GET", "/health");
    assert_int_equal(c.status, 400);
    assert_non_null(strstr(cap_text(&c), "missing or invalid header: X-Team"));
    cap_free(&c);

    cap_init(&c);
    hx_req *r = hx_req_new(&cap_tp, &c, cfg);
    r->method = "GET";
    r->path = hx_strdup("/health");
    hx_headers_add(&r->headers, "x-team", "red"); /* wrong value */
    hx_router_dispatch(rt, r);
    assert_int_equal(c.status, 400);
    hx_headers_set(&r->headers, "x-team", "blue");
    hx_req_unref(r);
    cap_free(&c);

    cap_init(&c);
    r = hx_req_new(&cap_tp, &c, cfg);
    r->method = "GET";
    r->path = hx_strdup("/health");
    hx_headers_add(&r->headers, "X-Team", "blue");
    hx_router_dispatch(rt, r);
    assert_int_equal(c.status, 200);
    hx_req_unref(r);
    cap_free(&c);

    rt = saved_rt;
    cfg = saved_cfg;
    hx_router_free(rt2);
    hx_config_unref(c2);
}

/* `version` prefixes the path unless the path already starts with it. */
static void test_route_version_prefix(void **state)
{
    (void)state;
    const char *y = "routes:\n  - {path: /completions, handler: completion, version: v2}\n"
                    "  - {path: /v1/chat/completions, handler: chat, version: v1}\n"
                    "  - {path: /health, handler: health}\n";
    hx_config *c2 = load_cfg(y);
    char err[128];
    hx_router *rt2 = hx_router_build(c2, hx_handlers_lookup, NULL, err, sizeof err);
    assert_non_null(rt2);
    hx_router *saved_rt = rt;
    hx_config *saved_cfg = cfg;
    rt = rt2;
    cfg = c2;
    hx_test_capture c;
    run(&c, "POST", "/v2/completions"); /* the handler answers: no JSON content type */
    assert_int_equal(c.status, 400);
    cap_free(&c);
    run(&c, "POST", "/completions");
    assert_int_equal(c.status, 404);
    cap_free(&c);
    run(&c, "POST", "/v1/chat/completions");
    assert_int_equal(c.status, 400);
    cap_free(&c);
    run(&c, "GET", "/health");
    assert_int_equal(c.status, 200);
    cap_free(&c);
    rt = saved_rt;
    cfg = saved_cfg;
    hx_router_free(rt2);
    hx_config_unref(c2);
}

/* routes[].health_check adds GET/HEAD <mount path>/health, ahead of every
 * route (a pattern route would take it otherwise); building copes with
 * each allocation failing. */
static void test_route_health_path(void **state)
{
    (void)state;
    const char *y = "routes:\n  - {path: \"/v2/{rest...}\", handler: chat, methods: [POST]}\n"
                    "  - {path: /completions, handler: completion, version: v2,\n"
                    "     health_check: {enabled: true}}\n"
                    "  - {path: /health, handler: health}\n";
    hx_config *c2 = load_cfg(y);
    char err[128];
    for (unsigned long n = 1; n < 30; n++) {
        hx_alloc_fail_at(n, 1);
        hx_router *f = hx_router_build(c2, hx_handlers_lookup, NULL, err, sizeof err);
        hx_alloc_fail_at(0, 0);
        hx_router_free(f);
    }
    hx_router *rt2 = hx_router_build(c2, hx_handlers_lookup, NULL, err, sizeof err);
    assert_non_null(rt2);
    hx_router *saved_rt = rt;
    hx_config *saved_cfg = cfg;
    rt = rt2;
    cfg = c2;
    hx_test_capture c;
    run(&c, "POST", "/v2/completions/health"); /* the health route: GET and HEAD only */
    assert_int_equal(c.status, 405);
    assert_string_equal(cap_header_or_empty(&c, "allow"), "GET, HEAD");
    cap_free(&c);
    run(&c, "POST", "/v2/other"); /* the pattern route still serves the rest */
    assert_int_equal(c.status, 400);
    cap_free(&c);
    rt = saved_rt;
    cfg = saved_cfg;
    hx_router_free(rt2);
    hx_config_unref(c2);
}

/* panic_recovery: an internal error becomes a 500 JSON answer; without it
 * the connection is dropped (the adapter's abort). */
static void test_internal_error_containment(void **state)
{
    (void)state;
    for (int contain = 0; contain < 2; contain++) {
        hx_test_capture c;
        cap_init(&c);
        hx_req *r = hx_req_new(&cap_tp, &c, cfg);
        r->method = "GET";
        r->path = hx_strdup("/x");
        r->mw = HX_MW_REQUEST_ID | (contain ? HX_MW_PANIC_RECOVERY : 0);
        hx_req_assign_id(r, false);
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        if (contain) {
            assert_int_equal(c.status, 500);
            assert_false(c.aborted);
            assert_non_null(strstr(cap_text(&c), "\"type\":\"api_error\""));
            assert_non_null(strstr(cap_text(&c), r->request_id));
        } else {
            assert_int_equal(c.status, 0);
            assert_true(c.aborted);
        }
        hx_req_unref(r);
        cap_free(&c);
    }
}

/* The handler table carries the flags of the one handler list (config.h's
 * HX_HANDLER_LIST) for every name a config may give, and the router reads
 * them: a route whose handler has HX_HANDLER_METRICS follows metrics.*. */
static void test_handler_flags(void **state)
{
    (void)state;
    for (size_t i = 0; hx_config_handler_names[i]; i++) {
        const char *name = hx_config_handler_names[i];
        const hx_handler_def *def = hx_handlers_lookup(name);
        assert_non_null(def);
        assert_int_equal(def->flags, hx_config_handler_flags(name));
    }
    assert_int_equal(hx_handlers_lookup("route_health")->flags, hx_config_handler_flags("health"));
    assert_true(hx_config_handler_flags("chat") & HX_HANDLER_SPENDS);
    assert_true(hx_config_handler_flags("count_tokens") & HX_HANDLER_SPENDS);
    assert_false(hx_config_handler_flags("models") & (HX_HANDLER_SPENDS | HX_HANDLER_OPEN));
    assert_true(hx_config_handler_flags("provider_health") & HX_HANDLER_OPEN);
    assert_int_equal(hx_config_handler_flags("nope"), 0);
    assert_int_equal(hx_config_handler_flags(NULL), 0);
}

static hx_handler_def fake_metrics_def;

/* A table where "models" is the metrics handler: the router follows the
 * flag, not the name. */
static const hx_handler_def *fake_lookup(const char *name)
{
    const hx_handler_def *d = hx_handlers_lookup(name);
    if (d && strcmp(name, "models") == 0) {
        fake_metrics_def = *d;
        fake_metrics_def.flags |= HX_HANDLER_METRICS;
        return &fake_metrics_def;
    }
    return d;
}

static void test_metrics_by_flag(void **state)
{
    (void)state;
    hx_config *c2 = hx_config_default();
    assert_non_null(c2);
    c2->metrics.enabled = false;
    char err[128];
    hx_router *rt2 = hx_router_build(c2, fake_lookup, NULL, err, sizeof err);
    assert_non_null(rt2);
    hx_router *keep = rt;
    hx_config *keep_cfg = cfg;
    rt = rt2, cfg = c2;
    hx_test_capture c;
    run(&c, "GET", "/v1/models");
    assert_int_equal(c.status, 404); /* switched off with metrics.enabled */
    cap_free(&c);
    rt = keep, cfg = keep_cfg;
    hx_router_free(rt2);
    hx_config_unref(c2);
}

/* ---- RFC 8470: requests that arrived in TLS early data ---- */

/* A transport that can wait for the handshake: it keeps the callback. */
typedef struct {
    hx_test_capture c; /* first: the capture transport's context */
    hx_req_cb cb;
    void *ud;
    int waits;
} early_ctx;

static int early_wait(hx_req *r, hx_req_cb cb, void *ud)
{
    early_ctx *e = r->tp_ctx;
    e->cb = cb;
    e->ud = ud;
    e->waits++;
    return 0;
}

static hx_transport early_tp;

static hx_req *early_req(early_ctx *e, bool can_wait, const char *method, const char *path)
{
    memset(e, 0, sizeof *e);
    cap_init(&e->c);
    early_tp = cap_tp;
    early_tp.when_confirmed = can_wait ? early_wait : NULL;
    hx_req *r = hx_req_new(&early_tp, e, cfg);
    assert_non_null(r);
    r->method = method;
    r->path = hx_strdup(path);
    r->early_data = true;
    snprintf(r->peer_ip, sizeof r->peer_ip, "127.0.0.1");
    r->mw = hx_router_global_mw(rt);
    hx_req_assign_id(r, false);
    return r;
}

/* A spending POST in early data with a transport that cannot wait: 425,
 * in the route's own error dialect; nothing reaches the handler. */
static void test_early_post_is_too_early(void **state)
{
    (void)state;
    early_ctx e;
    hx_req *r = early_req(&e, false, "POST", "/v1/chat/completions");
    hx_router_dispatch(rt, r);
    hx_req_unref(r);
    assert_int_equal(e.c.status, 425);
    assert_non_null(strstr(cap_text(&e.c), "\"code\":\"too_early\""));
    cap_free(&e.c);
    r = early_req(&e, false, "POST", "/v1/messages");
    hx_router_dispatch(rt, r);
    hx_req_unref(r);
    assert_int_equal(e.c.status, 425);
    assert_non_null(strstr(cap_text(&e.c), "\"type\":\"error\"")); /* Anthropic's envelope */
    cap_free(&e.c);
}

/* GET of what spends nothing is served from early data. */
static void test_early_get_of_status_is_served(void **state)
{
    (void)state;
    const char *paths[] = {"/health", "/v1/models"};
    for (size_t i = 0; i < 2; i++) {
        early_ctx e;
        hx_req *r = early_req(&e, true, "GET", paths[i]);
        hx_router_dispatch(rt, r);
        hx_req_unref(r);
        assert_int_equal(e.waits, 0);
        assert_int_equal(e.c.status, 200);
        cap_free(&e.c);
    }
}

/* With a transport that can wait, the POST is held (no answer), then runs
 * once the handshake completed: the handler answers (here 400, no JSON). */
static void test_early_post_is_held_until_confirmed(void **state)
{
    (void)state;
    early_ctx e;
    hx_req *r = early_req(&e, true, "POST", "/v1/chat/completions");
    hx_router_dispatch(rt, r);
    assert_int_equal(e.waits, 1);
    assert_int_equal(e.c.status, 0); /* held */
    e.cb(r, e.ud);                   /* the handshake completed */
    assert_false(r->early_data);
    hx_req_unref(r);
    assert_int_equal(e.c.status, 400);
    assert_null(strstr(cap_text(&e.c), "too_early"));
    cap_free(&e.c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_ok),
        cmocka_unit_test(test_head_has_length_no_body),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_metrics_and_llm_front),
        cmocka_unit_test(test_mw_mask),
        cmocka_unit_test(test_unknown_handler_rejected),
        cmocka_unit_test(test_route_required_headers),
        cmocka_unit_test(test_route_version_prefix),
        cmocka_unit_test(test_route_health_path),
        cmocka_unit_test(test_model_route_takes_slashes),
        cmocka_unit_test(test_internal_error_containment),
        cmocka_unit_test(test_handler_flags),
        cmocka_unit_test(test_metrics_by_flag),
        cmocka_unit_test(test_early_post_is_too_early),
        cmocka_unit_test(test_early_get_of_status_is_served),
        cmocka_unit_test(test_early_post_is_held_until_confirmed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
