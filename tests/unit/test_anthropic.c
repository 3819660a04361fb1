/* Anthropic adapter: request building, answer parsing (JSON and SSE),
 * error bodies. */
#include "anth_test.h"

static json_object *build(const char *canon_json, bool stream, hx_up_request *req)
{
    hx_provider p = test_provider();
    json_object *canon = jparse(canon_json);
    char err[256] = "";
    int rc = hx_adapter_anthropic.build_chat(&p, canon, stream, req, err, sizeof err);
    json_object_put(canon);
    if (rc != 0)
        fail_msg("build_chat failed: %s", err);
    json_object *body = json_tokener_parse(req->body.data);
    assert_non_null(body);
    return body;
}

static json_object *build_body(const char *canon_json)
{
    hx_up_request req;
    json_object *body = build(canon_json, false, &req);
    hx_up_request_free(&req);
    return body;
}

/* Expects build_chat to fail with a message containing `want`. */
static void build_fails(const char *canon_json, const char *want)
{
    hx_provider p = test_provider();
    json_object *canon = jparse(canon_json);
    hx_up_request req;
    char err[256] = "";
    assert_int_equal(hx_adapter_anthropic.build_chat(&p, canon, false, &req, err, sizeof err), -1);
    json_object_put(canon);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

/* Records events as text lines. */

/* ---- build_chat ---------------------------------------------------------------- */

static void test_build_basic(void **state)
{
    (void)state;
    hx_up_request req;
    json_object *b = build("{\"model\":\"ignored\",\"messages\":["
                           "{\"role\":\"system\",\"content\":\"Be brief.\"},"
                           "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Be kind.\"}]},"
                           "{\"role\":\"user\",\"content\":\"Hi\"}],"
                           "\"temperature\":0.70,\"top_p\":1e-1,\"stop\":\"END\",\"user\":\"u-7\","
                           "\"seed\":null,\"presence_penalty\":0,\"logprobs\":false,\"n\":1,"
                           "\"response_format\":{\"type\":\"text\"}}",
                           false, &req);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, "https://api.anthropic.com/v1/messages");
    assert_string_equal(hx_headers_get(&req.headers, "content-type"), "application/json");
    assert_string_equal(hx_headers_get(&req.headers, "x-api-key"), "sk-ant-test");
    assert_string_equal(hx_headers_get(&req.headers, "anthropic-version"), "2023-06-01");
    /* number text kept exactly */
    assert_non_null(strstr(req.body.data, "\"temperature\":0.70"));
    assert_non_null(strstr(req.body.data, "\"top_p\":1e-1"));
    assert_string_equal(str_at(b, "model"), "claude-up");
    assert_string_equal(str_at(b, "system"), "Be brief.\n\nBe kind.");
    assert_int_equal(int_at(b, "max_tokens"), 4096);
    assert_int_equal(len_at(b, "messages"), 1);
    assert_string_equal(str_at(b, "messages.0.role"), "user");
    assert_string_equal(str_at(b, "messages.0.content"), "Hi");
    assert_int_equal(len_at(b, "stop_sequences"), 1);
    assert_string_equal(str_at(b, "stop_sequences.0"), "END");
    assert_string_equal(str_at(b, "metadata.user_id"), "u-7");
    assert_null(at(b, "stream"));
    assert_null(at(b, "seed"));
    assert_null(at(b, "response_format"));
    assert_null(at(b, "tools"));
    json_object_put(b);
    hx_up_request_free(&req);
}

static void test_build_params(void **state)
{
    (void)state;
    hx_up_request req;
    json_object *b = build("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                           "\"max_completion_tokens\":77,\"max_tokens\":5,\"stop\":[\"a\",\"b\"]}",
                           true, &req);
    assert_int_equal(int_at(b, "max_tokens"), 77);
    assert_int_equal(len_at(b, "stop_sequences"), 2);
    assert_string_equal(str_at(b, "stop_sequences.1"), "b");
    assert_true(json_object_get_boolean(at(b, "stream")));
    assert_null(at(b, "system"));
    json_object_put(b);
    hx_up_request_free(&req);

    b = build_body("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":5,\"stop\":[]}");
    assert_int_equal(int_at(b, "max_tokens"), 5);
    assert_null(at(b, "stop_sequences"));
    json_object_put(b);

    /* no key: no x-api-key header */
    hx_provider p = test_provider();
    p.api_key = "";
    json_object *canon = jparse("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    char err[128];
    assert_int_equal(hx_adapter_anthropic.build_chat(&p, canon, false, &req, err, sizeof err), 0);
    assert_null(hx_headers_get(&req.headers, "x-api-key"));
    assert_non_null(hx_headers_get(&req.headers, "anthropic-version"));
    hx_up_request_free(&req);
    json_object_put(canon);
}

static const char *const TOOLS =
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"now\"}}]";

static json_object *build_with_tools(const char *extra)
{
    char canon[1024];
    snprintf(canon, sizeof canon, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],%s%s%s}", TOOLS,
             extra[0] ? "," : "", extra);
    return build_body(canon);
}

static void test_build_tools(void **state)
{
    (void)state;
    json_object *b = build_with_tools("");
    assert_int_equal(len_at(b, "tools"), 2);
    assert_string_equal(str_at(b, "tools.0.name"), "get_weather");
    assert_string_equal(str_at(b, "tools.0.description"), "Weather");
    assert_string_equal(str_at(b, "tools.0.input_schema.properties.city.type"), "string");
    assert_string_equal(str_at(b, "tools.1.name"), "now");
    assert_null(at(b, "tools.1.description"));
    assert_string_equal(compact(at(b, "tools.1.input_schema")), "{\"type\":\"object\",\"properties\":{}}");
    assert_null(at(b, "tool_choice"));
    json_object_put(b);

    static const struct {
        const char *in;
        const char *want;
    } choices[] = {
        {"\"tool_choice\":\"auto\"", "{\"type\":\"auto\"}"},
        {"\"tool_choice\":\"required\"", "{\"type\":\"any\"}"},
        {"\"tool_choice\":\"none\"", "{\"type\":\"none\"}"},
        {"\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"now\"}}", "{\"type\":\"tool\",\"name\":\"now\"}"},
        {"\"parallel_tool_calls\":false", "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}"},
        {"\"tool_choice\":\"required\",\"parallel_tool_calls\":false", "{\"type\":\"any\",\"disable_parallel_tool_use\":true}"},
    };
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        b = build_with_tools(choices[i].in);
        assert_string_equal(compact(at(b, "tool_choice")), choices[i].want);
        json_object_put(b);
    }
    /* tool_choice without tools is dropped */
    b = build_body("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"tool_choice\":\"auto\"}");
    assert_null(at(b, "tool_choice"));
    json_object_put(b);
}

static void test_build_tool_turns(void **state)
{
    (void)state;
    json_object *b = build_body(
        "{\"messages\":["
        "{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
        "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
        "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":[{\"type\":\"text\",\"text\":\"rain\"}]},"
        "{\"role\":\"user\",\"content\":\"Thanks\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_3\",\"type\":\"function\","
        "\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]}]}");
    assert_int_equal(len_at(b, "messages"), 4);
    assert_string_equal(str_at(b, "messages.0.role"), "user");
    assert_string_equal(str_at(b, "messages.1.role"), "assistant");
    assert_int_equal(len_at(b, "messages.1.content"), 3);
    assert_string_equal(str_at(b, "messages.1.content.0.type"), "text");
    assert_string_equal(str_at(b, "messages.1.content.0.text"), "Checking.");
    assert_string_equal(str_at(b, "messages.1.content.1.type"), "tool_use");
    assert_string_equal(str_at(b, "messages.1.content.1.id"), "call_1");
    assert_string_equal(str_at(b, "messages.1.content.1.name"), "get_weather");
    assert_string_equal(str_at(b, "messages.1.content.1.input.city"), "Paris");
    assert_string_equal(compact(at(b, "messages.1.content.2.input")), "{}");
    /* both results and the following user text: one user message */
    assert_string_equal(str_at(b, "messages.2.role"), "user");
    assert_int_equal(len_at(b, "messages.2.content"), 3);
    assert_string_equal(str_at(b, "messages.2.content.0.type"), "tool_result");
    assert_string_equal(str_at(b, "messages.2.content.0.tool_use_id"), "call_1");
    assert_string_equal(str_at(b, "messages.2.content.0.content"), "sunny");
    assert_string_equal(str_at(b, "messages.2.content.1.tool_use_id"), "call_2");
    assert_string_equal(str_at(b, "messages.2.content.1.content"), "rain");
    assert_string_equal(str_at(b, "messages.2.content.2.type"), "text");
    assert_string_equal(str_at(b, "messages.2.content.2.text"), "Thanks");
    assert_string_equal(str_at(b, "messages.3.role"), "assistant");
    assert_int_equal(len_at(b, "messages.3.content"), 1);
    assert_string_equal(str_at(b, "messages.3.content.0.name"), "now");
    json_object_put(b);
}

static void test_build_merge_and_images(void **state)
{
    (void)state;
    json_object *b = build_body(
        "{\"messages\":["
        "{\"role\":\"user\",\"content\":\"one\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"two\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/cat.jpg\",\"detail\":\"low\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"alone\"}]}]}");
    assert_int_equal(len_at(b, "messages"), 3);
    assert_int_equal(len_at(b, "messages.0.content"), 4);
    assert_string_equal(str_at(b, "messages.0.content.0.text"), "one");
    assert_string_equal(str_at(b, "messages.0.content.1.text"), "two");
    assert_string_equal(str_at(b, "messages.0.content.2.type"), "image");
    assert_string_equal(str_at(b, "messages.0.content.2.source.type"), "base64");
    assert_string_equal(str_at(b, "messages.0.content.2.source.media_type"), "image/png");
    assert_string_equal(str_at(b, "messages.0.content.2.source.data"), "iVBORw0KGgo=");
    assert_string_equal(str_at(b, "messages.0.content.3.source.type"), "url");
    assert_string_equal(str_at(b, "messages.0.content.3.source.url"), "https://example.com/cat.jpg");
    assert_int_equal(len_at(b, "messages.1.content"), 2);
    assert_string_equal(str_at(b, "messages.1.content.1.text"), "b");
    /* a parts array stays an array */
    assert_int_equal(len_at(b, "messages.2.content"), 1);
    json_object_put(b);
}

static void test_build_errors(void **state)
{
    (void)state;
    build_fails("{\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "at least one non-system message");
    build_fails("{\"messages\":[]}", "at least one non-system message");
    build_fails("{\"model\":\"m\"}", "messages: expected an array");
    build_fails("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages.0.role: unsupported role");
    build_fails("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\",\"content\":7}]}",
                "messages.1.content: expected a string or an array");
    build_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
                "\"function\":{\"name\":\"f\",\"arguments\":\"{not json\"}}]}]}",
                "tool call arguments are not valid JSON");
    build_fails("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
                "\"function\":{\"name\":\"f\",\"arguments\":\"{} trailing\"}}]}]}",
                "tool call arguments are not valid JSON");
    build_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x/y\"}}]}]}",
                "messages.0.content.0: image URL");
    build_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png,abc\"}}]}]}",
                "image data URL");
    build_fails("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}", "\"input_audio\" is not supported");
    build_fails("{\"messages\":[{\"role\":\"tool\",\"content\":\"r\"}]}", "messages.0.tool_call_id is required");
    build_fails("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", "max_tokens must be a positive integer");
    build_fails("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}",
                "n is not supported by provider anthropic (anthropic): one choice per request");
    build_fails("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{}}]}",
                "tools.0.function.name is required");
}

static void test_build_probe(void **state)
{
    (void)state;
    hx_provider p = test_provider();
    hx_up_request req;
    assert_int_equal(hx_adapter_anthropic.build_probe(&p, &req), 0);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, "https://api.anthropic.com/v1/models");
    assert_string_equal(hx_headers_get(&req.headers, "x-api-key"), "sk-ant-test");
    assert_string_equal(hx_headers_get(&req.headers, "anthropic-version"), "2023-06-01");
    assert_int_equal(req.body.len, 0);
    hx_up_request_free(&req);
    assert_string_equal(hx_adapter_anthropic.name, "anthropic");
    assert_string_equal(hx_adapter_anthropic.default_endpoint, "https://api.anthropic.com/v1");
    assert_true(hx_adapter_anthropic.key_required);
}

/* ---- answer parsing ------------------------------------------------------------ */

static void test_parse_full(void **state)
{
    (void)state;
    rec r = {0};
    hx_buf_init(&r.log, 0);
    char err[256];
    const char *body =
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":["
        "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"s\"},"
        "{\"type\":\"text\",\"text\":\"Hello \"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"f\",\"input\":{\"x\":[1,2]}},"
        "{\"type\":\"text\",\"text\":\"world\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_b\",\"name\":\"g\",\"input\":{}}],"
        "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
        "\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":7}}";
    assert_int_equal(run_parser(false, body, 7, &r, err, sizeof err), 0);
    /* Blocks in their order, thinking included; prompt tokens include the
     * cached ones (event.h), which are also reported apart. */
    assert_string_equal(r.log.data, "META msg_1 claude-x in=15 cr=5 cw=0\n"
                                    "THINK hmm\n"
                                    "SIG s\n"
                                    "TEXT Hello \n"
                                    "CALL 0 toolu_a f\n"
                                    "ARGS 0 {\"x\":[1,2]}\n"
                                    "TEXT world\n"
                                    "CALL 1 toolu_b g\n"
                                    "ARGS 1 {}\n"
                                    "FINISH tool_calls\n"
                                    "USAGE 15 7 cr=5 cw=0 rt=0\n");
    hx_buf_free(&r.log);
}

static void test_parse_stop_reasons(void **state)
{
    (void)state;
    static const char *const map[][2] = {
        {"end_turn", "stop"},   {"stop_sequence", "stop"},        {"max_tokens", "length"},
        {"tool_use", "tool_calls"}, {"refusal", "content_filter"}, {"pause_turn", "stop"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char body[256], want[64], err[128];
        snprintf(body, sizeof body,
                 "{\"id\":\"m\",\"model\":\"c\",\"content\":[],\"stop_reason\":\"%s\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}",
                 map[i][0]);
        snprintf(want, sizeof want, "META m c in=1 cr=0 cw=0\nFINISH %s\nUSAGE 1 2\n", map[i][1]);
        rec r = {0};
        hx_buf_init(&r.log, 0);
        assert_int_equal(run_parser(false, body, 0, &r, err, sizeof err), 0);
        assert_string_equal(r.log.data, want);
        hx_buf_free(&r.log);
    }
}

static void test_parse_full_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {"{\"id\":\"m\",\"content\":[", "[1,2]", "", "{\"id\":\"m\"}", "{} {}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec r = {0};
        hx_buf_init(&r.log, 0);
        char err[256] = "";
        assert_int_equal(run_parser(false, bad[i], 0, &r, err, sizeof err), -1);
        assert_non_null(strstr(err, "malformed answer from upstream"));
        hx_buf_free(&r.log);
    }
    /* an error object in a 2xx body */
    rec r = {0};
    hx_buf_init(&r.log, 0);
    char err[256] = "";
    assert_int_equal(run_parser(false, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
                                0, &r, err, sizeof err),
                     -1);
    assert_string_equal(err, "Overloaded");
    assert_string_equal(r.log.data, "ERROR Overloaded\n");
    hx_buf_free(&r.log);
}

static const char STREAM[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\","
    "\"model\":\"claude-3\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
    "\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" w\\u00f6rld\"}}\r\n\r\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\","
    "\"name\":\"get_weather\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":42}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

static const char STREAM_EVENTS[] = "META msg_01 claude-3 in=25 cr=0 cw=0\n"
                                    "TEXT Hello\n"
                                    "TEXT  w\xc3\xb6rld\n"
                                    "CALL 0 toolu_1 get_weather\n"
                                    "ARGS 0 {\"city\":\n"
                                    "ARGS 0 \"Paris\"}\n"
                                    "FINISH tool_calls\n"
                                    "USAGE 25 42\n";

static void test_parse_stream(void **state)
{
    (void)state;
    rec a = {0}, b = {0};
    hx_buf_init(&a.log, 0);
    hx_buf_init(&b.log, 0);
    char err[256];
    assert_int_equal(run_parser(true, STREAM, 0, &a, err, sizeof err), 0);
    assert_int_equal(run_parser(true, STREAM, 1, &b, err, sizeof err), 0);
    assert_string_equal(a.log.data, STREAM_EVENTS);
    assert_string_equal(b.log.data, a.log.data);
    /* anything after message_stop is ignored */
    char more[sizeof STREAM + 256];
    snprintf(more, sizeof more, "%s%s", STREAM,
             "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
             "\"delta\":{\"type\":\"text_delta\",\"text\":\"late\"}}\n\n");
    hx_buf_reset(&a.log);
    assert_int_equal(run_parser(true, more, 0, &a, err, sizeof err), 0);
    assert_string_equal(a.log.data, STREAM_EVENTS);
    hx_buf_free(&a.log);
    hx_buf_free(&b.log);
}

static void test_parse_stream_errors(void **state)
{
    (void)state;
    char err[256];
    rec r = {0};
    hx_buf_init(&r.log, 0);
    /* error event */
    char body[4096];
    const char *cut = strstr(STREAM, "event: content_block_start");
    assert_non_null(cut);
    snprintf(body, sizeof body, "%.*s%s", (int)(cut - STREAM), STREAM,
             "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
    assert_int_equal(run_parser(true, body, 3, &r, err, sizeof err), -1);
    assert_string_equal(err, "Overloaded");
    assert_string_equal(r.log.data, "META msg_01 claude-3 in=25 cr=0 cw=0\nERROR Overloaded\n");

    /* malformed data */
    hx_buf_reset(&r.log);
    snprintf(body, sizeof body, "%.*s%s", (int)(cut - STREAM), STREAM,
             "event: content_block_delta\ndata: {not json at all\n\n");
    assert_int_equal(run_parser(true, body, 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "malformed event from upstream");

    /* early end: everything but message_stop */
    hx_buf_reset(&r.log);
    const char *stop = strstr(STREAM, "event: message_stop");
    snprintf(body, sizeof body, "%.*s", (int)(stop - STREAM), STREAM);
    assert_int_equal(run_parser(true, body, 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "upstream stream ended early");
    assert_null(strstr(r.log.data, "FINISH"));

    /* the sink stops the parser */
    hx_buf_reset(&r.log);
    r.stop_after = 2;
    assert_int_equal(run_parser(true, STREAM, 0, &r, err, sizeof err), -1);
    assert_string_equal(r.log.data, "META msg_01 claude-3 in=25 cr=0 cw=0\nTEXT Hello\n");

    /* a delta for a tool block that was never opened */
    hx_buf_reset(&r.log);
    r.stop_after = 0;
    assert_int_equal(run_parser(true,
                                "data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\","
                                "\"partial_json\":\"{}\"}}\n\n",
                                0, &r, err, sizeof err),
                     -1);
    assert_string_equal(err, "malformed event from upstream");
    hx_buf_free(&r.log);
}

static void test_error_message(void **state)
{
    (void)state;
    char out[256];
    const char *env = "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}}";
    hx_adapter_anthropic.error_message(env, strlen(env), out, sizeof out);
    assert_string_equal(out, "invalid x-api-key");
    char big[600];
    memset(big, 'x', sizeof big);
    big[0] = '<';
    big[5] = '\n';
    hx_adapter_anthropic.error_message(big, sizeof big, out, sizeof out);
    assert_int_equal(strlen(out), 200);
    assert_int_equal(out[0], '<');
    assert_int_equal(out[5], ' ');
    hx_adapter_anthropic.error_message("", 0, out, sizeof out);
    assert_true(strlen(out) > 0);
    char tiny[8];
    hx_adapter_anthropic.error_message(env, strlen(env), tiny, sizeof tiny);
    assert_string_equal(tiny, "invalid");
    /* truncation never leaves half a UTF-8 character */
    const char *utf = "{\"error\":{\"message\":\"abcde\u00e9\u20ac\"}}";
    hx_adapter_anthropic.error_message(utf, strlen(utf), tiny, sizeof tiny);
    assert_string_equal(tiny, "abcde\xc3\xa9");
    hx_adapter_anthropic.error_message(utf, strlen(utf), tiny, 7);
    assert_string_equal(tiny, "abcde");
    char text[300];
    memset(text, 'y', sizeof text);
    memcpy(text + 198, "\xe2\x82\xac", 3);
    hx_adapter_anthropic.error_message(text, sizeof text, out, sizeof out);
    assert_int_equal(strlen(out), 198);
}

/* ---- allocation failures ------------------------------------------------------------ */

static const char CANON[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"developer\",\"content\":\"D\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}},"
    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.test/i.png\"}}]},"
    "{\"role\":\"assistant\",\"content\":\"ok\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
    "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r\"},{\"role\":\"user\",\"content\":\"more\"}],"
    "\"stop\":[\"x\"],\"user\":\"u\",\"temperature\":0.5,\"tool_choice\":\"required\",\"parallel_tool_calls\":false,"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}";

static void oom_build(void)
{
    json_object *c = json_tokener_parse(CANON);
    hx_provider p = test_provider();
    hx_up_request req;
    char err[128];
    if (hx_adapter_anthropic.build_chat(&p, c, true, &req, err, sizeof err) == 0)
        hx_up_request_free(&req);
    if (hx_adapter_anthropic.build_probe(&p, &req) == 0)
        hx_up_request_free(&req);
    json_object_put(c);
}

static void oom_parse(void)
{
    void *ps = hx_adapter_anthropic.parser_new(true);
    if (ps == NULL)
        return;
    for (size_t i = 0; i < sizeof STREAM - 1; i += 64)
        if (hx_adapter_anthropic.parser_feed(ps, STREAM + i, sizeof STREAM - 1 - i < 64 ? sizeof STREAM - 1 - i : 64,
                                             null_sink, NULL) != 0)
            break;
    hx_adapter_anthropic.parser_end(ps, null_sink, NULL);
    hx_adapter_anthropic.parser_free(ps);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    json_object *c = jparse(CANON);
    json_object_put(c);
    json_object *b = build_body(CANON);
    assert_int_equal(len_at(b, "messages"), 3);
    json_object_put(b);
    each_failure(oom_build);
    each_failure(oom_parse);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_basic),
        cmocka_unit_test(test_build_params),
        cmocka_unit_test(test_build_tools),
        cmocka_unit_test(test_build_tool_turns),
        cmocka_unit_test(test_build_merge_and_images),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_build_probe),
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_stop_reasons),
        cmocka_unit_test(test_parse_full_malformed),
        cmocka_unit_test(test_parse_stream),
        cmocka_unit_test(test_parse_stream_errors),
        cmocka_unit_test(test_error_message),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
