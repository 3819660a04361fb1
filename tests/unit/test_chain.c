/* Which provider a request tries next (src/gateway/chain.c): retries with
 * backoff, Retry-After, failover, one breaker verdict per request; driven
 * with a fake upstream and client (px_fake.h), retry delays of 0 ms. */
#include "px_fake.h"

#include "resilience/breaker.h"

static const char FK_ERR_500[] = "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}";
static const char FK_ERR_429[] = "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}";

/* 500, a retry of the same provider after the (0 ms) backoff, then a
 * success: the client gets the answer; the breaker hears one verdict for
 * the request, a success. */
static void test_500_retry_success(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT);
    assert_false(fk.calls[0].early);
    fk_answer(0, 500, NULL, FK_ERR_500);
    assert_int_equal(e.p->state, PX_BACKOFF);
    assert_int_equal(fk.ncalls, 1); /* nothing before the timer */
    fk_run(&e);
    assert_int_equal(fk.ncalls, 2);
    assert_non_null(strstr(fk.calls[1].url, "a.test")); /* the same provider */
    assert_int_equal(e.p->state, PX_SENDING);
    fk_answer(1, 200, NULL, FK_OK_BODY);
    assert_int_equal(fk.status, 200);
    assert_string_equal(fk_header("X-Hapax-Provider"), "openai");
    assert_string_equal(fk_header("X-Hapax-Attempts"), "2");
    hx_breaker_snap bs;
    hx_breaker_snapshot(e.g->breakers[0], &bs);
    assert_int_equal(bs.window_requests, 1);
    assert_int_equal(bs.window_failures, 0);
    fk_teardown(&e);
}

/* No answer after the request was sent (first-byte timeout): not resent
 * to the provider (it may be billed; "unanswered" is not retryable by
 * default) but the next provider is asked at once. */
static void test_timeout_failover(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT);
    fk_done(0, HX_UP_FIRST_BYTE_TIMEOUT);
    assert_int_equal(fk.ncalls, 2);
    assert_non_null(strstr(fk.calls[1].url, "b.test"));
    assert_int_equal(e.p->state, PX_SENDING);
    fk_answer(1, 200, NULL, FK_OK_BODY);
    assert_int_equal(fk.status, 200);
    assert_string_equal(fk_header("X-Hapax-Provider"), "b");
    assert_non_null(strstr(hx_gw_log_peek(e.r)->failures, "first_byte_timeout"));
    assert_non_null(strstr(hx_gw_log_peek(e.r)->failures, "sent, may be billed"));
    hx_breaker_snap bs;
    hx_breaker_snapshot(e.g->breakers[0], &bs);
    assert_int_equal(bs.window_failures, 1); /* a's verdict when the request left it */
    fk_teardown(&e);
}

/* A connect timeout was never sent: the same provider is asked again. */
static void test_connect_timeout_retried(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT);
    fk_done(0, HX_UP_CONNECT_TIMEOUT);
    assert_int_equal(e.p->state, PX_BACKOFF);
    fk_run(&e);
    assert_int_equal(fk.ncalls, 2);
    assert_non_null(strstr(fk.calls[1].url, "a.test"));
    fk_answer(1, 200, NULL, FK_OK_BODY);
    assert_int_equal(fk.status, 200);
    fk_teardown(&e);
}

/* 429 with a Retry-After beyond max_delay: not waited for, the next
 * provider is asked; when every provider rate limits, the client gets 429
 * with the last Retry-After (as integer seconds). */
static void test_429_retry_after(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT);
    fk_answer(0, 429, "30", FK_ERR_429);
    assert_int_equal(fk.ncalls, 2);
    assert_non_null(strstr(fk.calls[1].url, "b.test"));
    fk_answer(1, 429, "6.5", FK_ERR_429);
    fk_run(&e);
    assert_int_equal(fk.ncalls, 2);
    assert_int_equal(fk.status, 429);
    assert_string_equal(fk_header("Retry-After"), "7");
    assert_non_null(strstr(fk.body, "rate limiting"));
    assert_non_null(strstr(hx_gw_log_peek(e.r)->failures, "Retry-After 30 s beyond max_delay"));
    fk_teardown(&e);
}

/* The client's own error (400) is not the provider's fault: no retry, no
 * failover, no breaker failure; the upstream's error goes to the client. */
static void test_client_error_answered(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT);
    fk_answer(0, 400, NULL, "{\"error\":{\"message\":\"bad temperature\",\"type\":\"invalid_request_error\"}}");
    fk_run(&e);
    assert_int_equal(fk.ncalls, 1);
    assert_int_equal(fk.status, 400);
    assert_non_null(strstr(fk.body, "bad temperature"));
    hx_breaker_snap bs;
    hx_breaker_snapshot(e.g->breakers[0], &bs);
    assert_int_equal(bs.window_requests, 0);
    fk_teardown(&e);
}

/* Every retry fails: max_retries (2) retries, then the next provider. */
static void test_retries_exhausted_then_failover(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fk.ncalls, i + 1);
        assert_non_null(strstr(fk.calls[i].url, "a.test"));
        fk_answer(i, 502, NULL, FK_ERR_500);
        fk_run(&e);
    }
    assert_int_equal(fk.ncalls, 4);
    assert_non_null(strstr(fk.calls[3].url, "b.test"));
    fk_answer(3, 502, NULL, FK_ERR_500);
    for (int i = 4; i < 6; i++) {
        fk_run(&e);
        assert_int_equal(fk.ncalls, i + 1);
        fk_answer(i, 502, NULL, FK_ERR_500);
    }
    fk_run(&e);
    assert_int_equal(fk.ncalls, 6);
    assert_int_equal(fk.status, 502);
    assert_non_null(strstr(hx_gw_log_peek(e.r)->failures, "max_retries"));
    hx_breaker_snap bs;
    hx_breaker_snapshot(e.g->breakers[0], &bs);
    assert_int_equal(bs.window_requests, 1); /* three attempts, one verdict */
    assert_int_equal(bs.window_failures, 1);
    fk_teardown(&e);
}

/* A provider skipped as unhealthy is named with its address only when
 * its last failure says it could not be reached: the health state carries
 * the class (no reading of its text). */
static void test_unhealthy_names_address_by_class(void **state)
{
    (void)state;
    fk_env e;
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%s  health_check:\n    enabled: true\n    failure_threshold: 1\n", FK_YAML);
    fk_setup(&e, yaml);
    /* text without "connect", class unreachable */
    hx_gateway_record(e.g, 0, false, "probe: tls_error", HX_FAIL_CONNECTION, -1, true);
    fk_start(&e, FK_CHAT);
    assert_int_equal(fk.ncalls, 1);
    assert_non_null(strstr(fk.calls[0].url, "b.test"));
    fk_answer(0, 200, NULL, FK_OK_BODY);
    assert_non_null(strstr(hx_gw_log_peek(e.r)->failures, "unhealthy (probe: tls_error; http://a.test"));
    fk_teardown(&e);

    fk_setup(&e, yaml);
    /* text with "connect", class not unreachable */
    hx_gateway_record(e.g, 0, false, "probe: connection_reset", HX_FAIL_RESET, -1, true);
    fk_start(&e, FK_CHAT);
    fk_answer(0, 200, NULL, FK_OK_BODY);
    assert_non_null(strstr(hx_gw_log_peek(e.r)->failures, "unhealthy (probe: connection_reset)"));
    fk_teardown(&e);
}

/* Shutdown: a request waiting to retry stops waiting and fails over at
 * once; at the deadline a stream ends with an error event in its format. */
static void test_drain_and_force(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT_STREAM);
    fk_answer(0, 503, NULL, FK_ERR_500);
    assert_int_equal(e.p->state, PX_BACKOFF);
    hx_proxy_drain(&e.w);
    assert_int_equal(fk.ncalls, 2);
    assert_non_null(strstr(fk.calls[1].url, "b.test"));
    assert_int_equal(e.p->state, PX_SENDING);
    fk_head(1, 200, NULL);
    fk_data(1, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n");
    assert_int_equal(e.p->state, PX_RELAYING);
    hx_proxy_force(&e.w);
    assert_true(fk.ended);
    assert_non_null(strstr(fk.body, "shutting down"));
    assert_false(fk.calls[1].live); /* cancelled */
    assert_non_null(strstr(hx_gw_log_peek(e.r)->failures, "upstream 503")); /* a, before the drain cut its wait */
    fk_teardown(&e);
}

/* A provider past index 63 (the request's first 64 are a bit mask) that
 * cannot be reached is still reported to health once per request, not once
 * per attempt: three connect timeouts (two retries) count one failure. */
static void test_unreachable_counted_once_past_64(void **state)
{
    (void)state;
    char yaml[16384];
    int n = snprintf(yaml, sizeof yaml, "llm:\n  provider: openai\n  model: gpt-4o\n  api_key: sk-test-a\n"
                     "  endpoint: http://a.test/v1\n  retry:\n    max_retries: 2\n    initial_delay: 0ms\n"
                     "    max_delay: 0ms\n  backup_providers:\n");
    for (int i = 1; i <= 69; i++)
        n += snprintf(yaml + n, sizeof yaml - (size_t)n, "    - name: p%d\n      provider: openai\n"
                      "      model: %s\n      api_key: sk-test-%d\n      endpoint: http://p%d.test/v1\n", i,
                      i == 65 ? "far-model" : "gpt-4o", i, i);
    assert_true(n > 0 && (size_t)n < sizeof yaml);
    fk_env e;
    fk_setup(&e, yaml);
    fk_start(&e, "{\"model\":\"far-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    for (int i = 0; i < 3; i++) {
        assert_non_null(strstr(fk.calls[i].url, "p65.test"));
        fk_done(i, HX_UP_CONNECT_TIMEOUT);
        fk_run(&e);
    }
    assert_int_equal(fk.ncalls, 3);
    assert_int_equal(fk.status, 504); /* the last attempt's connect timeout */
    hx_health_snap hs;
    hx_health_snapshot(e.g->health[65], &hs);
    assert_int_equal(hs.consecutive_failures, 1);
    fk_teardown(&e);
}

/* A request forwarded from TLS early data (the operator allowed 0-RTT
 * replays, so the router let it through) tells the upstream it may be a
 * replay (RFC 8470 Early-Data: 1). */
static void test_early_data_is_marked_upstream(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_early = true;
    fk_start(&e, FK_CHAT);
    fk_early = false;
    assert_int_equal(fk.ncalls, 1);
    assert_true(fk.calls[0].early);
    fk_answer(0, 200, NULL, FK_OK_BODY);
    assert_int_equal(fk.status, 200);
    fk_teardown(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_500_retry_success),
        cmocka_unit_test(test_timeout_failover),
        cmocka_unit_test(test_connect_timeout_retried),
        cmocka_unit_test(test_429_retry_after),
        cmocka_unit_test(test_client_error_answered),
        cmocka_unit_test(test_retries_exhausted_then_failover),
        cmocka_unit_test(test_unhealthy_names_address_by_class),
        cmocka_unit_test(test_drain_and_force),
        cmocka_unit_test(test_unreachable_counted_once_past_64),
        cmocka_unit_test(test_early_data_is_marked_upstream),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
