/* OpenAI and every OpenAI-compatible endpoint (Groq, Mistral, DeepSeek,
 * vLLM, llama.cpp server, LM Studio, Azure OpenAI). The canonical request
 * is already in this format: unknown fields pass through untouched and
 * numbers keep their original text (json-c keeps it). */
#include <stdio.h>
#include <string.h>

#include "provider/provider.h"
#include "provider/sse.h"
#include "util/alloc.h"
#include "util/json.h"

#define OPENAI_BODY_MAX (64 * 1024 * 1024)

/* Azure keeps its api-version in the query string, and its keys go in an
 * `api-key` header: endpoint "https://R.openai.azure.com/openai/deployments/D?api-version=V". */
static char *endpoint_url(const hx_provider *p, const char *path)
{
    const char *q = strchr(p->base_url, '?');
    if (q == NULL)
        return hx_url_join(p->base_url, path);
    char *base = hx_strndup(p->base_url, (size_t)(q - p->base_url));
    char *u = base ? hx_url_join(base, path) : NULL;
    hx_free(base);
    if (u == NULL)
        return NULL;
    size_t ul = strlen(u), ql = strlen(q);
    char *full = hx_malloc(ul + ql + 1);
    if (full) {
        memcpy(full, u, ul);
        memcpy(full + ul, q, ql + 1);
    }
    hx_free(u);
    return full;
}

/* Azure OpenAI: its hosts, or any endpoint carrying ?api-version=. */
static bool is_azure(const hx_provider *p)
{
    return strstr(p->base_url, ".azure.com") != NULL || strstr(p->base_url, "api-version=") != NULL;
}

static int add_auth(const hx_provider *p, hx_up_request *out)
{
    if (p->api_key[0] == '\0')
        return 0;
    if (is_azure(p))
        return hx_headers_add(&out->headers, "api-key", p->api_key);
    hx_buf v;
    hx_buf_init(&v, HX_PROVIDER_AUTH_MAX);
    int rc = hx_buf_printf(&v, "Bearer %s", p->api_key) == 0 ? hx_headers_add(&out->headers, "Authorization", v.data) : -1;
    hx_buf_free(&v);
    return rc;
}

/* OpenAI itself (not a compatible server): no top_k, no cache_control
 * markers (it caches prompts by itself). */
static bool is_openai_proper(const hx_provider *p)
{
    return strstr(p->base_url, "api.openai.com") != NULL || is_azure(p);
}

/* A copy of an array of objects without their (and their content parts')
 * cache_control members; a new reference to arr when none has one. */
static json_object *without_cache(json_object *arr)
{
    size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    bool any = false;
    for (size_t i = 0; i < n && !any; i++) {
        json_object *e = json_object_array_get_idx(arr, i), *c = NULL;
        any = json_object_object_get_ex(e, "cache_control", NULL);
        if (json_object_object_get_ex(e, "content", &c) && json_object_is_type(c, json_type_array))
            for (size_t j = 0; j < json_object_array_length(c) && !any; j++)
                any = json_object_object_get_ex(json_object_array_get_idx(c, j), "cache_control", NULL);
    }
    if (!any)
        return json_object_get(arr);
    json_object *copy = NULL;
    if (json_object_deep_copy(arr, &copy, NULL) != 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(copy, i), *c = NULL;
        json_object_object_del(e, "cache_control");
        if (json_object_object_get_ex(e, "content", &c) && json_object_is_type(c, json_type_array))
            for (size_t j = 0; j < json_object_array_length(c); j++)
                json_object_object_del(json_object_array_get_idx(c, j), "cache_control");
    }
    return copy;
}

/* An Anthropic client's structured output arrives as a json_schema
 * response_format without the name OpenAI requires: it gets one, and
 * strict (Anthropic always enforces the schema). 1 when added here. */
static int named_schema(json_object *rf, json_object *body, char *err, size_t errlen)
{
    json_object *type = NULL, *js = NULL, *copy = NULL;
    if (!json_object_object_get_ex(rf, "type", &type) || !json_object_is_type(type, json_type_string) ||
        strcmp(json_object_get_string(type), "json_schema") != 0 || !json_object_object_get_ex(rf, "json_schema", &js) ||
        !json_object_is_type(js, json_type_object) || json_object_object_get_ex(js, "name", NULL))
        return 0;
    json_object *njs = NULL;
    if (json_object_deep_copy(rf, &copy, NULL) != 0 || !json_object_object_get_ex(copy, "json_schema", &njs) ||
        json_object_object_add(njs, "name", json_object_new_string("response")) != 0 ||
        (!json_object_object_get_ex(njs, "strict", NULL) &&
         json_object_object_add(njs, "strict", json_object_new_boolean(1)) != 0) ||
        json_object_object_add(body, "response_format", copy) != 0) {
        json_object_put(copy);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 1;
}

/* An Anthropic client's members in OpenAI's terms: thinking →
 * reasoning_effort, metadata.user_id → user, service_tier standard_only →
 * default. 1 when k was handled here (added or left out), 0 when it goes
 * as it is, -1 on error. */
static int translate_member(const hx_provider *p, json_object *canon, const char *k, json_object *v,
                            json_object *body, char *err, size_t errlen)
{
    if (strcmp(k, "top_k") == 0 && is_openai_proper(p))
        return v ? hx_canon_refuse_why(p, err, errlen, "top_k", "OpenAI has no top_k") : 1;
    if (strcmp(k, "thinking") == 0) {
        bool bad;
        const char *effort = hx_canon_effort_of(v, &bad);
        if (bad)
            return hx_canon_refuse_why(p, err, errlen, "thinking", "expected type enabled with budget_tokens, adaptive or disabled");
        if (effort && !json_object_object_get_ex(canon, "reasoning_effort", NULL))
            json_object_object_add(body, "reasoning_effort", json_object_new_string(effort));
        return 1; /* disabled: no reasoning_effort, the model's default */
    }
    if (strcmp(k, "metadata") == 0 && json_object_is_type(v, json_type_object) &&
        json_object_object_length(v) == 1 && json_object_object_get_ex(v, "user_id", NULL)) {
        /* Anthropic's end-user id is OpenAI's `user`; OpenAI's metadata
         * needs store and means something else. */
        json_object *uid = NULL;
        json_object_object_get_ex(v, "user_id", &uid);
        if (!json_object_object_get_ex(canon, "user", NULL) && uid)
            json_object_object_add(body, "user", json_object_get(uid));
        return 1;
    }
    if (strcmp(k, "service_tier") == 0 && json_object_is_type(v, json_type_string) &&
        strcmp(json_object_get_string(v), "standard_only") == 0) {
        json_object_object_add(body, "service_tier", json_object_new_string("default"));
        return 1;
    }
    if (strcmp(k, "response_format") == 0)
        return named_schema(v, body, err, errlen);
    if ((strcmp(k, "messages") == 0 || strcmp(k, "tools") == 0) && is_openai_proper(p)) {
        json_object *c = without_cache(v);
        if (c == NULL || json_object_object_add(body, k, c) != 0) {
            json_object_put(c);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 1;
    }
    return 0;
}

static int build_chat(const hx_provider *p, json_object *canon, bool stream, hx_up_request *out, char *err,
                      size_t errlen)
{
    json_object *body = json_object_new_object();
    if (body == NULL)
        goto oom;
    json_object_object_foreach(canon, k, v) {
        if (strcmp(k, "model") == 0 || strcmp(k, "stream") == 0 || strcmp(k, "stream_options") == 0)
            continue;
        /* OpenAI rejects top_k (an Anthropic client's): refused by name;
         * compatible servers such as vLLM take it. */
        int t = translate_member(p, canon, k, v, body, err, errlen);
        if (t < 0) {
            json_object_put(body);
            return -1;
        }
        if (t == 0)
            json_object_object_add(body, k, json_object_get(v));
    }
    json_object_object_add(body, "model", json_object_new_string(p->model));
    if (stream) {
        json_object_object_add(body, "stream", json_object_new_boolean(1));
        /* Always ask for usage: the gateway counts tokens; the renderer
         * drops the usage chunk when the client did not ask for it. */
        json_object *so = json_object_new_object();
        json_object_object_add(so, "include_usage", json_object_new_boolean(1));
        json_object_object_add(body, "stream_options", so);
    }
    out->method = "POST";
    out->url = endpoint_url(p, "chat/completions");
    if (out->url == NULL || hx_json_append(&out->body, body) != 0 ||
        hx_headers_add(&out->headers, "Content-Type", "application/json") != 0 || add_auth(p, out) != 0)
        goto oom;
    if (stream && hx_headers_add(&out->headers, "Accept", "text/event-stream") != 0)
        goto oom;
    json_object_put(body);
    return 0;
oom:
    json_object_put(body);
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* ---- the Chat Completions API, natively --------------------------------- */

/* POST {base}/PATH with the client's own body, `model` replacing its model
 * (see hx_native_body): what every native OpenAI API sends. */
static int native_post(const hx_provider *p, const char *path, const char *model, const hx_req *r,
                       hx_up_request *out, char *err, size_t errlen)
{
    out->method = "POST";
    out->url = endpoint_url(p, path);
    if (out->url == NULL || hx_native_body(r, model, &out->body) != 0 ||
        hx_headers_add(&out->headers, "Content-Type", "application/json") != 0 || add_auth(p, out) != 0) {
        snprintf(err, errlen, "the body cannot go as it is (out of memory, or an ambiguous model member)");
        return -1;
    }
    return 0;
}

/* A non-streamed chat request goes up as the client wrote it (model
 * replaced). Streams are rebuilt: the gateway adds stream_options to count
 * the tokens, and the relay drops the usage chunk the client did not ask
 * for. */
static int chat_build(const hx_provider *p, const char *model, const hx_req *r, bool stream, hx_up_request *out,
                      char *err, size_t errlen)
{
    const hx_buf *b = &r->body;
    snprintf(err, errlen, "the body is rebuilt");
    if (stream || (is_openai_proper(p) && memmem(b->data, b->len, "\"top_k\"", 7) != NULL))
        return -1; /* top_k is refused by name: see build_chat */
    return native_post(p, "chat/completions", model, r, out, err, errlen);
}

/* The last "usage":{ of an answer or event: the real member comes after
 * the output, and text (a string) cannot hold the unescaped quotes, while
 * a member a model controls (a tool call's arguments sent as an object by
 * a compatible server) may well be named "prompt_tokens". NULL when none. */
static const char *last_usage(const char *data, size_t len)
{
    const char *u = NULL, *q = data, *end = data + len;
    while ((q = memmem(q, (size_t)(end - q), "\"usage\"", 7)) != NULL) {
        const char *k = q;
        q += 7;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == ':'))
            q++;
        if (q < end && *q == '{')
            u = k;
    }
    return u;
}

static void chat_usage(hx_relay *rl, const char *data, size_t len)
{
    const char *u = last_usage(data, len);
    if (u == NULL)
        return;
    len -= (size_t)(u - data);
    data = u;
    int64_t pt = hx_json_find_int(data, len, "prompt_tokens");
    int64_t ct = hx_json_find_int(data, len, "completion_tokens");
    rl->prompt_tokens = pt > 0 ? pt : 0;
    rl->completion_tokens = ct > 0 ? ct : 0;
    rl->usage_seen = pt >= 0 || ct >= 0;
}

static int chat_stream_event(hx_relay *rl, const char *event, const char *data, size_t len)
{
    (void)event;
    if (rl->done)
        return 1;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        rl->done = true;
        return 1; /* the gateway writes its own at the end */
    }
    if (len < 2 || data[0] != '{' || !hx_json_valid(data, len)) {
        snprintf(rl->err, sizeof rl->err, "malformed event from upstream");
        return -1;
    }
    if (len > 9 && memcmp(data, "{\"error\"", 8) == 0) {
        char m[128];
        hx_adapter_openai.error_message(data, len, m, sizeof m);
        snprintf(rl->err, sizeof rl->err, "%s", m);
        return -1;
    }
    if (memmem(data, len, "\"usage\":{", 9) != NULL) {
        chat_usage(rl, data, len);
        /* the usage chunk the gateway asked for on the client's behalf */
        if (!rl->want_usage && memmem(data, len, "\"choices\":[]", 12) != NULL)
            return 1;
    }
    return 0;
}

static int chat_body(hx_relay *rl, const char *data, size_t len)
{
    if (!hx_json_valid(data, len) || memmem(data, len, "\"choices\"", 9) == NULL) {
        snprintf(rl->err, sizeof rl->err, "upstream returned malformed JSON");
        return -1;
    }
    chat_usage(rl, data, len);
    return 0;
}

static const hx_native native_chat = {
    .path = "chat/completions",
    .build = chat_build,
    .stream_event = chat_stream_event,
    .stream_end = "data: [DONE]\n\n",
    .body = chat_body,
};

/* ---- the embeddings API, natively ----------------------------------------- */

/* The client's body as it is (model replaced): encoding_format, dimensions,
 * user and any member a compatible server knows reach it unchanged. */
static int embeddings_build(const hx_provider *p, const char *model, const hx_req *r, bool stream,
                            hx_up_request *out, char *err, size_t errlen)
{
    (void)stream;
    return native_post(p, "embeddings", model, r, out, err, errlen);
}

/* ---- the Responses API, natively ------------------------------------------ */

/* The body as the client wrote it (model replaced) to {base}/responses:
 * built-in tools, previous_response_id of OpenAI's own store and every
 * other member reach OpenAI unchanged. */
static int responses_build(const hx_provider *p, const char *model, const hx_req *r, bool stream,
                           hx_up_request *out, char *err, size_t errlen)
{
    (void)stream;
    return native_post(p, "responses", model, r, out, err, errlen);
}

static int embeddings_body(hx_relay *rl, const char *data, size_t len)
{
    if (!hx_json_valid(data, len) || memmem(data, len, "\"data\"", 6) == NULL) {
        snprintf(rl->err, sizeof rl->err, "upstream returned malformed JSON");
        return -1;
    }
    int64_t pt = hx_json_find_int(data, len, "prompt_tokens");
    rl->prompt_tokens = pt > 0 ? pt : 0;
    rl->completion_tokens = 0;
    rl->usage_seen = pt >= 0;
    return 0;
}

static const hx_native native_embeddings = {
    .path = "embeddings",
    .build = embeddings_build,
    .body = embeddings_body,
};

/* Usage of a Response object: its last "usage" member (after the output,
 * whose text cannot hold an unescaped quote). */
static void responses_usage(hx_relay *rl, const char *data, size_t len)
{
    const char *u = last_usage(data, len), *end = data + len;
    if (u == NULL)
        return;
    int64_t in = hx_json_find_int(u, (size_t)(end - u), "input_tokens");
    int64_t out = hx_json_find_int(u, (size_t)(end - u), "output_tokens");
    rl->prompt_tokens = in > 0 ? in : 0;
    rl->completion_tokens = out > 0 ? out : 0;
    rl->usage_seen = in >= 0 || out >= 0;
}

static bool is_event(const char *event, const char *name)
{
    return event && strcmp(event, name) == 0;
}

/* Every event goes on as it is; the stream ends with response.completed,
 * response.incomplete, response.failed or an `error` event (relayed too:
 * the client reads the upstream's own failure in its own format). */
static int responses_stream_event(hx_relay *rl, const char *event, const char *data, size_t len)
{
    if (rl->done)
        return 1;
    if (len < 2 || data[0] != '{' || !hx_json_valid(data, len)) {
        snprintf(rl->err, sizeof rl->err, "malformed event from upstream");
        return -1;
    }
    if (is_event(event, "response.completed") || is_event(event, "response.incomplete") ||
        is_event(event, "response.failed") || is_event(event, "error")) {
        responses_usage(rl, data, len);
        rl->done = true;
    }
    return 0;
}

static int responses_body(hx_relay *rl, const char *data, size_t len)
{
    if (len < 2 || data[0] != '{' || !hx_json_valid(data, len) || memmem(data, len, "\"output\"", 8) == NULL) {
        snprintf(rl->err, sizeof rl->err, "upstream returned malformed JSON");
        return -1;
    }
    responses_usage(rl, data, len);
    return 0;
}

static const hx_native native_responses = {
    .path = "responses",
    .build = responses_build,
    .stream_event = responses_stream_event,
    .stream_end = NULL,
    .body = responses_body,
};

static int build_probe(const hx_provider *p, hx_up_request *out)
{
    out->method = "GET";
    out->url = endpoint_url(p, "models");
    return out->url && add_auth(p, out) == 0 ? 0 : -1;
}

/* ---- response parsing ----------------------------------------------------- */

typedef struct {
    bool stream;
    bool done;       /* saw [DONE] */
    bool meta_sent;
    bool failed;
    hx_sse sse;
    hx_buf body;
    hx_event_sink sink;
    void *ud;
    char error[256];
} oa_parser;

static void *parser_new(bool stream)
{
    oa_parser *ps = hx_calloc(1, sizeof *ps);
    if (ps == NULL)
        return NULL;
    ps->stream = stream;
    hx_sse_init(&ps->sse);
    hx_buf_init(&ps->body, OPENAI_BODY_MAX);
    return ps;
}

static void parser_free(void *v)
{
    oa_parser *ps = v;
    if (ps == NULL)
        return;
    hx_sse_free(&ps->sse);
    hx_buf_free(&ps->body);
    hx_free(ps);
}

static const char *parser_error(void *v)
{
    oa_parser *ps = v;
    return ps->error[0] ? ps->error : "malformed response from upstream";
}

static int fail(oa_parser *ps, const char *msg)
{
    if (!ps->error[0])
        snprintf(ps->error, sizeof ps->error, "%s", msg);
    ps->failed = true;
    return -1;
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static int emit(oa_parser *ps, hx_event ev)
{
    return ps->sink(ps->ud, &ev) == 0 ? 0 : fail(ps, "stopped");
}

static int emit_meta(oa_parser *ps, json_object *o)
{
    if (ps->meta_sent)
        return 0;
    ps->meta_sent = true;
    return emit(ps, (hx_event){.type = HX_EV_META, .id = str_of(o, "id"), .name = str_of(o, "model")});
}

/* Member k of object o, or NULL. */
static json_object *member(json_object *o, const char *k)
{
    json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v))
        return v;
    return NULL;
}

static int emit_usage(oa_parser *ps, json_object *o)
{
    json_object *u = member(o, "usage");
    if (u == NULL || !json_object_is_type(u, json_type_object))
        return 0;
    return emit(ps, (hx_event){.type = HX_EV_USAGE,
                               /* clamped: 1e308 → max */
                               .prompt_tokens = hx_json_tokens(member(u, "prompt_tokens")),
                               .completion_tokens = hx_json_tokens(member(u, "completion_tokens")),
                               .cache_read_tokens =
                                   hx_json_tokens(member(member(u, "prompt_tokens_details"), "cached_tokens")),
                               .reasoning_tokens = hx_json_tokens(
                                   member(member(u, "completion_tokens_details"), "reasoning_tokens"))});
}

/* A non-empty string member of m as an event of `type`. */
static int emit_text_member(oa_parser *ps, json_object *m, const char *k, hx_ev_type type)
{
    json_object *v = member(m, k);
    if (v == NULL || !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
        return 0;
    return emit(ps, (hx_event){.type = type, .text = json_object_get_string(v),
                               .len = (size_t)json_object_get_string_len(v)});
}

/* tool_calls of a message (whole) or of a delta (pieces). */
static int emit_tool_calls(oa_parser *ps, json_object *tcs)
{
    size_t n = json_object_is_type(tcs, json_type_array) ? json_object_array_length(tcs) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *tc = json_object_array_get_idx(tcs, i), *idx, *fn, *args;
        int index = json_object_object_get_ex(tc, "index", &idx) ? json_object_get_int(idx) : (int)i;
        json_object_object_get_ex(tc, "function", &fn);
        const char *id = str_of(tc, "id"), *name = str_of(fn, "name");
        if ((id || name) && emit(ps, (hx_event){.type = HX_EV_TOOL_CALL, .index = index, .id = id, .name = name}))
            return -1;
        if (fn && json_object_object_get_ex(fn, "arguments", &args) && json_object_is_type(args, json_type_string) &&
            json_object_get_string_len(args) > 0 &&
            emit(ps, (hx_event){.type = HX_EV_TOOL_ARGS, .index = index, .text = json_object_get_string(args),
                                .len = (size_t)json_object_get_string_len(args)}))
            return -1;
    }
    return 0;
}

static int emit_error_obj(oa_parser *ps, json_object *err)
{
    const char *m = json_object_is_type(err, json_type_string) ? json_object_get_string(err) : str_of(err, "message");
    char msg[256];
    snprintf(msg, sizeof msg, "%s", m ? m : "upstream reported an error");
    emit(ps, (hx_event){.type = HX_EV_ERROR, .text = msg, .len = strlen(msg)});
    return fail(ps, msg);
}

/* One choice of a chunk (delta) or of a whole response (message). */
static int emit_choice(oa_parser *ps, json_object *choice, const char *part)
{
    json_object *m, *tcs;
    if (json_object_object_get_ex(choice, part, &m) && json_object_is_type(m, json_type_object)) {
        /* Reasoning first, as it was produced: reasoning_content (DeepSeek,
         * vLLM, llama.cpp) or reasoning (OpenRouter, Ollama's /v1). */
        if (emit_text_member(ps, m, "reasoning_content", HX_EV_THINKING) ||
            emit_text_member(ps, m, "reasoning", HX_EV_THINKING) || emit_text_member(ps, m, "content", HX_EV_TEXT) ||
            emit_text_member(ps, m, "refusal", HX_EV_REFUSAL))
            return -1;
        if (json_object_object_get_ex(m, "tool_calls", &tcs) && emit_tool_calls(ps, tcs))
            return -1;
    }
    const char *finish = str_of(choice, "finish_reason");
    if (finish) {
        /* vLLM names the stop string that matched in stop_reason. */
        json_object *seq = member(choice, "stop_reason");
        hx_event f = {.type = HX_EV_FINISH, .finish = finish};
        if (strcmp(finish, "stop") == 0 && seq && json_object_is_type(seq, json_type_string)) {
            f.text = json_object_get_string(seq);
            f.len = (size_t)json_object_get_string_len(seq);
        }
        if (emit(ps, f))
            return -1;
    }
    return 0;
}

static int handle_object(oa_parser *ps, json_object *o, const char *part)
{
    json_object *err, *choices;
    if (!json_object_is_type(o, json_type_object))
        return fail(ps, "malformed event from upstream");
    if (json_object_object_get_ex(o, "error", &err) && err && !json_object_is_type(err, json_type_null))
        return emit_error_obj(ps, err);
    if (emit_meta(ps, o))
        return -1;
    if (json_object_object_get_ex(o, "choices", &choices) && json_object_is_type(choices, json_type_array)) {
        /* Only the first choice is relayed (n > 1 is not supported). */
        json_object *c0 = json_object_array_length(choices) ? json_object_array_get_idx(choices, 0) : NULL;
        if (c0 && emit_choice(ps, c0, part))
            return -1;
    } else if (!ps->stream) {
        return fail(ps, "upstream response has no choices");
    }
    return emit_usage(ps, o);
}

static int on_sse(void *ud, const char *event, const char *data, size_t len)
{
    (void)event;
    oa_parser *ps = ud;
    if (ps->done)
        return 0;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        ps->done = true;
        return 0;
    }
    json_object *o = hx_json_parse(data, len);
    if (o == NULL)
        return fail(ps, "malformed event from upstream");
    int rc = handle_object(ps, o, "delta");
    json_object_put(o);
    return rc;
}

static int parser_feed(void *v, const char *data, size_t len, hx_event_sink sink, void *ud)
{
    oa_parser *ps = v;
    ps->sink = sink;
    ps->ud = ud;
    if (ps->failed)
        return -1;
    if (!ps->stream)
        return hx_buf_append(&ps->body, data, len) == 0 ? 0 : fail(ps, "upstream response too large");
    if (hx_sse_feed(&ps->sse, data, len, on_sse, ps) != 0)
        return fail(ps, "malformed event from upstream");
    return 0;
}

static int parser_end(void *v, hx_event_sink sink, void *ud)
{
    oa_parser *ps = v;
    ps->sink = sink;
    ps->ud = ud;
    if (ps->failed)
        return -1;
    if (ps->stream) {
        if (hx_sse_end(&ps->sse, on_sse, ps) != 0)
            return fail(ps, "malformed event from upstream");
        return ps->done ? 0 : fail(ps, "upstream stream ended early");
    }
    json_object *o = hx_json_parse(ps->body.data, ps->body.len);
    if (o == NULL)
        return fail(ps, "upstream returned malformed JSON");
    int rc = handle_object(ps, o, "message");
    json_object_put(o);
    return rc;
}

static void error_message(const char *body, size_t len, char *out, size_t outlen)
{
    json_object *o = len ? hx_json_parse(body, len) : NULL;
    json_object *err;
    const char *m = NULL;
    if (o && json_object_object_get_ex(o, "error", &err)) {
        m = json_object_is_type(err, json_type_string) ? json_object_get_string(err) : str_of(err, "message");
    }
    if (m)
        snprintf(out, outlen, "%s", m);
    else
        snprintf(out, outlen, "%.*s", (int)(len < 200 ? len : 200), body ? body : "");
    json_object_put(o);
}

const hx_adapter hx_adapter_openai = {
    .name = "openai",
    .default_endpoint = "https://api.openai.com/v1",
    .key_required = true,
    .build_chat = build_chat,
    .native = {[HX_API_CHAT] = &native_chat, [HX_API_EMBEDDINGS] = &native_embeddings,
               [HX_API_RESPONSES] = &native_responses},
    .translated = {[HX_API_COUNT_TOKENS] = &hx_count_estimate},
    .build_probe = build_probe,
    .parser_new = parser_new,
    .parser_feed = parser_feed,
    .parser_end = parser_end,
    .parser_error = parser_error,
    .parser_free = parser_free,
    .error_message = error_message,
};
