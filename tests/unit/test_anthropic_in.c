/* Anthropic inbound API: request parsing into the canonical request, and
 * the Messages API renderer (stream and body). */
#include "anth_test.h"

/* ---- inbound ---------------------------------------------------------------------- */

static const char INBOUND[] =
    "{\"model\":\"claude-sonnet\",\"max_tokens\":512,"
    "\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\"},{\"type\":\"text\",\"text\":\"Be kind.\","
    "\"cache_control\":{\"type\":\"ephemeral\"}}],"
    "\"messages\":["
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},"
    "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBOR\"}},"
    "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x.test/a.png\"}}]},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"...\",\"signature\":\"s\"},"
    "{\"type\":\"text\",\"text\":\"Let me check.\"},"
    "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"lookup\",\"input\":{\"q\":\"png\"}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
    "\"content\":[{\"type\":\"text\",\"text\":\"a cat\"}]},{\"type\":\"text\",\"text\":\"thanks\"}]},"
    "{\"role\":\"assistant\",\"content\":\"It is a cat.\"},"
    "{\"role\":\"user\",\"content\":\"ok\"}],"
    "\"stop_sequences\":[\"END\"],\"temperature\":0.70,\"top_p\":0.9,\"top_k\":40,"
    "\"metadata\":{\"user_id\":\"u-1\"},"
    "\"tools\":[{\"name\":\"lookup\",\"description\":\"Looks up\",\"input_schema\":{\"type\":\"object\","
    "\"properties\":{\"q\":{\"type\":\"string\"}}}}],"
    "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true},\"stream\":true}";

static void test_inbound_good(void **state)
{
    (void)state;
    json_object *body = jparse(INBOUND), *c = NULL;
    hx_in_info info;
    char err[256] = "";
    assert_int_equal(hx_in_anthropic(body, &c, &info, err, sizeof err), 0);
    assert_string_equal(info.model, "claude-sonnet");
    assert_true(info.stream);
    assert_true(info.include_usage);
    assert_ptr_equal(info.render, &hx_render_anthropic);
    assert_string_equal(str_at(c, "model"), "claude-sonnet");
    assert_int_equal(int_at(c, "max_tokens"), 512);
    assert_true(json_object_get_boolean(at(c, "stream")));
    assert_true(json_object_get_boolean(at(c, "stream_options.include_usage")));
    assert_non_null(strstr(compact(c), "\"temperature\":0.70"));
    assert_int_equal(int_at(c, "top_k"), 40);
    assert_string_equal(str_at(c, "stop.0"), "END");
    assert_string_equal(str_at(c, "user"), "u-1");
    assert_int_equal(len_at(c, "messages"), 7);
    assert_string_equal(str_at(c, "messages.0.role"), "system");
    /* a cached system block keeps the blocks apart, its marker on its part */
    assert_string_equal(str_at(c, "messages.0.content.0.text"), "Be brief.");
    assert_null(at(c, "messages.0.content.0.cache_control"));
    assert_string_equal(str_at(c, "messages.0.content.1.text"), "Be kind.");
    assert_string_equal(str_at(c, "messages.0.content.1.cache_control.type"), "ephemeral");
    assert_string_equal(str_at(c, "metadata.user_id"), "u-1");
    assert_string_equal(info.no_canon, "");
    assert_string_equal(str_at(c, "messages.1.role"), "user");
    assert_string_equal(str_at(c, "messages.1.content.0.text"), "What is this?");
    assert_string_equal(str_at(c, "messages.1.content.1.type"), "image_url");
    assert_string_equal(str_at(c, "messages.1.content.1.image_url.url"), "data:image/png;base64,iVBOR");
    assert_string_equal(str_at(c, "messages.1.content.2.image_url.url"), "https://x.test/a.png");
    assert_string_equal(str_at(c, "messages.2.role"), "assistant");
    assert_string_equal(str_at(c, "messages.2.content"), "Let me check.");
    assert_string_equal(str_at(c, "messages.2.tool_calls.0.id"), "toolu_1");
    assert_string_equal(str_at(c, "messages.2.tool_calls.0.type"), "function");
    assert_string_equal(str_at(c, "messages.2.tool_calls.0.function.name"), "lookup");
    assert_string_equal(str_at(c, "messages.2.tool_calls.0.function.arguments"), "{\"q\":\"png\"}");
    assert_string_equal(str_at(c, "messages.3.role"), "tool");
    assert_string_equal(str_at(c, "messages.3.tool_call_id"), "toolu_1");
    assert_string_equal(str_at(c, "messages.3.content"), "a cat");
    assert_string_equal(str_at(c, "messages.4.role"), "user");
    assert_string_equal(str_at(c, "messages.4.content.0.text"), "thanks");
    assert_string_equal(str_at(c, "messages.5.content"), "It is a cat.");
    assert_string_equal(str_at(c, "messages.6.content"), "ok");
    assert_string_equal(str_at(c, "tools.0.type"), "function");
    assert_string_equal(str_at(c, "tools.0.function.name"), "lookup");
    assert_string_equal(str_at(c, "tools.0.function.description"), "Looks up");
    assert_string_equal(str_at(c, "tools.0.function.parameters.properties.q.type"), "string");
    assert_string_equal(str_at(c, "tool_choice"), "required");
    assert_false(json_object_get_boolean(at(c, "parallel_tool_calls")));

    /* and back out through the adapter: the same conversation */
    hx_provider p = test_provider();
    hx_up_request req;
    assert_int_equal(hx_adapter_anthropic.build_chat(&p, c, info.stream, &req, err, sizeof err), 0);
    json_object *up = jparse(req.body.data);
    assert_non_null(at(up, "system")); /* its cached form is the builder's (test_anthropic.c) */
    assert_int_equal(len_at(up, "messages"), 5);
    assert_string_equal(str_at(up, "messages.0.content.1.source.media_type"), "image/png");
    assert_string_equal(str_at(up, "messages.0.content.2.source.url"), "https://x.test/a.png");
    assert_string_equal(str_at(up, "messages.1.content.1.input.q"), "png");
    assert_string_equal(str_at(up, "messages.2.content.0.type"), "tool_result");
    assert_string_equal(str_at(up, "messages.2.content.1.text"), "thanks");
    assert_string_equal(str_at(up, "messages.4.content"), "ok");
    assert_string_equal(compact(at(up, "tool_choice")), "{\"type\":\"any\",\"disable_parallel_tool_use\":true}");
    assert_int_equal(int_at(up, "top_k"), 40);
    assert_string_equal(str_at(up, "metadata.user_id"), "u-1");
    assert_non_null(strstr(req.body.data, "\"temperature\":0.70"));
    json_object_put(up);
    hx_up_request_free(&req);
    json_object_put(c);
    json_object_put(body);
}

static void test_inbound_minimal(void **state)
{
    (void)state;
    json_object *body = jparse("{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                               "\"system\":\"sys\",\"tool_choice\":{\"type\":\"tool\",\"name\":\"f\"},"
                               "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}]}"),
                *c = NULL;
    hx_in_info info;
    char err[256];
    assert_int_equal(hx_in_anthropic(body, &c, &info, err, sizeof err), 0);
    assert_false(info.stream);
    assert_true(info.include_usage);
    assert_false(json_object_get_boolean(at(c, "stream")));
    assert_null(at(c, "stream_options"));
    assert_string_equal(str_at(c, "messages.0.content"), "sys");
    assert_string_equal(str_at(c, "messages.1.content"), "hi");
    assert_string_equal(compact(at(c, "tool_choice")), "{\"function\":{\"name\":\"f\"},\"type\":\"function\"}");
    assert_null(at(c, "tools.0.function.description"));
    json_object_put(c);
    json_object_put(body);
    /* text before a tool result stays before it */
    body = jparse("{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":["
                  "{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"tool_result\",\"tool_use_id\":\"t\"},"
                  "{\"type\":\"text\",\"text\":\"b\"}]}]}");
    assert_int_equal(hx_in_anthropic(body, &c, &info, err, sizeof err), 0);
    assert_int_equal(len_at(c, "messages"), 3);
    assert_string_equal(str_at(c, "messages.0.content.0.text"), "a");
    assert_string_equal(str_at(c, "messages.1.role"), "tool");
    assert_string_equal(str_at(c, "messages.1.content"), "");
    assert_string_equal(str_at(c, "messages.2.content.0.text"), "b");
    json_object_put(c);
    json_object_put(body);
    /* tool_choice without tools (or with none) is dropped */
    body = jparse("{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                  "\"tools\":[],\"tool_choice\":{\"type\":\"any\"}}");
    assert_int_equal(hx_in_anthropic(body, &c, &info, err, sizeof err), 0);
    assert_null(at(c, "tools"));
    assert_null(at(c, "tool_choice"));
    json_object_put(c);
    json_object_put(body);
    /* an assistant turn with only a tool call has null content */
    body = jparse("{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
                  "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}]},"
                  "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":\"r\"}]}]}");
    assert_int_equal(hx_in_anthropic(body, &c, &info, err, sizeof err), 0);
    assert_int_equal(len_at(c, "messages"), 3);
    assert_non_null(at(c, "messages.1.tool_calls"));
    json_object *content;
    assert_true(json_object_object_get_ex(at(c, "messages.1"), "content", &content));
    assert_null(content);
    assert_string_equal(str_at(c, "messages.1.tool_calls.0.function.arguments"), "{}");
    assert_string_equal(str_at(c, "messages.2.role"), "tool");
    assert_string_equal(str_at(c, "messages.2.content"), "r");
    json_object_put(c);
    json_object_put(body);
}

static void test_inbound_bad(void **state)
{
    (void)state;
#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
#define HEAD "\"model\":\"m\",\"max_tokens\":10,"
    static const char *const cases[][2] = {
        {"[]", "request body must be a JSON object"},
        {"{\"max_tokens\":1," MSG "}", "model: is required"},
        {"{\"model\":5,\"max_tokens\":1," MSG "}", "model: expected a non-empty string"},
        {"{\"model\":\"m\"," MSG "}", "max_tokens is required"},
        {"{\"model\":\"m\",\"max_tokens\":0," MSG "}", "max_tokens: expected a positive integer"},
        {"{\"model\":\"m\",\"max_tokens\":\"5\"," MSG "}", "max_tokens: expected a positive integer"},
        {"{" HEAD "\"stream\":\"yes\"," MSG "}", "stream: expected a boolean"},
        {"{\"model\":\"m\",\"max_tokens\":10}", "messages is required"},
        {"{" HEAD "\"messages\":{}}", "messages: expected an array"},
        {"{" HEAD "\"messages\":[]}", "messages: at least one message is required"},
        {"{" HEAD "\"messages\":[7]}", "messages.0: expected an object"},
        {"{" HEAD "\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "messages.0.role: expected \"user\" or \"assistant\""},
        {"{" HEAD "\"messages\":[{\"role\":\"user\"}]}", "messages.0.content is required"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":5}]}",
         "messages.1.content: expected a string or an array"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}", "messages.0.content.0.type: expected a string"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}",
         "messages.0.content.0.text: expected a string"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\"}}]}]}",
         "messages.0.content.0.source: media_type and data are required"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"content\":\"r\"}]}]}",
         "messages.0.content.0.tool_use_id: expected a string"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
         "[{\"type\":\"tool_use\",\"id\":\"t\"}]}]}",
         "messages.1.content.0: tool_use needs a string id and name"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
         "[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":[]}]}]}",
         "messages.1.content.0.input: expected an object"},
        {"{" HEAD "\"system\":5," MSG "}", "system: expected a string or an array of text blocks"},
        {"{" HEAD "\"system\":[{\"type\":\"image\"}]," MSG "}", "system.0: expected a text block"},
        {"{" HEAD "\"stop_sequences\":\"x\"," MSG "}", "stop_sequences: expected an array of strings"},
        {"{" HEAD "\"stop_sequences\":[\"a\",1]," MSG "}", "stop_sequences.1: expected a string"},
        {"{" HEAD "\"temperature\":\"hot\"," MSG "}", "temperature: expected a number"},
        {"{" HEAD "\"metadata\":{\"user_id\":3}," MSG "}", "metadata: expected an object"},
        {"{" HEAD "\"tools\":{}," MSG "}", "tools: expected an array"},
        {"{" HEAD "\"tools\":[{\"name\":\"x\"}]," MSG "}", "tools.0.input_schema: expected an object"},
        {"{" HEAD "\"tools\":[{\"input_schema\":{}}]," MSG "}", "tools.0.name: expected a string"},
        {"{" HEAD "\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],\"tool_choice\":{\"type\":\"tool\"}," MSG "}",
         "tool_choice: expected"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{}}]}]}",
         "messages.0.content.0.source.type: expected \"base64\" or \"url\""},
        {"{" HEAD "\"thinking\":true," MSG "}", "thinking: expected an object"},
        {"{" HEAD "\"service_tier\":1," MSG "}", "service_tier: expected a string"},
        {"{" HEAD "\"output_config\":[]," MSG "}", "output_config: expected an object"},
        {"{" HEAD "\"output_config\":{\"format\":{\"type\":\"json_schema\"}}," MSG "}",
         "output_config.format.schema: expected an object"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\","
         "\"is_error\":\"yes\"}]}]}",
         "messages.0.content.0.is_error: expected a boolean"},
        {"{" HEAD "\"tools\":[{\"name\":\"f\",\"input_schema\":{},\"strict\":1}]," MSG "}", "tools.0.strict: expected a boolean"},
    };
#undef MSG
#undef HEAD
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *body = jparse(cases[i][0]), *c = (json_object *)1;
        hx_in_info info;
        char err[256] = "";
        int rc = hx_in_anthropic(body, &c, &info, err, sizeof err);
        if (rc != -1 || c != NULL || strstr(err, cases[i][1]) == NULL)
            fail_msg("case %zu: rc %d, err \"%s\", want \"%s\"", i, rc, err, cases[i][1]);
        json_object_put(body);
    }
}

/* What has a canonical meaning goes into the canonical request under the
 * names the builders read. */
static const char FIDELITY[] =
    "{\"model\":\"m\",\"max_tokens\":2048,\"top_k\":5,\"service_tier\":\"standard_only\","
    "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},"
    "\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":{\"type\":\"object\"}}},"
    "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"},\"strict\":true,"
    "\"cache_control\":{\"type\":\"ephemeral\"}}],"
    "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"title\":\"r.pdf\","
    "\"source\":{\"type\":\"base64\",\"media_type\":\"application/pdf\",\"data\":\"JVBE\"},"
    "\"cache_control\":{\"type\":\"ephemeral\"}},"
    "{\"type\":\"text\",\"text\":\"sum\",\"cache_control\":{\"type\":\"ephemeral\"}},"
    "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x.test/i.png\"}}]},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"is_error\":true,"
    "\"content\":\"boom\",\"cache_control\":{\"type\":\"ephemeral\"}}]}]}";

static void test_inbound_fidelity(void **state)
{
    (void)state;
    json_object *body = jparse(FIDELITY),
                *c = NULL;
    hx_in_info info;
    char err[256] = "";
    assert_int_equal(hx_in_anthropic(body, &c, &info, err, sizeof err), 0);
    assert_string_equal(info.no_canon, "");
    assert_int_equal(int_at(c, "top_k"), 5);
    assert_string_equal(str_at(c, "service_tier"), "standard_only");
    assert_string_equal(compact(at(c, "thinking")), "{\"type\":\"enabled\",\"budget_tokens\":1024}");
    assert_string_equal(compact(at(c, "response_format")),
                        "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"response\",\"schema\":{\"type\":\"object\"}}}");
    assert_true(json_object_get_boolean(at(c, "tools.0.function.strict")));
    assert_string_equal(str_at(c, "tools.0.cache_control.type"), "ephemeral");
    assert_string_equal(str_at(c, "messages.0.content.0.type"), "file");
    assert_string_equal(str_at(c, "messages.0.content.0.file.filename"), "r.pdf");
    assert_string_equal(str_at(c, "messages.0.content.0.file.file_data"), "data:application/pdf;base64,JVBE");
    assert_string_equal(str_at(c, "messages.0.content.0.cache_control.type"), "ephemeral");
    assert_string_equal(str_at(c, "messages.0.content.1.cache_control.type"), "ephemeral");
    assert_string_equal(str_at(c, "messages.0.content.2.image_url.url"), "https://x.test/i.png");
    assert_string_equal(str_at(c, "messages.2.role"), "tool");
    assert_null(at(c, "messages.2.is_error"));
    assert_string_equal(str_at(c, "messages.2.content"), "Error: boom");
    assert_string_equal(str_at(c, "messages.2.cache_control.type"), "ephemeral");
    json_object_put(c);
    json_object_put(body);
}

/* What has no canonical meaning is accepted (an Anthropic provider takes
 * the body as it is) and named in info.no_canon: the first one. */
static void test_inbound_only_native(void **state)
{
    (void)state;
#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
#define HEAD "\"model\":\"m\",\"max_tokens\":10,"
#define USER(b) "\"messages\":[{\"role\":\"user\",\"content\":[" b "]}]"
    static const char *const cases[][2] = {
        {"{" HEAD "\"container\":\"c1\"," MSG "}", "container"},
        {"{" HEAD "\"mcp_servers\":[{\"type\":\"url\"}]," MSG "}", "mcp_servers"},
        {"{" HEAD "\"context_management\":{\"edits\":[1]}," MSG "}", "context_management"},
        {"{" HEAD "\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]," MSG "}",
         "tools.0 (a \"web_search_20250305\" tool)"},
        {"{" HEAD "\"tools\":[{\"name\":\"f\",\"input_schema\":{},\"defer_loading\":true}]," MSG "}", "tools.0.defer_loading"},
        {"{" HEAD "\"output_config\":{\"effort\":\"low\"}," MSG "}", "output_config.effort"},
        {"{" HEAD USER("{\"type\":\"document\",\"source\":{\"type\":\"url\",\"url\":\"https://x/a.pdf\"}}") "}",
         "messages.0.content.0 (a document from a \"url\" source)"},
        {"{" HEAD USER("{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\",\"data\":\"d\"}}") "}",
         "messages.0.content.0 (a document from a \"text\" source)"},
        {"{" HEAD USER("{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":\"application/pdf\","
                      "\"data\":\"d\"},\"citations\":{\"enabled\":true}}") "}",
         "messages.0.content.0.citations"},
        {"{" HEAD USER("{\"type\":\"image\",\"source\":{\"type\":\"file\",\"file_id\":\"f\"}}") "}",
         "messages.0.content.0.source (an image from a \"file\" source)"},
        {"{" HEAD USER("{\"type\":\"search_result\",\"source\":\"s\"}") "}", "messages.0.content.0 (a \"search_result\" block)"},
        {"{" HEAD USER("{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":[{\"type\":\"image\"}]}") "}",
         "messages.0.content.0.content.0 (a \"image\" block in a tool result)"},
        {"{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
         "[{\"type\":\"server_tool_use\",\"id\":\"s\",\"name\":\"web_search\",\"input\":{}}]}]}",
         "messages.1.content.0 (a \"server_tool_use\" block)"},
        {"{" HEAD "\"system\":[{\"type\":\"text\",\"text\":\"s\",\"citations\":[{}]}]," MSG "}", "system.0.citations"},
        /* the first one is named */
        {"{" HEAD "\"container\":\"c\",\"tools\":[{\"type\":\"bash_20250124\",\"name\":\"bash\"}]," MSG "}", "container"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *body = jparse(cases[i][0]), *c = NULL;
        hx_in_info info;
        char err[256] = "";
        int rc = hx_in_anthropic(body, &c, &info, err, sizeof err);
        if (rc != 0 || c == NULL || strcmp(info.no_canon, cases[i][1]) != 0)
            fail_msg("case %zu: rc %d, err \"%s\", no_canon \"%s\", want \"%s\"", i, rc, err, info.no_canon,
                     cases[i][1]);
        json_object_put(c);
        json_object_put(body);
    }
    /* neutral values ask for nothing */
    json_object *body = jparse("{" HEAD "\"container\":null,\"mcp_servers\":[],\"citations\":false," MSG "}"), *c = NULL;
    hx_in_info info;
    char err[256] = "";
    assert_int_equal(hx_in_anthropic(body, &c, &info, err, sizeof err), 0);
    assert_string_equal(info.no_canon, "");
    json_object_put(c);
    json_object_put(body);
#undef MSG
#undef HEAD
#undef USER
}

/* ---- renderer ---------------------------------------------------------------------- */

typedef struct {
    hx_buf names; /* "name,name,..." */
    json_object *datas;
} sse_log;

static int sse_collect(void *ud, const char *event, const char *data, size_t len)
{
    sse_log *l = ud;
    json_object *o = json_tokener_parse(data);
    if (o == NULL)
        fail_msg("not JSON: %.*s", (int)len, data);
    /* the official format: the data's type repeats the event name */
    assert_string_equal(str_at(o, "type"), event);
    json_object_array_add(l->datas, o);
    return hx_buf_printf(&l->names, "%s%s", l->names.len ? "," : "", event);
}

static void sse_parse(const hx_buf *out, sse_log *l)
{
    hx_sse s;
    hx_sse_init(&s);
    hx_buf_init(&l->names, 0);
    l->datas = json_object_new_array();
    assert_int_equal(hx_sse_feed(&s, out->data, out->len, sse_collect, l), 0);
    assert_int_equal(hx_sse_end(&s, sse_collect, l), 0);
    hx_sse_free(&s);
}

static void render_events(hx_render *r, const hx_event *evs, size_t n, hx_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (r->stream)
            assert_int_equal(r->vt->stream_event(r, &evs[i], out), 0);
        else
            assert_int_equal(hx_render_collect(r, &evs[i]), 0);
    }
}

static const hx_event EVS[] = {
    {.type = HX_EV_META, .id = "msg_abc", .name = "claude-up"},
    {.type = HX_EV_TEXT, .text = "Hi", .len = 2},
    {.type = HX_EV_TEXT, .text = " \"there\"", .len = 8},
    {.type = HX_EV_TOOL_CALL, .index = 0, .id = "toolu_9", .name = "f"},
    {.type = HX_EV_TOOL_ARGS, .index = 0, .text = "{\"a\"", .len = 4},
    {.type = HX_EV_TOOL_CALL, .index = 0, .id = "toolu_9", .name = "f"}, /* repeated: same block */
    {.type = HX_EV_TOOL_ARGS, .index = 0, .text = ":1}", .len = 3},
    {.type = HX_EV_TOOL_CALL, .index = 1, .id = "toolu_10", .name = "g"},
    {.type = HX_EV_FINISH, .finish = "tool_calls"},
    {.type = HX_EV_USAGE, .prompt_tokens = 10, .completion_tokens = 5},
};

static void test_render_stream(void **state)
{
    (void)state;
    hx_render r;
    hx_render_init(&r, &hx_render_anthropic, true, true, "claude-x");
    assert_string_equal(hx_render_anthropic.stream_content_type, "text/event-stream");
    hx_buf out;
    hx_buf_init(&out, 0);
    render_events(&r, EVS, sizeof EVS / sizeof EVS[0], &out);
    assert_int_equal(r.vt->stream_end(&r, &out), 0);
    assert_memory_equal(out.data, "event: message_start\ndata: {", 28);

    sse_log l;
    sse_parse(&out, &l);
    assert_string_equal(l.names.data, "message_start,content_block_start,content_block_delta,content_block_delta,"
                                      "content_block_stop,content_block_start,content_block_delta,content_block_delta,"
                                      "content_block_stop,content_block_start,content_block_stop,message_delta,message_stop");
    json_object *d = l.datas;
    assert_string_equal(str_at(d, "0.message.id"), "msg_abc");
    assert_string_equal(str_at(d, "0.message.type"), "message");
    assert_string_equal(str_at(d, "0.message.role"), "assistant");
    assert_string_equal(str_at(d, "0.message.model"), "claude-up");
    assert_int_equal(len_at(d, "0.message.content"), 0);
    assert_int_equal(int_at(d, "0.message.usage.input_tokens"), 0);
    assert_int_equal(int_at(d, "0.message.usage.output_tokens"), 0);
    assert_int_equal(int_at(d, "1.index"), 0);
    assert_string_equal(str_at(d, "1.content_block.type"), "text");
    assert_string_equal(str_at(d, "1.content_block.text"), "");
    assert_string_equal(str_at(d, "2.delta.type"), "text_delta");
    assert_string_equal(str_at(d, "3.delta.text"), " \"there\"");
    assert_int_equal(int_at(d, "4.index"), 0);
    assert_int_equal(int_at(d, "5.index"), 1);
    assert_string_equal(str_at(d, "5.content_block.type"), "tool_use");
    assert_string_equal(str_at(d, "5.content_block.id"), "toolu_9");
    assert_string_equal(str_at(d, "5.content_block.name"), "f");
    assert_string_equal(compact(at(d, "5.content_block.input")), "{}");
    assert_string_equal(str_at(d, "6.delta.type"), "input_json_delta");
    assert_string_equal(str_at(d, "6.delta.partial_json"), "{\"a\"");
    assert_string_equal(str_at(d, "7.delta.partial_json"), ":1}");
    assert_int_equal(int_at(d, "7.index"), 1);
    assert_int_equal(int_at(d, "9.index"), 2);
    assert_string_equal(str_at(d, "9.content_block.id"), "toolu_10");
    assert_int_equal(int_at(d, "10.index"), 2);
    assert_string_equal(str_at(d, "11.delta.stop_reason"), "tool_use");
    assert_null(at(d, "11.delta.stop_sequence"));
    assert_int_equal(int_at(d, "11.usage.output_tokens"), 5);
    assert_int_equal(int_at(d, "11.usage.input_tokens"), 10);

    /* our own parser reads it back into the same events */
    rec back = {0};
    hx_buf_init(&back.log, 0);
    char err[128];
    assert_int_equal(run_parser(true, out.data, 5, &back, err, sizeof err), 0);
    assert_string_equal(back.log.data, "META msg_abc claude-up\nTEXT Hi\nTEXT  \"there\"\nCALL 0 toolu_9 f\n"
                                       "ARGS 0 {\"a\"\nARGS 0 :1}\nCALL 1 toolu_10 g\nFINISH tool_calls\nUSAGE 10 5\n");
    hx_buf_free(&back.log);
    json_object_put(l.datas);
    hx_buf_free(&l.names);
    hx_buf_free(&out);
    hx_render_free(&r);
}

static void test_render_stream_plain(void **state)
{
    (void)state;
    /* no META, no usage; stop reason length → max_tokens; generated id */
    hx_render r;
    hx_render_init(&r, &hx_render_anthropic, true, true, "claude-x");
    hx_buf out;
    hx_buf_init(&out, 0);
    const hx_event evs[] = {
        {.type = HX_EV_TEXT, .text = "", .len = 0},
        {.type = HX_EV_TEXT, .text = "abc", .len = 3},
        {.type = HX_EV_FINISH, .finish = "length"},
    };
    render_events(&r, evs, 3, &out);
    assert_int_equal(r.vt->stream_end(&r, &out), 0);
    sse_log l;
    sse_parse(&out, &l);
    assert_string_equal(l.names.data, "message_start,content_block_start,content_block_delta,content_block_stop,"
                                      "message_delta,message_stop");
    const char *id = str_at(l.datas, "0.message.id");
    assert_int_equal(strlen(id), 28);
    assert_memory_equal(id, "msg_", 4);
    assert_int_equal(strspn(id + 4, "0123456789abcdef"), 24);
    assert_string_equal(str_at(l.datas, "0.message.model"), "claude-x");
    assert_string_equal(str_at(l.datas, "4.delta.stop_reason"), "max_tokens");
    assert_int_equal(int_at(l.datas, "4.usage.output_tokens"), 0);
    json_object_put(l.datas);
    hx_buf_free(&l.names);
    hx_buf_free(&out);
    hx_render_free(&r);

    /* an empty stream is still a complete message */
    hx_render_init(&r, &hx_render_anthropic, true, true, "m");
    hx_buf_init(&out, 0);
    assert_int_equal(r.vt->stream_end(&r, &out), 0);
    sse_parse(&out, &l);
    assert_string_equal(l.names.data, "message_start,message_delta,message_stop");
    assert_string_equal(str_at(l.datas, "1.delta.stop_reason"), "end_turn");
    json_object_put(l.datas);
    hx_buf_free(&l.names);
    hx_buf_free(&out);
    hx_render_free(&r);
}

static void test_render_stream_error(void **state)
{
    (void)state;
    hx_render r;
    hx_render_init(&r, &hx_render_anthropic, true, true, "m");
    hx_buf out;
    hx_buf_init(&out, 0);
    assert_int_equal(r.vt->stream_error(&r, "overloaded_error", "Upstream \"x\" died", &out), 0);
    assert_string_equal(out.data, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                                  "\"message\":\"Upstream \\\"x\\\" died\"}}\n\n");
    hx_buf_free(&out);
    hx_render_free(&r);
}

static void test_render_body(void **state)
{
    (void)state;
    hx_render r;
    hx_render_init(&r, &hx_render_anthropic, false, false, "claude-x");
    hx_buf out;
    hx_buf_init(&out, 0);
    render_events(&r, EVS, sizeof EVS / sizeof EVS[0], &out);
    assert_int_equal(out.len, 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    json_object *b = jparse(out.data);
    assert_string_equal(str_at(b, "id"), "msg_abc");
    assert_string_equal(str_at(b, "type"), "message");
    assert_string_equal(str_at(b, "role"), "assistant");
    assert_string_equal(str_at(b, "model"), "claude-up");
    assert_int_equal(len_at(b, "content"), 3);
    assert_string_equal(str_at(b, "content.0.type"), "text");
    assert_string_equal(str_at(b, "content.0.text"), "Hi \"there\"");
    assert_string_equal(str_at(b, "content.1.type"), "tool_use");
    assert_string_equal(str_at(b, "content.1.id"), "toolu_9");
    assert_string_equal(str_at(b, "content.1.name"), "f");
    assert_int_equal(int_at(b, "content.1.input.a"), 1);
    assert_string_equal(compact(at(b, "content.2.input")), "{}");
    assert_string_equal(str_at(b, "stop_reason"), "tool_use");
    json_object *ss;
    assert_true(json_object_object_get_ex(b, "stop_sequence", &ss));
    assert_null(ss);
    assert_int_equal(int_at(b, "usage.input_tokens"), 10);
    assert_int_equal(int_at(b, "usage.output_tokens"), 5);
    json_object_put(b);
    hx_buf_free(&out);
    hx_render_free(&r);

    /* nothing collected: an empty message with a generated id */
    hx_render_init(&r, &hx_render_anthropic, false, false, "claude-x");
    hx_buf_init(&out, 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    b = jparse(out.data);
    assert_int_equal(strlen(str_at(b, "id")), 28);
    assert_int_equal(len_at(b, "content"), 0);
    assert_string_equal(str_at(b, "stop_reason"), "end_turn");
    json_object_put(b);
    hx_buf_free(&out);
    hx_render_free(&r);
}

/* ---- allocation failures ------------------------------------------------------------ */

static void oom_build(void)
{
    json_object *body = json_tokener_parse(INBOUND), *c = NULL;
    hx_in_info info;
    char err[128];
    if (hx_in_anthropic(body, &c, &info, err, sizeof err) == 0) {
        hx_provider p = test_provider();
        hx_up_request req;
        if (hx_adapter_anthropic.build_chat(&p, c, true, &req, err, sizeof err) == 0)
            hx_up_request_free(&req);
        json_object_put(c);
    }
    json_object_put(body);
}

static void oom_render(void)
{
    for (int stream = 0; stream < 2; stream++) {
        hx_render r;
        hx_render_init(&r, &hx_render_anthropic, stream, true, "m");
        hx_buf out;
        hx_buf_init(&out, 0);
        for (size_t i = 0; i < sizeof EVS / sizeof EVS[0]; i++)
            if ((stream ? r.vt->stream_event(&r, &EVS[i], &out) : hx_render_collect(&r, &EVS[i])) != 0)
                break;
        if (stream)
            r.vt->stream_end(&r, &out);
        else
            r.vt->body(&r, &out);
        hx_buf_free(&out);
        hx_render_free(&r);
    }
}

/* Documents, markers, structured output and tool errors under failing
 * allocations too. */
static void oom_fidelity(void)
{
    json_object *body = json_tokener_parse(FIDELITY), *c = NULL;
    hx_in_info info;
    char err[128];
    if (hx_in_anthropic(body, &c, &info, err, sizeof err) == 0)
        json_object_put(c);
    json_object_put(body);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    each_failure(oom_build);
    each_failure(oom_fidelity);
    each_failure(oom_render);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbound_good),
        cmocka_unit_test(test_inbound_minimal),
        cmocka_unit_test(test_inbound_bad),
        cmocka_unit_test(test_inbound_fidelity),
        cmocka_unit_test(test_inbound_only_native),
        cmocka_unit_test(test_render_stream),
        cmocka_unit_test(test_render_stream_plain),
        cmocka_unit_test(test_render_stream_error),
        cmocka_unit_test(test_render_body),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
