/* The Responses API: request parsing into the canonical request, the
 * renderer (Response object and stream events), the responses store. */
#include "anth_test.h"

#include "gateway/responses.h"
#include "state/responses_store.h"

/* ---- inbound ---------------------------------------------------------------------- */

static const char FULL[] =
    "{\"model\":\"gpt-x\",\"instructions\":\"Be brief.\",\"stream\":true,\"store\":false,"
    "\"input\":["
    "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"What is this?\"},"
    "{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,iVBOR\",\"detail\":\"low\"}]},"
    "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},{\"type\":\"item_reference\",\"id\":\"rs_2\"},"
    "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Checking.\","
    "\"annotations\":[]}]},"
    "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"lookup\",\"arguments\":\"{\\\"q\\\":1}\"},"
    "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"lookup\",\"arguments\":\"{}\"},"
    "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"a cat\"},"
    "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":[{\"type\":\"input_text\",\"text\":\"a dog\"}]},"
    "{\"role\":\"developer\",\"content\":\"Answer now.\"}],"
    "\"tools\":[{\"type\":\"function\",\"name\":\"lookup\",\"description\":\"Looks up\",\"strict\":true,"
    "\"parameters\":{\"type\":\"object\"}}],"
    "\"tool_choice\":{\"type\":\"function\",\"name\":\"lookup\"},"
    "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"out\",\"schema\":{\"type\":\"object\"},\"strict\":true},"
    "\"verbosity\":\"low\"},"
    "\"reasoning\":{\"effort\":\"high\",\"summary\":\"auto\"},\"max_output_tokens\":300,\"temperature\":0.70,"
    "\"top_p\":0.9,\"parallel_tool_calls\":false,\"user\":\"u-1\",\"metadata\":{\"k\":\"v\"},"
    "\"truncation\":\"disabled\",\"include\":[\"reasoning.encrypted_content\"],\"service_tier\":\"flex\","
    "\"prompt_cache_retention\":\"24h\"}";

static json_object *parse_ok(const char *text, hx_in_info *info)
{
    json_object *body = jparse(text), *c = NULL;
    char err[256] = "";
    memset(info, 0, sizeof *info);
    assert_int_equal(hx_in_responses(body, &c, info, err, sizeof err), 0);
    json_object_put(body);
    if (c == NULL)
        fail_msg("canonical form refused: %s", err);
    assert_non_null(info->ctx);
    return c;
}

static void test_inbound_full(void **state)
{
    (void)state;
    hx_in_info info;
    json_object *c = parse_ok(FULL, &info);
    hx_resp_ctx *rx = info.ctx;
    assert_string_equal(info.model, "gpt-x");
    assert_true(info.stream);
    assert_true(info.include_usage);
    assert_ptr_equal(info.render, &hx_render_responses);
    assert_false(rx->store);
    assert_true(rx->instructions);
    assert_int_equal(strncmp(rx->id, "resp_", 5), 0);
    assert_true(json_object_get_boolean(at(c, "stream_options.include_usage")));
    assert_int_equal(int_at(c, "max_completion_tokens"), 300);
    assert_non_null(strstr(compact(c), "\"temperature\":0.70"));
    assert_false(json_object_get_boolean(at(c, "parallel_tool_calls")));
    assert_string_equal(str_at(c, "user"), "u-1");
    assert_string_equal(str_at(c, "service_tier"), "flex");
    assert_string_equal(str_at(c, "prompt_cache_retention"), "24h");
    assert_string_equal(str_at(c, "reasoning_effort"), "high");
    assert_string_equal(str_at(c, "verbosity"), "low");
    assert_string_equal(str_at(c, "response_format.type"), "json_schema");
    assert_string_equal(str_at(c, "response_format.json_schema.name"), "out");
    assert_true(json_object_get_boolean(at(c, "response_format.json_schema.strict")));
    assert_string_equal(str_at(c, "tools.0.type"), "function");
    assert_string_equal(str_at(c, "tools.0.function.name"), "lookup");
    assert_string_equal(str_at(c, "tools.0.function.description"), "Looks up");
    assert_true(json_object_get_boolean(at(c, "tools.0.function.strict")));
    assert_string_equal(str_at(c, "tool_choice.function.name"), "lookup");
    assert_null(at(c, "metadata")); /* kept with the response, not sent */
    assert_int_equal(len_at(c, "messages"), 6);
    assert_string_equal(str_at(c, "messages.0.role"), "system");
    assert_string_equal(str_at(c, "messages.0.content"), "Be brief.");
    assert_string_equal(str_at(c, "messages.1.content.0.text"), "What is this?");
    assert_string_equal(str_at(c, "messages.1.content.1.image_url.url"), "data:image/png;base64,iVBOR");
    assert_string_equal(str_at(c, "messages.1.content.1.image_url.detail"), "low");
    /* the text and both calls make one assistant turn */
    assert_string_equal(str_at(c, "messages.2.role"), "assistant");
    assert_string_equal(str_at(c, "messages.2.content"), "Checking.");
    assert_string_equal(str_at(c, "messages.2.tool_calls.0.id"), "c1");
    assert_string_equal(str_at(c, "messages.2.tool_calls.0.function.arguments"), "{\"q\":1}");
    assert_string_equal(str_at(c, "messages.2.tool_calls.1.id"), "c2");
    assert_string_equal(str_at(c, "messages.3.role"), "tool");
    assert_string_equal(str_at(c, "messages.3.tool_call_id"), "c1");
    assert_string_equal(str_at(c, "messages.4.content"), "a dog");
    assert_string_equal(str_at(c, "messages.5.role"), "developer");
    /* what is stored is the input without the instructions */
    assert_int_equal(strncmp(rx->input.data, "[{\"role\":\"user\"", 15), 0);
    assert_non_null(strstr(rx->echo.data, "\"metadata\":{\"k\":\"v\"}"));
    assert_non_null(strstr(rx->echo.data, "\"store\":false"));
    assert_non_null(strstr(rx->echo.data, "\"reasoning\":{\"effort\":\"high\",\"summary\":\"auto\"}"));
    json_object_put(c);
    hx_resp_ctx_free(info.ctx);
}

static void test_inbound_minimal(void **state)
{
    (void)state;
    hx_in_info info;
    json_object *c = parse_ok("{\"model\":\"m\",\"input\":\"hi\"}", &info);
    hx_resp_ctx *rx = info.ctx;
    assert_false(info.stream);
    assert_true(rx->store); /* the API's default */
    assert_null(rx->prev_id);
    assert_int_equal(len_at(c, "messages"), 1);
    assert_string_equal(str_at(c, "messages.0.role"), "user");
    assert_string_equal(str_at(c, "messages.0.content"), "hi");
    assert_string_equal(rx->echo.data,
                        "\"background\":false,\"instructions\":null,\"max_output_tokens\":null,\"metadata\":{},"
                        "\"parallel_tool_calls\":true,\"previous_response_id\":null,"
                        "\"reasoning\":{\"effort\":null,\"summary\":null},\"service_tier\":null,\"store\":true,"
                        "\"temperature\":null,\"text\":{\"format\":{\"type\":\"text\"}},\"tool_choice\":\"auto\","
                        "\"tools\":[],\"top_p\":null,\"truncation\":\"disabled\",\"user\":null");
    json_object_put(c);
    hx_resp_ctx_free(info.ctx);
}

/* Refused by name: `hard` ones are no Responses request at all (-1); the
 * others only the canonical form cannot carry (a native provider may). */
static void test_inbound_refused(void **state)
{
    (void)state;
    static const struct {
        const char *body, *why;
        bool hard;
    } cases[] = {
        {"[1]", "JSON object", true},
        {"{\"model\":5,\"input\":\"x\"}", "model: expected a string", true},
        {"{\"input\":\"x\",\"stream\":\"yes\"}", "stream: expected a boolean", true},
        {"{\"input\":\"x\",\"store\":1}", "store: expected a boolean", true},
        {"{\"input\":\"x\",\"previous_response_id\":\"\"}", "previous_response_id", true},
        {"{\"model\":\"m\"}", "input is required", false},
        {"{\"input\":[]}", "input: must not be empty", false},
        {"{\"input\":\"x\",\"foo\":1}", "foo: not supported", false},
        {"{\"input\":\"x\",\"prompt\":{\"id\":\"p\"}}", "prompt: not supported", false},
        {"{\"input\":\"x\",\"conversation\":\"c\"}", "conversation: not supported", false},
        {"{\"input\":\"x\",\"tools\":[{\"type\":\"web_search_preview\"}]}", "tools[0].type: web_search_preview", false},
        {"{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"x\":1}]}", "tools[0].x", false},
        {"{\"input\":\"x\",\"tool_choice\":{\"type\":\"file_search\"}}", "tool_choice", false},
        {"{\"input\":\"x\",\"background\":true}", "background", false},
        {"{\"input\":\"x\",\"truncation\":\"auto\"}", "truncation", false},
        {"{\"input\":\"x\",\"max_tool_calls\":3}", "max_tool_calls", false},
        {"{\"input\":\"x\",\"top_logprobs\":2}", "top_logprobs", false},
        {"{\"input\":\"x\",\"include\":[\"message.output_text.logprobs\"]}", "include[0]", false},
        {"{\"input\":\"x\",\"stream_options\":{\"x\":1}}", "stream_options.x", false},
        {"{\"input\":\"x\",\"metadata\":{\"k\":1}}", "metadata.k", false},
        {"{\"input\":\"x\",\"max_output_tokens\":0}", "max_output_tokens: expected a positive integer", false},
        {"{\"input\":\"x\",\"temperature\":\"hot\"}", "temperature: expected a number", false},
        {"{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"yaml\"}}}", "text.format.type", false},
        {"{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\"}}}", "text.format", false},
        {"{\"input\":\"x\",\"reasoning\":{\"budget\":5}}", "reasoning.budget", false},
        {"{\"input\":[{\"type\":\"web_search_call\",\"id\":\"w\"}]}", "input[0].type: web_search_call", false},
        {"{\"input\":[{\"type\":\"item_reference\",\"id\":\"fc_1\"}]}", "input[0].type: item_reference", false},
        {"{\"input\":[{\"type\":\"item_reference\"}]}", "input[0].id", false},
        {"{\"input\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "input[0].role", false},
        {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}", "input[0].content[0].type", false},
        {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"file_id\":\"f\"}]}]}",
         "input[0].content[0].file_id", false},
        {"{\"input\":[{\"type\":\"function_call\",\"name\":\"f\",\"arguments\":\"{}\"}]}", "input[0]: call_id", false},
        {"{\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":5}]}", "input[0].output", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *body = jparse(cases[i].body), *c = NULL;
        hx_in_info info;
        memset(&info, 0, sizeof info);
        char err[256] = "";
        int rc = hx_in_responses(body, &c, &info, err, sizeof err);
        json_object_put(body);
        if (rc != (cases[i].hard ? -1 : 0) || c != NULL || strstr(err, cases[i].why) == NULL)
            fail_msg("case %zu (%s): rc %d, err \"%s\"", i, cases[i].body, rc, err);
        if (!cases[i].hard)
            assert_string_equal(((hx_resp_ctx *)info.ctx)->canon_err, err);
        else
            assert_null(info.ctx);
        hx_resp_ctx_free(info.ctx);
    }
}

/* previous_response_id: the stored turns go after the instructions and
 * before the new input. */
static void test_splice(void **state)
{
    (void)state;
    hx_in_info info;
    json_object *c = parse_ok("{\"instructions\":\"sys\",\"input\":\"again\",\"previous_response_id\":\"resp_1\"}",
                              &info);
    hx_resp_ctx *rx = info.ctx;
    assert_string_equal(rx->prev_id, "resp_1");
    const char *conv = "[{\"role\":\"user\",\"content\":\"first\"},{\"role\":\"assistant\",\"content\":\"answer\"}]";
    assert_int_equal(hx_resp_splice(c, rx, conv, strlen(conv)), 0);
    assert_int_equal(len_at(c, "messages"), 4);
    assert_string_equal(str_at(c, "messages.0.content"), "sys");
    assert_string_equal(str_at(c, "messages.1.content"), "first");
    assert_string_equal(str_at(c, "messages.2.content"), "answer");
    assert_string_equal(str_at(c, "messages.3.content"), "again");
    assert_int_equal(hx_resp_splice(c, rx, "{}", 2), -1); /* not a conversation */
    json_object_put(c);
    hx_resp_ctx_free(info.ctx);
}

/* item_reference to a stored message: a placeholder assistant turn that
 * the function calls after it join, filled from the stored response. */
static void test_item_refs(void **state)
{
    (void)state;
    hx_in_info info;
    json_object *c = parse_ok("{\"instructions\":\"sys\",\"input\":[{\"role\":\"user\",\"content\":\"q\"},"
                              "{\"type\":\"item_reference\",\"id\":\"rs_abc\"},"
                              "{\"type\":\"item_reference\",\"id\":\"msg_abc\"},"
                              "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
                              "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"r\"}]}",
                              &info);
    hx_resp_ctx *rx = info.ctx;
    assert_int_equal(rx->nrefs, 1);
    assert_string_equal(rx->refs[0].id, "msg_abc");
    assert_int_equal(rx->refs[0].item, 2);
    assert_int_equal(rx->refs[0].index, 1);
    assert_int_equal(rx->ninput, 3);
    assert_null(at(c, "messages.2.content"));
    assert_string_equal(str_at(c, "messages.2.tool_calls.0.id"), "c1");
    const char *stored = "{\"id\":\"resp_abc\",\"output\":[{\"id\":\"msg_abc\",\"type\":\"message\",\"content\":"
                         "[{\"type\":\"output_text\",\"text\":\"Let me \"},{\"type\":\"output_text\",\"text\":\"look.\"}]}]}";
    assert_int_equal(hx_resp_fill_ref(c, rx, &rx->refs[0], stored, strlen(stored)), 0);
    assert_string_equal(str_at(c, "messages.2.content"), "Let me look.");
    assert_int_equal(hx_resp_input_refresh(c, rx), 0);
    assert_non_null(strstr(rx->input.data, "{\"role\":\"assistant\",\"content\":\"Let me look.\",\"tool_calls\""));
    assert_null(strstr(rx->input.data, "sys")); /* the instructions are not part of the input */
    const char *other = "{\"id\":\"resp_abc\",\"output\":[]}";
    assert_int_equal(hx_resp_fill_ref(c, rx, &rx->refs[0], other, strlen(other)), 1);
    assert_int_equal(hx_resp_fill_ref(c, rx, &rx->refs[0], "{", 1), -1);
    json_object_put(c);
    hx_resp_ctx_free(info.ctx);
}

/* ---- renderer ----------------------------------------------------------------------- */

static const hx_event EVS[] = {
    {.type = HX_EV_META, .id = "chatcmpl-up", .name = "model-up"},
    {.type = HX_EV_THINKING, .text = "hmm", .len = 3},
    {.type = HX_EV_TEXT, .text = "Hel", .len = 3},
    {.type = HX_EV_TEXT, .text = "lo \"x\"", .len = 6},
    {.type = HX_EV_TOOL_CALL, .index = 0, .id = "call_1", .name = "lookup"},
    {.type = HX_EV_TOOL_ARGS, .index = 0, .text = "{\"q\":", .len = 5},
    {.type = HX_EV_TOOL_ARGS, .index = 0, .text = "1}", .len = 2},
    {.type = HX_EV_FINISH, .finish = "tool_calls"},
    {.type = HX_EV_USAGE, .prompt_tokens = 10, .completion_tokens = 7, .cache_read_tokens = 4, .reasoning_tokens = 2},
};

/* A context as the parser makes it, with a store (or none). */
static hx_resp_ctx *test_ctx(const char *body, hx_resp_store *st)
{
    hx_in_info info;
    json_object *c = parse_ok(body, &info);
    json_object_put(c);
    hx_resp_ctx *rx = info.ctx;
    rx->st = st;
    rx->owner = hx_strdup("team-a");
    assert_non_null(rx->owner);
    snprintf(rx->id, sizeof rx->id, "resp_abc");
    rx->created_at = 1700000000;
    return rx;
}

static void test_render_body(void **state)
{
    (void)state;
    hx_resp_ctx *rx = test_ctx("{\"input\":\"hi\",\"metadata\":{\"k\":\"v\"}}", NULL);
    hx_render r;
    hx_render_init(&r, &hx_render_responses, false, true, "m");
    r.ctx = rx;
    for (size_t i = 0; i < sizeof EVS / sizeof EVS[0]; i++)
        assert_int_equal(r.vt->collect(&r, &EVS[i]), 0);
    hx_buf out;
    hx_buf_init(&out, 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    json_object *o = jparse(out.data);
    assert_string_equal(str_at(o, "id"), "resp_abc");
    assert_string_equal(str_at(o, "object"), "response");
    assert_int_equal(int_at(o, "created_at"), 1700000000);
    assert_string_equal(str_at(o, "status"), "completed");
    assert_string_equal(str_at(o, "model"), "model-up");
    assert_null(at(o, "error"));
    assert_int_equal(len_at(o, "output"), 3);
    assert_string_equal(str_at(o, "output.0.type"), "reasoning");
    assert_string_equal(str_at(o, "output.0.id"), "rs_abc");
    assert_string_equal(str_at(o, "output.0.summary.0.type"), "summary_text");
    assert_string_equal(str_at(o, "output.0.summary.0.text"), "hmm");
    assert_string_equal(str_at(o, "output.1.type"), "message");
    assert_string_equal(str_at(o, "output.1.id"), "msg_abc");
    assert_string_equal(str_at(o, "output.1.role"), "assistant");
    assert_string_equal(str_at(o, "output.1.status"), "completed");
    assert_string_equal(str_at(o, "output.1.content.0.type"), "output_text");
    assert_string_equal(str_at(o, "output.1.content.0.text"), "Hello \"x\"");
    assert_int_equal(len_at(o, "output.1.content.0.annotations"), 0);
    assert_string_equal(str_at(o, "output.2.type"), "function_call");
    assert_string_equal(str_at(o, "output.2.id"), "fc_abc_0");
    assert_string_equal(str_at(o, "output.2.call_id"), "call_1");
    assert_string_equal(str_at(o, "output.2.name"), "lookup");
    assert_string_equal(str_at(o, "output.2.arguments"), "{\"q\":1}");
    assert_int_equal(int_at(o, "usage.input_tokens"), 10);
    assert_int_equal(int_at(o, "usage.input_tokens_details.cached_tokens"), 4);
    assert_int_equal(int_at(o, "usage.output_tokens"), 7);
    assert_int_equal(int_at(o, "usage.output_tokens_details.reasoning_tokens"), 2);
    assert_int_equal(int_at(o, "usage.total_tokens"), 17);
    assert_string_equal(str_at(o, "metadata.k"), "v");
    assert_true(json_object_get_boolean(at(o, "store")));
    json_object_put(o);
    hx_buf_free(&out);
    hx_render_free(&r);
    hx_resp_ctx_free(rx);
}

/* finish "length" → status incomplete with its reason; a refusal is a part. */
static void test_render_incomplete(void **state)
{
    (void)state;
    const hx_event evs[] = {
        {.type = HX_EV_REFUSAL, .text = "no", .len = 2},
        {.type = HX_EV_FINISH, .finish = "length"},
    };
    hx_render r;
    hx_render_init(&r, &hx_render_responses, false, true, "m");
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(r.vt->collect(&r, &evs[i]), 0);
    hx_buf out;
    hx_buf_init(&out, 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    json_object *o = jparse(out.data);
    assert_string_equal(str_at(o, "status"), "incomplete");
    assert_string_equal(str_at(o, "incomplete_details.reason"), "max_output_tokens");
    assert_string_equal(str_at(o, "output.0.status"), "incomplete");
    assert_int_equal(len_at(o, "output.0.content"), 1);
    assert_string_equal(str_at(o, "output.0.content.0.type"), "refusal");
    assert_string_equal(str_at(o, "output.0.content.0.refusal"), "no");
    assert_null(at(o, "usage"));
    json_object_put(o);
    hx_buf_free(&out);
    hx_render_free(&r);
}

/* Splits an SSE text into events; checks each data's type is its event
 * name and sequence numbers count from 0. Returns the names, one a line. */
static void check_events(const char *sse, hx_buf *names, json_object **last)
{
    int64_t seq = 0;
    const char *p = sse;
    *last = NULL;
    while ((p = strstr(p, "event: ")) != NULL) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)(nl - p - 7), p + 7);
        assert_int_equal(strncmp(nl + 1, "data: ", 6), 0);
        const char *end = strstr(nl, "\n\n");
        assert_non_null(end);
        char *data = strndup(nl + 7, (size_t)(end - nl - 7));
        json_object *o = jparse(data);
        free(data);
        assert_string_equal(str_at(o, "type"), name);
        assert_int_equal(int_at(o, "sequence_number"), seq++);
        hx_buf_printf(names, "%s\n", name);
        json_object_put(*last);
        *last = o;
        p = end;
    }
}

static void test_render_stream(void **state)
{
    (void)state;
    hx_resp_ctx *rx = test_ctx("{\"input\":\"hi\",\"stream\":true}", NULL);
    hx_render r;
    hx_render_init(&r, &hx_render_responses, true, true, "m");
    r.ctx = rx;
    hx_buf out, names;
    hx_buf_init(&out, 0);
    hx_buf_init(&names, 0);
    for (size_t i = 0; i < sizeof EVS / sizeof EVS[0]; i++)
        assert_int_equal(r.vt->stream_event(&r, &EVS[i], &out), 0);
    assert_int_equal(r.vt->stream_end(&r, &out), 0);
    json_object *last;
    check_events(out.data, &names, &last);
    assert_string_equal(names.data,
                        "response.created\nresponse.in_progress\n"
                        "response.output_item.added\nresponse.reasoning_summary_part.added\n"
                        "response.reasoning_summary_text.delta\n"
                        "response.output_item.added\nresponse.content_part.added\n"
                        "response.output_text.delta\nresponse.output_text.delta\n"
                        "response.output_item.added\n"
                        "response.function_call_arguments.delta\nresponse.function_call_arguments.delta\n"
                        "response.reasoning_summary_text.done\nresponse.reasoning_summary_part.done\n"
                        "response.output_item.done\n"
                        "response.output_text.done\nresponse.content_part.done\nresponse.output_item.done\n"
                        "response.function_call_arguments.done\nresponse.output_item.done\n"
                        "response.completed\n");
    /* the deltas point at their items */
    assert_non_null(strstr(out.data, "\"type\":\"response.output_text.delta\",\"sequence_number\":7,"
                                     "\"item_id\":\"msg_abc\",\"output_index\":1,\"content_index\":0,"
                                     "\"delta\":\"Hel\""));
    assert_non_null(strstr(out.data, "\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":10,"
                                     "\"item_id\":\"fc_abc_0\",\"output_index\":2,\"delta\":\"{\\\"q\\\":\""));
    assert_non_null(strstr(out.data, "\"item\":{\"id\":\"fc_abc_0\",\"type\":\"function_call\",\"status\":"
                                     "\"in_progress\",\"call_id\":\"call_1\",\"name\":\"lookup\",\"arguments\":\"\"}"));
    assert_string_equal(str_at(last, "response.status"), "completed");
    assert_string_equal(str_at(last, "response.output.1.content.0.text"), "Hello \"x\"");
    assert_string_equal(str_at(last, "response.output.2.arguments"), "{\"q\":1}");
    assert_int_equal(int_at(last, "response.usage.total_tokens"), 17);
    json_object_put(last);
    hx_buf_free(&out);
    hx_buf_free(&names);
    hx_render_free(&r);
    hx_resp_ctx_free(rx);
}

/* Max tokens mid-stream: response.incomplete; an empty answer is an empty
 * message; a broken stream ends with `error` and response.failed. */
static void test_render_stream_ends(void **state)
{
    (void)state;
    hx_render r;
    hx_buf out, names;
    json_object *last;
    const hx_event fin = {.type = HX_EV_FINISH, .finish = "length"};
    hx_render_init(&r, &hx_render_responses, true, true, "m");
    hx_buf_init(&out, 0);
    hx_buf_init(&names, 0);
    assert_int_equal(r.vt->stream_event(&r, &fin, &out), 0);
    assert_int_equal(r.vt->stream_end(&r, &out), 0);
    check_events(out.data, &names, &last);
    assert_string_equal(names.data, "response.created\nresponse.in_progress\nresponse.output_item.added\n"
                                    "response.content_part.added\nresponse.output_text.done\n"
                                    "response.content_part.done\nresponse.output_item.done\nresponse.incomplete\n");
    assert_string_equal(str_at(last, "response.status"), "incomplete");
    assert_string_equal(str_at(last, "response.incomplete_details.reason"), "max_output_tokens");
    json_object_put(last);
    hx_render_free(&r);
    hx_buf_reset(&out);
    hx_buf_reset(&names);

    /* a stream this renderer did not make (relayed from a native
     * provider): only the error event, no response of its own */
    hx_render_init(&r, &hx_render_responses, true, true, "m");
    assert_int_equal(r.vt->stream_error(&r, "api_error", "cut", &out), 0);
    check_events(out.data, &names, &last);
    assert_string_equal(names.data, "error\n");
    json_object_put(last);
    hx_render_free(&r);
    hx_buf_reset(&out);
    hx_buf_reset(&names);

    hx_render_init(&r, &hx_render_responses, true, true, "m");
    assert_int_equal(r.vt->stream_event(&r, &EVS[2], &out), 0);
    assert_int_equal(r.vt->stream_error(&r, "api_error", "provider x failed mid-stream", &out), 0);
    check_events(out.data, &names, &last);
    assert_non_null(strstr(names.data, "response.output_text.delta\nerror\nresponse.failed\n"));
    assert_string_equal(str_at(last, "response.status"), "failed");
    assert_string_equal(str_at(last, "response.error.code"), "server_error");
    assert_string_equal(str_at(last, "response.error.message"), "provider x failed mid-stream");
    assert_string_equal(str_at(last, "response.output.0.status"), "incomplete"); /* cut short */
    assert_string_equal(str_at(last, "response.output.0.content.0.text"), "Hel");
    assert_non_null(strstr(out.data, "\"type\":\"error\",\"sequence_number\":5,\"code\":\"server_error\","
                                     "\"message\":\"provider x failed mid-stream\",\"param\":null}"));
    json_object_put(last);
    hx_buf_free(&out);
    hx_buf_free(&names);
    hx_render_free(&r);
}

/* ---- the stored conversation ------------------------------------------------------ */

typedef struct {
    int status;
    char response[256];
    char conv[512];
} got;

static void on_got(void *ud, int status, const hx_resp_entry *e)
{
    got *g = ud;
    g->status = status;
    g->response[0] = g->conv[0] = '\0';
    if (e) {
        snprintf(g->response, sizeof g->response, "%.*s", (int)e->response_len, e->response);
        snprintf(g->conv, sizeof g->conv, "%.*s", (int)e->conversation_len, e->conversation);
    }
}

static int get(hx_resp_store *s, const char *id, const char *owner, got *g)
{
    g->status = 99;
    assert_int_equal(s->vt->get(s, id, owner, on_got, g), 0);
    return g->status;
}

static void test_save_conversation(void **state)
{
    (void)state;
    hx_resp_store_limits lim = {.max_stored = 10, .max_bytes = 1 << 20, .ttl_ms = 60000};
    hx_resp_store *s = hx_resp_store_memory_new(&lim);
    hx_resp_ctx *rx = test_ctx("{\"input\":\"again\"}", s);
    const char *prefix = "[{\"role\":\"user\",\"content\":\"first\"}]";
    assert_int_equal(hx_buf_append_str(&rx->prefix, prefix), 0);
    hx_render r;
    hx_render_init(&r, &hx_render_responses, false, true, "m");
    r.ctx = rx;
    assert_int_equal(r.vt->collect(&r, &EVS[2]), 0);
    hx_buf out;
    hx_buf_init(&out, 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    got g;
    assert_int_equal(get(s, "resp_abc", "team-a", &g), 0);
    assert_string_equal(g.conv, "[{\"role\":\"user\",\"content\":\"first\"},{\"role\":\"user\",\"content\":\"again\"},"
                                "{\"role\":\"assistant\",\"content\":\"Hel\"}]");
    assert_int_equal(strncmp(g.response, "{\"id\":\"resp_abc\"", 16), 0);
    assert_int_equal(get(s, "resp_abc", "team-b", &g), 1);
    /* store: false keeps nothing */
    hx_render_free(&r);
    hx_buf_reset(&out);
    rx->store = false;
    snprintf(rx->id, sizeof rx->id, "resp_def");
    hx_render_init(&r, &hx_render_responses, false, true, "m");
    r.ctx = rx;
    assert_int_equal(r.vt->body(&r, &out), 0);
    assert_int_equal(get(s, "resp_def", "team-a", &g), 1);
    hx_buf_free(&out);
    hx_render_free(&r);
    hx_resp_ctx_free(rx);
    s->vt->destroy(s);
}

/* ---- allocation failures -------------------------------------------------------------- */

static void oom_all(void)
{
    hx_resp_store_limits lim = {.max_stored = 10, .max_bytes = 1 << 20, .ttl_ms = 60000};
    hx_resp_store *s = hx_resp_store_memory_new(&lim);
    json_object *body = json_tokener_parse(FULL), *c = NULL;
    hx_in_info info;
    memset(&info, 0, sizeof info);
    char err[128];
    if (hx_in_responses(body, &c, &info, err, sizeof err) == 0) {
        hx_resp_ctx *rx = info.ctx;
        rx->st = s;
        rx->store = true;
        const char *conv = "[{\"role\":\"user\",\"content\":\"first\"}]";
        if (c)
            hx_resp_splice(c, rx, conv, strlen(conv));
        for (int stream = 0; stream < 2; stream++) {
            hx_render r;
            hx_render_init(&r, &hx_render_responses, stream, true, "m");
            r.ctx = rx;
            hx_buf out;
            hx_buf_init(&out, 0);
            int rc = 0;
            for (size_t i = 0; rc == 0 && i < sizeof EVS / sizeof EVS[0]; i++)
                rc = stream ? r.vt->stream_event(&r, &EVS[i], &out) : r.vt->collect(&r, &EVS[i]);
            if (stream)
                rc ? r.vt->stream_error(&r, "api_error", "x", &out) : r.vt->stream_end(&r, &out);
            else
                r.vt->body(&r, &out);
            hx_buf_free(&out);
            hx_render_free(&r);
        }
        json_object_put(c);
        hx_resp_ctx_free(info.ctx);
    }
    json_object_put(body);
    if (s)
        s->vt->destroy(s);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    each_failure(oom_all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbound_full),
        cmocka_unit_test(test_inbound_minimal),
        cmocka_unit_test(test_inbound_refused),
        cmocka_unit_test(test_splice),
        cmocka_unit_test(test_item_refs),
        cmocka_unit_test(test_render_body),
        cmocka_unit_test(test_render_incomplete),
        cmocka_unit_test(test_render_stream),
        cmocka_unit_test(test_render_stream_ends),
        cmocka_unit_test(test_save_conversation),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
