#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/adapter.h"
#include "provider/provider.h"
#include "util/alloc.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* hx_provider's strings are mutable (it owns them): so are these. */
static hx_provider prov(char *key, char *base)
{
    hx_provider p;
    memset(&p, 0, sizeof p);
    p.name = "ollama";
    p.ad = &hx_adapter_ollama;
    p.model = "llama3.2";
    p.api_key = key;
    p.base_url = base;
    p.usable = true;
    return p;
}

/* Builds from canonical JSON text; returns rc, fills req/err. */
static int build(const char *canon_text, bool stream, char *key, hx_up_request *req, char *err,
                 size_t errlen)
{
    hx_provider p = prov(key, "http://localhost:11434");
    json_object *canon = json_tokener_parse(canon_text);
    assert_non_null(canon);
    int rc = hx_adapter_ollama.build_chat(&p, canon, stream, req, err, errlen);
    json_object_put(canon);
    return rc;
}

/* Builds successfully and returns the parsed upstream body. */
static json_object *build_ok(const char *canon_text, bool stream, hx_up_request *req)
{
    char err[256] = "";
    int rc = build(canon_text, stream, "", req, err, sizeof err);
    if (rc != 0)
        fail_msg("build_chat failed: %s", err);
    assert_non_null(req->body.data);
    json_object *body = json_tokener_parse(req->body.data);
    assert_non_null(body);
    return body;
}

static void build_err(const char *canon_text, const char *want)
{
    hx_up_request req;
    char err[256] = "";
    assert_int_equal(build(canon_text, false, "", &req, err, sizeof err), -1);
    assert_string_equal(err, want);
    assert_null(req.url);
    hx_up_request_free(&req);
}

static json_object *at(json_object *o, const char *path)
{
    /* dotted path; numeric segments index arrays */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *seg = strtok(buf, "."); seg && o; seg = strtok(NULL, ".")) {
        if (json_object_is_type(o, json_type_array)) {
            o = json_object_array_get_idx(o, (size_t)atoi(seg));
        } else {
            json_object *v = NULL;
            o = json_object_object_get_ex(o, seg, &v) ? v : NULL;
        }
    }
    return o;
}

static const char *str_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    assert_non_null(v);
    assert_true(json_object_is_type(v, json_type_string));
    return json_object_get_string(v);
}

/* Event recorder: each event as one string. */
#define REC_MAX 128
typedef struct {
    char *ev[REC_MAX];
    size_t n;
    size_t stop_at; /* 1-based event number to refuse; 0 = never */
} rec;

static int rec_sink(void *ud, const hx_event *e)
{
    rec *r = ud;
    if (r->stop_at && r->n + 1 == r->stop_at)
        return -1;
    assert_true(r->n < REC_MAX);
    hx_buf b;
    hx_buf_init(&b, 0);
    switch (e->type) {
    case HX_EV_META:
        hx_buf_printf(&b, "META %s %s", e->id ? e->id : "-", e->name ? e->name : "-");
        break;
    case HX_EV_TEXT:
        hx_buf_printf(&b, "TEXT %.*s", (int)e->len, e->text);
        break;
    case HX_EV_TOOL_CALL:
        hx_buf_printf(&b, "CALL %d %s %s", e->index, e->id, e->name);
        break;
    case HX_EV_TOOL_ARGS:
        hx_buf_printf(&b, "ARGS %d %.*s", e->index, (int)e->len, e->text);
        break;
    case HX_EV_FINISH:
        hx_buf_printf(&b, "FINISH %s", e->finish);
        break;
    case HX_EV_USAGE:
        hx_buf_printf(&b, "USAGE %lld %lld", (long long)e->prompt_tokens, (long long)e->completion_tokens);
        break;
    case HX_EV_ERROR:
        hx_buf_printf(&b, "ERROR %.*s", (int)e->len, e->text);
        break;
    case HX_EV_THINKING:
        hx_buf_printf(&b, "THINK %.*s", (int)e->len, e->text);
        break;
    case HX_EV_THINKING_SIGNATURE:
    case HX_EV_REDACTED_THINKING:
    case HX_EV_REFUSAL:
        hx_buf_printf(&b, "OTHER %d %.*s", (int)e->type, (int)e->len, e->text);
        break;
    }
    assert_non_null(b.data);
    r->ev[r->n++] = hx_buf_steal(&b, NULL);
    return 0;
}

static void rec_free(rec *r)
{
    for (size_t i = 0; i < r->n; i++)
        hx_free(r->ev[i]);
    r->n = 0;
}

static void rec_expect(const rec *r, const char *const *want, size_t n)
{
    for (size_t i = 0; i < r->n && i < n; i++)
        assert_string_equal(r->ev[i], want[i]);
    assert_int_equal(r->n, n);
}

/* Feeds `body` in pieces of `step` bytes (0 = whole); returns feed||end rc
 * and the parser error through errout. */
static int parse(bool stream, const char *body, size_t step, rec *r, char *errout, size_t errlen)
{
    void *ps = hx_adapter_ollama.parser_new(stream);
    assert_non_null(ps);
    size_t len = strlen(body);
    int rc = 0;
    if (step == 0)
        step = len ? len : 1;
    for (size_t off = 0; rc == 0 && off < len; off += step) {
        size_t k = len - off < step ? len - off : step;
        rc = hx_adapter_ollama.parser_feed(ps, body + off, k, rec_sink, r);
    }
    if (rc == 0)
        rc = hx_adapter_ollama.parser_end(ps, rec_sink, r);
    if (errout)
        snprintf(errout, errlen, "%s", hx_adapter_ollama.parser_error(ps));
    hx_adapter_ollama.parser_free(ps);
    return rc;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------
 * build_chat
 * ------------------------------------------------------------------------ */

static void test_build_messages(void **state)
{
    (void)state;
    hx_up_request req;
    json_object *b = build_ok("{\"model\":\"whatever\",\"messages\":["
                              "{\"role\":\"system\",\"content\":\"Be brief.\"},"
                              "{\"role\":\"developer\",\"content\":\"Dev.\"},"
                              "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hel\"},"
                              "{\"type\":\"text\",\"text\":\"lo\"}]},"
                              "{\"role\":\"assistant\",\"content\":\"Hi\"}],\"user\":\"u1\"}",
                              false, &req);
    assert_string_equal(req.url, "http://localhost:11434/api/chat");
    assert_string_equal(req.method, "POST");
    assert_string_equal(hx_headers_get(&req.headers, "Content-Type"), "application/json");
    assert_null(hx_headers_get(&req.headers, "Authorization"));
    assert_string_equal(str_at(b, "model"), "llama3.2");
    assert_int_equal(json_object_array_length(at(b, "messages")), 4);
    assert_string_equal(str_at(b, "messages.0.role"), "system");
    assert_string_equal(str_at(b, "messages.0.content"), "Be brief.");
    assert_string_equal(str_at(b, "messages.1.role"), "system");
    assert_string_equal(str_at(b, "messages.2.role"), "user");
    assert_string_equal(str_at(b, "messages.2.content"), "Hello");
    assert_null(at(b, "messages.2.images"));
    assert_string_equal(str_at(b, "messages.3.role"), "assistant");
    assert_string_equal(str_at(b, "messages.3.content"), "Hi");
    assert_null(at(b, "user"));
    assert_null(at(b, "options")); /* none of the option keys were present */
    assert_null(at(b, "tools"));
    assert_null(at(b, "format"));
    json_object_put(b);
    hx_up_request_free(&req);
}

static void test_build_stream_flag(void **state)
{
    (void)state;
    hx_up_request req;
    const char *canon = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}";
    json_object *b = build_ok(canon, false, &req);
    assert_non_null(strstr(req.body.data, "\"stream\":false"));
    assert_false(json_object_get_boolean(at(b, "stream")));
    json_object_put(b);
    hx_up_request_free(&req);

    b = build_ok("{\"messages\":[]}", true, &req);
    assert_non_null(strstr(req.body.data, "\"stream\":true"));
    json_object_put(b);
    hx_up_request_free(&req);
}

static void test_build_options(void **state)
{
    (void)state;
    hx_up_request req;
    json_object *b = build_ok("{\"messages\":[],\"temperature\":0.70,\"top_p\":1,\"seed\":42,"
                              "\"stop\":\"END\",\"max_tokens\":100,\"presence_penalty\":-0.5,"
                              "\"frequency_penalty\":0.25,\"top_k\":40,\"n\":1}",
                              false, &req);
    assert_non_null(strstr(req.body.data, "\"temperature\":0.70"));
    assert_non_null(strstr(req.body.data, "\"presence_penalty\":-0.5"));
    assert_int_equal(json_object_get_int(at(b, "options.top_p")), 1);
    assert_int_equal(json_object_get_int(at(b, "options.seed")), 42);
    assert_int_equal(json_object_get_int(at(b, "options.num_predict")), 100);
    assert_int_equal(json_object_get_int(at(b, "options.top_k")), 40);
    assert_string_equal(json_object_get_string(at(b, "options.frequency_penalty")), "0.25");
    assert_int_equal(json_object_array_length(at(b, "options.stop")), 1);
    assert_string_equal(str_at(b, "options.stop.0"), "END");
    assert_null(at(b, "options.max_tokens"));
    assert_null(at(b, "temperature"));
    assert_int_equal(json_object_object_length(at(b, "options")), 8);
    json_object_put(b);
    hx_up_request_free(&req);

    /* array stop kept; max_completion_tokens wins; null means absent */
    b = build_ok("{\"messages\":[],\"stop\":[\"a\",\"b\"],\"max_tokens\":5,"
                 "\"max_completion_tokens\":7,\"temperature\":null}",
                 false, &req);
    assert_int_equal(json_object_array_length(at(b, "options.stop")), 2);
    assert_string_equal(str_at(b, "options.stop.1"), "b");
    assert_int_equal(json_object_get_int(at(b, "options.num_predict")), 7);
    assert_null(at(b, "options.temperature"));
    assert_int_equal(json_object_object_length(at(b, "options")), 2);
    json_object_put(b);
    hx_up_request_free(&req);
}

static void test_build_images(void **state)
{
    (void)state;
    hx_up_request req;
    json_object *b = build_ok("{\"messages\":[{\"role\":\"user\",\"content\":["
                              "{\"type\":\"text\",\"text\":\"Describe\"},"
                              "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0K\"}},"
                              "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,/9j/4AAQ\","
                              "\"detail\":\"low\"}}]}]}",
                              false, &req);
    assert_string_equal(str_at(b, "messages.0.content"), "Describe");
    assert_int_equal(json_object_array_length(at(b, "messages.0.images")), 2);
    assert_string_equal(str_at(b, "messages.0.images.0"), "iVBORw0K");
    assert_string_equal(str_at(b, "messages.0.images.1"), "/9j/4AAQ");
    json_object_put(b);
    hx_up_request_free(&req);

    build_err("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
              "\"image_url\":{\"url\":\"https://example.com/cat.png\"}}]}]}",
              "image URLs must be data: URLs");
    build_err("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
              "\"image_url\":{\"url\":\"data:text/plain,hello\"}}]}]}",
              "image data URLs must be base64");
}

static void test_build_tool_calls(void **state)
{
    (void)state;
    hx_up_request req;
    json_object *b = build_ok(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_abc\",\"type\":\"function\","
        "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\",\\\"days\\\":2}\"}},"
        "{\"id\":\"call_def\",\"type\":\"function\",\"function\":{\"name\":\"now\",\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_abc\",\"content\":\"sunny\"}]}",
        false, &req);
    assert_string_equal(str_at(b, "messages.1.role"), "assistant");
    assert_string_equal(str_at(b, "messages.1.content"), "");
    assert_int_equal(json_object_array_length(at(b, "messages.1.tool_calls")), 2);
    assert_string_equal(str_at(b, "messages.1.tool_calls.0.function.name"), "get_weather");
    json_object *args = at(b, "messages.1.tool_calls.0.function.arguments");
    assert_true(json_object_is_type(args, json_type_object));
    assert_string_equal(str_at(args, "city"), "Paris");
    assert_int_equal(json_object_get_int(at(args, "days")), 2);
    args = at(b, "messages.1.tool_calls.1.function.arguments");
    assert_true(json_object_is_type(args, json_type_object));
    assert_int_equal(json_object_object_length(args), 0);
    assert_string_equal(str_at(b, "messages.2.role"), "tool");
    assert_string_equal(str_at(b, "messages.2.content"), "sunny");
    assert_string_equal(str_at(b, "messages.2.tool_name"), "get_weather");
    json_object_put(b);
    hx_up_request_free(&req);

    build_err("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
              "\"function\":{\"name\":\"f\",\"arguments\":\"{not json\"}}]}]}",
              "tool call arguments must be a JSON object");
    build_err("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
              "\"function\":{\"name\":\"f\",\"arguments\":\"[1,2]\"}}]}]}",
              "tool call arguments must be a JSON object");
}

static void test_build_tools_and_format(void **state)
{
    (void)state;
    hx_up_request req;
    const char *tools = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\","
                        "\"parameters\":{\"type\":\"object\",\"properties\":{}}}}]";
    char canon[1024];
    snprintf(canon, sizeof canon, "{\"messages\":[],%s,\"response_format\":{\"type\":\"json_object\"}}", tools);
    json_object *b = build_ok(canon, false, &req);
    assert_string_equal(str_at(b, "tools.0.type"), "function");
    assert_string_equal(str_at(b, "tools.0.function.name"), "f");
    assert_string_equal(str_at(b, "tools.0.function.parameters.type"), "object");
    assert_string_equal(str_at(b, "format"), "json");
    json_object_put(b);
    hx_up_request_free(&req);

    snprintf(canon, sizeof canon, "{\"messages\":[],%s,\"tool_choice\":\"none\"}", tools);
    b = build_ok(canon, false, &req);
    assert_null(at(b, "tools"));
    json_object_put(b);
    hx_up_request_free(&req);

    b = build_ok("{\"messages\":[],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
                 "\"schema\":{\"type\":\"object\",\"properties\":{\"age\":{\"type\":\"integer\"}}}}}}",
                 false, &req);
    assert_true(json_object_is_type(at(b, "format"), json_type_object));
    assert_string_equal(str_at(b, "format.type"), "object");
    assert_string_equal(str_at(b, "format.properties.age.type"), "integer");
    json_object_put(b);
    hx_up_request_free(&req);

    b = build_ok("{\"messages\":[],\"response_format\":{\"type\":\"text\"}}", false, &req);
    assert_null(at(b, "format"));
    json_object_put(b);
    hx_up_request_free(&req);
}

static void test_build_errors(void **state)
{
    (void)state;
    build_err("{\"model\":\"m\"}", "messages must be an array");
    build_err("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "unsupported message role");
    build_err("{\"messages\":[],\"n\":2}", "n is not supported by provider ollama (ollama): one choice per request");
    build_err("{\"messages\":[],\"temperature\":\"hot\"}", "temperature must be a number");
    build_err("{\"messages\":[],\"stop\":[1]}", "stop must be a string or an array of strings");
    build_err("{\"messages\":[],\"response_format\":{\"type\":\"json_schema\"}}",
              "response_format json_schema needs a schema object");
    build_err("{\"messages\":[],\"response_format\":{\"type\":\"yaml\"}}",
              "unsupported response_format type");
}

static void test_build_auth_and_probe(void **state)
{
    (void)state;
    hx_provider p = prov("secret-key", "https://proxy.example/ollama/");
    json_object *canon = json_tokener_parse("{\"messages\":[]}");
    hx_up_request req;
    char err[128];
    assert_int_equal(hx_adapter_ollama.build_chat(&p, canon, false, &req, err, sizeof err), 0);
    assert_string_equal(req.url, "https://proxy.example/ollama/api/chat");
    assert_string_equal(hx_headers_get(&req.headers, "Authorization"), "Bearer secret-key");
    hx_up_request_free(&req);
    json_object_put(canon);

    assert_int_equal(hx_adapter_ollama.build_probe(&p, &req), 0);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, "https://proxy.example/ollama/api/tags");
    assert_string_equal(hx_headers_get(&req.headers, "Authorization"), "Bearer secret-key");
    assert_int_equal(req.body.len, 0);
    hx_up_request_free(&req);

    p = prov(NULL, "http://localhost:11434");
    assert_int_equal(hx_adapter_ollama.build_probe(&p, &req), 0);
    assert_string_equal(req.url, "http://localhost:11434/api/tags");
    assert_null(hx_headers_get(&req.headers, "Authorization"));
    hx_up_request_free(&req);

    assert_string_equal(hx_adapter_ollama.name, "ollama");
    assert_string_equal(hx_adapter_ollama.default_endpoint, "http://localhost:11434");
    assert_false(hx_adapter_ollama.key_required);
}

/* Every allocation failure during a build is reported, never a crash or
 * a leak (ASan checks the latter). */
static void test_build_alloc_failures(void **state)
{
    (void)state;
    const char *canon_text = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
                             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]}],"
                             "\"temperature\":0.5}";
    hx_provider p = prov("k", "http://h");
    json_object *canon = json_tokener_parse(canon_text);
    int failures = 0;
    for (unsigned long n = 1; n < 200; n++) {
        hx_up_request req;
        char err[128] = "";
        hx_alloc_fail_at(n, 0);
        int rc = hx_adapter_ollama.build_chat(&p, canon, true, &req, err, sizeof err);
        hx_alloc_fail_at(0, 0);
        if (rc != 0) {
            assert_string_equal(err, "out of memory");
            assert_null(req.url);
            failures++;
        }
        hx_up_request_free(&req);
        if (rc == 0)
            break;
    }
    assert_true(failures > 0);
    json_object_put(canon);
}

/* ------------------------------------------------------------------------
 * Parser
 * ------------------------------------------------------------------------ */

static void test_parse_nonstream(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"llama3.2\",\"created_at\":\"2024-07-22T20:33:28Z\",\"message\":{\"role\":\"assistant\","
        "\"content\":\"Hello there\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":1,"
        "\"prompt_eval_count\":26,\"eval_count\":9}";
    rec r = {0};
    char err[256];
    assert_int_equal(parse(false, body, 0, &r, err, sizeof err), 0);
    const char *want[] = {"META - llama3.2", "TEXT Hello there", "FINISH stop", "USAGE 26 9"};
    rec_expect(&r, want, N(want));
    rec_free(&r);

    /* split delivery gives the same result */
    assert_int_equal(parse(false, body, 7, &r, err, sizeof err), 0);
    rec_expect(&r, want, N(want));
    rec_free(&r);
}

static void test_parse_nonstream_tools(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":["
                       "{\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris/FR\",\"n\":1.50}}},"
                       "{\"function\":{\"name\":\"now\",\"arguments\":{}}}]},"
                       "\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":10,\"eval_count\":20}";
    rec r = {0};
    assert_int_equal(parse(false, body, 0, &r, NULL, 0), 0);
    const char *want[] = {"META - qwen3",
                          "CALL 0 call_0 get_weather",
                          "ARGS 0 {\"city\":\"Paris/FR\",\"n\":1.50}",
                          "CALL 1 call_1 now",
                          "ARGS 1 {}",
                          "FINISH tool_calls",
                          "USAGE 10 20"};
    rec_expect(&r, want, N(want));
    rec_free(&r);
}

static void test_parse_nonstream_bad(void **state)
{
    (void)state;
    rec r = {0};
    char err[256];
    assert_int_equal(parse(false, "{\"model\":\"m\",\"message\":", 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "malformed response from upstream");
    assert_int_equal(r.n, 0);
    assert_int_equal(parse(false, "", 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "malformed response from upstream");
    assert_int_equal(parse(false, "{\"error\":\"model not loaded\"}", 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "model not loaded");
    const char *want[] = {"ERROR model not loaded"};
    rec_expect(&r, want, N(want));
    rec_free(&r);
}

static void test_parse_nonstream_too_large(void **state)
{
    (void)state;
    void *ps = hx_adapter_ollama.parser_new(false);
    size_t chunk = 1024 * 1024;
    char *blk = hx_malloc(chunk);
    assert_non_null(blk);
    memset(blk, ' ', chunk);
    rec r = {0};
    int rc = 0;
    size_t fed = 0;
    while (rc == 0 && fed <= (size_t)64 * 1024 * 1024) {
        rc = hx_adapter_ollama.parser_feed(ps, blk, chunk, rec_sink, &r);
        fed += chunk;
    }
    assert_int_equal(rc, -1);
    assert_int_equal(fed, (size_t)65 * 1024 * 1024);
    assert_string_equal(hx_adapter_ollama.parser_error(ps), "upstream response too large");
    assert_int_equal(hx_adapter_ollama.parser_end(ps, rec_sink, &r), -1);
    hx_adapter_ollama.parser_free(ps);
    hx_free(blk);
}

static const char STREAM[] =
    "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"The\"},"
    "\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\" sky \\u00e9\"},"
    "\"done\":false}\r\n"
    "\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\","
    "\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"a\":[1,2]}}}]},\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"!\"},"
    "\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":12,\"eval_count\":4}\n";

static void test_parse_stream_whole_and_bytewise(void **state)
{
    (void)state;
    const char *want[] = {"META - llama3.2", "TEXT The",   "TEXT  sky \xc3\xa9", "CALL 0 call_0 f",
                          "ARGS 0 {\"a\":[1,2]}", "TEXT !", "FINISH tool_calls", "USAGE 12 4"};
    rec whole = {0}, bytes = {0};
    assert_int_equal(parse(true, STREAM, 0, &whole, NULL, 0), 0);
    rec_expect(&whole, want, N(want));
    assert_int_equal(parse(true, STREAM, 1, &bytes, NULL, 0), 0);
    assert_int_equal(bytes.n, whole.n);
    for (size_t i = 0; i < whole.n; i++)
        assert_string_equal(bytes.ev[i], whole.ev[i]);
    rec_free(&whole);
    rec_free(&bytes);
}

static void test_parse_stream_last_line_unterminated(void **state)
{
    (void)state;
    const char *s = "{\"model\":\"m\",\"message\":{\"content\":\"a\"},\"done\":false}\n"
                    "{\"model\":\"m\",\"message\":{\"content\":\"\"},\"done\":true,\"done_reason\":\"length\"}";
    rec r = {0};
    assert_int_equal(parse(true, s, 3, &r, NULL, 0), 0);
    const char *want[] = {"META - m", "TEXT a", "FINISH length"}; /* no counts: no USAGE */
    rec_expect(&r, want, N(want));
    rec_free(&r);
}

static void check_reason(const char *reason_json, const char *want_finish)
{
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"m\",\"message\":{\"content\":\"x\"},\"done\":true%s,\"eval_count\":3}",
             reason_json);
    char want[64];
    snprintf(want, sizeof want, "FINISH %s", want_finish);
    for (int stream = 0; stream <= 1; stream++) {
        rec r = {0};
        assert_int_equal(parse(stream, body, 0, &r, NULL, 0), 0);
        const char *ev[] = {"META - m", "TEXT x", want, "USAGE 0 3"};
        rec_expect(&r, ev, N(ev));
        rec_free(&r);
    }
}

static void test_done_reason_mapping(void **state)
{
    (void)state;
    check_reason(",\"done_reason\":\"stop\"", "stop");
    check_reason(",\"done_reason\":\"length\"", "length");
    check_reason(",\"done_reason\":\"load\"", "stop");
    check_reason(",\"done_reason\":\"unload\"", "stop");
    check_reason("", "stop");
}

static void test_stream_error_line(void **state)
{
    (void)state;
    const char *s = "{\"model\":\"m\",\"message\":{\"content\":\"Hi\"},\"done\":false}\n"
                    "{\"error\":\"an error was encountered while running the model: out of VRAM\"}\n"
                    "{\"model\":\"m\",\"message\":{\"content\":\"never\"},\"done\":false}\n";
    for (size_t step = 0; step <= 1; step++) {
        rec r = {0};
        char err[256];
        assert_int_equal(parse(true, s, step, &r, err, sizeof err), -1);
        assert_string_equal(err, "an error was encountered while running the model: out of VRAM");
        const char *want[] = {"META - m", "TEXT Hi",
                              "ERROR an error was encountered while running the model: out of VRAM"};
        rec_expect(&r, want, N(want));
        rec_free(&r);
    }
}

static void test_stream_malformed_line(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"model\":\"m\",\"message\":{\"content\":\"a\"},\"done\":false}\nnot json\n",
        "{\"model\":\"m\",\"message\":{\"content\":\"a\"},\"done\":false}\n{\"model\":\"m\"\n",
        "{\"model\":\"m\",\"message\":{\"content\":\"a\"},\"done\":false}\n[1,2]\n",
        "{\"model\":\"m\",\"message\":{\"content\":\"a\"},\"done\":false} trailing\n",
        "data: {\"done\":true}\n",
    };
    for (size_t i = 0; i < N(bad); i++) {
        rec r = {0};
        char err[256];
        assert_int_equal(parse(true, bad[i], 0, &r, err, sizeof err), -1);
        assert_string_equal(err, "malformed event from upstream");
        for (size_t k = 0; k < r.n; k++)
            assert_null(strstr(r.ev[k], "FINISH"));
        rec_free(&r);
    }
}

static void test_stream_early_end(void **state)
{
    (void)state;
    const char *s = "{\"model\":\"m\",\"message\":{\"content\":\"a\"},\"done\":false}\n";
    rec r = {0};
    char err[256];
    assert_int_equal(parse(true, s, 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "upstream stream ended early");
    const char *want[] = {"META - m", "TEXT a"};
    rec_expect(&r, want, N(want));
    rec_free(&r);

    assert_int_equal(parse(true, "", 0, &r, err, sizeof err), -1);
    assert_string_equal(err, "upstream stream ended early");
    assert_int_equal(r.n, 0);
}

static void test_sink_stop(void **state)
{
    (void)state;
    rec r = {.stop_at = 2};
    char err[256];
    assert_int_equal(parse(true, STREAM, 0, &r, err, sizeof err), -1);
    assert_int_equal(r.n, 1); /* META only; TEXT refused */
    rec_free(&r);
    rec r2 = {.stop_at = 3};
    assert_int_equal(parse(false, "{\"model\":\"m\",\"message\":{\"content\":\"x\"},\"done\":true}", 0, &r2, err,
                           sizeof err),
                     -1);
    assert_int_equal(r2.n, 2);
    rec_free(&r2);
}

/* ------------------------------------------------------------------------
 * error_message
 * ------------------------------------------------------------------------ */

static void test_error_message(void **state)
{
    (void)state;
    char out[512];
    const char *b = "{\"error\":\"model \\\"llama9\\\" not found, try pulling it first\"}";
    hx_adapter_ollama.error_message(b, strlen(b), out, sizeof out);
    assert_string_equal(out, "model \"llama9\" not found, try pulling it first");

    b = "{\"error\":{\"message\":\"unauthorized\",\"type\":\"auth\"}}";
    hx_adapter_ollama.error_message(b, strlen(b), out, sizeof out);
    assert_string_equal(out, "unauthorized");

    b = "<html>\n<body>502 Bad Gateway</body>\n</html>";
    hx_adapter_ollama.error_message(b, strlen(b), out, sizeof out);
    assert_string_equal(out, "<html> <body>502 Bad Gateway</body> </html>");

    char big[1000];
    memset(big, 'x', sizeof big);
    hx_adapter_ollama.error_message(big, sizeof big, out, sizeof out);
    assert_int_equal(strlen(out), 200);

    hx_adapter_ollama.error_message("", 0, out, sizeof out);
    assert_true(strlen(out) > 0);

    char small[8];
    hx_adapter_ollama.error_message(big, sizeof big, small, sizeof small);
    assert_int_equal(strlen(small), 7);

    /* never cuts inside a UTF-8 sequence */
    char utf[400];
    for (size_t i = 0; i + 1 < sizeof utf; i += 2) {
        utf[i] = (char)0xc3;
        utf[i + 1] = (char)0xa9;
    }
    hx_adapter_ollama.error_message(utf + 1, sizeof utf - 1, out, sizeof out);
    size_t n = strlen(out);
    assert_true(n <= 200);
    assert_int_equal((unsigned char)out[n - 1], 0xa9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_messages),
        cmocka_unit_test(test_build_stream_flag),
        cmocka_unit_test(test_build_options),
        cmocka_unit_test(test_build_images),
        cmocka_unit_test(test_build_tool_calls),
        cmocka_unit_test(test_build_tools_and_format),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_build_auth_and_probe),
        cmocka_unit_test(test_build_alloc_failures),
        cmocka_unit_test(test_parse_nonstream),
        cmocka_unit_test(test_parse_nonstream_tools),
        cmocka_unit_test(test_parse_nonstream_bad),
        cmocka_unit_test(test_parse_nonstream_too_large),
        cmocka_unit_test(test_parse_stream_whole_and_bytewise),
        cmocka_unit_test(test_parse_stream_last_line_unterminated),
        cmocka_unit_test(test_done_reason_mapping),
        cmocka_unit_test(test_stream_error_line),
        cmocka_unit_test(test_stream_malformed_line),
        cmocka_unit_test(test_stream_early_end),
        cmocka_unit_test(test_sink_stop),
        cmocka_unit_test(test_error_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
