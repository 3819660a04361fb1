/* Cross-format translation (issue 10, docs/providers.md "Translation"):
 * what each adapter sends for the members it can carry, the refusals by
 * name for those it cannot, thinking / refusal / cache and reasoning usage /
 * stop sequences from every answer parser, and how the OpenAI and Anthropic
 * renderers show them. The helpers come from test_openai.c. */
#pragma GCC diagnostic ignored "-Wunused-function"
#define TEST_OPENAI_NO_MAIN
#include "test_openai.c"

/* ---- helpers ------------------------------------------------------------------- */

static hx_provider anth_provider(void)
{
    hx_provider p;
    memset(&p, 0, sizeof p);
    p.name = "claude";
    p.ad = &hx_adapter_anthropic;
    p.model = "claude-up";
    p.api_key = "sk-ant-test";
    p.base_url = "https://api.anthropic.com/v1";
    p.usable = true;
    return p;
}

static hx_provider oll_provider(void)
{
    hx_provider p;
    memset(&p, 0, sizeof p);
    p.name = "local";
    p.ad = &hx_adapter_ollama;
    p.model = "qwen3";
    p.api_key = "";
    p.base_url = "http://localhost:11434";
    p.usable = true;
    return p;
}

/* Builds with p's adapter: the parsed body (caller puts it), or NULL with
 * the message in err. */
static json_object *xbuild(const hx_provider *p, const char *canon_json, char *err, size_t errlen)
{
    hx_up_request req;
    hx_up_request_init(&req);
    json_object *canon = jparse(canon_json);
    char *before = strdup(compact(canon));
    err[0] = '\0';
    int rc = p->ad->build_chat(p, canon, false, &req, err, errlen);
    /* The canonical request is shared by every attempt of the chain: a
     * builder must never change it. */
    assert_string_equal(compact(canon), before);
    free(before);
    json_object_put(canon);
    json_object *body = rc == 0 ? jparse(req.body.data) : NULL;
    hx_up_request_free(&req);
    return body;
}

static json_object *xbuild_ok(const hx_provider *p, const char *canon_json)
{
    char err[256];
    json_object *b = xbuild(p, canon_json, err, sizeof err);
    if (b == NULL)
        fail_msg("build_chat failed: %s", err);
    return b;
}

static void xbuild_refused(const hx_provider *p, const char *canon_json, const char *want)
{
    char err[256];
    json_object *b = xbuild(p, canon_json, err, sizeof err);
    json_object_put(b);
    assert_null(b);
    if (strcmp(err, want) != 0)
        fail_msg("error \"%s\" is not \"%s\"", err, want);
}

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]"

/* Every event with every field that matters here, one line each. */
static int trec_sink(void *ud, const hx_event *ev)
{
    hx_buf *log = ud;
    static const char *const names[] = {"META", "TEXT", "THINK", "SIG", "REDACTED", "REFUSAL",
                                        "CALL", "ARGS", "FINISH", "USAGE", "ERROR"};
    int rc = hx_buf_printf(log, "%s", names[ev->type]);
    if (rc == 0 && ev->text && ev->type != HX_EV_META && ev->type != HX_EV_USAGE)
        rc = hx_buf_printf(log, " %.*s", (int)ev->len, ev->text);
    if (rc == 0 && ev->finish)
        rc = hx_buf_printf(log, " [%s]", ev->finish);
    if (rc == 0 && (ev->type == HX_EV_USAGE || ev->type == HX_EV_META))
        rc = hx_buf_printf(log, " p=%lld c=%lld cr=%lld cw=%lld rt=%lld", (long long)ev->prompt_tokens,
                           (long long)ev->completion_tokens, (long long)ev->cache_read_tokens,
                           (long long)ev->cache_write_tokens, (long long)ev->reasoning_tokens);
    if (rc == 0)
        rc = hx_buf_printf(log, "\n");
    return rc;
}

/* Parses body with adapter ad, whole and byte by byte (the same events
 * both ways); returns the event log (caller frees). */
static char *xparse(const hx_adapter *ad, bool stream, const char *body)
{
    char *logs[2];
    for (int pass = 0; pass < 2; pass++) {
        hx_buf log;
        hx_buf_init(&log, 0);
        void *ps = ad->parser_new(stream);
        assert_non_null(ps);
        size_t len = strlen(body), step = pass ? 1 : len;
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < len; i += step)
            rc = ad->parser_feed(ps, body + i, len - i < step ? len - i : step, trec_sink, &log);
        if (rc == 0)
            rc = ad->parser_end(ps, trec_sink, &log);
        if (rc != 0)
            fail_msg("parser failed: %s", ad->parser_error(ps));
        ad->parser_free(ps);
        logs[pass] = strdup(log.data ? log.data : "");
        hx_buf_free(&log);
    }
    assert_string_equal(logs[0], logs[1]);
    free(logs[1]);
    return logs[0];
}

/* ---- Anthropic: request ---------------------------------------------------------- */

static void test_anth_structured_output(void **state)
{
    (void)state;
    hx_provider p = anth_provider();
    json_object *b = xbuild_ok(&p, "{" MSGS ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
                                   "\"name\":\"r\",\"strict\":true,\"schema\":{\"type\":\"object\","
                                   "\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"],"
                                   "\"additionalProperties\":false}}}}");
    assert_string_equal(str_at(b, "output_config.format.type"), "json_schema");
    assert_string_equal(str_at(b, "output_config.format.schema.properties.a.type"), "integer");
    assert_null(at(b, "response_format"));
    json_object_put(b);
    b = xbuild_ok(&p, "{" MSGS ",\"response_format\":{\"type\":\"text\"}}");
    assert_false(has(b, "output_config"));
    json_object_put(b);
    xbuild_refused(&p, "{" MSGS ",\"response_format\":{\"type\":\"json_object\"}}",
                   "response_format json_object is not supported by provider claude (anthropic): "
                   "send response_format json_schema with a schema instead");
}

static void test_anth_reasoning(void **state)
{
    (void)state;
    hx_provider p = anth_provider();
    static const struct {
        const char *effort;
        int64_t budget;
    } levels[] = {{"minimal", 1024}, {"low", 1024}, {"medium", 4096}, {"high", 16384}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        char canon[256];
        snprintf(canon, sizeof canon, "{" MSGS ",\"reasoning_effort\":\"%s\"}", levels[i].effort);
        json_object *b = xbuild_ok(&p, canon);
        assert_string_equal(str_at(b, "thinking.type"), "enabled");
        assert_int_equal(int_at(b, "thinking.budget_tokens"), levels[i].budget);
        /* no client limit: room for the answer above the budget */
        assert_int_equal(int_at(b, "max_tokens"), levels[i].budget + 4096);
        assert_false(has(b, "reasoning_effort"));
        json_object_put(b);
    }
    /* a client limit stays the limit; the budget fits below it */
    json_object *b = xbuild_ok(&p, "{" MSGS ",\"reasoning_effort\":\"high\",\"max_completion_tokens\":8000}");
    assert_int_equal(int_at(b, "max_tokens"), 8000);
    assert_int_equal(int_at(b, "thinking.budget_tokens"), 7999);
    json_object_put(b);
    b = xbuild_ok(&p, "{" MSGS ",\"reasoning_effort\":\"none\"}");
    assert_false(has(b, "thinking"));
    json_object_put(b);
    xbuild_refused(&p, "{" MSGS ",\"reasoning_effort\":\"low\",\"max_tokens\":500}",
                   "reasoning_effort is not supported by provider claude (anthropic): thinking needs max_tokens "
                   "(or max_completion_tokens) above 1024");
    xbuild_refused(&p, "{" MSGS ",\"reasoning_effort\":\"huge\"}",
                   "reasoning_effort is not supported by provider claude (anthropic): expected none, minimal, low, "
                   "medium, high or xhigh");
    /* an Anthropic client's own thinking goes as it is */
    b = xbuild_ok(&p, "{" MSGS ",\"max_tokens\":9000,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048}}");
    assert_int_equal(int_at(b, "thinking.budget_tokens"), 2048);
    assert_int_equal(int_at(b, "max_tokens"), 9000);
    json_object_put(b);
}

static void test_anth_refused_by_name(void **state)
{
    (void)state;
    hx_provider p = anth_provider();
    static const char *const fields[][2] = {
        {"\"seed\":0", "seed"},
        {"\"logprobs\":true", "logprobs"},
        {"\"top_logprobs\":3", "top_logprobs"},
        {"\"presence_penalty\":0.5", "presence_penalty"},
        {"\"frequency_penalty\":-1", "frequency_penalty"},
        {"\"logit_bias\":{\"50256\":-100}", "logit_bias"},
        {"\"store\":true", "store"},
        {"\"prediction\":{\"type\":\"content\",\"content\":\"x\"}", "prediction"},
        {"\"modalities\":[\"text\",\"audio\"]", "modalities"},
        {"\"some_future_field\":1", "some_future_field"},
        {"\"metadata\":{\"order\":\"7\"}", "metadata.order"},
        {"\"service_tier\":\"flex\"", "service_tier"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char canon[256], want[256];
        snprintf(canon, sizeof canon, "{" MSGS ",%s}", fields[i][0]);
        snprintf(want, sizeof want, "%s is not supported by provider claude (anthropic)", fields[i][1]);
        char err[256];
        json_object *b = xbuild(&p, canon, err, sizeof err);
        assert_null(b);
        if (strncmp(err, want, strlen(want)) != 0)
            fail_msg("%s: error \"%s\"", fields[i][0], err);
    }
    /* values that ask for nothing are carried by doing nothing */
    json_object *b = xbuild_ok(&p, "{" MSGS ",\"seed\":null,\"logprobs\":false,\"top_logprobs\":0,"
                                   "\"presence_penalty\":0,\"frequency_penalty\":0.0,\"logit_bias\":{},"
                                   "\"store\":false,\"n\":1,\"modalities\":[\"text\"]}");
    assert_false(has(b, "seed"));
    assert_false(has(b, "logprobs"));
    json_object_put(b);
}

static void test_anth_mapped_members(void **state)
{
    (void)state;
    hx_provider p = anth_provider();
    json_object *b = xbuild_ok(&p, "{" MSGS ",\"user\":\"u-1\",\"service_tier\":\"default\",\"top_k\":5}");
    assert_string_equal(str_at(b, "metadata.user_id"), "u-1");
    assert_string_equal(str_at(b, "service_tier"), "standard_only");
    assert_int_equal(int_at(b, "top_k"), 5);
    json_object_put(b);
    /* an Anthropic client's metadata and service tier */
    b = xbuild_ok(&p, "{" MSGS ",\"metadata\":{\"user_id\":\"a-2\"},\"service_tier\":\"auto\"}");
    assert_string_equal(str_at(b, "metadata.user_id"), "a-2");
    assert_string_equal(str_at(b, "service_tier"), "auto");
    json_object_put(b);
}

static void test_anth_cache_control(void **state)
{
    (void)state;
    hx_provider p = anth_provider();
    json_object *b = xbuild_ok(
        &p, "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"Long rules\","
            "\"cache_control\":{\"type\":\"ephemeral\"}}]},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Doc\",\"cache_control\":{\"type\":\"ephemeral\","
            "\"ttl\":\"1h\"}},{\"type\":\"text\",\"text\":\"Q\"}]}],"
            "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"},\"cache_control\":{\"type\":\"ephemeral\"}}]}");
    assert_string_equal(str_at(b, "system.0.type"), "text");
    assert_string_equal(str_at(b, "system.0.text"), "Long rules");
    assert_string_equal(str_at(b, "system.0.cache_control.type"), "ephemeral");
    assert_string_equal(str_at(b, "messages.0.content.0.cache_control.ttl"), "1h");
    assert_false(has(b, "messages.0.content.1.cache_control"));
    assert_string_equal(str_at(b, "tools.0.cache_control.type"), "ephemeral");
    json_object_put(b);
    /* without markers the system prompt stays one string */
    b = xbuild_ok(&p, "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"R\"}]}," "{\"role\":\"user\",\"content\":\"Q\"}]}");
    assert_string_equal(str_at(b, "system"), "R");
    json_object_put(b);
}

/* Members of a message: carried, asking for nothing, or refused by name. */
static void test_message_members(void **state)
{
    (void)state;
    hx_provider ps[] = {anth_provider(), oll_provider()};
    for (size_t i = 0; i < 2; i++) {
        char want[160];
        snprintf(want, sizeof want, "messages.0.name is not supported by provider %s (%s)", ps[i].name,
                 ps[i].ad->name);
        xbuild_refused(&ps[i], "{\"messages\":[{\"role\":\"user\",\"name\":\"alice\",\"content\":\"Hi\"}]}", want);
        snprintf(want, sizeof want, "messages.1.reasoning_content is not supported by provider %s (%s)", ps[i].name,
                 ps[i].ad->name);
        xbuild_refused(&ps[i], "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\","
                               "\"content\":\"A\",\"reasoning_content\":\"r\"},{\"role\":\"user\",\"content\":\"B\"}]}",
                       want);
        /* a tool result's name is its function's; null members ask for nothing */
        json_object *b = xbuild_ok(&ps[i], "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
                                           "{\"role\":\"assistant\",\"content\":null,\"refusal\":null,\"tool_calls\":[{\"id\":\"c1\","
                                           "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                                           "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"name\":\"f\",\"content\":\"ok\"}]}");
        json_object_put(b);
    }
}

/* ---- OpenAI and Ollama: request --------------------------------------------------- */

static void test_openai_translated_members(void **state)
{
    (void)state;
    hx_provider p = oa_provider("https://api.openai.com/v1", "k");
    char err[256];
    assert_null(xbuild(&p, "{" MSGS ",\"top_k\":40}", err, sizeof err));
    assert_string_equal(err, "top_k is not supported by provider openai (openai): OpenAI has no top_k");
    json_object *b = xbuild_ok(&p, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"D\","
                                   "\"cache_control\":{\"type\":\"ephemeral\"}}]}],"
                                   "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":5000},"
                                   "\"metadata\":{\"user_id\":\"a-2\"},\"service_tier\":\"standard_only\"}");
    assert_string_equal(str_at(b, "reasoning_effort"), "medium");
    assert_false(has(b, "thinking"));
    assert_string_equal(str_at(b, "user"), "a-2");
    assert_false(has(b, "metadata"));
    assert_string_equal(str_at(b, "service_tier"), "default");
    /* OpenAI caches prompts by itself: the markers are not sent */
    assert_string_equal(str_at(b, "messages.0.content.0.text"), "D");
    assert_false(has(b, "messages.0.content.0.cache_control"));
    json_object_put(b);
    b = xbuild_ok(&p, "{" MSGS ",\"thinking\":{\"type\":\"disabled\"}}");
    assert_false(has(b, "reasoning_effort"));
    json_object_put(b);
    /* an Anthropic client's output_config.format (canonical json_schema without a name) */
    b = xbuild_ok(&p, "{" MSGS ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
                      "{\"type\":\"object\"}}}}");
    assert_string_equal(str_at(b, "response_format.json_schema.name"), "response");
    assert_true(bool_at(b, "response_format.json_schema.strict"));
    assert_string_equal(str_at(b, "response_format.json_schema.schema.type"), "object");
    json_object_put(b);
    /* an OpenAI client's own json_schema goes as it is */
    b = xbuild_ok(&p, "{" MSGS ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\","
                      "\"schema\":{\"type\":\"object\"}}}}");
    assert_string_equal(str_at(b, "response_format.json_schema.name"), "n");
    assert_false(has(b, "response_format.json_schema.strict"));
    json_object_put(b);
    /* a compatible server (vLLM) takes top_k and the markers */
    hx_provider v = oa_provider("http://vllm:8000/v1", "");
    b = xbuild_ok(&v, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"D\","
                      "\"cache_control\":{\"type\":\"ephemeral\"}}]}],\"top_k\":40}");
    assert_int_equal(int_at(b, "top_k"), 40);
    assert_string_equal(str_at(b, "messages.0.content.0.cache_control.type"), "ephemeral");
    json_object_put(b);
}

static void test_ollama_translated_members(void **state)
{
    (void)state;
    hx_provider p = oll_provider();
    json_object *b = xbuild_ok(&p, "{" MSGS ",\"reasoning_effort\":\"high\",\"top_k\":7,\"seed\":3,"
                                   "\"presence_penalty\":0.5,\"max_tokens\":99,\"user\":\"u\","
                                   "\"response_format\":{\"type\":\"json_object\"}}");
    assert_string_equal(str_at(b, "think"), "high");
    assert_int_equal(int_at(b, "options.top_k"), 7);
    assert_int_equal(int_at(b, "options.seed"), 3);
    assert_int_equal(int_at(b, "options.num_predict"), 99);
    assert_string_equal(str_at(b, "format"), "json");
    json_object_put(b);
    b = xbuild_ok(&p, "{" MSGS ",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}}");
    assert_string_equal(str_at(b, "think"), "low");
    json_object_put(b);
    b = xbuild_ok(&p, "{" MSGS ",\"reasoning_effort\":\"none\"}");
    assert_false(bool_at(b, "think"));
    json_object_put(b);
    /* an Anthropic client's structured output (canonical response_format) */
    b = xbuild_ok(&p, "{" MSGS ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
                      "{\"type\":\"object\"}}}}");
    assert_string_equal(str_at(b, "format.type"), "object");
    json_object_put(b);
    xbuild_refused(&p, "{" MSGS ",\"logprobs\":true}", "logprobs is not supported by provider local (ollama)");
    xbuild_refused(&p, "{" MSGS ",\"logit_bias\":{\"1\":2}}", "logit_bias is not supported by provider local (ollama)");
}

/* Builds an Ollama request; its body (caller puts it) and the tool its
 * answer becomes a call of ("" = none) in tool[64]. */
static json_object *oll_build_forced(const char *canon_json, char tool[64])
{
    hx_provider p = oll_provider();
    hx_up_request req;
    hx_up_request_init(&req);
    json_object *canon = jparse(canon_json);
    char err[256] = "";
    int rc = p.ad->build_chat(&p, canon, true, &req, err, sizeof err);
    json_object_put(canon);
    if (rc != 0)
        fail_msg("build_chat failed: %s", err);
    snprintf(tool, 64, "%s", req.answer_as_tool ? req.answer_as_tool : "");
    json_object *body = jparse(req.body.data);
    hx_up_request_free(&req);
    return body;
}

#define WEATHER_TOOL                                                                                            \
    "{\"type\":\"function\",\"function\":{\"name\":\"weather\",\"parameters\":{\"type\":\"object\","                     \
    "\"properties\":{\"location\":{\"type\":\"string\"}},\"required\":[\"location\"]}}}"
#define OTHER_TOOL "{\"type\":\"function\",\"function\":{\"name\":\"other\"}}"

/* Ollama has no tool_choice: a forced tool goes up as `format` (its schema,
 * no tools) and the builder names the tool the answer becomes a call of. */
static void test_ollama_forced_tool(void **state)
{
    (void)state;
    char tool[64];
    json_object *b = oll_build_forced("{" MSGS ",\"tools\":[" OTHER_TOOL "," WEATHER_TOOL "],"
                                      "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"weather\"}},"
                                      "\"parallel_tool_calls\":false}", tool);
    assert_string_equal(tool, "weather");
    assert_false(has(b, "tools"));
    assert_string_equal(str_at(b, "format.type"), "object");
    assert_string_equal(str_at(b, "format.properties.location.type"), "string");
    assert_string_equal(str_at(b, "format.required.0"), "location");
    json_object_put(b);
    /* required with the one tool offered; a tool without parameters takes {} */
    b = oll_build_forced("{" MSGS ",\"tools\":[" OTHER_TOOL "],\"tool_choice\":\"required\"}", tool);
    assert_string_equal(tool, "other");
    assert_false(has(b, "tools"));
    assert_string_equal(str_at(b, "format.type"), "object");
    json_object_put(b);
    /* not forced: tools as they are, no format, nothing converted */
    b = oll_build_forced("{" MSGS ",\"tools\":[" WEATHER_TOOL "],\"tool_choice\":\"auto\"}", tool);
    assert_string_equal(tool, "");
    assert_true(has(b, "tools"));
    assert_false(has(b, "format"));
    json_object_put(b);
    hx_provider p = oll_provider();
    xbuild_refused(&p, "{" MSGS ",\"tools\":[" WEATHER_TOOL "," OTHER_TOOL "],\"tool_choice\":\"required\"}",
                   "tool_choice required is not supported by provider local (ollama): Ollama can force only one "
                   "schema (format), and several tools are offered");
    xbuild_refused(&p, "{" MSGS ",\"tools\":[" WEATHER_TOOL "],"
                       "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}",
                   "tool_choice is not supported by provider local (ollama): it names no offered tool");
    xbuild_refused(&p, "{" MSGS ",\"tools\":[" WEATHER_TOOL "],\"tool_choice\":\"required\","
                       "\"response_format\":{\"type\":\"json_object\"}}",
                   "tool_choice is not supported by provider local (ollama): a forced tool and response_format both "
                   "need Ollama's one format");
}

/* ---- answers: parsers -------------------------------------------------------------- */

static void test_parse_anthropic_thinking_usage(void **state)
{
    (void)state;
    const char *sse =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\","
        "\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":20,"
        "\"output_tokens\":1}}}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
        "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"thinking_delta\",\"thinking\":\"Let me see\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"signature_delta\",\"signature\":\"EqQBsig\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
        "{\"type\":\"redacted_thinking\",\"data\":\"opaque\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":"
        "{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":"
        "{\"type\":\"text_delta\",\"text\":\"1, 2\"}}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\","
        "\"stop_sequence\":\"3\"},\"usage\":{\"output_tokens\":30}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    char *log = xparse(&hx_adapter_anthropic, true, sse);
    assert_string_equal(log, "META p=130 c=0 cr=100 cw=20 rt=0\n"
                             "THINK Let me see\n"
                             "SIG EqQBsig\n"
                             "REDACTED opaque\n"
                             "TEXT 1, 2\n"
                             "FINISH 3 [stop]\n"
                             "USAGE p=130 c=30 cr=100 cw=20 rt=0\n");
    free(log);
    /* the same as one message */
    log = xparse(&hx_adapter_anthropic, false,
                 "{\"id\":\"m\",\"type\":\"message\",\"model\":\"c\",\"content\":[{\"type\":\"thinking\","
                 "\"thinking\":\"t\",\"signature\":\"s\"},{\"type\":\"text\",\"text\":\"x\"}],"
                 "\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\",\"usage\":{\"input_tokens\":1,"
                 "\"cache_read_input_tokens\":2,\"output_tokens\":3}}");
    assert_string_equal(log, "META p=3 c=0 cr=2 cw=0 rt=0\nTHINK t\nSIG s\nTEXT x\nFINISH END [stop]\n"
                             "USAGE p=3 c=3 cr=2 cw=0 rt=0\n");
    free(log);
}

static void test_parse_openai_reasoning_refusal(void **state)
{
    (void)state;
    char *log = xparse(&hx_adapter_openai, false,
                       "{\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                       "\"reasoning_content\":\"think\",\"content\":null,\"refusal\":\"I can't\"},"
                       "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":9,"
                       "\"prompt_tokens_details\":{\"cached_tokens\":32},"
                       "\"completion_tokens_details\":{\"reasoning_tokens\":4}}}");
    assert_string_equal(log, "META p=0 c=0 cr=0 cw=0 rt=0\nTHINK think\nREFUSAL I can't\nFINISH [stop]\n"
                             "USAGE p=50 c=9 cr=32 cw=0 rt=4\n");
    free(log);
    /* streamed "reasoning" (OpenRouter, Ollama /v1) and vLLM's stop_reason */
    log = xparse(&hx_adapter_openai, true,
                 "data: {\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"r\"}}]}\n\n"
                 "data: {\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},"
                 "\"finish_reason\":\"stop\",\"stop_reason\":\"END\"}]}\n\ndata: [DONE]\n\n");
    assert_string_equal(log, "META p=0 c=0 cr=0 cw=0 rt=0\nTHINK r\nTEXT a\nFINISH END [stop]\n");
    free(log);
}

static void test_parse_ollama_thinking(void **state)
{
    (void)state;
    char *log = xparse(&hx_adapter_ollama, true,
                       "{\"model\":\"q\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hm\"},"
                       "\"done\":false}\n"
                       "{\"model\":\"q\",\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"done\":false}\n"
                       "{\"model\":\"q\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
                       "\"done_reason\":\"stop\",\"prompt_eval_count\":5,\"eval_count\":6}\n");
    assert_string_equal(log, "META p=0 c=0 cr=0 cw=0 rt=0\nTHINK hm\nTEXT ok\nFINISH [stop]\n"
                             "USAGE p=5 c=6 cr=0 cw=0 rt=0\n");
    free(log);
}

/* ---- answers: renderers ------------------------------------------------------------ */

static hx_event ev_of(hx_ev_type t, const char *s)
{
    return (hx_event){.type = t, .text = s, .len = s ? strlen(s) : 0};
}

static hx_event ev_full_usage(void)
{
    return (hx_event){.type = HX_EV_USAGE, .prompt_tokens = 130, .completion_tokens = 30, .cache_read_tokens = 100,
                      .cache_write_tokens = 20, .reasoning_tokens = 12};
}

static void test_render_openai_reasoning(void **state)
{
    (void)state;
    hx_event evs[] = {ev_meta("c1", "m"), ev_of(HX_EV_THINKING, "why"), ev_of(HX_EV_THINKING_SIGNATURE, "sig"),
                      ev_of(HX_EV_REFUSAL, "no"), ev_finish("stop"), ev_full_usage()};
    size_t n = sizeof evs / sizeof evs[0];
    /* body */
    hx_render r;
    hx_buf out;
    hx_render_init(&r, &hx_render_openai_chat, false, false, "m");
    hx_buf_init(&out, 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hx_render_collect(&r, &evs[i]), 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    json_object *b = jparse(out.data);
    assert_string_equal(str_at(b, "choices.0.message.reasoning_content"), "why");
    assert_string_equal(str_at(b, "choices.0.message.refusal"), "no");
    assert_true(is_null_at(b, "choices.0.message.content"));
    assert_int_equal(int_at(b, "usage.prompt_tokens"), 130);
    assert_int_equal(int_at(b, "usage.prompt_tokens_details.cached_tokens"), 100);
    assert_int_equal(int_at(b, "usage.completion_tokens_details.reasoning_tokens"), 12);
    json_object_put(b);
    hx_buf_free(&out);
    hx_render_free(&r);
    /* stream */
    hx_render_init(&r, &hx_render_openai_chat, true, true, "m");
    hx_buf_init(&out, 0);
    stream_all(&r, evs, n, &out);
    frames f;
    split_frames(&out, &f);
    assert_int_equal(f.n, 6); /* role, reasoning, refusal, finish, usage, [DONE] */
    assert_string_equal(str_at(f.json[1], "choices.0.delta.reasoning_content"), "why");
    assert_string_equal(str_at(f.json[2], "choices.0.delta.refusal"), "no");
    assert_int_equal(int_at(f.json[4], "usage.prompt_tokens_details.cached_tokens"), 100);
    assert_int_equal(int_at(f.json[4], "usage.completion_tokens_details.reasoning_tokens"), 12);
    frames_free(&f);
    hx_buf_free(&out);
    hx_render_free(&r);
}

/* Formats without a refusal field show it as the answer's text. */
static void test_render_refusal_as_text(void **state)
{
    (void)state;
    const hx_render_vt *vts[] = {&hx_render_openai_legacy, &hx_render_hapax};
    for (size_t i = 0; i < 2; i++) {
        hx_render r;
        hx_buf out;
        hx_render_init(&r, vts[i], false, false, "m");
        hx_buf_init(&out, 0);
        hx_event evs[] = {ev_meta("c1", "m"), ev_of(HX_EV_REFUSAL, "I can't."), ev_finish("stop")};
        for (size_t j = 0; j < 3; j++)
            assert_int_equal(hx_render_collect(&r, &evs[j]), 0);
        assert_int_equal(r.vt->body(&r, &out), 0);
        json_object *b = jparse(out.data);
        assert_string_equal(str_at(b, i == 0 ? "choices.0.text" : "content"), "I can't.");
        json_object_put(b);
        hx_buf_free(&out);
        hx_render_free(&r);
    }
}

/* The JSON of the data line that follows "event: NAME\n", the nth one. */
static json_object *anth_frame(const hx_buf *out, const char *name, int nth)
{
    char pat[64];
    snprintf(pat, sizeof pat, "event: %s\ndata: ", name);
    const char *p = out->data;
    for (int i = 0; p && i <= nth; i++)
        if ((p = strstr(p, pat)) != NULL && i < nth)
            p += strlen(pat);
    if (p == NULL)
        fail_msg("no %s #%d in %s", name, nth, out->data);
    p += strlen(pat);
    const char *end = strstr(p, "\n\n");
    char *s = strndup(p, (size_t)(end - p));
    json_object *o = jparse(s);
    free(s);
    return o;
}

static void test_render_anthropic_thinking_usage(void **state)
{
    (void)state;
    hx_event meta = {.type = HX_EV_META, .id = "msg_1", .name = "c", .prompt_tokens = 130,
                     .cache_read_tokens = 100, .cache_write_tokens = 20};
    hx_event fin = {.type = HX_EV_FINISH, .finish = "stop", .text = "3", .len = 1};
    hx_event evs[] = {meta, ev_of(HX_EV_THINKING, "Let me see"), ev_of(HX_EV_THINKING_SIGNATURE, "EqQ"),
                      ev_of(HX_EV_REDACTED_THINKING, "opaque"), ev_of(HX_EV_TEXT, "1, 2"), fin, ev_full_usage()};
    size_t n = sizeof evs / sizeof evs[0];
    hx_render r;
    hx_buf out;
    hx_render_init(&r, &hx_render_anthropic, true, true, "c");
    hx_buf_init(&out, 0);
    stream_all(&r, evs, n, &out);
    json_object *o = anth_frame(&out, "message_start", 0);
    assert_int_equal(int_at(o, "message.usage.input_tokens"), 10);
    assert_int_equal(int_at(o, "message.usage.cache_read_input_tokens"), 100);
    assert_int_equal(int_at(o, "message.usage.cache_creation_input_tokens"), 20);
    json_object_put(o);
    o = anth_frame(&out, "content_block_start", 0);
    assert_string_equal(str_at(o, "content_block.type"), "thinking");
    json_object_put(o);
    o = anth_frame(&out, "content_block_delta", 0);
    assert_string_equal(str_at(o, "delta.type"), "thinking_delta");
    assert_string_equal(str_at(o, "delta.thinking"), "Let me see");
    json_object_put(o);
    o = anth_frame(&out, "content_block_delta", 1);
    assert_string_equal(str_at(o, "delta.type"), "signature_delta");
    assert_string_equal(str_at(o, "delta.signature"), "EqQ");
    assert_int_equal(int_at(o, "index"), 0);
    json_object_put(o);
    o = anth_frame(&out, "content_block_start", 1);
    assert_string_equal(str_at(o, "content_block.type"), "redacted_thinking");
    assert_string_equal(str_at(o, "content_block.data"), "opaque");
    assert_int_equal(int_at(o, "index"), 1);
    json_object_put(o);
    o = anth_frame(&out, "content_block_start", 2);
    assert_string_equal(str_at(o, "content_block.type"), "text");
    assert_int_equal(int_at(o, "index"), 2);
    json_object_put(o);
    o = anth_frame(&out, "message_delta", 0);
    assert_string_equal(str_at(o, "delta.stop_reason"), "stop_sequence");
    assert_string_equal(str_at(o, "delta.stop_sequence"), "3");
    assert_int_equal(int_at(o, "usage.input_tokens"), 10);
    assert_int_equal(int_at(o, "usage.output_tokens"), 30);
    json_object_put(o);
    hx_buf_free(&out);
    hx_render_free(&r);

    /* body */
    hx_render_init(&r, &hx_render_anthropic, false, false, "c");
    hx_buf_init(&out, 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hx_render_collect(&r, &evs[i]), 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    o = jparse(out.data);
    assert_string_equal(str_at(o, "content.0.type"), "thinking");
    assert_string_equal(str_at(o, "content.0.thinking"), "Let me see");
    assert_string_equal(str_at(o, "content.0.signature"), "EqQ");
    assert_string_equal(str_at(o, "content.1.type"), "redacted_thinking");
    assert_string_equal(str_at(o, "content.2.text"), "1, 2");
    assert_string_equal(str_at(o, "stop_reason"), "stop_sequence");
    assert_string_equal(str_at(o, "stop_sequence"), "3");
    assert_int_equal(int_at(o, "usage.input_tokens"), 10);
    assert_int_equal(int_at(o, "usage.cache_read_input_tokens"), 100);
    assert_int_equal(int_at(o, "usage.cache_creation_input_tokens"), 20);
    json_object_put(o);
    hx_buf_free(&out);
    hx_render_free(&r);

    /* an OpenAI upstream: the input count only at the end; a refusal is text */
    hx_render_init(&r, &hx_render_anthropic, true, true, "c");
    hx_buf_init(&out, 0);
    hx_event oa[] = {ev_meta("x", "m"), ev_of(HX_EV_REFUSAL, "no"), ev_finish("stop"), ev_usage(40, 2)};
    stream_all(&r, oa, 4, &out);
    o = anth_frame(&out, "message_start", 0);
    assert_int_equal(int_at(o, "message.usage.input_tokens"), 0);
    json_object_put(o);
    o = anth_frame(&out, "content_block_delta", 0);
    assert_string_equal(str_at(o, "delta.text"), "no");
    json_object_put(o);
    o = anth_frame(&out, "message_delta", 0);
    assert_int_equal(int_at(o, "usage.input_tokens"), 40);
    assert_string_equal(str_at(o, "delta.stop_reason"), "end_turn");
    assert_true(is_null_at(o, "delta.stop_sequence"));
    json_object_put(o);
    hx_buf_free(&out);
    hx_render_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anth_structured_output),
        cmocka_unit_test(test_anth_reasoning),
        cmocka_unit_test(test_anth_refused_by_name),
        cmocka_unit_test(test_anth_mapped_members),
        cmocka_unit_test(test_anth_cache_control),
        cmocka_unit_test(test_message_members),
        cmocka_unit_test(test_openai_translated_members),
        cmocka_unit_test(test_ollama_translated_members),
        cmocka_unit_test(test_ollama_forced_tool),
        cmocka_unit_test(test_parse_anthropic_thinking_usage),
        cmocka_unit_test(test_parse_openai_reasoning_refusal),
        cmocka_unit_test(test_parse_ollama_thinking),
        cmocka_unit_test(test_render_openai_reasoning),
        cmocka_unit_test(test_render_anthropic_thinking_usage),
        cmocka_unit_test(test_render_refusal_as_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
