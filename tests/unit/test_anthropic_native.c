/* The Anthropic Messages API spoken natively (anthropic_native.c): the
 * client's body and headers going up, the relay hooks reading answers,
 * upstream errors for Anthropic clients; and the Anthropic error dialect
 * (gateway/anthropic_err.c). */
#include "anth_test.h"
#include "gateway/anthropic_err.h"
#include "http/request.h"
#include "provider/anthropic_int.h"

static const hx_native *native(void)
{
    const hx_native *nv = hx_adapter_anthropic.native[HX_API_MESSAGES];
    assert_non_null(nv);
    return nv;
}

/* A client request: body and headers (pairs, NULL-terminated). */
static void client_req(hx_req *r, const char *body, const char *const *headers)
{
    memset(r, 0, sizeof *r);
    hx_buf_init(&r->body, 1 << 20);
    assert_int_equal(hx_buf_append_str(&r->body, body), 0);
    for (size_t i = 0; headers && headers[i]; i += 2)
        assert_int_equal(hx_headers_add(&r->headers, headers[i], headers[i + 1]), 0);
}

static void client_free(hx_req *r)
{
    hx_buf_free(&r->body);
    hx_headers_free(&r->headers);
}

/* Every value of header `name`, joined by "|". */
static void header_values(const hx_headers *h, const char *name, char *out, size_t outlen)
{
    out[0] = '\0';
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->items[i].name, name) == 0)
            snprintf(out + strlen(out), outlen - strlen(out), "%s%s", out[0] ? "|" : "", h->items[i].value);
}

static const char BODY[] = "{\"model\":\"claude-client\",\"max_tokens\":1.0e3,\"thinking\":{\"type\":\"enabled\","
                           "\"budget_tokens\":1024},\"container\":\"c\",\"messages\":[{\"role\":\"user\","
                           "\"content\":[{\"type\":\"document\",\"source\":{\"type\":\"file\",\"file_id\":\"f\"}}]}]}";

static void test_build(void **state)
{
    (void)state;
    hx_provider p = test_provider();
    hx_req r;
    static const char *const hs[] = {"anthropic-version", "2024-01-01", "Anthropic-Beta", "a-1,b-2",
                                     "anthropic-beta",    "c-3",        "x-api-key",      "sk-client",
                                     "authorization",     "Bearer x",   NULL};
    client_req(&r, BODY, hs);
    hx_up_request up;
    char err[128], v[256];
    assert_int_equal(native()->build(&p, "claude-up", &r, false, &up, err, sizeof err), 0);
    assert_string_equal(up.method, "POST");
    assert_string_equal(up.url, "https://api.anthropic.com/v1/messages");
    /* byte for byte but the model: numbers as written, unknown members kept */
    char want[sizeof BODY + 16];
    snprintf(want, sizeof want, "{\"model\":\"claude-up\"%s", BODY + strlen("{\"model\":\"claude-client\""));
    assert_int_equal(up.body.len, strlen(want));
    assert_memory_equal(up.body.data, want, up.body.len);
    header_values(&up.headers, "x-api-key", v, sizeof v);
    assert_string_equal(v, "sk-ant-test"); /* the provider's, never the client's */
    header_values(&up.headers, "anthropic-version", v, sizeof v);
    assert_string_equal(v, "2024-01-01");
    header_values(&up.headers, "anthropic-beta", v, sizeof v);
    assert_string_equal(v, "a-1,b-2|c-3");
    header_values(&up.headers, "authorization", v, sizeof v);
    assert_string_equal(v, "");
    hx_up_request_free(&up);
    client_free(&r);

    /* no version from the client: the one hapax speaks; no key configured: none sent */
    client_req(&r, "{\"messages\":[]}", NULL);
    p.api_key = NULL;
    assert_int_equal(native()->build(&p, "claude-up", &r, true, &up, err, sizeof err), 0);
    assert_memory_equal(up.body.data, "{\"model\":\"claude-up\",\"messages\":[]}", up.body.len);
    header_values(&up.headers, "anthropic-version", v, sizeof v);
    assert_string_equal(v, HX_ANTH_VERSION);
    header_values(&up.headers, "x-api-key", v, sizeof v);
    assert_string_equal(v, "");
    hx_up_request_free(&up);
    client_free(&r);
}

static void test_build_rebuilt(void **state)
{
    (void)state;
    hx_provider p = test_provider();
    hx_req r;
    hx_up_request up;
    char err[128];
    /* a second "model" could route on one value and reach the upstream with the other */
    client_req(&r, "{\"model\":\"a\",\"model\":\"b\",\"messages\":[]}", NULL);
    assert_int_equal(native()->build(&p, "claude-up", &r, false, &up, err, sizeof err), -1);
    hx_up_request_free(&up);
    client_free(&r);
    /* a header value that is not one line */
    static const char *const hs[] = {"anthropic-beta", "a\nb", NULL};
    client_req(&r, "{\"model\":\"a\",\"messages\":[]}", hs);
    assert_int_equal(native()->build(&p, "claude-up", &r, false, &up, err, sizeof err), -1);
    hx_up_request_free(&up);
    client_free(&r);
}

static void test_stream_events(void **state)
{
    (void)state;
    hx_relay rl = {0};
    const hx_native *nv = native();
    static const char start[] = "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[],\"usage\":"
                                "{\"input_tokens\":3,\"cache_creation_input_tokens\":10,"
                                "\"cache_read_input_tokens\":100,\"output_tokens\":1}}}";
    assert_int_equal(nv->stream_event(&rl, "message_start", start, strlen(start)), 0);
    assert_true(rl.usage_seen);
    assert_int_equal(rl.prompt_tokens, 113);
    assert_int_equal(rl.completion_tokens, 1);
    static const char *const pass[] = {
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"t\"}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"s\"}}",
        "{\"type\":\"ping\"}",
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"web_search_tool_result\"}}",
        "{\"type\":\"some_future_event\",\"x\":1}",
    };
    for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++)
        assert_int_equal(nv->stream_event(&rl, "", pass[i], strlen(pass[i])), 0);
    static const char delta[] = "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\","
                                "\"stop_sequence\":\"X\"},\"usage\":{\"output_tokens\":42}}";
    assert_int_equal(nv->stream_event(&rl, "message_delta", delta, strlen(delta)), 0);
    assert_int_equal(rl.prompt_tokens, 113);
    assert_int_equal(rl.completion_tokens, 42);
    assert_false(rl.done);
    assert_int_equal(nv->stream_event(&rl, "message_stop", "{\"type\":\"message_stop\"}", 23), 0);
    assert_true(rl.done);
    assert_int_equal(nv->stream_event(&rl, "ping", "{\"type\":\"ping\"}", 15), 1); /* nothing after the end */
    assert_null(nv->stream_end);

    /* the upstream's error, and what is not an event */
    rl = (hx_relay){0};
    static const char e[] = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
    assert_int_equal(nv->stream_event(&rl, "error", e, strlen(e)), -1);
    assert_string_equal(rl.err, "overloaded_error: Overloaded");
    static const char *const bad[] = {"not json", "[1]", "{\"x\":1", "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl = (hx_relay){0};
        assert_int_equal(nv->stream_event(&rl, "", bad[i], strlen(bad[i])), -1);
        assert_string_equal(rl.err, "malformed event from upstream");
    }
    /* the event name stands in for a missing type */
    rl = (hx_relay){0};
    assert_int_equal(nv->stream_event(&rl, "message_stop", "{}", 2), 0);
    assert_true(rl.done);
}

static void test_body(void **state)
{
    (void)state;
    hx_relay rl = {0};
    static const char ok[] = "{\"id\":\"m\",\"type\":\"message\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"t\"}],"
                             "\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":7,\"output_tokens\":2}}";
    assert_int_equal(native()->body(&rl, ok, strlen(ok)), 0);
    assert_true(rl.usage_seen);
    assert_int_equal(rl.prompt_tokens, 12);
    assert_int_equal(rl.completion_tokens, 2);
    static const char *const bad[] = {"", "{", "{\"type\":\"message\"}", "{\"content\":[]}", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl = (hx_relay){0};
        assert_int_equal(native()->body(&rl, bad[i], strlen(bad[i])), -1);
        assert_string_equal(rl.err, "upstream returned malformed JSON");
    }
}

static void test_error_body(void **state)
{
    (void)state;
    hx_buf out;
    hx_buf_init(&out, 1 << 16);
    static const char up[] = "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
                             "\"thinking.budget_tokens: \\\"x\\\" < 1024\"},\"request_id\":\"req_up\"}";
    assert_int_equal(native()->error_body(up, strlen(up), "rid-1", &out), 0);
    assert_string_equal(out.data, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
                                  "\"thinking.budget_tokens: \\\"x\\\" < 1024\"},\"request_id\":\"rid-1\"}\n");
    static const char *const bad[] = {
        "", "not json", "{\"error\":{\"type\":\"x\",\"message\":\"m\"}}",
        "{\"type\":\"error\",\"error\":{\"message\":\"m\"}}", "{\"type\":\"error\",\"error\":{\"type\":\"x\"}}",
        "{\"type\":\"error\",\"error\":{\"type\":\"x\\u0000y\",\"message\":\"m\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hx_buf_reset(&out);
        if (native()->error_body(bad[i], strlen(bad[i]), "rid", &out) != -1)
            fail_msg("case %zu accepted", i);
    }
    hx_buf_free(&out);
}

static void test_err_render(void **state)
{
    (void)state;
    static const struct {
        hx_err e;
        const char *type;
    } cases[] = {
        {HX_ERR_INVALID_REQUEST, "invalid_request_error"}, {HX_ERR_BAD_REQUEST, "invalid_request_error"},
        {HX_ERR_UNAUTHORIZED, "authentication_error"},     {HX_ERR_FORBIDDEN, "permission_error"},
        {HX_ERR_NOT_FOUND, "not_found_error"},             {HX_ERR_MODEL_NOT_FOUND, "not_found_error"},
        {HX_ERR_BODY_TOO_LARGE, "request_too_large"},      {HX_ERR_RATE_LIMITED, "rate_limit_error"},
        {HX_ERR_INTERNAL, "api_error"},                    {HX_ERR_BAD_GATEWAY, "api_error"},
        {HX_ERR_UNAVAILABLE, "api_error"},                 {HX_ERR_QUEUE_FULL, "overloaded_error"},
        {HX_ERR_OVERLOADED, "overloaded_error"},           {HX_ERR_GATEWAY_TIMEOUT, "timeout_error"},
        {HX_ERR_METHOD_NOT_ALLOWED, "invalid_request_error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hx_buf out;
        hx_buf_init(&out, 1 << 16);
        assert_int_equal(hx_err_render_anthropic(&out, cases[i].e, "bad \"thing\"\n", "rid-9"), 0);
        json_object *o = jparse(out.data);
        assert_string_equal(str_at(o, "type"), "error");
        assert_string_equal(str_at(o, "error.type"), cases[i].type);
        assert_string_equal(str_at(o, "error.message"), "bad \"thing\"\n");
        assert_string_equal(str_at(o, "request_id"), "rid-9");
        assert_int_equal(json_object_object_length(o), 3);
        json_object_put(o);
        hx_buf_reset(&out);
        /* no message: the error's default one */
        assert_int_equal(hx_err_render_anthropic(&out, cases[i].e, NULL, NULL), 0);
        o = jparse(out.data);
        assert_string_equal(str_at(o, "error.message"), hx_err_get(cases[i].e)->message);
        assert_string_equal(str_at(o, "request_id"), "");
        json_object_put(o);
        hx_buf_free(&out);
    }
}

static void oom_native(void)
{
    hx_provider p = test_provider();
    hx_req r;
    static const char *const hs[] = {"anthropic-beta", "b", NULL};
    memset(&r, 0, sizeof r);
    hx_buf_init(&r.body, 1 << 20);
    if (hx_buf_append_str(&r.body, BODY) == 0 && hx_headers_add(&r.headers, hs[0], hs[1]) == 0) {
        hx_up_request up;
        char err[64];
        if (native()->build(&p, "claude-up", &r, false, &up, err, sizeof err) == 0)
            hx_up_request_free(&up);
    }
    hx_relay rl = {0};
    static const char start[] = "{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}";
    native()->stream_event(&rl, "", start, strlen(start));
    hx_buf out;
    hx_buf_init(&out, 1 << 16);
    static const char e[] = "{\"type\":\"error\",\"error\":{\"type\":\"x\",\"message\":\"m\"}}";
    native()->error_body(e, strlen(e), "rid", &out);
    hx_err_render_anthropic(&out, HX_ERR_INVALID_REQUEST, "m", "rid");
    hx_buf_free(&out);
    hx_buf_free(&r.body);
    hx_headers_free(&r.headers);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    each_failure(oom_native);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build),       cmocka_unit_test(test_build_rebuilt), cmocka_unit_test(test_stream_events),
        cmocka_unit_test(test_body),        cmocka_unit_test(test_error_body),    cmocka_unit_test(test_err_render),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
