/* OpenAI side of the gateway: the upstream adapter (provider/openai.c), the
 * inbound parsers (gateway/openai_in.c), the renderers
 * (gateway/render.c, gateway/render_openai.c) and the provider chain
 * (provider/provider.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_load.h"
#include "config/config.h"
#include "gateway/inbound.h"
#include "gateway/render.h"
#include "provider/adapter.h"
#include "provider/provider.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "rec_sink.h"

/* ---- JSON helpers ------------------------------------------------------------ */

static json_object *jparse(const char *s)
{
    json_tokener *tok = json_tokener_new();
    assert_non_null(tok);
    json_object *o = json_tokener_parse_ex(tok, s, (int)strlen(s));
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (o == NULL || e != json_tokener_success || end != strlen(s))
        fail_msg("not one JSON value: %s", s);
    return o;
}

/* Value at a dotted path ("choices.0.delta.content"). */
static json_object *at(json_object *o, const char *path)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(o, json_type_array)) {
            size_t i = (size_t)strtoul(tok, NULL, 10);
            if (i >= json_object_array_length(o))
                return NULL;
            o = json_object_array_get_idx(o, i);
        } else if (!json_object_object_get_ex(o, tok, &o)) {
            return NULL;
        }
    }
    return o;
}

static bool has(json_object *o, const char *path)
{
    json_object *parent = o;
    /* present, even with a null value */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *dot = strrchr(buf, '.');
    const char *last = buf;
    if (dot) {
        *dot = '\0';
        parent = at(o, buf);
        last = dot + 1;
    }
    return parent && json_object_is_type(parent, json_type_object) && json_object_object_get_ex(parent, last, NULL);
}

static const char *str_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    if (v == NULL || !json_object_is_type(v, json_type_string))
        fail_msg("no string at %s in %s", path, json_object_to_json_string(o));
    return json_object_get_string(v);
}

static int64_t int_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    if (v == NULL || !json_object_is_type(v, json_type_int))
        fail_msg("no integer at %s in %s", path, json_object_to_json_string(o));
    return json_object_get_int64(v);
}

static size_t len_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    if (v == NULL || !json_object_is_type(v, json_type_array))
        fail_msg("no array at %s in %s", path, json_object_to_json_string(o));
    return json_object_array_length(v);
}

static bool is_null_at(json_object *o, const char *path)
{
    return has(o, path) && at(o, path) == NULL;
}

static bool bool_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    if (v == NULL || !json_object_is_type(v, json_type_boolean))
        fail_msg("no boolean at %s in %s", path, json_object_to_json_string(o));
    return json_object_get_boolean(v);
}

static const char *compact(json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ---- the adapter: build_chat / build_probe ---------------------------------------- */

/* hx_provider's strings are mutable (it owns them): so are these. */
static hx_provider oa_provider(char *base_url, char *key)
{
    hx_provider p;
    memset(&p, 0, sizeof p);
    p.name = "openai";
    p.ad = &hx_adapter_openai;
    p.model = "gpt-up";
    p.api_key = key;
    p.base_url = base_url;
    p.usable = true;
    return p;
}

/* Builds; returns the parsed body (caller puts it); req is left filled. */
static json_object *build(const hx_provider *p, const char *canon_json, bool stream, hx_up_request *req)
{
    hx_up_request_init(req);
    json_object *canon = jparse(canon_json);
    char err[256] = "";
    int rc = hx_adapter_openai.build_chat(p, canon, stream, req, err, sizeof err);
    json_object_put(canon);
    if (rc != 0)
        fail_msg("build_chat failed: %s", err);
    assert_non_null(req->body.data);
    return jparse(req->body.data);
}

static const char *build_url(char *base)
{
    static char url[512];
    hx_provider p = oa_provider(base, "k");
    hx_up_request req;
    json_object *b = build(&p, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", false, &req);
    snprintf(url, sizeof url, "%s", req.url);
    json_object_put(b);
    hx_up_request_free(&req);
    return url;
}

static void test_build_url(void **state)
{
    (void)state;
    assert_string_equal(build_url("https://api.openai.com/v1"), "https://api.openai.com/v1/chat/completions");
    assert_string_equal(build_url("https://api.openai.com/v1/"), "https://api.openai.com/v1/chat/completions");
    assert_string_equal(build_url("http://localhost:8000/v1//"), "http://localhost:8000/v1/chat/completions");
    assert_string_equal(build_url("http://127.0.0.1:1234"), "http://127.0.0.1:1234/chat/completions");
}

static void test_build_azure(void **state)
{
    (void)state;
    hx_provider p = oa_provider("https://res.openai.azure.com/openai/deployments/gpt4o?api-version=2024-10-21", "az-key");
    hx_up_request req;
    json_object *b = build(&p, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", true, &req);
    assert_string_equal(req.url,
                        "https://res.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21");
    assert_string_equal(hx_headers_get(&req.headers, "api-key"), "az-key");
    assert_null(hx_headers_get(&req.headers, "authorization"));
    json_object_put(b);
    hx_up_request_free(&req);

    /* a slash before the query is not doubled */
    p.base_url = "https://res.openai.azure.com/openai/deployments/gpt4o/?api-version=2024-10-21";
    b = build(&p, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", false, &req);
    assert_string_equal(req.url,
                        "https://res.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21");
    json_object_put(b);
    hx_up_request_free(&req);

    /* probe: same query handling, same header */
    hx_up_request_init(&req);
    p.base_url = "https://res.openai.azure.com/openai/deployments/gpt4o?api-version=2024-10-21";
    assert_int_equal(hx_adapter_openai.build_probe(&p, &req), 0);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, "https://res.openai.azure.com/openai/deployments/gpt4o/models?api-version=2024-10-21");
    assert_string_equal(hx_headers_get(&req.headers, "api-key"), "az-key");
    assert_null(hx_headers_get(&req.headers, "authorization"));
    hx_up_request_free(&req);
}

static void test_build_auth(void **state)
{
    (void)state;
    hx_provider p = oa_provider("https://api.openai.com/v1", "sk-test-123");
    hx_up_request req;
    json_object *b = build(&p, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", false, &req);
    assert_string_equal(req.method, "POST");
    assert_string_equal(hx_headers_get(&req.headers, "authorization"), "Bearer sk-test-123");
    assert_null(hx_headers_get(&req.headers, "api-key"));
    assert_string_equal(hx_headers_get(&req.headers, "content-type"), "application/json");
    assert_null(hx_headers_get(&req.headers, "accept")); /* not a stream */
    json_object_put(b);
    hx_up_request_free(&req);

    /* no key: no credentials at all */
    p = oa_provider("http://localhost:8000/v1", "");
    b = build(&p, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", false, &req);
    assert_null(hx_headers_get(&req.headers, "authorization"));
    assert_null(hx_headers_get(&req.headers, "api-key"));
    assert_string_equal(hx_headers_get(&req.headers, "content-type"), "application/json");
    json_object_put(b);
    hx_up_request_free(&req);
}

static void test_build_body_passthrough(void **state)
{
    (void)state;
    hx_provider p = oa_provider("https://api.openai.com/v1", "k");
    hx_up_request req;
    const char *canon_json =
        "{\"model\":\"client-model\",\"messages\":[{\"role\":\"user\",\"content\":\"a/b \\u00e9\"}],"
        "\"temperature\":0.70,\"seed\":12345678901234567890,\"top_p\":1e-1,\"max_tokens\":100,"
        "\"custom_field\":{\"nested\":[1,2.50,\"x\",null,true]},\"logit_bias\":{\"50256\":-100},"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}]}";
    json_object *canon = jparse(canon_json);
    char before[2048];
    snprintf(before, sizeof before, "%s", compact(canon));

    hx_up_request_init(&req);
    char err[128];
    assert_int_equal(hx_adapter_openai.build_chat(&p, canon, false, &req, err, sizeof err), 0);
    const char *body = req.body.data;
    /* numbers keep their exact text */
    assert_non_null(strstr(body, "\"temperature\":0.70"));
    assert_non_null(strstr(body, "\"seed\":12345678901234567890"));
    assert_non_null(strstr(body, "\"top_p\":1e-1"));
    assert_non_null(strstr(body, "\"max_tokens\":100"));
    assert_non_null(strstr(body, "\"custom_field\":{\"nested\":[1,2.50,\"x\",null,true]}"));
    assert_non_null(strstr(body, "\"logit_bias\":{\"50256\":-100}"));
    /* no slash escaping */
    assert_non_null(strstr(body, "a/b"));
    json_object *b = jparse(body);
    assert_string_equal(str_at(b, "model"), "gpt-up");
    assert_null(strstr(body, "client-model"));
    assert_string_equal(str_at(b, "messages.0.content"), "a/b \xc3\xa9");
    assert_string_equal(str_at(b, "tools.0.function.name"), "f");
    assert_false(has(b, "stream"));
    assert_false(has(b, "stream_options"));
    json_object_put(b);
    hx_up_request_free(&req);

    /* the canonical request is not changed (it is reused for the next provider) */
    assert_string_equal(compact(canon), before);
    json_object_put(canon);
}

static void test_build_stream(void **state)
{
    (void)state;
    hx_provider p = oa_provider("https://api.openai.com/v1", "k");
    hx_up_request req;
    /* the client's stream / stream_options are replaced */
    json_object *b = build(&p,
                           "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":false,"
                           "\"stream_options\":{\"include_usage\":false}}",
                           true, &req);
    assert_true(bool_at(b, "stream"));
    assert_true(bool_at(b, "stream_options.include_usage"));
    assert_string_equal(hx_headers_get(&req.headers, "accept"), "text/event-stream");
    /* exactly one "stream" key in the text */
    const char *s = strstr(req.body.data, "\"stream\":");
    assert_non_null(s);
    assert_null(strstr(s + 1, "\"stream\":"));
    json_object_put(b);
    hx_up_request_free(&req);

    /* not streaming: a client "stream": true is dropped */
    b = build(&p, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true}", false, &req);
    assert_false(has(b, "stream"));
    assert_false(has(b, "stream_options"));
    json_object_put(b);
    hx_up_request_free(&req);
}

static void test_build_probe(void **state)
{
    (void)state;
    hx_provider p = oa_provider("https://api.openai.com/v1/", "sk-p");
    hx_up_request req;
    hx_up_request_init(&req);
    assert_int_equal(hx_adapter_openai.build_probe(&p, &req), 0);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, "https://api.openai.com/v1/models");
    assert_string_equal(hx_headers_get(&req.headers, "authorization"), "Bearer sk-p");
    assert_int_equal(req.body.len, 0);
    hx_up_request_free(&req);

    p = oa_provider("http://localhost:8000/v1", "");
    hx_up_request_init(&req);
    assert_int_equal(hx_adapter_openai.build_probe(&p, &req), 0);
    assert_string_equal(req.url, "http://localhost:8000/v1/models");
    assert_null(hx_headers_get(&req.headers, "authorization"));
    hx_up_request_free(&req);
}

/* ---- the adapter: response parsing ---------------------------------------------- */

static void rec_init(rec *r)
{
    memset(r, 0, sizeof *r);
    hx_buf_init(&r->log, 0);
}

static const char *rec_str(const rec *r)
{
    return r->log.data ? r->log.data : "";
}

/* Runs the parser over body (len bytes) in pieces of `step` (0 = whole).
 * Returns the final result; events go to r, the parser's error to err. */
static int run_parser_n(bool stream, const char *body, size_t len, size_t step, rec *r, char *err, size_t errlen)
{
    void *ps = hx_adapter_openai.parser_new(stream);
    assert_non_null(ps);
    int rc = 0;
    if (step == 0)
        step = len ? len : 1;
    for (size_t i = 0; rc == 0 && i < len; i += step)
        rc = hx_adapter_openai.parser_feed(ps, body + i, len - i < step ? len - i : step, rec_sink, r);
    if (rc == 0)
        rc = hx_adapter_openai.parser_end(ps, rec_sink, r);
    if (err)
        snprintf(err, errlen, "%s", hx_adapter_openai.parser_error(ps));
    hx_adapter_openai.parser_free(ps);
    return rc;
}

static int run_parser(bool stream, const char *body, size_t step, rec *r, char *err, size_t errlen)
{
    return run_parser_n(stream, body, strlen(body), step, r, err, errlen);
}

static const char NONSTREAM[] =
    "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"gpt-4o-2024-08-06\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Let me check \\\"that\\\".\\n\","
    "\"refusal\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":\"call_2\",\"type\":\"function\",\"function\":{"
    "\"name\":\"now\",\"arguments\":\"{}\"}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
    "\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":17,\"total_tokens\":99},\"system_fingerprint\":\"fp_1\"}";

static const char NONSTREAM_EVENTS[] = "META chatcmpl-abc gpt-4o-2024-08-06\n"
                                       "TEXT Let me check \"that\".\n\n"
                                       "CALL 0 call_1 get_weather\n"
                                       "ARGS 0 {\"city\":\"Paris\"}\n"
                                       "CALL 1 call_2 now\n"
                                       "ARGS 1 {}\n"
                                       "FINISH tool_calls\n"
                                       "USAGE 82 17\n";

static void test_parse_nonstream(void **state)
{
    (void)state;
    rec r;
    char err[256];
    rec_init(&r);
    assert_int_equal(run_parser(false, NONSTREAM, 0, &r, err, sizeof err), 0);
    assert_string_equal(rec_str(&r), NONSTREAM_EVENTS);
    hx_buf_free(&r.log);

    /* in pieces: nothing before the end, same events */
    void *ps = hx_adapter_openai.parser_new(false);
    rec_init(&r);
    size_t len = strlen(NONSTREAM);
    for (size_t i = 0; i < len; i += 7)
        assert_int_equal(hx_adapter_openai.parser_feed(ps, NONSTREAM + i, len - i < 7 ? len - i : 7, rec_sink, &r), 0);
    assert_string_equal(rec_str(&r), "");
    assert_int_equal(hx_adapter_openai.parser_end(ps, rec_sink, &r), 0);
    assert_string_equal(rec_str(&r), NONSTREAM_EVENTS);
    hx_adapter_openai.parser_free(ps);
    hx_buf_free(&r.log);

    /* plain text answer; content null and no tool calls give no TEXT */
    rec_init(&r);
    assert_int_equal(run_parser(false,
                                "{\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                                "\"assistant\",\"content\":\"Hi\"},\"finish_reason\":\"length\"}]}",
                                0, &r, err, sizeof err),
                     0);
    assert_string_equal(rec_str(&r), "META x m\nTEXT Hi\nFINISH length\n");
    hx_buf_free(&r.log);

    rec_init(&r);
    assert_int_equal(run_parser(false,
                                "{\"choices\":[{\"message\":{\"content\":null},\"finish_reason\":\"stop\"}],"
                                "\"usage\":{\"prompt_tokens\":3}}",
                                0, &r, err, sizeof err),
                     0);
    assert_string_equal(rec_str(&r), "META - -\nFINISH stop\nUSAGE 3 0\n");
    hx_buf_free(&r.log);
}

static void test_parse_nonstream_errors(void **state)
{
    (void)state;
    const char *bad[] = {"", "{not json", "{\"choices\":[", "[1,2]", "\"text\"", "{\"id\":\"x\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec r;
        char err[256];
        rec_init(&r);
        if (run_parser(false, bad[i], 0, &r, err, sizeof err) != -1)
            fail_msg("accepted malformed body \"%s\"", bad[i]);
        assert_true(strlen(err) > 0);
        hx_buf_free(&r.log);
    }
    rec r;
    char err[256];
    rec_init(&r);
    assert_int_equal(run_parser(false, "{\"id\":\"x\",\"object\":\"chat.completion\"}", 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "upstream response has no choices");
    hx_buf_free(&r.log);

    rec_init(&r);
    assert_int_equal(run_parser(false, "{\"choices\":[", 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "upstream returned malformed JSON");
    assert_string_equal(rec_str(&r), "");
    hx_buf_free(&r.log);

    /* an error object in a 2xx body */
    rec_init(&r);
    assert_int_equal(run_parser(false, "{\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}", 0,
                                &r, err, sizeof err),
                     -1);
    assert_string_equal(rec_str(&r), "ERROR The server had an error\n");
    assert_string_equal(err, "The server had an error");
    hx_buf_free(&r.log);

    /* "error": null is no error */
    rec_init(&r);
    assert_int_equal(run_parser(false, "{\"error\":null,\"choices\":[{\"message\":{\"content\":\"ok\"}}]}", 0, &r, err,
                                sizeof err),
                     0);
    assert_string_equal(rec_str(&r), "META - -\nTEXT ok\n");
    hx_buf_free(&r.log);
}

/* A realistic OpenAI stream: role chunk, content deltas, tool call deltas,
 * finish chunk, usage chunk, [DONE]; with a keep-alive comment. */
#define CHUNK(delta, finish)                                                                                         \
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":"           \
    "\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_9\",\"choices\":[{\"index\":0,\"delta\":" delta          \
    ",\"logprobs\":null,\"finish_reason\":" finish "}],\"usage\":null}\n\n"

static const char STREAM[] =
    CHUNK("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null")
    ": keep-alive\n\n"
    CHUNK("{\"content\":\"Hel\"}", "null")
    CHUNK("{\"content\":\"lo \\\"w\\\"\\n\"}", "null")
    CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"call_abc\",\"type\":\"function\",\"function\":{\"name\":"
          "\"get_weather\",\"arguments\":\"\"}}]}", "null")
    CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]}", "null")
    CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}}]}", "null")
    CHUNK("{\"tool_calls\":[{\"index\":1,\"id\":\"call_def\",\"type\":\"function\",\"function\":{\"name\":\"now\","
          "\"arguments\":\"{}\"}}]}", "null")
    CHUNK("{}", "\"tool_calls\"")
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":"
    "\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,"
    "\"total_tokens\":19}}\n\n"
    "data: [DONE]\n\n";

static const char STREAM_EVENTS[] = "META chatcmpl-9x gpt-4o-mini-2024-07-18\n"
                                    "TEXT Hel\n"
                                    "TEXT lo \"w\"\n\n"
                                    "CALL 0 call_abc get_weather\n"
                                    "ARGS 0 {\"ci\n"
                                    "ARGS 0 ty\":\"Paris\"}\n"
                                    "CALL 1 call_def now\n"
                                    "ARGS 1 {}\n"
                                    "FINISH tool_calls\n"
                                    "USAGE 12 7\n";

static void test_parse_stream(void **state)
{
    (void)state;
    rec r;
    char err[256];
    rec_init(&r);
    assert_int_equal(run_parser(true, STREAM, 0, &r, err, sizeof err), 0);
    assert_string_equal(rec_str(&r), STREAM_EVENTS);
    hx_buf_free(&r.log);

    /* one byte at a time, and every other step size: identical events */
    size_t len = strlen(STREAM);
    for (size_t step = 1; step <= len; step += (step < 64 ? 1 : 37)) {
        rec_init(&r);
        assert_int_equal(run_parser(true, STREAM, step, &r, err, sizeof err), 0);
        if (strcmp(rec_str(&r), STREAM_EVENTS) != 0)
            fail_msg("step %zu:\n%s", step, rec_str(&r));
        hx_buf_free(&r.log);
    }

    /* the same stream with CRLF line ends */
    hx_buf crlf;
    hx_buf_init(&crlf, 0);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(STREAM[i] == '\n' ? hx_buf_append(&crlf, "\r\n", 2) : hx_buf_append(&crlf, STREAM + i, 1), 0);
    rec_init(&r);
    assert_int_equal(run_parser_n(true, crlf.data, crlf.len, 1, &r, err, sizeof err), 0);
    assert_string_equal(rec_str(&r), STREAM_EVENTS);
    hx_buf_free(&r.log);
    hx_buf_free(&crlf);

    /* [DONE] without a trailing blank line still ends the stream; chunks
     * after [DONE] are ignored */
    rec_init(&r);
    assert_int_equal(run_parser(true,
                                "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                                "data: [DONE]\n\n"
                                "data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n",
                                1, &r, err, sizeof err),
                     0);
    assert_string_equal(rec_str(&r), "META - -\nTEXT a\n");
    hx_buf_free(&r.log);

    rec_init(&r);
    assert_int_equal(run_parser(true, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]", 0, &r, err,
                                sizeof err),
                     0);
    assert_string_equal(rec_str(&r), "META - -\nTEXT a\n");
    hx_buf_free(&r.log);
}

static void test_parse_stream_errors(void **state)
{
    (void)state;
    rec r;
    char err[256];

    /* error object in the stream: ERROR event, then failure */
    const char *errstream = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n"
                            "data: {\"error\":{\"message\":\"Rate limit reached for gpt-4o\",\"type\":\"tokens\","
                            "\"code\":\"rate_limit_exceeded\"}}\n\n"
                            "data: {\"choices\":[{\"delta\":{\"content\":\"never\"}}]}\n\n"
                            "data: [DONE]\n\n";
    for (size_t step = 0; step <= 3; step++) {
        rec_init(&r);
        assert_int_equal(run_parser(true, errstream, step, &r, err, sizeof err), -1);
        assert_string_equal(rec_str(&r), "META c -\nTEXT par\nERROR Rate limit reached for gpt-4o\n");
        assert_string_equal(err, "Rate limit reached for gpt-4o");
        hx_buf_free(&r.log);
    }

    /* after a failure, more bytes are refused */
    void *ps = hx_adapter_openai.parser_new(true);
    rec_init(&r);
    const char *e1 = "data: {\"error\":{\"message\":\"boom\"}}\n\n";
    assert_int_equal(hx_adapter_openai.parser_feed(ps, e1, strlen(e1), rec_sink, &r), -1);
    const char *more = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n";
    assert_int_equal(hx_adapter_openai.parser_feed(ps, more, strlen(more), rec_sink, &r), -1);
    assert_int_equal(hx_adapter_openai.parser_end(ps, rec_sink, &r), -1);
    assert_string_equal(rec_str(&r), "ERROR boom\n");
    hx_adapter_openai.parser_free(ps);
    hx_buf_free(&r.log);

    /* malformed data */
    const char *bad[] = {
        "data: {\"choices\":[\n\n",
        "data: not json\n\n",
        "data: [1,2,3]\n\n",
        "data: \"str\"\n\n",
        "data: \n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\n\ndata: [DONE]\n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec_init(&r);
        if (run_parser(true, bad[i], 0, &r, err, sizeof err) != -1)
            fail_msg("accepted malformed stream \"%s\"", bad[i]);
        assert_string_equal(err, "malformed event from upstream");
        hx_buf_free(&r.log);
    }

    /* end without [DONE] */
    rec_init(&r);
    ps = hx_adapter_openai.parser_new(true);
    const char *part = "data: {\"choices\":[{\"delta\":{\"content\":\"cut\"}}]}\n\n";
    assert_int_equal(hx_adapter_openai.parser_feed(ps, part, strlen(part), rec_sink, &r), 0);
    assert_int_equal(hx_adapter_openai.parser_end(ps, rec_sink, &r), -1);
    assert_string_equal(hx_adapter_openai.parser_error(ps), "upstream stream ended early");
    assert_string_equal(rec_str(&r), "META - -\nTEXT cut\n");
    hx_adapter_openai.parser_free(ps);
    hx_buf_free(&r.log);

    /* an empty stream */
    rec_init(&r);
    assert_int_equal(run_parser(true, "", 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "upstream stream ended early");
    hx_buf_free(&r.log);

    /* the sink stops: the parser stops too */
    rec_init(&r);
    r.stop_after = 2;
    assert_int_equal(run_parser(true, STREAM, 0, &r, err, sizeof err), -1);
    assert_string_equal(rec_str(&r), "META chatcmpl-9x gpt-4o-mini-2024-07-18\nTEXT Hel\n");
    hx_buf_free(&r.log);
    rec_init(&r);
    r.stop_after = 3;
    assert_int_equal(run_parser(false, NONSTREAM, 0, &r, err, sizeof err), -1);
    assert_string_equal(rec_str(&r), "META chatcmpl-abc gpt-4o-2024-08-06\nTEXT Let me check \"that\".\n\n"
                                     "CALL 0 call_1 get_weather\n");
    hx_buf_free(&r.log);
}

static void test_error_message(void **state)
{
    (void)state;
    char out[256];
    const char *b = "{\"error\":{\"message\":\"Incorrect API key provided: sk-****\",\"type\":\"invalid_request_error\","
                    "\"param\":null,\"code\":\"invalid_api_key\"}}";
    hx_adapter_openai.error_message(b, strlen(b), out, sizeof out);
    assert_string_equal(out, "Incorrect API key provided: sk-****");

    b = "{\"error\":\"model not found\"}";
    hx_adapter_openai.error_message(b, strlen(b), out, sizeof out);
    assert_string_equal(out, "model not found");

    /* not JSON: an excerpt */
    b = "<html><body>502 Bad Gateway</body></html>";
    hx_adapter_openai.error_message(b, strlen(b), out, sizeof out);
    assert_string_equal(out, b);

    /* JSON without an error message: an excerpt */
    b = "{\"detail\":\"Not Found\"}";
    hx_adapter_openai.error_message(b, strlen(b), out, sizeof out);
    assert_string_equal(out, b);

    /* a long body is cut to 200 bytes */
    char big[600];
    memset(big, 'e', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    hx_adapter_openai.error_message(big, strlen(big), out, sizeof out);
    assert_int_equal(strlen(out), 200);

    /* the output size is honoured */
    char small[8];
    b = "{\"error\":{\"message\":\"a rather long message\"}}";
    hx_adapter_openai.error_message(b, strlen(b), small, sizeof small);
    assert_string_equal(small, "a rathe");

    /* empty body */
    hx_adapter_openai.error_message("", 0, out, sizeof out);
    assert_string_equal(out, "");
    hx_adapter_openai.error_message(NULL, 0, out, sizeof out);
    assert_string_equal(out, "");
}

/* ---- inbound: /v1/chat/completions ------------------------------------------------ */

static int in_chat(const char *json, json_object **canon, hx_in_info *info, char *err, size_t errlen)
{
    json_object *body = jparse(json);
    memset(info, 0, sizeof *info);
    *canon = NULL;
    err[0] = '\0';
    int rc = hx_in_openai_chat(body, canon, info, err, errlen);
    json_object_put(body);
    return rc;
}

static void chat_bad(const char *json, const char *want)
{
    json_object *canon;
    hx_in_info info;
    char err[256];
    if (in_chat(json, &canon, &info, err, sizeof err) != -1)
        fail_msg("accepted %s", json);
    assert_null(canon);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\" (input %s)", err, want, json);
}

static void test_in_chat(void **state)
{
    (void)state;
    json_object *canon;
    hx_in_info info;
    char err[256];
    const char *ok = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                     "{\"role\":\"user\",\"content\":\"Hi\"}],\"temperature\":0.70,\"stream\":true,"
                     "\"stream_options\":{\"include_usage\":true}}";
    json_object *body = jparse(ok);
    memset(&info, 0, sizeof info);
    assert_int_equal(hx_in_openai_chat(body, &canon, &info, err, sizeof err), 0);
    assert_ptr_equal(canon, body); /* already canonical */
    assert_true(info.stream);
    assert_true(info.include_usage);
    assert_string_equal(info.model, "gpt-4o");
    assert_ptr_equal(info.render, &hx_render_openai_chat);
    assert_non_null(strstr(compact(canon), "\"temperature\":0.70"));
    json_object_put(canon);
    json_object_put(body);

    assert_int_equal(in_chat("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":null}", &canon, &info,
                             err, sizeof err),
                     0);
    assert_false(info.stream);
    assert_false(info.include_usage);
    assert_string_equal(info.model, "");
    json_object_put(canon);

    /* include_usage without stream options, and every allowed role */
    assert_int_equal(in_chat("{\"messages\":[{\"role\":\"developer\",\"content\":\"d\"},{\"role\":\"user\","
                             "\"content\":\"u\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
                             "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"r\"},{\"role\":\"function\","
                             "\"name\":\"f\",\"content\":\"r\"}],\"stream\":true,\"stream_options\":{}}",
                             &canon, &info, err, sizeof err),
                     0);
    assert_true(info.stream);
    assert_false(info.include_usage);
    json_object_put(canon);

    chat_bad("{\"model\":\"m\"}", "messages is required");
    chat_bad("{\"messages\":[]}", "messages: expected a non-empty array");
    chat_bad("{\"messages\":\"Hi\"}", "messages: expected a non-empty array");
    chat_bad("{\"messages\":null}", "messages: expected a non-empty array");
    chat_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"wizard\",\"content\":\"b\"}]}",
             "messages[1].role: must be");
    chat_bad("{\"messages\":[{\"content\":\"a\"}]}", "messages[0].role: expected a string");
    chat_bad("{\"messages\":[{\"role\":7}]}", "messages[0].role: expected a string");
    chat_bad("{\"messages\":[\"Hi\"]}", "messages[0]: expected an object");
    chat_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream\":\"true\"}", "stream: expected a boolean");
    chat_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream\":1}", "stream: expected a boolean");
    chat_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"model\":5}", "model: expected a string");
    chat_bad("[1]", "must be a JSON object");
}

/* ---- inbound: /v1/completions ------------------------------------------------------ */

static int in_cmpl(const char *json, json_object **canon, hx_in_info *info, char *err, size_t errlen)
{
    json_object *body = jparse(json);
    memset(info, 0, sizeof *info);
    *canon = NULL;
    err[0] = '\0';
    int rc = hx_in_completions(body, canon, info, err, errlen);
    json_object_put(body);
    return rc;
}

static void cmpl_bad(const char *json, const char *want)
{
    json_object *canon;
    hx_in_info info;
    char err[256];
    if (in_cmpl(json, &canon, &info, err, sizeof err) != -1)
        fail_msg("accepted %.200s", json);
    assert_null(canon);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\" (input %.200s)", err, want, json);
}

/* {"<field>":"<n x 'a'>"<extra>} */
static char *big_field(const char *field, size_t n, const char *extra)
{
    size_t cap = n + strlen(field) + strlen(extra) + 16;
    char *s = malloc(cap);
    assert_non_null(s);
    int k = snprintf(s, cap, "{\"%s\":\"", field);
    memset(s + k, 'a', n);
    snprintf(s + k + n, cap - (size_t)k - n, "\"%s}", extra);
    return s;
}

static void test_in_completions_limits(void **state)
{
    (void)state;
    json_object *canon;
    hx_in_info info;
    char err[256];

    /* function_description: 5120 bytes is fine, 5121 is too large */
    char *s = big_field("function_description", 5120, ",\"input\":\"Hi\"");
    assert_int_equal(in_cmpl(s, &canon, &info, err, sizeof err), 0);
    assert_int_equal(len_at(canon, "messages"), 2);
    assert_int_equal(strlen(str_at(canon, "messages.0.content")), 5120);
    json_object_put(canon);
    free(s);
    s = big_field("function_description", 5121, ",\"input\":\"Hi\"");
    cmpl_bad(s, "Function description too large");
    free(s);
    /* checked before the messages (which would otherwise win) */
    s = big_field("function_description", 5121, ",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]");
    cmpl_bad(s, "Function description too large");
    free(s);

    /* input: 524288 bytes is fine, one more is too large */
    s = big_field("input", 524288, "");
    assert_int_equal(in_cmpl(s, &canon, &info, err, sizeof err), 0);
    assert_int_equal(strlen(str_at(canon, "messages.0.content")), 524288);
    json_object_put(canon);
    free(s);
    s = big_field("input", 524289, "");
    cmpl_bad(s, "Input too large");
    free(s);
    /* messages win: a too large input beside them is ignored */
    s = big_field("input", 524289, ",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]");
    assert_int_equal(in_cmpl(s, &canon, &info, err, sizeof err), 0);
    assert_int_equal(len_at(canon, "messages"), 1);
    assert_string_equal(str_at(canon, "messages.0.content"), "x");
    assert_false(has(canon, "input"));
    json_object_put(canon);
    free(s);

    /* neither */
    cmpl_bad("{}", "Either input or messages must be provided");
    cmpl_bad("{\"input\":\"\"}", "Either input or messages must be provided");
    cmpl_bad("{\"messages\":[]}", "Either input or messages must be provided");
    cmpl_bad("{\"input\":null,\"messages\":null}", "Either input or messages must be provided");
    cmpl_bad("{\"function_description\":\"only this\"}", "Either input or messages must be provided");
    cmpl_bad("{\"input\":5}", "Invalid completion request format");
    cmpl_bad("{\"function_description\":[]}", "Invalid completion request format");
    cmpl_bad("[]", "Invalid completion request format");
    cmpl_bad("{\"input\":\"Hi\",\"stream\":\"yes\"}", "stream: expected a boolean");
}

static void test_in_completions_shapes(void **state)
{
    (void)state;
    json_object *canon;
    hx_in_info info;
    char err[256];

    /* input form, function_description first, fields copied with exact text */
    assert_int_equal(in_cmpl("{\"input\":\"What is 2+2?\",\"function_description\":\"You are a calculator.\","
                             "\"temperature\":0.70,\"max_tokens\":64,\"stop\":[\"\\n\"],\"model\":\"m1\","
                             "\"echo\":true,\"suffix\":\"s\",\"best_of\":2}",
                             &canon, &info, err, sizeof err),
                     0);
    assert_ptr_equal(info.render, &hx_render_hapax);
    assert_false(info.stream);
    assert_string_equal(info.model, "m1");
    assert_int_equal(len_at(canon, "messages"), 2);
    assert_string_equal(str_at(canon, "messages.0.role"), "system");
    assert_string_equal(str_at(canon, "messages.0.content"), "You are a calculator.");
    assert_string_equal(str_at(canon, "messages.1.role"), "user");
    assert_string_equal(str_at(canon, "messages.1.content"), "What is 2+2?");
    const char *c = compact(canon);
    assert_non_null(strstr(c, "\"temperature\":0.70"));
    assert_non_null(strstr(c, "\"max_tokens\":64"));
    assert_string_equal(str_at(canon, "stop.0"), "\n");
    assert_string_equal(str_at(canon, "model"), "m1");
    assert_false(has(canon, "input"));
    assert_false(has(canon, "function_description"));
    assert_false(has(canon, "echo"));
    assert_false(has(canon, "suffix"));
    assert_false(has(canon, "best_of"));
    json_object_put(canon);

    /* messages win over input; function_description still leads */
    assert_int_equal(in_cmpl("{\"input\":\"ignored\",\"function_description\":\"sys\",\"messages\":["
                             "{\"role\":\"user\",\"content\":\"one\"},{\"role\":\"assistant\",\"content\":\"two\"}]}",
                             &canon, &info, err, sizeof err),
                     0);
    assert_ptr_equal(info.render, &hx_render_hapax);
    assert_int_equal(len_at(canon, "messages"), 3);
    assert_string_equal(str_at(canon, "messages.0.role"), "system");
    assert_string_equal(str_at(canon, "messages.0.content"), "sys");
    assert_string_equal(str_at(canon, "messages.1.content"), "one");
    assert_string_equal(str_at(canon, "messages.2.role"), "assistant");
    assert_null(strstr(compact(canon), "ignored"));
    json_object_put(canon);

    /* an empty function_description adds nothing */
    assert_int_equal(in_cmpl("{\"input\":\"x\",\"function_description\":\"\"}", &canon, &info, err, sizeof err), 0);
    assert_int_equal(len_at(canon, "messages"), 1);
    assert_string_equal(str_at(canon, "messages.0.role"), "user");
    json_object_put(canon);

    /* legacy prompt: string, or an array of one string */
    assert_int_equal(in_cmpl("{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":\"Say this is a test\","
                             "\"max_tokens\":7,\"temperature\":0,\"stream\":true,\"stream_options\":"
                             "{\"include_usage\":true}}",
                             &canon, &info, err, sizeof err),
                     0);
    assert_ptr_equal(info.render, &hx_render_openai_legacy);
    assert_true(info.stream);
    assert_true(info.include_usage);
    assert_int_equal(len_at(canon, "messages"), 1);
    assert_string_equal(str_at(canon, "messages.0.role"), "user");
    assert_string_equal(str_at(canon, "messages.0.content"), "Say this is a test");
    assert_int_equal(int_at(canon, "max_tokens"), 7);
    assert_false(has(canon, "prompt"));
    json_object_put(canon);

    assert_int_equal(in_cmpl("{\"prompt\":[\"one\"]}", &canon, &info, err, sizeof err), 0);
    assert_ptr_equal(info.render, &hx_render_openai_legacy);
    assert_string_equal(str_at(canon, "messages.0.content"), "one");
    json_object_put(canon);
    cmpl_bad("{\"prompt\":[\"one\",\"two\"]}", "prompt: expected a string");
    cmpl_bad("{\"prompt\":42}", "prompt: expected a string");

    /* input wins over prompt (and then it is the Hapax answer) */
    assert_int_equal(in_cmpl("{\"input\":\"in\",\"prompt\":\"pr\"}", &canon, &info, err, sizeof err), 0);
    assert_ptr_equal(info.render, &hx_render_hapax);
    assert_string_equal(str_at(canon, "messages.0.content"), "in");
    json_object_put(canon);

    /* stream is refused for the input / messages forms */
    cmpl_bad("{\"input\":\"Hi\",\"stream\":true}", "stream is not supported");
    cmpl_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream\":true}", "stream is not supported");
    /* stream false is fine */
    assert_int_equal(in_cmpl("{\"input\":\"Hi\",\"stream\":false}", &canon, &info, err, sizeof err), 0);
    json_object_put(canon);
}

/* ---- renderers ---------------------------------------------------------------------- */

#define MAX_FRAMES 64

typedef struct {
    char *data[MAX_FRAMES];
    json_object *json[MAX_FRAMES]; /* NULL for [DONE] */
    size_t n;
} frames;

/* Splits OpenAI SSE output: every frame is "data: X\n\n", X is JSON or [DONE]. */
static void split_frames(const hx_buf *out, frames *f)
{
    memset(f, 0, sizeof *f);
    const char *p = out->data ? out->data : "";
    const char *end = p + out->len;
    while (p < end) {
        if (strncmp(p, "data: ", 6) != 0)
            fail_msg("frame does not start with \"data: \": %.60s", p);
        p += 6;
        const char *e = strstr(p, "\n\n");
        if (e == NULL)
            fail_msg("unterminated frame: %.60s", p);
        assert_null(memchr(p, '\n', (size_t)(e - p))); /* one data line */
        assert_true(f->n < MAX_FRAMES);
        f->data[f->n] = strndup(p, (size_t)(e - p));
        f->json[f->n] = strcmp(f->data[f->n], "[DONE]") == 0 ? NULL : jparse(f->data[f->n]);
        f->n++;
        p = e + 2;
    }
}

static void frames_free(frames *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->data[i]);
        json_object_put(f->json[i]);
    }
    f->n = 0;
}

static hx_event ev_meta(const char *id, const char *model)
{
    return (hx_event){.type = HX_EV_META, .id = id, .name = model};
}
static hx_event ev_text(const char *t)
{
    return (hx_event){.type = HX_EV_TEXT, .text = t, .len = strlen(t)};
}
static hx_event ev_call(int index, const char *id, const char *name)
{
    return (hx_event){.type = HX_EV_TOOL_CALL, .index = index, .id = id, .name = name};
}
static hx_event ev_args(int index, const char *t)
{
    return (hx_event){.type = HX_EV_TOOL_ARGS, .index = index, .text = t, .len = strlen(t)};
}
static hx_event ev_finish(const char *f)
{
    return (hx_event){.type = HX_EV_FINISH, .finish = f};
}
static hx_event ev_usage(int64_t p, int64_t c)
{
    return (hx_event){.type = HX_EV_USAGE, .prompt_tokens = p, .completion_tokens = c};
}

static void stream_all(hx_render *r, const hx_event *evs, size_t n, hx_buf *out)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(r->vt->stream_event(r, &evs[i], out), 0);
    assert_int_equal(r->vt->stream_end(r, out), 0);
}

static void check_chat_chunk(json_object *o, const char *id, const char *model, int64_t created)
{
    assert_string_equal(str_at(o, "object"), "chat.completion.chunk");
    assert_string_equal(str_at(o, "id"), id);
    assert_string_equal(str_at(o, "model"), model);
    assert_int_equal(int_at(o, "created"), created);
}

static void chat_stream_case(bool include_usage)
{
    hx_render r;
    hx_buf out;
    hx_render_init(&r, &hx_render_openai_chat, true, include_usage, "gpt-up");
    hx_buf_init(&out, 0);
    hx_event evs[] = {
        ev_meta("chatcmpl-xyz", "gpt-up-2024-05-13"),
        ev_text("Hel"),
        ev_text("lo \"w\"\n\xc3\xa9"),
        ev_call(0, "call_1", "get_weather"),
        ev_args(0, "{\"city\":"),
        ev_args(0, "\"Paris\"}"),
        ev_finish("tool_calls"),
        ev_usage(11, 7),
    };
    stream_all(&r, evs, sizeof evs / sizeof evs[0], &out);
    frames f;
    split_frames(&out, &f);
    assert_int_equal(f.n, include_usage ? 9 : 8);
    int64_t created = int_at(f.json[0], "created");
    for (size_t i = 0; i + 1 < f.n; i++)
        check_chat_chunk(f.json[i], "chatcmpl-xyz", "gpt-up-2024-05-13", created);

    /* first: the role */
    assert_string_equal(str_at(f.json[0], "choices.0.delta.role"), "assistant");
    assert_int_equal(int_at(f.json[0], "choices.0.index"), 0);
    assert_true(is_null_at(f.json[0], "choices.0.finish_reason"));
    /* text */
    assert_string_equal(str_at(f.json[1], "choices.0.delta.content"), "Hel");
    assert_false(has(f.json[1], "choices.0.delta.role"));
    assert_true(is_null_at(f.json[1], "choices.0.finish_reason"));
    assert_string_equal(str_at(f.json[2], "choices.0.delta.content"), "lo \"w\"\n\xc3\xa9");
    /* tool call start */
    assert_int_equal(int_at(f.json[3], "choices.0.delta.tool_calls.0.index"), 0);
    assert_string_equal(str_at(f.json[3], "choices.0.delta.tool_calls.0.id"), "call_1");
    assert_string_equal(str_at(f.json[3], "choices.0.delta.tool_calls.0.type"), "function");
    assert_string_equal(str_at(f.json[3], "choices.0.delta.tool_calls.0.function.name"), "get_weather");
    assert_string_equal(str_at(f.json[3], "choices.0.delta.tool_calls.0.function.arguments"), "");
    /* argument pieces add up */
    char args[128];
    snprintf(args, sizeof args, "%s%s", str_at(f.json[4], "choices.0.delta.tool_calls.0.function.arguments"),
             str_at(f.json[5], "choices.0.delta.tool_calls.0.function.arguments"));
    assert_string_equal(args, "{\"city\":\"Paris\"}");
    assert_int_equal(int_at(f.json[4], "choices.0.delta.tool_calls.0.index"), 0);
    /* finish */
    assert_string_equal(str_at(f.json[6], "choices.0.finish_reason"), "tool_calls");
    assert_true(json_object_is_type(at(f.json[6], "choices.0.delta"), json_type_object));
    assert_int_equal(json_object_object_length(at(f.json[6], "choices.0.delta")), 0);
    if (include_usage) {
        assert_int_equal(len_at(f.json[7], "choices"), 0);
        assert_int_equal(int_at(f.json[7], "usage.prompt_tokens"), 11);
        assert_int_equal(int_at(f.json[7], "usage.completion_tokens"), 7);
        assert_int_equal(int_at(f.json[7], "usage.total_tokens"), 18);
    }
    for (size_t i = 0; i + 1 < f.n; i++)
        if (!include_usage || i != 7)
            assert_null(at(f.json[i], "usage"));
    /* [DONE] last */
    assert_string_equal(f.data[f.n - 1], "[DONE]");
    assert_null(f.json[f.n - 1]);
    frames_free(&f);
    hx_buf_free(&out);
    hx_render_free(&r);
}

static void test_render_chat_stream(void **state)
{
    (void)state;
    chat_stream_case(true);
    chat_stream_case(false);

    /* no META: a generated id, the same in every chunk; the model given at init */
    hx_render r;
    hx_buf out;
    hx_render_init(&r, &hx_render_openai_chat, true, false, "gpt-up");
    hx_buf_init(&out, 0);
    hx_event evs[] = {ev_text("a"), ev_text("b"), ev_finish("stop"), ev_usage(1, 2)};
    stream_all(&r, evs, 4, &out);
    frames f;
    split_frames(&out, &f);
    assert_int_equal(f.n, 5); /* role, a, b, finish, [DONE] */
    const char *id = str_at(f.json[0], "id");
    assert_true(strncmp(id, "chatcmpl-", 9) == 0);
    assert_true(strlen(id) > 9);
    for (size_t i = 0; i < 4; i++) {
        check_chat_chunk(f.json[i], id, "gpt-up", int_at(f.json[0], "created"));
        assert_int_equal(len_at(f.json[i], "choices"), 1);
    }
    assert_string_equal(str_at(f.json[0], "choices.0.delta.role"), "assistant");
    assert_string_equal(str_at(f.json[1], "choices.0.delta.content"), "a");
    assert_string_equal(str_at(f.json[3], "choices.0.finish_reason"), "stop");
    frames_free(&f);
    hx_buf_free(&out);
    hx_render_free(&r);

    /* META and ERROR write nothing; META alone does not start the stream */
    hx_render_init(&r, &hx_render_openai_chat, true, true, "m");
    hx_buf_init(&out, 0);
    hx_event meta = ev_meta("id-1", "m2");
    assert_int_equal(r.vt->stream_event(&r, &meta, &out), 0);
    hx_event er = {.type = HX_EV_ERROR, .text = "x", .len = 1};
    assert_int_equal(r.vt->stream_event(&r, &er, &out), 0);
    assert_int_equal(out.len, 0);
    hx_buf_free(&out);
    hx_render_free(&r);
}

static void test_render_stream_error(void **state)
{
    (void)state;
    const hx_render_vt *vts[] = {&hx_render_openai_chat, &hx_render_openai_legacy};
    for (size_t k = 0; k < 2; k++) {
        hx_render r;
        hx_buf out;
        hx_render_init(&r, vts[k], true, false, "m");
        hx_buf_init(&out, 0);
        assert_int_equal(r.vt->stream_error(&r, "api_error", "upstream \"broke\"\nmid-stream", &out), 0);
        frames f;
        split_frames(&out, &f);
        assert_int_equal(f.n, 1);
        assert_string_equal(str_at(f.json[0], "error.message"), "upstream \"broke\"\nmid-stream");
        assert_string_equal(str_at(f.json[0], "error.type"), "api_error");
        assert_string_equal(str_at(f.json[0], "error.code"), "upstream_stream_error");
        frames_free(&f);
        hx_buf_free(&out);
        hx_render_free(&r);
    }
}

static void collect_all(hx_render *r, const hx_event *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hx_render_collect(r, &evs[i]), 0);
}

static json_object *render_body(hx_render *r, hx_buf *out)
{
    hx_buf_init(out, 0);
    assert_int_equal(r->vt->body(r, out), 0);
    assert_true(out->len > 1);
    /* one JSON value and one newline */
    assert_int_equal(out->data[out->len - 1], '\n');
    assert_int_not_equal(out->data[out->len - 2], '\n');
    char *copy = strndup(out->data, out->len - 1);
    json_object *o = jparse(copy);
    free(copy);
    return o;
}

static void test_render_chat_body(void **state)
{
    (void)state;
    hx_render r;
    hx_buf out;
    hx_render_init(&r, &hx_render_openai_chat, false, false, "gpt-up");
    hx_event evs[] = {
        ev_meta("chatcmpl-abc", "gpt-4o-2024-08-06"),
        ev_text("Let me "),
        ev_text("check \"that\".\n"),
        ev_call(0, "call_1", "get_weather"),
        ev_args(0, "{\"city\":"),
        ev_args(0, "\"Paris\"}"),
        ev_call(1, "call_2", "now"),
        ev_args(1, "{}"),
        ev_finish("tool_calls"),
        ev_usage(82, 17),
    };
    collect_all(&r, evs, sizeof evs / sizeof evs[0]);
    json_object *b = render_body(&r, &out);
    assert_string_equal(str_at(b, "id"), "chatcmpl-abc");
    assert_string_equal(str_at(b, "object"), "chat.completion");
    assert_string_equal(str_at(b, "model"), "gpt-4o-2024-08-06");
    assert_true(int_at(b, "created") > 1600000000);
    assert_int_equal(len_at(b, "choices"), 1);
    assert_int_equal(int_at(b, "choices.0.index"), 0);
    assert_string_equal(str_at(b, "choices.0.message.role"), "assistant");
    assert_string_equal(str_at(b, "choices.0.message.content"), "Let me check \"that\".\n");
    assert_int_equal(len_at(b, "choices.0.message.tool_calls"), 2);
    assert_string_equal(str_at(b, "choices.0.message.tool_calls.0.id"), "call_1");
    assert_string_equal(str_at(b, "choices.0.message.tool_calls.0.type"), "function");
    assert_string_equal(str_at(b, "choices.0.message.tool_calls.0.function.name"), "get_weather");
    assert_string_equal(str_at(b, "choices.0.message.tool_calls.0.function.arguments"), "{\"city\":\"Paris\"}");
    assert_string_equal(str_at(b, "choices.0.message.tool_calls.1.id"), "call_2");
    assert_string_equal(str_at(b, "choices.0.message.tool_calls.1.function.name"), "now");
    assert_string_equal(str_at(b, "choices.0.message.tool_calls.1.function.arguments"), "{}");
    assert_string_equal(str_at(b, "choices.0.finish_reason"), "tool_calls");
    assert_int_equal(int_at(b, "usage.prompt_tokens"), 82);
    assert_int_equal(int_at(b, "usage.completion_tokens"), 17);
    assert_int_equal(int_at(b, "usage.total_tokens"), 99);
    json_object_put(b);
    hx_buf_free(&out);
    hx_render_free(&r);

    /* tool calls only: content is null */
    hx_render_init(&r, &hx_render_openai_chat, false, false, "gpt-up");
    hx_event evs2[] = {ev_call(0, "call_9", "f"), ev_finish("tool_calls")};
    collect_all(&r, evs2, 2);
    b = render_body(&r, &out);
    assert_true(is_null_at(b, "choices.0.message.content"));
    assert_string_equal(str_at(b, "choices.0.message.tool_calls.0.function.arguments"), "");
    json_object_put(b);
    hx_buf_free(&out);
    hx_render_free(&r);

    /* nothing collected: empty content, "stop", zero usage, generated id */
    hx_render_init(&r, &hx_render_openai_chat, false, false, "gpt-up");
    b = render_body(&r, &out);
    assert_string_equal(str_at(b, "choices.0.message.content"), "");
    assert_false(has(b, "choices.0.message.tool_calls"));
    assert_string_equal(str_at(b, "choices.0.finish_reason"), "stop");
    assert_int_equal(int_at(b, "usage.total_tokens"), 0);
    assert_string_equal(str_at(b, "model"), "gpt-up");
    assert_true(strncmp(str_at(b, "id"), "chatcmpl-", 9) == 0);
    json_object_put(b);
    hx_buf_free(&out);
    hx_render_free(&r);
}

static void test_render_legacy(void **state)
{
    (void)state;
    hx_render r;
    hx_buf out;
    hx_event evs[] = {ev_meta("cmpl-up", "gpt-3.5-turbo-instruct"), ev_text("This is "), ev_text("a \"test\""),
                      ev_finish("length"), ev_usage(5, 7)};

    hx_render_init(&r, &hx_render_openai_legacy, false, false, "m");
    collect_all(&r, evs, sizeof evs / sizeof evs[0]);
    json_object *b = render_body(&r, &out);
    assert_string_equal(str_at(b, "object"), "text_completion");
    assert_string_equal(str_at(b, "id"), "cmpl-up");
    assert_string_equal(str_at(b, "model"), "gpt-3.5-turbo-instruct");
    assert_string_equal(str_at(b, "choices.0.text"), "This is a \"test\"");
    assert_int_equal(int_at(b, "choices.0.index"), 0);
    assert_true(is_null_at(b, "choices.0.logprobs"));
    assert_string_equal(str_at(b, "choices.0.finish_reason"), "length");
    assert_int_equal(int_at(b, "usage.total_tokens"), 12);
    json_object_put(b);
    hx_buf_free(&out);
    hx_render_free(&r);

    /* no META: generated "cmpl-" id */
    hx_render_init(&r, &hx_render_openai_legacy, false, false, "m");
    b = render_body(&r, &out);
    assert_true(strncmp(str_at(b, "id"), "cmpl-", 5) == 0);
    assert_string_equal(str_at(b, "choices.0.finish_reason"), "stop");
    json_object_put(b);
    hx_buf_free(&out);
    hx_render_free(&r);

    for (int usage = 0; usage <= 1; usage++) {
        hx_render_init(&r, &hx_render_openai_legacy, true, usage, "m");
        hx_buf_init(&out, 0);
        stream_all(&r, evs, sizeof evs / sizeof evs[0], &out);
        frames f;
        split_frames(&out, &f);
        assert_int_equal(f.n, usage ? 5u : 4u);
        for (size_t i = 0; i + 1 < f.n; i++) {
            assert_string_equal(str_at(f.json[i], "object"), "text_completion");
            assert_string_equal(str_at(f.json[i], "id"), "cmpl-up");
        }
        assert_string_equal(str_at(f.json[0], "choices.0.text"), "This is ");
        assert_true(is_null_at(f.json[0], "choices.0.finish_reason"));
        assert_string_equal(str_at(f.json[1], "choices.0.text"), "a \"test\"");
        assert_string_equal(str_at(f.json[2], "choices.0.text"), "");
        assert_string_equal(str_at(f.json[2], "choices.0.finish_reason"), "length");
        if (usage) {
            assert_int_equal(len_at(f.json[3], "choices"), 0);
            assert_int_equal(int_at(f.json[3], "usage.prompt_tokens"), 5);
            assert_int_equal(int_at(f.json[3], "usage.total_tokens"), 12);
        }
        assert_string_equal(f.data[f.n - 1], "[DONE]");
        frames_free(&f);
        hx_buf_free(&out);
        hx_render_free(&r);
    }
}

static void test_render_hapax(void **state)
{
    (void)state;
    hx_render r;
    hx_buf out;
    hx_render_init(&r, &hx_render_hapax, false, false, "m");
    hx_event evs[] = {ev_meta("x", "y"), ev_text("Hello \"w\"\n"), ev_text("\\ \xc3\xa9\t\x01"),
                      ev_call(0, "c", "f"), ev_args(0, "{}"), ev_finish("stop"), ev_usage(1, 2)};
    collect_all(&r, evs, sizeof evs / sizeof evs[0]);
    hx_buf_init(&out, 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    assert_string_equal(out.data, "{\"content\":\"Hello \\\"w\\\"\\n\\\\ \xc3\xa9\\t\\u0001\"}\n");
    hx_buf_free(&out);
    hx_render_free(&r);

    hx_render_init(&r, &hx_render_hapax, false, false, "m");
    hx_buf_init(&out, 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    assert_string_equal(out.data, "{\"content\":\"\"}\n");
    hx_buf_free(&out);
    hx_render_free(&r);
}

static void test_render_collect_limits(void **state)
{
    (void)state;
    hx_render r;
    hx_render_init(&r, &hx_render_openai_chat, false, false, "m");
    hx_event bad = ev_call(HX_RENDER_MAX_TOOLS, "c", "f");
    assert_int_equal(hx_render_collect(&r, &bad), -1);
    bad = ev_args(-1, "x");
    assert_int_equal(hx_render_collect(&r, &bad), -1);
    hx_event last = ev_call(HX_RENDER_MAX_TOOLS - 1, "c", "f");
    assert_int_equal(hx_render_collect(&r, &last), 0);
    assert_int_equal(r.ntools, HX_RENDER_MAX_TOOLS);
    /* the first id / name win; args accumulate */
    hx_event again = ev_call(HX_RENDER_MAX_TOOLS - 1, "c2", "f2");
    assert_int_equal(hx_render_collect(&r, &again), 0);
    assert_string_equal(r.tools[HX_RENDER_MAX_TOOLS - 1].id, "c");
    assert_string_equal(r.tools[HX_RENDER_MAX_TOOLS - 1].name, "f");
    hx_render_free(&r);

    /* streamed: an out-of-range tool index fails the event */
    hx_buf out;
    hx_render_init(&r, &hx_render_openai_chat, true, false, "m");
    hx_buf_init(&out, 0);
    bad = ev_call(HX_RENDER_MAX_TOOLS + 5, "c", "f");
    assert_int_equal(r.vt->stream_event(&r, &bad, &out), -1);
    hx_buf_free(&out);
    hx_render_free(&r);
}

/* ---- allocation failures ---------------------------------------------------------- */

static const char SWEEP_CANON[] =
    "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, a message long enough to make the "
    "body buffer grow more than once ............................................................................"
    "...................................................................................................\"}],"
    "\"temperature\":0.7,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}";

static int sweep_build_once(char *base, bool stream, json_object *canon)
{
    hx_provider p = oa_provider(base, "sk-sweep");
    hx_up_request req;
    hx_up_request_init(&req);
    char err[64] = "";
    int rc = hx_adapter_openai.build_chat(&p, canon, stream, &req, err, sizeof err);
    if (rc != 0)
        assert_string_equal(err, "out of memory");
    hx_up_request_free(&req);
    return rc;
}

static void test_alloc_build_chat(void **state)
{
    (void)state;
    json_object *canon = jparse(SWEEP_CANON);
    char *bases[] = {"https://api.openai.com/v1", "https://r.openai.azure.com/openai/deployments/d?api-version=1"};
    for (size_t k = 0; k < 2; k++) {
        for (int stream = 0; stream <= 1; stream++) {
            unsigned long before = hx_alloc_count();
            assert_int_equal(sweep_build_once(bases[k], stream, canon), 0);
            unsigned long total = hx_alloc_count() - before;
            assert_true(total >= 3);
            for (int sticky = 0; sticky <= 1; sticky++)
                for (unsigned long n = 1; n <= total; n++) {
                    hx_alloc_fail_at(n, sticky);
                    int rc = sweep_build_once(bases[k], stream, canon);
                    hx_alloc_fail_at(0, 0);
                    if (rc != -1)
                        fail_msg("build_chat succeeded with allocation %lu of %lu failing", n, total);
                }
        }
    }
    json_object_put(canon);

    /* probe */
    hx_provider p = oa_provider("https://api.openai.com/v1", "k");
    hx_up_request req;
    unsigned long before = hx_alloc_count();
    hx_up_request_init(&req);
    assert_int_equal(hx_adapter_openai.build_probe(&p, &req), 0);
    hx_up_request_free(&req);
    unsigned long total = hx_alloc_count() - before;
    for (unsigned long n = 1; n <= total; n++) {
        hx_up_request_init(&req);
        hx_alloc_fail_at(n, 1);
        int rc = hx_adapter_openai.build_probe(&p, &req);
        hx_alloc_fail_at(0, 0);
        assert_int_equal(rc, -1);
        hx_up_request_free(&req);
    }
}

#define SWEEP_TEXT "Some text \"quoted\" that goes on for a while .............................."
static const hx_event BODY_EVENTS[] = {
    {.type = HX_EV_META, .id = "chatcmpl-sweep", .name = "gpt-sweep"},
    {.type = HX_EV_TEXT, .text = SWEEP_TEXT, .len = sizeof SWEEP_TEXT - 1},
    {.type = HX_EV_TOOL_CALL, .index = 0, .id = "call_1", .name = "get_weather"},
    {.type = HX_EV_TOOL_ARGS, .index = 0, .text = "{\"city\":\"Paris\"}", .len = 16},
    {.type = HX_EV_TOOL_CALL, .index = 1, .id = "call_2", .name = "now"},
    {.type = HX_EV_TOOL_ARGS, .index = 1, .text = "{}", .len = 2},
    {.type = HX_EV_FINISH, .finish = "tool_calls"},
    {.type = HX_EV_USAGE, .prompt_tokens = 10, .completion_tokens = 20},
};

/* Collects (may fail) then renders; returns the body's result or -1. */
static int sweep_body_once(const hx_render_vt *vt, char *copy, size_t cap)
{
    hx_render r;
    hx_buf out;
    hx_render_init(&r, vt, false, false, "m");
    hx_buf_init(&out, 0);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof BODY_EVENTS / sizeof BODY_EVENTS[0]; i++)
        rc = hx_render_collect(&r, &BODY_EVENTS[i]);
    if (rc == 0)
        rc = vt->body(&r, &out);
    if (rc == 0 && copy)
        snprintf(copy, cap, "%s", out.data);
    hx_buf_free(&out);
    hx_render_free(&r);
    return rc;
}

/* Streams every event (may fail). */
static int sweep_stream_once(void)
{
    hx_render r;
    hx_buf out;
    hx_render_init(&r, &hx_render_openai_chat, true, true, "m");
    hx_buf_init(&out, 0);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof BODY_EVENTS / sizeof BODY_EVENTS[0]; i++)
        rc = r.vt->stream_event(&r, &BODY_EVENTS[i], &out);
    if (rc == 0)
        rc = r.vt->stream_end(&r, &out);
    hx_buf_free(&out);
    hx_render_free(&r);
    return rc;
}

static void test_alloc_render(void **state)
{
    (void)state;
    const hx_render_vt *vts[] = {&hx_render_openai_chat, &hx_render_openai_legacy, &hx_render_hapax};
    for (size_t k = 0; k < 3; k++) {
        char good[4096];
        unsigned long before = hx_alloc_count();
        assert_int_equal(sweep_body_once(vts[k], good, sizeof good), 0);
        unsigned long total = hx_alloc_count() - before;
        assert_true(total >= 2);
        for (unsigned long n = 1; n <= total; n++) {
            hx_alloc_fail_at(n, 1);
            int rc = sweep_body_once(vts[k], NULL, 0);
            hx_alloc_fail_at(0, 0);
            /* the renderers return non-zero (some 1 rather than -1) */
            if (rc == 0)
                fail_msg("renderer %zu succeeded with allocation %lu of %lu failing", k, n, total);
        }
    }

    /* only the body's own allocations failing (collect succeeded) */
    hx_render r;
    hx_render_init(&r, &hx_render_openai_chat, false, false, "m");
    for (size_t i = 0; i < sizeof BODY_EVENTS / sizeof BODY_EVENTS[0]; i++)
        assert_int_equal(hx_render_collect(&r, &BODY_EVENTS[i]), 0);
    hx_buf out;
    hx_buf_init(&out, 0);
    unsigned long before = hx_alloc_count();
    assert_int_equal(r.vt->body(&r, &out), 0);
    unsigned long total = hx_alloc_count() - before;
    char *want = strdup(out.data);
    hx_buf_free(&out);
    assert_true(total >= 1);
    for (unsigned long n = 1; n <= total; n++) {
        hx_buf_init(&out, 0);
        hx_alloc_fail_at(n, 1);
        int rc = r.vt->body(&r, &out);
        hx_alloc_fail_at(0, 0);
        assert_int_not_equal(rc, 0);
        hx_buf_free(&out);
    }
    /* and it still renders the same afterwards */
    hx_buf_init(&out, 0);
    assert_int_equal(r.vt->body(&r, &out), 0);
    assert_string_equal(out.data, want);
    free(want);
    hx_buf_free(&out);
    hx_render_free(&r);

    /* streaming */
    before = hx_alloc_count();
    assert_int_equal(sweep_stream_once(), 0);
    total = hx_alloc_count() - before;
    for (unsigned long n = 1; n <= total; n++) {
        hx_alloc_fail_at(n, 1);
        int rc = sweep_stream_once();
        hx_alloc_fail_at(0, 0);
        assert_int_not_equal(rc, 0);
    }
}

/* ---- provider chain ------------------------------------------------------------------ */

static const char CHAIN_YAML[] = "llm:\n"
                                 "  provider: openai\n"
                                 "  model: gpt-4o\n"
                                 "  api_key: sk-primary\n"
                                 "  backup_providers:\n"
                                 "    - name: claude\n"
                                 "      provider: anthropic\n"
                                 "      model: claude-3-5-haiku-latest\n"
                                 "      api_key: sk-ant\n"
                                 "      aliases: [haiku, fast]\n"
                                 "    - provider: ollama\n"
                                 "      model: llama3\n"
                                 "      endpoint: http://localhost:11434\n"
                                 "      aliases: [local, fast]\n";

static void expect_chain(const hx_providers *ps, const char *model, const char *want)
{
    int idx[8];
    size_t n = hx_providers_chain(ps, model, idx, NULL, 8);
    char got[64] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", i ? "," : "", idx[i]);
    if (strcmp(got, want) != 0)
        fail_msg("chain for \"%s\": got [%s], want [%s]", model ? model : "(null)", got, want);
}

static void test_providers_chain(void **state)
{
    (void)state;
    hx_config *c = load_cfg(CHAIN_YAML);
    hx_providers ps;
    char err[128] = "";
    assert_int_equal(hx_providers_build(c, &ps, false, err, sizeof err), 0);
    assert_int_equal(ps.n, 3);
    assert_string_equal(ps.items[0].name, "openai");
    assert_ptr_equal(ps.items[0].ad, &hx_adapter_openai);
    assert_string_equal(ps.items[0].model, "gpt-4o");
    assert_string_equal(ps.items[0].api_key, "sk-primary");
    assert_string_equal(ps.items[0].base_url, "https://api.openai.com/v1");
    assert_true(ps.items[0].usable);
    assert_int_equal(ps.items[0].index, 0);
    assert_string_equal(ps.items[1].name, "claude");
    assert_ptr_equal(ps.items[1].ad, &hx_adapter_anthropic);
    assert_string_equal(ps.items[1].base_url, "https://api.anthropic.com/v1");
    assert_true(ps.items[1].usable);
    assert_int_equal(ps.items[1].index, 1);
    assert_string_equal(ps.items[2].name, "ollama");
    assert_ptr_equal(ps.items[2].ad, &hx_adapter_ollama);
    assert_string_equal(ps.items[2].base_url, "http://localhost:11434");
    assert_true(ps.items[2].usable);
    assert_int_equal(ps.items[2].index, 2);

    expect_chain(&ps, NULL, "0,1,2");
    expect_chain(&ps, "", "0,1,2");
    expect_chain(&ps, "default", "0,1,2");
    expect_chain(&ps, "gpt-4o", "0");
    expect_chain(&ps, "claude-3-5-haiku-latest", "1");
    expect_chain(&ps, "haiku", "1");
    expect_chain(&ps, "llama3", "2");
    expect_chain(&ps, "local", "2");
    expect_chain(&ps, "fast", "1,2"); /* an alias shared by two: both, in order */
    expect_chain(&ps, "claude", "1"); /* the provider's name */
    expect_chain(&ps, "gpt-5", "");
    expect_chain(&ps, "Haiku", ""); /* exact match */
    /* the capacity is respected */
    int idx[2] = {-1, -1};
    assert_int_equal(hx_providers_chain(&ps, "default", idx, NULL, 1), 1);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], -1);
    hx_providers_free(&ps);
    assert_int_equal(ps.n, 0);
    assert_null(ps.items);
    hx_config_unref(c);
}

static void test_providers_keys(void **state)
{
    (void)state;
    hx_config *c = load_cfg("llm:\n"
                            "  provider: anthropic\n"
                            "  model: claude-sonnet-4-5\n"
                            "  backup_providers:\n"
                            "    - provider: openai\n"
                            "      model: gpt-4o-mini\n"
                            "    - name: vllm\n"
                            "      provider: openai\n"
                            "      model: qwen\n"
                            "      endpoint: http://gpu:8000/v1\n"
                            "    - provider: ollama\n"
                            "      model: llama3\n");
    hx_providers ps;
    char err[128] = "";
    assert_int_equal(hx_providers_build(c, &ps, false, err, sizeof err), 0);
    assert_int_equal(ps.n, 4);
    assert_false(ps.items[0].usable);
    assert_non_null(strstr(ps.items[0].reason, "ANTHROPIC_API_KEY"));
    assert_false(ps.items[1].usable);
    assert_non_null(strstr(ps.items[1].reason, "OPENAI_API_KEY"));
    assert_true(ps.items[2].usable); /* custom endpoint: no key needed */
    assert_string_equal(ps.items[2].base_url, "http://gpu:8000/v1");
    assert_string_equal(ps.items[2].api_key, "");
    assert_true(ps.items[3].usable); /* ollama needs no key */
    /* unusable providers stay in the chain (the proxy skips them) */
    expect_chain(&ps, "default", "0,1,2,3");
    hx_providers_free(&ps);
    hx_config_unref(c);
}

static void test_providers_duplicate_names(void **state)
{
    (void)state;
    hx_config *c = load_cfg("llm:\n"
                            "  provider: openai\n"
                            "  model: gpt-4o\n"
                            "  api_key: k\n"
                            "  backup_providers:\n"
                            "    - provider: openai\n"
                            "      model: gpt-4o-mini\n"
                            "      api_key: k2\n"
                            "    - provider: ollama\n"
                            "      model: llama3\n");
    hx_providers ps;
    char err[128] = "";
    assert_int_equal(hx_providers_build(c, &ps, false, err, sizeof err), 0);
    assert_int_equal(ps.n, 3);
    assert_string_equal(ps.items[0].name, "openai");
    assert_true(strncmp(ps.items[1].name, "openai", 6) == 0);
    assert_string_not_equal(ps.items[1].name, "openai");
    assert_string_equal(ps.items[1].name, "openai-2");
    assert_string_equal(ps.items[2].name, "ollama");
    expect_chain(&ps, "gpt-4o-mini", "1");
    expect_chain(&ps, "openai-2", "1");
    hx_providers_free(&ps);
    hx_config_unref(c);
}

static void test_alloc_providers(void **state)
{
    (void)state;
    hx_config *c = load_cfg(CHAIN_YAML);
    hx_providers ps;
    char err[128];
    unsigned long before = hx_alloc_count();
    assert_int_equal(hx_providers_build(c, &ps, false, err, sizeof err), 0);
    unsigned long total = hx_alloc_count() - before;
    hx_providers_free(&ps);
    assert_true(total >= 4);
    for (unsigned long n = 1; n <= total; n++) {
        hx_alloc_fail_at(n, 1);
        int rc = hx_providers_build(c, &ps, false, err, sizeof err);
        hx_alloc_fail_at(0, 0);
        assert_int_equal(rc, -1);
        assert_string_equal(err, "out of memory");
        assert_int_equal(ps.n, 0);
        assert_null(ps.items);
    }
    hx_config_unref(c);

    /* the rename of a duplicate name failing */
    c = load_cfg("llm:\n  provider: openai\n  model: a\n  api_key: k\n  backup_providers:\n"
                 "    - {provider: openai, model: b, api_key: k}\n");
    before = hx_alloc_count();
    assert_int_equal(hx_providers_build(c, &ps, false, err, sizeof err), 0);
    total = hx_alloc_count() - before;
    hx_providers_free(&ps);
    for (unsigned long n = 1; n <= total; n++) {
        hx_alloc_fail_at(n, 0);
        int rc = hx_providers_build(c, &ps, false, err, sizeof err);
        hx_alloc_fail_at(0, 0);
        assert_int_equal(rc, -1);
        hx_providers_free(&ps);
    }
    hx_config_unref(c);
}

#ifndef TEST_OPENAI_NO_MAIN
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_url),
        cmocka_unit_test(test_build_azure),
        cmocka_unit_test(test_build_auth),
        cmocka_unit_test(test_build_body_passthrough),
        cmocka_unit_test(test_build_stream),
        cmocka_unit_test(test_build_probe),
        cmocka_unit_test(test_parse_nonstream),
        cmocka_unit_test(test_parse_nonstream_errors),
        cmocka_unit_test(test_parse_stream),
        cmocka_unit_test(test_parse_stream_errors),
        cmocka_unit_test(test_error_message),
        cmocka_unit_test(test_in_chat),
        cmocka_unit_test(test_in_completions_limits),
        cmocka_unit_test(test_in_completions_shapes),
        cmocka_unit_test(test_render_chat_stream),
        cmocka_unit_test(test_render_stream_error),
        cmocka_unit_test(test_render_chat_body),
        cmocka_unit_test(test_render_legacy),
        cmocka_unit_test(test_render_hapax),
        cmocka_unit_test(test_render_collect_limits),
        cmocka_unit_test(test_alloc_build_chat),
        cmocka_unit_test(test_alloc_render),
        cmocka_unit_test(test_providers_chain),
        cmocka_unit_test(test_providers_keys),
        cmocka_unit_test(test_providers_duplicate_names),
        cmocka_unit_test(test_alloc_providers),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
#endif
