/* The proxy attempt (src/gateway/proxy*.c): its state table, the one
 * failure vocabulary, and requests driven through proxy.c with a fake
 * upstream and a fake client (px_fake.h). */
#include "px_fake.h"

/* ---- the state table ------------------------------------------------------- */

static void test_state_table(void **state)
{
    (void)state;
    static const struct {
        px_state from, to;
        bool ok;
    } cases[] = {
        {PX_CHOOSING, PX_SENDING, true},  {PX_CHOOSING, PX_CHOOSING, true}, {PX_CHOOSING, PX_DONE, true},
        {PX_CHOOSING, PX_RELAYING, false}, {PX_CHOOSING, PX_BACKOFF, false},
        {PX_SENDING, PX_RELAYING, true},  {PX_SENDING, PX_BACKOFF, true},   {PX_SENDING, PX_CHOOSING, true},
        {PX_SENDING, PX_DONE, true},      {PX_SENDING, PX_PAUSED, false},   {PX_SENDING, PX_SENDING, false},
        /* once the client saw a byte: never another attempt */
        {PX_RELAYING, PX_PAUSED, true},   {PX_RELAYING, PX_DONE, true},     {PX_RELAYING, PX_SENDING, false},
        {PX_RELAYING, PX_CHOOSING, false}, {PX_RELAYING, PX_BACKOFF, false},
        {PX_PAUSED, PX_RELAYING, true},   {PX_PAUSED, PX_DONE, true},       {PX_PAUSED, PX_BACKOFF, false},
        {PX_BACKOFF, PX_SENDING, true},   {PX_BACKOFF, PX_CHOOSING, true},  {PX_BACKOFF, PX_DONE, true},
        {PX_BACKOFF, PX_RELAYING, false},
        {PX_DONE, PX_CHOOSING, false},    {PX_DONE, PX_SENDING, false},     {PX_DONE, PX_DONE, false},
        {PX__COUNT, PX_DONE, false},      {PX_CHOOSING, PX__COUNT, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (px_state_legal(cases[i].from, cases[i].to) != cases[i].ok)
            fail_msg("%s -> %s: want %s", px_state_name(cases[i].from), px_state_name(cases[i].to),
                     cases[i].ok ? "legal" : "illegal");
    assert_string_equal(px_state_name(PX_BACKOFF), "backoff");
    assert_string_equal(px_state_name(PX__COUNT), "invalid");
}

/* An illegal transition is refused: the state stays, the hook hears it. */
static void test_state_illegal_refused(void **state)
{
    (void)state;
    memset(&fk, 0, sizeof fk);
    px_state_illegal_hook = fk_illegal;
    proxy p = {.state = PX_RELAYING};
    assert_int_equal(px_set_state(&p, PX_SENDING), -1);
    assert_int_equal(p.state, PX_RELAYING);
    assert_int_equal(fk.illegal, 1);
    assert_int_equal(px_set_state(&p, PX_PAUSED), 0);
    assert_int_equal(p.state, PX_PAUSED);
    assert_int_equal(px_set_state(&p, PX_DONE), 0);
    assert_int_equal(px_set_state(&p, PX_CHOOSING), -1);
    assert_int_equal(p.state, PX_DONE);
    assert_int_equal(fk.illegal, 2);
    px_state_illegal_hook = NULL;
}

/* ---- one failure vocabulary ------------------------------------------------ */

static void test_transport_table(void **state)
{
    (void)state;
    /* nothing sent: the same provider may be asked again */
    assert_int_equal(hx_gw_transport_fail(HX_UP_CONNECT_ERROR, 0), HX_FAIL_CONNECTION);
    assert_int_equal(hx_gw_transport_fail(HX_UP_TLS_ERROR, 0), HX_FAIL_CONNECTION);
    assert_int_equal(hx_gw_transport_fail(HX_UP_CONNECT_TIMEOUT, 0), HX_FAIL_TIMEOUT);
    assert_int_equal(hx_fail_retry_class(hx_gw_transport_fail(HX_UP_RESET, 0)), HX_FAIL_CONNECTION);
    /* sent, or a 2xx came: may be billed */
    assert_int_equal(hx_gw_transport_fail(HX_UP_FIRST_BYTE_TIMEOUT, 0), HX_FAIL_UNANSWERED);
    assert_int_equal(hx_fail_retry_class(hx_gw_transport_fail(HX_UP_RESET_AFTER_SEND, 0)), HX_FAIL_UNANSWERED);
    assert_int_equal(hx_gw_transport_fail(HX_UP_RESET, 200), HX_FAIL_BROKEN);
    assert_int_equal(hx_gw_transport_fail(HX_UP_CONNECT_TIMEOUT, 200), HX_FAIL_UNANSWERED);
    assert_int_equal(hx_fail_retry_class(HX_FAIL_BROKEN), HX_FAIL_UNANSWERED);
    /* an error head, then a reset: a server error */
    assert_int_equal(hx_gw_transport_fail(HX_UP_RESET, 503), HX_FAIL_SERVER_ERROR);
    /* a probe's complete answer */
    assert_int_equal(hx_gw_transport_fail(HX_UP_OK, 200), HX_FAIL_NONE);
    assert_int_equal(hx_gw_transport_fail(HX_UP_OK, 429), HX_FAIL_RATE_LIMIT);
    assert_int_equal(hx_gw_transport_fail((hx_up_result)99, 0), HX_FAIL_OTHER);
}

static void test_fail_labels(void **state)
{
    (void)state;
    /* hapax_provider_failures_total: an error status decides */
    assert_string_equal(hx_fail_label_name(hx_fail_label_of(HX_FAIL_QUOTA, 429)), "rate_limit");
    assert_string_equal(hx_fail_label_name(hx_fail_label_of(HX_FAIL_CONTEXT_LENGTH, 400)), "client_error");
    assert_string_equal(hx_fail_label_name(hx_fail_label_of(HX_FAIL_AUTH, 403)), "auth");
    assert_string_equal(hx_fail_label_name(hx_fail_label_of(HX_FAIL_UNANSWERED, 0)), "timeout");
    assert_string_equal(hx_fail_label_name(hx_fail_label_of(HX_FAIL_DROPPED, 0)), "connection");
    assert_string_equal(hx_fail_label_name(hx_fail_label_of(HX_FAIL_MALFORMED, 200)), "other");
    assert_string_equal(hx_fail_label_name(hx_fail_label_of(HX_FAIL_MID_STREAM, 200)), "other");
    /* retries and failovers by class */
    assert_string_equal(hx_leave_label_name(hx_fail_leave_label(HX_FAIL_MALFORMED)), "unanswered");
    assert_string_equal(hx_leave_label_name(hx_fail_leave_label(HX_FAIL_CLIENT)), "other");
    assert_string_equal(hx_leave_label_name(hx_fail_leave_label(HX_FAIL_REDIRECT)), "redirect");
    assert_string_equal(hx_leave_label_name(hx_fail_leave_label(HX_FAIL_NONE)), "other");
    /* what a probe would see too */
    assert_true(hx_fail_unreachable(HX_FAIL_CONNECTION));
    assert_true(hx_fail_unreachable(HX_FAIL_TIMEOUT));
    assert_false(hx_fail_unreachable(HX_FAIL_RESET));
    assert_false(hx_fail_unreachable(HX_FAIL_UNANSWERED));
    /* the config words are the retry classes' names */
    assert_string_equal(hx_fail_name(HX_FAIL_SERVER_ERROR), "server_error");
    assert_string_equal(hx_fail_name(HX_FAIL__COUNT), "none");
    /* the state file keeps the class by name */
    for (int c = 0; c < HX_FAIL__COUNT; c++)
        assert_int_equal(hx_fail_from_name(hx_fail_name((hx_fail_class)c), strlen(hx_fail_name((hx_fail_class)c))),
                         c);
    assert_int_equal(hx_fail_from_name("connection_error", 16), HX_FAIL_NONE);
    assert_int_equal(hx_fail_from_name("connection\0x", 12), HX_FAIL_NONE);
}

/* ---- requests through proxy.c ---------------------------------------------- */

static void test_success(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT);
    assert_int_equal(fk.ncalls, 1);
    assert_non_null(strstr(fk.calls[0].url, "a.test"));
    assert_int_equal(e.p->state, PX_SENDING);
    fk_answer(0, 200, NULL, FK_OK_BODY);
    assert_int_equal(fk.status, 200);
    assert_non_null(strstr(fk.body, "hello"));
    assert_string_equal(fk_header("X-Hapax-Provider"), "openai");
    assert_string_equal(fk_header("X-Hapax-Attempts"), "1");
    assert_int_equal(hx_gw_log_peek(e.r)->prompt_tokens, 3);
    fk_teardown(&e);
}

/* Bytes reached the client, then the upstream broke: the stream ends with
 * an error event and nothing is asked again, even with "unanswered"
 * retryable (never bill twice). */
static void test_stream_cut_no_retry(void **state)
{
    (void)state;
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%s", FK_YAML);
    char *at = strstr(yaml, "  backup_providers:");
    snprintf(at, sizeof yaml - (size_t)(at - yaml), "    retryable_errors: [server_error, unanswered]\n%s",
             strstr(FK_YAML, "  backup_providers:"));
    fk_env e;
    fk_setup(&e, yaml);
    fk_start(&e, FK_CHAT_STREAM);
    fk_head(0, 200, NULL);
    assert_int_equal(fk_data(0, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hel\"}}]}\n\n"),
                     HX_UP_CONTINUE);
    assert_int_equal(e.p->state, PX_RELAYING);
    assert_int_equal(fk.status, 200);
    assert_non_null(strstr(fk.body, "hel"));
    fk_done(0, HX_UP_RESET);
    fk_run(&e);
    assert_int_equal(fk.ncalls, 1); /* no retry, no failover */
    assert_true(fk.ended);
    assert_non_null(strstr(fk.body, "failed mid-stream"));
    fk_teardown(&e);
}

/* A client that is full pauses the relay; its drain resumes it. */
static void test_stream_pause_resume(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT_STREAM);
    fk_head(0, 200, NULL);
    fk_data(0, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n");
    assert_int_equal(e.p->state, PX_RELAYING);
    assert_int_equal(px_set_state(e.p, PX_PAUSED), 0); /* as flush_out on HX_RES_BUSY */
    e.r->on_drain(e.r, e.r->cb_ud);
    assert_int_equal(e.p->state, PX_RELAYING);
    assert_int_equal(fk.resumes, 1);
    fk_data(0, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    fk_data(0, "data: [DONE]\n\n");
    fk_done(0, HX_UP_OK);
    assert_true(fk.ended);
    assert_non_null(strstr(fk.body, "[DONE]"));
    assert_null(strstr(fk.body, "error"));
    fk_teardown(&e);
}

/* The client leaves while the request waits to retry: the wait ends. */
static void test_abort_in_backoff(void **state)
{
    (void)state;
    fk_env e;
    fk_setup(&e, FK_YAML);
    fk_start(&e, FK_CHAT);
    fk_answer(0, 503, NULL, "{\"error\":{\"message\":\"busy\"}}");
    assert_int_equal(e.p->state, PX_BACKOFF);
    assert_ptr_equal(e.w.waiting, e.p);
    e.r->on_abort(e.r, e.r->cb_ud);
    assert_null(e.w.waiting);
    fk_run(&e);
    assert_int_equal(fk.ncalls, 1);
    fk_teardown(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_table),
        cmocka_unit_test(test_state_illegal_refused),
        cmocka_unit_test(test_transport_table),
        cmocka_unit_test(test_fail_labels),
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_stream_cut_no_retry),
        cmocka_unit_test(test_stream_pause_resume),
        cmocka_unit_test(test_abort_in_backoff),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
