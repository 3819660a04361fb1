/* Per-module request context slots (http/request.h: hx_req_ctx): a slot is
 * its module's alone, carved from the request's own area, and a request
 * handed out again by the per-thread pool starts with every slot empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "gateway/gateway.h"
#include "http/request.h"
#include "middleware/auth.h"
#include "middleware/clientip.h"
#include "middleware/ctx.h"
#include "util/alloc.h"

#include "capture.h"

#define KEY_ALPHA "sk-alpha-secret-0001"

static hx_config *cfg;

static int setup(void **state)
{
    (void)state;
    const char *yaml = "auth:\n  enabled: true\n  keys:\n"
                       "    - {name: alpha, key: " KEY_ALPHA "}\n";
    hx_config_errors errs = {0};
    cfg = hx_config_load_string(yaml, strlen(yaml), "reqctx.yaml", &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.items[i]);
    hx_config_errors_free(&errs);
    return cfg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    hx_auth_cache_flush();
    hx_config_unref(cfg);
    hx_req_pool_drain();
    return 0;
}

static bool overlaps(const unsigned char *a, size_t na, const unsigned char *b, size_t nb)
{
    return a < b + nb && b < a + na;
}

/* Each slot gets its own zeroed storage, returned again on the next call;
 * nobody else's slot sees it. */
static void test_slots_are_private(void **state)
{
    (void)state;
    hx_test_capture c;
    cap_init(&c);
    hx_req *r = hx_req_new(&cap_tp, &c, cfg);
    assert_non_null(r);
    for (unsigned id = 0; id < HX_REQ_CTX_SLOTS; id++)
        assert_null(hx_req_ctx(r, id));
    unsigned char *a = hx_req_ctx_alloc(r, HX_CTX_AUTH, HX_CTX_AUTH_BYTES);
    unsigned char *q = hx_req_ctx_alloc(r, HX_CTX_QUEUE, HX_CTX_QUEUE_BYTES);
    assert_non_null(a);
    assert_non_null(q);
    assert_false(overlaps(a, HX_CTX_AUTH_BYTES, q, HX_CTX_QUEUE_BYTES));
    for (size_t i = 0; i < HX_CTX_AUTH_BYTES; i++)
        assert_int_equal(a[i], 0);
    memset(a, 0xA5, HX_CTX_AUTH_BYTES);
    for (size_t i = 0; i < HX_CTX_QUEUE_BYTES; i++)
        assert_int_equal(q[i], 0);
    assert_ptr_equal(hx_req_ctx_alloc(r, HX_CTX_AUTH, HX_CTX_AUTH_BYTES), a);
    assert_ptr_equal(hx_req_ctx(r, HX_CTX_AUTH), a);
    assert_null(hx_req_ctx(r, HX_CTX_GATEWAY));
    /* Out of range, too big (never wrapped to a small size), and a slot
     * pointing at storage it does not own. */
    assert_null(hx_req_ctx_alloc(r, HX_REQ_CTX_SLOTS, 8));
    assert_null(hx_req_ctx_alloc(r, HX_CTX_GATEWAY, SIZE_MAX));
    assert_null(hx_req_ctx(r, HX_CTX_GATEWAY));
    assert_null(hx_req_ctx(r, HX_REQ_CTX_SLOTS));
    int app;
    hx_req_set_ctx(r, HX_CTX_APP, &app);
    assert_ptr_equal(hx_req_ctx(r, HX_CTX_APP), &app);
    assert_null(hx_req_ctx_alloc(r, HX_CTX_APP, 8));
    hx_req_unref(r);
    cap_free(&c);
}

/* Every module's share fits one request at once; the area refuses more. */
static void test_every_module_fits(void **state)
{
    (void)state;
    hx_test_capture c;
    cap_init(&c);
    hx_req *r = hx_req_new(&cap_tp, &c, cfg);
    assert_non_null(r);
    assert_non_null(hx_req_ctx_alloc(r, HX_CTX_CLIENTIP, HX_CTX_CLIENTIP_BYTES));
    assert_non_null(hx_req_ctx_alloc(r, HX_CTX_AUTH, HX_CTX_AUTH_BYTES));
    assert_non_null(hx_req_ctx_alloc(r, HX_CTX_QUEUE, HX_CTX_QUEUE_BYTES));
    assert_non_null(hx_req_ctx_alloc(r, HX_CTX_GATEWAY, HX_CTX_GATEWAY_BYTES));
    /* What is left is less than a whole area: refused, never overrun. */
    assert_null(hx_req_ctx_alloc(r, HX_CTX_APP, HX_REQ_CTX_BYTES));
    assert_null(hx_req_ctx(r, HX_CTX_APP));
    hx_req_unref(r);
    cap_free(&c);
}

/* Request 1 authenticates, resolves its client and records an attempt;
 * request 2, which the pool may hand the same memory, sees none of it. */
static void test_pooled_request_starts_empty(void **state)
{
    (void)state;
    hx_test_capture c;
    cap_init(&c);
    hx_req *r1 = hx_req_new(&cap_tp, &c, cfg);
    assert_non_null(r1);
    snprintf(r1->peer_ip, sizeof r1->peer_ip, "198.51.100.7");
    assert_int_equal(hx_headers_add(&r1->headers, "X-API-Key", KEY_ALPHA), 0);
    assert_non_null(hx_auth_identify(r1, NULL));
    assert_string_equal(hx_auth_key_name(r1), "alpha");
    hx_client_ip_resolve(r1);
    assert_string_equal(hx_client_ip(r1), "198.51.100.7");
    hx_gw_reqlog *lg = hx_gw_log(r1);
    lg->attempts = 3;
    snprintf(lg->provider, sizeof lg->provider, "openai");
    assert_int_equal(hx_gw_log_peek(r1)->attempts, 3);
    hx_req *old = r1;
    hx_req_unref(r1);

    hx_req *r2 = hx_req_new(&cap_tp, &c, cfg);
    assert_non_null(r2);
    /* Without ASan the pool hands back the same block: the case that matters. */
    if (r2 == old)
        fprintf(stderr, "reqctx: request 2 reuses request 1's memory\n");
    for (unsigned id = 0; id < HX_REQ_CTX_SLOTS; id++)
        assert_null(hx_req_ctx(r2, id));
    assert_null(hx_auth_key(r2));
    assert_string_equal(hx_auth_key_name(r2), "");
    assert_string_equal(hx_client_ip(r2), ""); /* no peer set: nothing of r1's */
    assert_int_equal(hx_gw_log_peek(r2)->attempts, 0);
    assert_string_equal(hx_gw_log_peek(r2)->provider, "");
    assert_false(hx_queue_admitted(r2));
    assert_int_equal(r2->ctx_used, 0);
    hx_req_unref(r2);
    cap_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_are_private),
        cmocka_unit_test(test_every_module_fits),
        cmocka_unit_test(test_pooled_request_starts_empty),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
