/* Known bugs in the OpenAI side of the gateway, one test each. Every test
 * here states the expected behaviour and fails until src/ is fixed; once
 * fixed, each stays as a regression test. Each test releases what it
 * allocated before asserting, so a failure is the assertion only (no
 * ASan/LSan noise). The helpers come from test_openai.c. */
#pragma GCC diagnostic ignored "-Wunused-function"
#define TEST_OPENAI_NO_MAIN
#include "test_openai.c"

/* Provider names must be unique (provider.h). The "-N" suffix given to a
 * duplicate is not checked against the other names.
 * Config: primary openai; backup {name: openai-3, provider: openai};
 * backup {provider: openai} (name defaults to "openai"). The second backup
 * collides with the primary and is renamed "openai-3", the name of the
 * first backup. */
static void test_bug_providers_suffix_collision(void **state)
{
    (void)state;
    hx_config *c = load_cfg("llm:\n"
                            "  provider: openai\n"
                            "  model: gpt-4o\n"
                            "  api_key: k\n"
                            "  backup_providers:\n"
                            "    - name: openai-3\n"
                            "      provider: openai\n"
                            "      model: a\n"
                            "      api_key: k\n"
                            "    - provider: openai\n"
                            "      model: b\n"
                            "      api_key: k\n");
    hx_providers ps;
    char err[128] = "";
    int rc = hx_providers_build(c, &ps, false, err, sizeof err);
    char dup[160] = "";
    size_t n = rc == 0 ? ps.n : 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (dup[0] == '\0' && strcmp(ps.items[i].name, ps.items[j].name) == 0)
                snprintf(dup, sizeof dup, "providers %zu and %zu are both named \"%s\"", i, j, ps.items[i].name);
    if (rc == 0)
        hx_providers_free(&ps);
    hx_config_unref(c);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 3);
    if (dup[0])
        fail_msg("%s", dup);
}

/* The key must not be cut: add_auth() formats "Bearer %s" into a 1024-byte
 * stack buffer, so a key longer than 1016 bytes is silently truncated. An
 * OAuth / Entra ID access token used as the key of an OpenAI-compatible
 * endpoint is commonly 1-2.5 KB. */
static void test_bug_bearer_long_key(void **state)
{
    (void)state;
    static char key[2001];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    hx_provider p = oa_provider("https://gateway.example.com/v1", key);
    hx_up_request req;
    json_object *b = build(&p, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", false, &req);
    const char *auth = hx_headers_get(&req.headers, "authorization");
    size_t got = auth ? strlen(auth) : 0;
    json_object_put(b);
    hx_up_request_free(&req);
    assert_int_equal(got, strlen("Bearer ") + strlen(key));
}

/* A JSON string may contain \u0000; hx_in_completions measures and copies
 * `input` / `function_description` with strlen, so the text is cut at the
 * first NUL, an input starting with \u0000 counts as empty, and the size
 * limits count only the bytes before the NUL (the original counted all
 * bytes). */
static void test_bug_completions_embedded_nul(void **state)
{
    (void)state;
    json_object *canon;
    hx_in_info info;
    char err[256];

    int rc = in_cmpl("{\"input\":\"ab\\u0000cd\"}", &canon, &info, err, sizeof err);
    int len = -1;
    bool same = false;
    if (rc == 0) {
        json_object *content = at(canon, "messages.0.content");
        len = content ? json_object_get_string_len(content) : -1;
        same = len == 5 && memcmp(json_object_get_string(content), "ab\0cd", 5) == 0;
        json_object_put(canon);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(len, 5);
    assert_true(same);

    rc = in_cmpl("{\"input\":\"\\u0000xyz\"}", &canon, &info, err, sizeof err);
    if (rc == 0)
        json_object_put(canon);
    assert_int_equal(rc, 0);

    /* more than 512 KiB of bytes once decoded, with a NUL near the start
     * (the 6-character escape decodes to 1 byte) */
    char *s = big_field("input", 524289 + 5, "");
    char *q = strstr(s, "\"aaaa");
    assert_non_null(q);
    memcpy(q + 1, "\\u0000", 6);
    rc = in_cmpl(s, &canon, &info, err, sizeof err);
    free(s);
    if (rc == 0)
        json_object_put(canon);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "Input too large"));
}

/* Data after the JSON value of an SSE event or of a non-streamed body is
 * malformed; the OpenAI parser ignores it (on_sse checks only the
 * tokener's error, parser_end uses json_tokener_parse), while the
 * Anthropic and Ollama parsers reject it. */
static void test_bug_trailing_data(void **state)
{
    (void)state;
    rec r;
    char err[256];
    rec_init(&r);
    int rc1 = run_parser(true, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}garbage\n\ndata: [DONE]\n\n", 0,
                         &r, err, sizeof err);
    hx_buf_free(&r.log);
    rec_init(&r);
    int rc2 = run_parser(false, "{\"choices\":[{\"message\":{\"content\":\"a\"}}]} trailing", 0, &r, err, sizeof err);
    hx_buf_free(&r.log);
    assert_int_equal(rc1, -1);
    assert_int_equal(rc2, -1);
}

/* {"error":"text"} in a stream loses its text: emit_error_obj() only reads
 * error.message, while error_message() understands the string form. */
static void test_bug_stream_error_string(void **state)
{
    (void)state;
    rec r;
    char err[256];
    rec_init(&r);
    int rc = run_parser(true, "data: {\"error\":\"Overloaded\"}\n\n", 0, &r, err, sizeof err);
    char log[256];
    snprintf(log, sizeof log, "%s", rec_str(&r));
    hx_buf_free(&r.log);
    assert_int_equal(rc, -1);
    assert_string_equal(log, "ERROR Overloaded\n");
    assert_string_equal(err, "Overloaded");
}

/* error_message(body, len) parses with json_tokener_parse(body), which reads
 * up to a NUL, not len bytes: with a buffer that is not NUL-terminated it
 * reads past the end (an ASan heap-buffer-overflow; today the proxy passes an
 * hx_buf, which happens to be terminated). Shown without overflowing: only
 * the first 5 bytes are the body. */
static void test_bug_error_message_len(void **state)
{
    (void)state;
    char out[64];
    const char *b = "{\"error\":{\"message\":\"abc\"}}";
    hx_adapter_openai.error_message(b, 5, out, sizeof out);
    assert_string_equal(out, "{\"err");
}

/* The chat relay read "prompt_tokens" anywhere in the answer: a tool
 * call whose arguments a compatible server sends as an object, with a
 * member the model named "prompt_tokens", set the usage. Only the last
 * "usage" member counts (as for the Responses relay), spaced or not. */
static void test_bug_chat_usage_fooled(void **state)
{
    (void)state;
    const hx_native *nv = hx_adapter_openai.native[HX_API_CHAT];
    assert_non_null(nv);
    const char *body = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{\"name\":\"f\","
                       "\"arguments\":{\"prompt_tokens\":999999,\"completion_tokens\":888888}}}]}}],"
                       "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}";
    hx_relay rl = {0};
    assert_int_equal(nv->body(&rl, body, strlen(body)), 0);
    assert_true(rl.usage_seen);
    assert_int_equal(rl.prompt_tokens, 12);
    assert_int_equal(rl.completion_tokens, 3);
    const char *spaced = "{\"choices\": [], \"usage\" : {\"prompt_tokens\": 7, \"completion_tokens\": 2}}";
    hx_relay sp = {0};
    assert_int_equal(nv->body(&sp, spaced, strlen(spaced)), 0);
    assert_true(sp.usage_seen);
    assert_int_equal(sp.prompt_tokens, 7);
    const char *none = "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}";
    hx_relay no = {0};
    assert_int_equal(nv->body(&no, none, strlen(none)), 0);
    assert_false(no.usage_seen);
    /* a stream event: the tool call chunk is not the usage chunk */
    const char *ev = "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":"
                     "{\"usage\":{\"prompt_tokens\":5}}}}]}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}";
    hx_relay st = {0};
    assert_int_equal(nv->stream_event(&st, NULL, ev, strlen(ev)), 0);
    assert_int_equal(st.prompt_tokens, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bug_providers_suffix_collision),
        cmocka_unit_test(test_bug_bearer_long_key),
        cmocka_unit_test(test_bug_completions_embedded_nul),
        cmocka_unit_test(test_bug_trailing_data),
        cmocka_unit_test(test_bug_stream_error_string),
        cmocka_unit_test(test_bug_error_message_len),
        cmocka_unit_test(test_bug_chat_usage_fooled),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
