/* Hostile JSON (issue 9): the strict pre-check (util/json.c) with its depth,
 * value and integer limits; NUL in the strings that meet C strings
 * (gateway/openai_in.c, gateway/anthropic_in.c); token counts from upstreams
 * clamped in every provider parser and renderer (UBSan aborts on an
 * overflow, so these run under the sanitizer build). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gateway/inbound.h"
#include "gateway/render.h"
#include "provider/adapter.h"
#include "util/json.h"

static hx_json_status check(const char *s, const hx_json_limits *lim, hx_json_report *rep)
{
    return hx_json_check(s, strlen(s), lim, rep);
}

static void expect_syntax(const char *s, const char *why)
{
    hx_json_report rep;
    if (check(s, NULL, &rep) != HX_JSON_E_SYNTAX)
        fail_msg("accepted as JSON: %s", s);
    if (why && strstr(rep.why, why) == NULL)
        fail_msg("%s: reason \"%s\", expected \"%s\"", s, rep.why, why);
    /* and nothing is built from it */
    assert_null(hx_json_parse(s, strlen(s)));
}

static void test_non_json_extensions_refused(void **state)
{
    (void)state;
    expect_syntax("{\"a\":NaN}", "NaN and Infinity");
    expect_syntax("[Infinity]", "NaN and Infinity");
    expect_syntax("[-Infinity]", "NaN and Infinity");
    expect_syntax("{\"a\":1 /* c */}", "comments");
    expect_syntax("// c\n{\"a\":1}", "comments");
    expect_syntax("{'a':1}", "double quotes");
    expect_syntax("{\"a\":'x'}", "double quotes");
    expect_syntax("[1,2,]", "trailing comma");
    expect_syntax("{\"a\":1,}", "trailing comma");
    expect_syntax("[01]", "leading zeros");
    expect_syntax("[1.]", "invalid number");
    expect_syntax("{\"a\":1} x", "data after");
    expect_syntax("{\"a\":\"x\ty\"}", "control character");
    expect_syntax("[\"\\x\"]", "invalid escape");
    expect_syntax("[\"abc", "unterminated");
    expect_syntax("{\"a\"", NULL);
    expect_syntax("", "end of input");
    expect_syntax("[tru]", NULL);
    expect_syntax("[1}", "expected ',' or ']'");
    expect_syntax("{\"a\":1]", "expected ',' or '}'");
    expect_syntax("{\"a\":}", "missing value");
    /* json-c keeps member names as C strings: "model\u0000" would be a
     * second "model" only json-c sees */
    expect_syntax("{\"model\\u0000\":\"x\"}", "NUL");
    /* values may hold NUL: lengths carry it */
    assert_int_equal(check("[\"a\\u0000b\"]", NULL, NULL), HX_JSON_OK);
    assert_int_equal(check(" {\"a\":[1,-2.5e3,true,false,null,\"s\"]} ", NULL, NULL), HX_JSON_OK);
}

static void test_depth_and_values(void **state)
{
    (void)state;
    char deep[200];
    int n = 65;
    for (int i = 0; i < n; i++)
        deep[i] = '[';
    for (int i = 0; i < n; i++)
        deep[n + i] = ']';
    deep[2 * n] = '\0';
    hx_json_report rep;
    assert_int_equal(check(deep, NULL, &rep), HX_JSON_E_DEPTH);
    deep[2 * n - 1] = '\0';
    assert_int_equal(check(deep + 1, NULL, NULL), HX_JSON_OK); /* 64 levels: the default */
    hx_json_limits lim = {.max_depth = 3};
    assert_int_equal(check("[[[1]]]", &lim, NULL), HX_JSON_OK);
    assert_int_equal(check("[[[[1]]]]", &lim, &rep), HX_JSON_E_DEPTH);
    assert_int_equal(check("{\"a\":{\"b\":{\"c\":{}}}}", &lim, NULL), HX_JSON_E_DEPTH);

    /* every value counts, containers included: [, 1, 2, [], "s", null */
    assert_int_equal(check("[1,2,[],\"s\",null]", NULL, &rep), HX_JSON_OK);
    assert_int_equal(rep.elements, 6);
    /* an object counts as HX_JSON_OBJECT_WEIGHT: {, [, 1, 2, {}, "s" */
    assert_int_equal(check("{\"a\":[1,2,{}],\"b\":\"s\"}", NULL, &rep), HX_JSON_OK);
    assert_int_equal(rep.elements, 4 + 2 * HX_JSON_OBJECT_WEIGHT);
    lim = (hx_json_limits){.max_elements = 6};
    assert_int_equal(check("[1,2,[],\"s\",null]", &lim, NULL), HX_JSON_OK);
    assert_int_equal(check("[1,2,[],\"s\",null,3]", &lim, &rep), HX_JSON_E_ELEMENTS);
    char text[160];
    hx_json_report_text(&rep, &lim, text, sizeof text);
    assert_non_null(strstr(text, "more than 6 values"));
    assert_int_equal(check("[{}]", &lim, NULL), HX_JSON_E_ELEMENTS);
    lim.max_elements = 1 + HX_JSON_OBJECT_WEIGHT;
    assert_int_equal(check("[{}]", &lim, NULL), HX_JSON_OK);
    assert_int_equal(check("[{},1]", &lim, NULL), HX_JSON_E_ELEMENTS);
    lim.max_elements = 6;
    /* hx_json_parse itself is bounded too */
    assert_null(hx_json_parse_limits("[1,2,3,4,5,6,7]", 15, &lim));
    json_object *o = hx_json_parse_limits("[1,2,3,4,5]", 11, &lim);
    assert_non_null(o);
    json_object_put(o);
}

static void test_integer_range(void **state)
{
    (void)state;
    const hx_json_limits lim = {.int_range = true};
    hx_json_report rep;
    assert_int_equal(check("{\"max_tokens\":99999999999999999999999}", &lim, &rep), HX_JSON_E_INTEGER);
    assert_int_equal(rep.offset, strlen("{\"max_tokens\":"));
    assert_int_equal(check("[18446744073709551616]", &lim, NULL), HX_JSON_E_INTEGER);
    assert_int_equal(check("[-9223372036854775809]", &lim, NULL), HX_JSON_E_INTEGER);
    /* what json-c holds exactly passes, as do non-integers */
    assert_int_equal(check("[18446744073709551615,-9223372036854775808,0,-0,1e400,99999999999999999999.5]", &lim, NULL),
                     HX_JSON_OK);
    /* the check is opt-in (upstream bodies are relayed as they are) */
    assert_int_equal(check("[99999999999999999999999]", NULL, NULL), HX_JSON_OK);
}

static void test_token_counts_clamped(void **state)
{
    (void)state;
    const char *t = "[1e308,9223372036854775807,18446744073709551615,-5,12,\"7\",true,1.9]";
    json_object *o = hx_json_parse(t, strlen(t));
    assert_non_null(o);
    int64_t want[] = {HX_JSON_TOKENS_MAX, HX_JSON_TOKENS_MAX, HX_JSON_TOKENS_MAX, 0, 12, 7, 0, 1};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(hx_json_tokens(json_object_array_get_idx(o, i)), want[i]);
    json_object_put(o);
    json_object *nan = json_object_new_double(NAN);
    assert_int_equal(hx_json_tokens(nan), 0);
    json_object_put(nan);
    assert_int_equal(hx_json_tokens(NULL), 0);
    assert_int_equal(hx_tokens_add(INT64_MAX, INT64_MAX), HX_JSON_TOKENS_MAX);
    assert_int_equal(hx_tokens_add(HX_JSON_TOKENS_MAX, 1), HX_JSON_TOKENS_MAX);
    assert_int_equal(hx_tokens_add(-3, 4), 4);
    const char *u = "{\"usage\":{\"prompt_tokens\":9223372036854775807}}";
    assert_int_equal(hx_json_find_int(u, strlen(u), "prompt_tokens"), HX_JSON_TOKENS_MAX);
}

/* ---- providers: usage from a hostile upstream --------------------------------- */

typedef struct {
    int usage;
    int64_t prompt, completion;
} usage_rec;

static int usage_sink(void *ud, const hx_event *ev)
{
    usage_rec *u = ud;
    if (ev->type == HX_EV_USAGE) {
        u->usage++;
        u->prompt = ev->prompt_tokens;
        u->completion = ev->completion_tokens;
    }
    return 0;
}

static void run_parser(const hx_adapter *ad, bool stream, const char *body, usage_rec *u)
{
    memset(u, 0, sizeof *u);
    void *ps = ad->parser_new(stream);
    assert_non_null(ps);
    int rc = ad->parser_feed(ps, body, strlen(body), usage_sink, u);
    if (rc == 0)
        rc = ad->parser_end(ps, usage_sink, u);
    if (rc != 0)
        fail_msg("%s parser failed: %s", ad->name, ad->parser_error(ps) ? ad->parser_error(ps) : "?");
    ad->parser_free(ps);
    assert_int_equal(u->usage, 1);
}

static void test_provider_usage_clamped(void **state)
{
    (void)state;
    usage_rec u;
    run_parser(&hx_adapter_openai, false,
               "{\"id\":\"c1\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,"
               "\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},\"finish_reason\":\"stop\"}],"
               "\"usage\":{\"prompt_tokens\":1e308,\"completion_tokens\":9223372036854775807}}",
               &u);
    assert_int_equal(u.prompt, HX_JSON_TOKENS_MAX);
    assert_int_equal(u.completion, HX_JSON_TOKENS_MAX);
    run_parser(&hx_adapter_openai, true,
               "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,"
               "\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n"
               "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],"
               "\"usage\":{\"prompt_tokens\":-4,\"completion_tokens\":1e308}}\n\ndata: [DONE]\n\n",
               &u);
    assert_int_equal(u.prompt, 0);
    assert_int_equal(u.completion, HX_JSON_TOKENS_MAX);

    /* input = input + cache_creation + cache_read: the sum saturates */
    run_parser(&hx_adapter_anthropic, false,
               "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[{\"type\":"
               "\"text\",\"text\":\"hi\"}],\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":9223372036854775807,"
               "\"cache_creation_input_tokens\":9223372036854775807,\"cache_read_input_tokens\":1e308,"
               "\"output_tokens\":1e308}}",
               &u);
    assert_int_equal(u.prompt, HX_JSON_TOKENS_MAX);
    assert_int_equal(u.completion, HX_JSON_TOKENS_MAX);
    run_parser(&hx_adapter_anthropic, true,
               "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\","
               "\"usage\":{\"input_tokens\":9223372036854775807,\"cache_read_input_tokens\":9223372036854775807,"
               "\"output_tokens\":1}}}\n\n"
               "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
               "\"usage\":{\"output_tokens\":9223372036854775807}}\n\n"
               "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
               &u);
    assert_int_equal(u.prompt, HX_JSON_TOKENS_MAX);
    assert_int_equal(u.completion, HX_JSON_TOKENS_MAX);

    run_parser(&hx_adapter_ollama, false,
               "{\"model\":\"l\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},\"done\":true,"
               "\"done_reason\":\"stop\",\"prompt_eval_count\":1e308,\"eval_count\":9223372036854775807}",
               &u);
    assert_int_equal(u.prompt, HX_JSON_TOKENS_MAX);
    assert_int_equal(u.completion, HX_JSON_TOKENS_MAX);
    run_parser(&hx_adapter_ollama, true,
               "{\"model\":\"l\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},\"done\":false}\n"
               "{\"model\":\"l\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
               "\"prompt_eval_count\":-1e308,\"eval_count\":1e308}\n",
               &u);
    assert_int_equal(u.prompt, 0);
    assert_int_equal(u.completion, HX_JSON_TOKENS_MAX);
}

/* ---- renderers: the counts and their sums --------------------------------------- */

static json_object *render_body(const hx_render_vt *vt, bool stream)
{
    hx_render r;
    hx_render_init(&r, vt, stream, true, "m");
    hx_event evs[] = {
        {.type = HX_EV_TEXT, .text = "hi", .len = 2},
        {.type = HX_EV_FINISH, .finish = "stop"},
        /* raw events as a future adapter might send them: the renderer
         * clamps too */
        {.type = HX_EV_USAGE, .prompt_tokens = INT64_MAX, .completion_tokens = INT64_MAX},
    };
    hx_buf out;
    hx_buf_init(&out, 1 << 20);
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        assert_int_equal(stream ? vt->stream_event(&r, &evs[i], &out) : hx_render_collect(&r, &evs[i]), 0);
    if (stream)
        assert_int_equal(vt->stream_end(&r, &out), 0);
    else
        assert_int_equal(vt->body(&r, &out), 0);
    hx_render_free(&r);
    json_object *o = NULL;
    if (!stream) {
        o = hx_json_parse(out.data, out.len);
    } else { /* the last event that carries usage */
        const char *u = strstr(out.data, "\"usage\""), *next;
        assert_non_null(u);
        while ((next = strstr(u + 1, "\"usage\"")) != NULL)
            u = next;
        const char *d = u;
        while (d > out.data && strncmp(d, "data: ", 6) != 0)
            d--;
        const char *e = strstr(u, "\n\n");
        assert_non_null(e);
        o = hx_json_parse(d + 6, (size_t)(e - d - 6));
    }
    hx_buf_free(&out);
    if (o == NULL)
        fail_msg("renderer %s output is not JSON", vt == &hx_render_anthropic ? "anthropic" : "openai");
    return o;
}

static int64_t member_int(json_object *o, const char *a, const char *b)
{
    json_object *x, *y;
    if (!json_object_object_get_ex(o, a, &x) || !json_object_object_get_ex(x, b, &y))
        fail_msg("no %s.%s in %s", a, b, json_object_to_json_string(o));
    return json_object_get_int64(y);
}

static void test_renderers_saturate(void **state)
{
    (void)state;
    const hx_render_vt *openai[] = {&hx_render_openai_chat, &hx_render_openai_legacy};
    for (size_t i = 0; i < 2; i++) {
        for (int stream = 0; stream < 2; stream++) {
            json_object *o = render_body(openai[i], stream);
            assert_int_equal(member_int(o, "usage", "prompt_tokens"), HX_JSON_TOKENS_MAX);
            assert_int_equal(member_int(o, "usage", "total_tokens"), HX_JSON_TOKENS_MAX);
            json_object_put(o);
        }
    }
    json_object *o = render_body(&hx_render_anthropic, false);
    assert_int_equal(member_int(o, "usage", "input_tokens"), HX_JSON_TOKENS_MAX);
    assert_int_equal(member_int(o, "usage", "output_tokens"), HX_JSON_TOKENS_MAX);
    json_object_put(o);
    o = render_body(&hx_render_anthropic, true); /* message_delta */
    assert_int_equal(member_int(o, "usage", "output_tokens"), HX_JSON_TOKENS_MAX);
    json_object_put(o);
}

/* ---- NUL where JSON strings meet C strings -------------------------------------- */

static int inbound(int (*fn)(json_object *, json_object **, hx_in_info *, char *, size_t), const char *body,
                   char *err, size_t errlen)
{
    json_object *o = hx_json_parse(body, strlen(body)), *canon = NULL;
    assert_non_null(o);
    hx_in_info info;
    memset(&info, 0, sizeof info);
    err[0] = '\0';
    int rc = fn(o, &canon, &info, err, errlen);
    json_object_put(o);
    json_object_put(canon);
    return rc;
}

static void test_nul_in_names(void **state)
{
    (void)state;
    char err[256];
    const char *chat = "{\"model\":\"gpt-4o-mini\\u0000-x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    hx_in_info info;
    assert_int_equal(hx_in_openai_chat_scan(chat, strlen(chat), &info), 0); /* left to the full parse */
    assert_int_equal(inbound(hx_in_openai_chat, chat, err, sizeof err), -1);
    assert_non_null(strstr(err, "model"));
    assert_int_equal(inbound(hx_in_completions, "{\"model\":\"a\\u0000b\",\"input\":\"hi\"}", err, sizeof err), -1);
    assert_non_null(strstr(err, "model"));
    assert_int_equal(inbound(hx_in_openai_chat, "{\"messages\":[{\"role\":\"user\\u0000x\",\"content\":\"hi\"}]}", err,
                             sizeof err),
                     -1);
    assert_non_null(strstr(err, "role"));
    assert_int_equal(inbound(hx_in_anthropic,
                             "{\"model\":\"claude\\u0000x\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                             "\"content\":\"hi\"}]}",
                             err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "model"));
    assert_int_equal(inbound(hx_in_anthropic,
                             "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\\u0000x\","
                             "\"content\":\"hi\"}]}",
                             err, sizeof err),
                     -1);
    assert_int_equal(inbound(hx_in_anthropic,
                             "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                             "\"text\\u0000x\",\"text\":\"hi\"}]}]}",
                             err, sizeof err),
                     -1);
    /* a model name longer than the routing buffer is refused, not cut */
    char big[400];
    snprintf(big, sizeof big, "{\"model\":\"%0300d\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 0);
    assert_int_equal(inbound(hx_in_openai_chat, big, err, sizeof err), -1);
    assert_non_null(strstr(err, "model"));
}

/* Text keeps its NUL through the Anthropic translation (lengths, not C
 * strings). */
static void test_nul_in_text_carried(void **state)
{
    (void)state;
    const char *b = "{\"model\":\"c\",\"max_tokens\":5,\"system\":[{\"type\":\"text\",\"text\":\"s\\u0000t\"}],"
                    "\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"a\\u0000b\"}]},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
                    "\"content\":\"x\\u0000y\"}]}]}";
    json_object *o = hx_json_parse(b, strlen(b)), *canon = NULL, *msgs, *m, *c;
    assert_non_null(o);
    hx_in_info info;
    char err[256] = "";
    if (hx_in_anthropic(o, &canon, &info, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_true(json_object_object_get_ex(canon, "messages", &msgs));
    const char *want[] = {"s\0t", "a\0b", "x\0y"};
    for (size_t i = 0; i < 3; i++) {
        m = json_object_array_get_idx(msgs, i);
        assert_true(json_object_object_get_ex(m, "content", &c));
        assert_int_equal(json_object_get_string_len(c), 3);
        assert_memory_equal(json_object_get_string(c), want[i], 3);
    }
    json_object_put(canon);
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_non_json_extensions_refused),
        cmocka_unit_test(test_depth_and_values),
        cmocka_unit_test(test_integer_range),
        cmocka_unit_test(test_token_counts_clamped),
        cmocka_unit_test(test_provider_usage_clamped),
        cmocka_unit_test(test_renderers_saturate),
        cmocka_unit_test(test_nul_in_names),
        cmocka_unit_test(test_nul_in_text_carried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
