/* Ollama adapter: the native API (/api/chat, /api/tags).
 *
 * Requests: the canonical (OpenAI-shaped) request becomes an Ollama chat
 * request: message content flattened to a string, base64 images moved to
 * `images`, tool call arguments parsed from their JSON string into an
 * object, sampling parameters moved under `options` (numbers shared with
 * the canonical tree, so their text stays exactly as the client sent it).
 *
 * Responses: one JSON object (stream:false) or NDJSON, one object per line,
 * the last with done:true. Both go through the same chunk handler. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "provider/adapter.h"
#include "provider/ollama_int.h"
#include "provider/provider.h"
#include "provider/sse.h"
#include "util/alloc.h"
#include "util/json.h"

#define OLL_BODY_MAX ((size_t)64 * 1024 * 1024)
#define OLL_EXCERPT_MAX 200
#define OLL_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ------------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------------ */

/* Parses exactly one JSON value filling s[0..n) (whitespace around it
 * allowed): strict RFC 8259 with bounded depth and value count
 * (hx_json_parse). NULL when it is not JSON or out of memory. */
static json_object *parse_exact(const char *s, size_t n)
{
    return n ? hx_json_parse(s, n) : NULL;
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return json_object_is_type(v, json_type_null) ? NULL : v;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v = get(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static int fail_req(char *err, size_t errlen, const char *msg)
{
    /* The chain puts the provider's name in front of this message: the
     * adapter's own "ollama: " would say it twice. */
    if (strncmp(msg, "ollama: ", 8) == 0)
        msg += 8;
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return -1;
}

/* Copies s[0..n) into out as one line: control characters become spaces,
 * at most `max` bytes, never cutting a UTF-8 sequence. */
static void copy_line(char *out, size_t outlen, const char *s, size_t n, size_t max)
{
    if (outlen == 0)
        return;
    size_t lim = outlen - 1 < max ? outlen - 1 : max;
    if (n > lim) {
        n = lim;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[n] = '\0';
}

/* ------------------------------------------------------------------------
 * Request: messages
 * ------------------------------------------------------------------------ */

/* Ollama knows system, user, assistant and tool. */
static const char *map_role(const char *role)
{
    if (role == NULL)
        return NULL;
    if (strcmp(role, "developer") == 0 || strcmp(role, "system") == 0)
        return "system";
    if (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0)
        return "tool";
    if (strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0)
        return role;
    return NULL;
}

/* Appends the base64 payload of an image_url part to images. */
static int add_image(json_object *part, json_object *images, char *err, size_t errlen)
{
    json_object *iu = get(part, "image_url");
    const char *url = NULL;
    if (iu && json_object_is_type(iu, json_type_string))
        url = json_object_get_string(iu);
    else
        url = get_str(iu, "url");
    if (url == NULL)
        return fail_req(err, errlen, "image_url part without a url");
    if (strncasecmp(url, "data:", 5) != 0)
        return fail_req(err, errlen, "image URLs must be data: URLs");
    const char *comma = strchr(url, ',');
    size_t hlen = comma ? (size_t)(comma - url) : 0;
    if (comma == NULL || hlen < 5 + 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return fail_req(err, errlen, "image data URLs must be base64");
    if (comma[1] == '\0')
        return fail_req(err, errlen, "empty image data URL");
    return hx_json_push(images, json_object_new_string(comma + 1));
}

/* content (string or parts) → "content" string and "images" array. */
static int map_content(json_object *content, json_object *msg, char *err, size_t errlen)
{
    hx_buf text;
    hx_buf_init(&text, HX_PROVIDER_TEXT_MAX);
    int rc = hx_content_text(content, &text);
    if (rc == 0)
        rc = hx_json_set(msg, "content", json_object_new_string_len(text.data ? text.data : "", (int)text.len));
    hx_buf_free(&text);
    if (rc != 0 || content == NULL || !json_object_is_type(content, json_type_array))
        return rc;

    json_object *images = NULL;
    size_t n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++) {
        json_object *part = json_object_array_get_idx(content, i);
        const char *type = get_str(part, "type");
        if (type == NULL || strcmp(type, "image_url") != 0)
            continue;
        if (images == NULL && (images = json_object_new_array()) == NULL)
            return -1;
        if (add_image(part, images, err, errlen) != 0) {
            json_object_put(images);
            return -1;
        }
    }
    return images ? hx_json_set(msg, "images", images) : 0;
}

/* The OpenAI arguments string (or, leniently, an object) as an object. */
static json_object *parse_arguments(json_object *args, char *err, size_t errlen)
{
    if (args == NULL)
        return json_object_new_object();
    if (json_object_is_type(args, json_type_object))
        return json_object_get(args);
    if (!json_object_is_type(args, json_type_string)) {
        fail_req(err, errlen, "tool call arguments must be a JSON string");
        return NULL;
    }
    const char *s = json_object_get_string(args);
    size_t n = (size_t)json_object_get_string_len(args), i = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    if (i == n)
        return json_object_new_object();
    json_object *o = parse_exact(s, n);
    if (o == NULL || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        fail_req(err, errlen, "tool call arguments must be a JSON object");
        return NULL;
    }
    return o;
}

static int map_tool_calls(json_object *calls, json_object *msg, char *err, size_t errlen)
{
    if (!json_object_is_type(calls, json_type_array))
        return fail_req(err, errlen, "tool_calls must be an array");
    json_object *out = json_object_new_array();
    if (out == NULL)
        return -1;
    size_t n = json_object_array_length(calls);
    for (size_t i = 0; i < n; i++) {
        json_object *fn = get(json_object_array_get_idx(calls, i), "function");
        const char *name = get_str(fn, "name");
        if (name == NULL) {
            json_object_put(out);
            return fail_req(err, errlen, "tool call without a function name");
        }
        json_object *call = json_object_new_object(), *f = json_object_new_object();
        json_object *args = parse_arguments(get(fn, "arguments"), err, errlen);
        int rc = (call && f && args) ? 0 : -1;
        if (rc == 0)
            rc = hx_json_set(f, "name", json_object_new_string(name));
        if (rc == 0) {
            rc = hx_json_set(f, "arguments", args);
            args = NULL;
        }
        if (rc == 0) {
            rc = hx_json_set(call, "function", f);
            f = NULL;
        }
        if (rc == 0) {
            rc = hx_json_push(out, call);
            call = NULL;
        }
        json_object_put(args);
        json_object_put(f);
        json_object_put(call);
        if (rc != 0) {
            json_object_put(out);
            return -1;
        }
    }
    return hx_json_set(msg, "tool_calls", out);
}

/* The function name of the assistant tool call `id`, searched backwards
 * from message `upto` (Ollama's optional "tool_name" of a tool result). */
static const char *tool_name_for(json_object *messages, size_t upto, const char *id)
{
    for (size_t m = upto; id && m-- > 0;) {
        json_object *calls = get(json_object_array_get_idx(messages, m), "tool_calls");
        if (calls == NULL || !json_object_is_type(calls, json_type_array))
            continue;
        for (size_t i = 0; i < json_object_array_length(calls); i++) {
            json_object *c = json_object_array_get_idx(calls, i);
            const char *cid = get_str(c, "id");
            if (cid && strcmp(cid, id) == 0)
                return get_str(get(c, "function"), "name");
        }
    }
    return NULL;
}

/* What a canonical message may carry to Ollama (cache_control: Ollama
 * reuses a cached prompt prefix by itself). */
static const char *const msg_members[] = {"role", "content", "tool_calls", "tool_call_id", "cache_control", NULL};

static json_object *map_message(const hx_provider *p, json_object *messages, size_t idx, char *err, size_t errlen)
{
    json_object *src = json_object_array_get_idx(messages, idx);
    if (hx_canon_check_message(p, src, idx, msg_members, err, errlen) != 0)
        return NULL;
    if (!json_object_is_type(src, json_type_object)) {
        fail_req(err, errlen, "each message must be an object");
        return NULL;
    }
    const char *role = map_role(get_str(src, "role"));
    if (role == NULL) {
        fail_req(err, errlen, "unsupported message role");
        return NULL;
    }
    json_object *msg = json_object_new_object();
    if (msg == NULL)
        return NULL;
    int rc = hx_json_set(msg, "role", json_object_new_string(role));
    if (rc == 0)
        rc = map_content(get(src, "content"), msg, err, errlen);
    json_object *calls = get(src, "tool_calls");
    if (rc == 0 && calls && strcmp(role, "assistant") == 0)
        rc = map_tool_calls(calls, msg, err, errlen);
    if (rc == 0 && strcmp(role, "tool") == 0) {
        const char *tn = tool_name_for(messages, idx, get_str(src, "tool_call_id"));
        if (tn == NULL)
            tn = get_str(src, "name");
        if (tn)
            rc = hx_json_set(msg, "tool_name", json_object_new_string(tn));
    }
    if (rc != 0) {
        json_object_put(msg);
        return NULL;
    }
    return msg;
}

static int map_messages(const hx_provider *p, json_object *canon, json_object *root, char *err, size_t errlen)
{
    json_object *messages = get(canon, "messages");
    if (messages == NULL || !json_object_is_type(messages, json_type_array))
        return fail_req(err, errlen, "messages must be an array");
    json_object *out = json_object_new_array();
    if (out == NULL)
        return -1;
    size_t n = json_object_array_length(messages);
    for (size_t i = 0; i < n; i++) {
        if (hx_json_push(out, map_message(p, messages, i, err, errlen)) != 0) {
            json_object_put(out);
            return -1;
        }
    }
    return hx_json_set(root, "messages", out);
}

/* ------------------------------------------------------------------------
 * Request: options, tools, format
 * ------------------------------------------------------------------------ */

/* Shares the canonical number object so its text is kept exactly. */
static int copy_number(json_object *canon, const char *from, json_object *opts, const char *to, char *err,
                       size_t errlen)
{
    json_object *v = get(canon, from);
    if (v == NULL)
        return 0;
    if (!is_number(v)) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a number", from);
        return fail_req(err, errlen, msg);
    }
    return hx_json_set(opts, to, json_object_get(v));
}

static int copy_stop(json_object *canon, json_object *opts, char *err, size_t errlen)
{
    json_object *stop = get(canon, "stop");
    if (stop == NULL)
        return 0;
    if (json_object_is_type(stop, json_type_string)) {
        json_object *a = json_object_new_array();
        if (a == NULL || hx_json_push(a, json_object_get(stop)) != 0) {
            json_object_put(a);
            return -1;
        }
        return hx_json_set(opts, "stop", a);
    }
    if (!json_object_is_type(stop, json_type_array))
        return fail_req(err, errlen, "stop must be a string or an array of strings");
    for (size_t i = 0; i < json_object_array_length(stop); i++)
        if (!json_object_is_type(json_object_array_get_idx(stop, i), json_type_string))
            return fail_req(err, errlen, "stop must be a string or an array of strings");
    return hx_json_set(opts, "stop", json_object_get(stop));
}

static int map_options(json_object *canon, json_object *root, char *err, size_t errlen)
{
    static const char *const same[] = {"temperature", "top_p", "seed", "presence_penalty", "frequency_penalty",
                                       "top_k"};
    json_object *opts = json_object_new_object();
    if (opts == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof same / sizeof same[0]; i++)
        rc = copy_number(canon, same[i], opts, same[i], err, errlen);
    if (rc == 0) {
        const char *max = get(canon, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        rc = copy_number(canon, max, opts, "num_predict", err, errlen);
    }
    if (rc == 0)
        rc = copy_stop(canon, opts, err, errlen);
    if (rc != 0 || json_object_object_length(opts) == 0) {
        json_object_put(opts);
        return rc;
    }
    return hx_json_set(root, "options", opts);
}

/* OpenAI-format tools pass through unchanged; tool_choice "none" drops
 * them (Ollama cannot be told not to call offered tools). */
static int map_tools(json_object *canon, json_object *root, char *err, size_t errlen)
{
    json_object *tools = get(canon, "tools");
    if (tools == NULL)
        return 0;
    if (!json_object_is_type(tools, json_type_array))
        return fail_req(err, errlen, "tools must be an array");
    const char *choice = get_str(canon, "tool_choice");
    if (json_object_array_length(tools) == 0 || (choice && strcmp(choice, "none") == 0))
        return 0;
    return hx_json_set(root, "tools", json_object_get(tools));
}

static int map_format(json_object *canon, json_object *root, char *err, size_t errlen)
{
    json_object *rf = get(canon, "response_format");
    if (rf == NULL)
        return 0;
    const char *type = get_str(rf, "type");
    if (type == NULL)
        return fail_req(err, errlen, "response_format needs a type");
    if (strcmp(type, "text") == 0)
        return 0;
    if (strcmp(type, "json_object") == 0)
        return hx_json_set(root, "format", json_object_new_string("json"));
    if (strcmp(type, "json_schema") == 0) {
        json_object *schema = get(get(rf, "json_schema"), "schema");
        if (schema == NULL || !json_object_is_type(schema, json_type_object))
            return fail_req(err, errlen, "response_format json_schema needs a schema object");
        return hx_json_set(root, "format", json_object_get(schema));
    }
    return fail_req(err, errlen, "unsupported response_format type");
}

/* ------------------------------------------------------------------------
 * Request: assembly
 * ------------------------------------------------------------------------ */

int hx_oll_start_request(const hx_provider *p, const char *path, const char *method, hx_up_request *out)
{
    const char *base = p->base_url && *p->base_url ? p->base_url : hx_adapter_ollama.default_endpoint;
    out->method = method;
    out->url = hx_url_join(base, path);
    if (out->url == NULL)
        return -1;
    if (p->api_key && *p->api_key) {
        hx_buf auth;
        hx_buf_init(&auth, HX_PROVIDER_AUTH_MAX);
        int rc = hx_buf_printf(&auth, "Bearer %s", p->api_key);
        if (rc == 0)
            rc = hx_headers_add(&out->headers, "Authorization", auth.data);
        hx_buf_free(&auth);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* *forced: the name of the tool the answer must become a call of, or NULL
 * (borrowed from canon). */
static json_object *build_body(const hx_provider *p, json_object *canon, bool stream, const char **forced, char *err,
                               size_t errlen)
{
    json_object *fn = NULL;
    *forced = NULL;
    if (!json_object_is_type(canon, json_type_object)) {
        fail_req(err, errlen, "request must be a JSON object");
        return NULL;
    }
    if (p->model == NULL || *p->model == '\0') {
        fail_req(err, errlen, "no model configured");
        return NULL;
    }
    json_object *root = json_object_new_object();
    if (root == NULL)
        return NULL;
    int rc = hx_oll_check_members(p, canon, err, errlen);
    if (rc == 0)
        rc = hx_json_set(root, "model", json_object_new_string(p->model));
    if (rc == 0)
        rc = map_messages(p, canon, root, err, errlen);
    if (rc == 0)
        rc = hx_json_set(root, "stream", json_object_new_boolean(stream));
    if (rc == 0)
        rc = map_options(canon, root, err, errlen);
    if (rc == 0)
        rc = hx_oll_forced_tool(p, canon, &fn, err, errlen);
    if (rc == 0 && fn) {
        rc = hx_oll_map_forced(fn, root);
        *forced = json_object_get_string(get(fn, "name"));
    } else {
        if (rc == 0)
            rc = map_tools(canon, root, err, errlen);
        if (rc == 0)
            rc = map_format(canon, root, err, errlen);
    }
    if (rc == 0)
        rc = hx_oll_map_think(p, canon, root, err, errlen);
    if (rc != 0) {
        json_object_put(root);
        return NULL;
    }
    return root;
}

static int ollama_build_chat(const hx_provider *p, json_object *canon, bool stream, hx_up_request *out, char *err,
                             size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    hx_up_request_init(out);
    const char *forced = NULL;
    json_object *root = build_body(p, canon, stream, &forced, err, errlen);
    int rc = root ? 0 : -1;
    if (rc == 0 && forced && (out->answer_as_tool = hx_strdup(forced)) == NULL)
        rc = -1;
    if (rc == 0)
        rc = hx_oll_start_request(p, "api/chat", "POST", out);
    if (rc == 0)
        rc = hx_headers_add(&out->headers, "Content-Type", "application/json");
    if (rc == 0)
        rc = hx_json_append(&out->body, root);
    json_object_put(root);
    if (rc != 0) {
        hx_up_request_free(out);
        hx_up_request_init(out);
        if (err && errlen && err[0] == '\0')
            fail_req(err, errlen, "out of memory");
    }
    return rc;
}

static int ollama_build_probe(const hx_provider *p, hx_up_request *out)
{
    hx_up_request_init(out);
    if (hx_oll_start_request(p, "api/tags", "GET", out) != 0) {
        hx_up_request_free(out);
        hx_up_request_init(out);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Response parser
 * ------------------------------------------------------------------------ */

typedef struct {
    bool stream;
    bool failed;
    bool done;
    bool meta_sent;
    int ntools;
    hx_buf body;   /* non-stream: the whole answer */
    hx_ndjson nd;  /* stream: line splitter */
    hx_event_sink sink;
    void *ud;
    char err[256];
} oll_parser;

static int fail(oll_parser *ps, const char *msg)
{
    if (!ps->failed)
        copy_line(ps->err, sizeof ps->err, msg, strlen(msg), sizeof ps->err - 1);
    ps->failed = true;
    return -1;
}

static int emit(oll_parser *ps, const hx_event *ev)
{
    if (ps->sink(ps->ud, ev) != 0)
        return fail(ps, "stopped by the event sink");
    return 0;
}

static int emit_error(oll_parser *ps, json_object *e)
{
    const char *msg = json_object_get_string(e);
    if (msg == NULL || *msg == '\0')
        msg = "upstream reported an error";
    hx_event ev = {.type = HX_EV_ERROR, .text = msg, .len = strlen(msg)};
    if (emit(ps, &ev) != 0)
        return -1;
    return fail(ps, msg);
}

static int emit_tool_call(oll_parser *ps, json_object *call)
{
    json_object *fn = get(call, "function");
    const char *name = get_str(fn, "name");
    if (name == NULL)
        return fail(ps, "malformed tool call from upstream");
    int idx = ps->ntools++;
    char idbuf[32];
    const char *id = get_str(call, "id");
    if (id == NULL || *id == '\0') {
        snprintf(idbuf, sizeof idbuf, "call_%d", idx);
        id = idbuf;
    }
    hx_event ev = {.type = HX_EV_TOOL_CALL, .index = idx, .id = id, .name = name};
    if (emit(ps, &ev) != 0)
        return -1;
    json_object *args = get(fn, "arguments");
    size_t len = 2;
    const char *text = "{}";
    if (args && json_object_is_type(args, json_type_string)) {
        text = json_object_get_string(args);
        len = (size_t)json_object_get_string_len(args);
    } else if (args) {
        text = json_object_to_json_string_length(args, OLL_JSON_FLAGS, &len);
        if (text == NULL)
            return fail(ps, "out of memory");
    }
    hx_event ae = {.type = HX_EV_TOOL_ARGS, .index = idx, .text = text, .len = len};
    return emit(ps, &ae);
}

static int emit_message(oll_parser *ps, json_object *msg)
{
    json_object *thinking = get(msg, "thinking");
    if (thinking && json_object_is_type(thinking, json_type_string) && json_object_get_string_len(thinking) > 0) {
        hx_event ev = {.type = HX_EV_THINKING,
                       .text = json_object_get_string(thinking),
                       .len = (size_t)json_object_get_string_len(thinking)};
        if (emit(ps, &ev) != 0)
            return -1;
    }
    json_object *content = get(msg, "content");
    if (content && json_object_is_type(content, json_type_string) && json_object_get_string_len(content) > 0) {
        hx_event ev = {.type = HX_EV_TEXT,
                       .text = json_object_get_string(content),
                       .len = (size_t)json_object_get_string_len(content)};
        if (emit(ps, &ev) != 0)
            return -1;
    }
    json_object *calls = get(msg, "tool_calls");
    if (calls == NULL)
        return 0;
    if (!json_object_is_type(calls, json_type_array))
        return fail(ps, "malformed tool call from upstream");
    for (size_t i = 0; i < json_object_array_length(calls); i++)
        if (emit_tool_call(ps, json_object_array_get_idx(calls, i)) != 0)
            return -1;
    return 0;
}

static int emit_finish(oll_parser *ps, json_object *o)
{
    const char *reason = get_str(o, "done_reason");
    const char *finish = "stop";
    if (ps->ntools > 0)
        finish = "tool_calls";
    else if (reason && strcmp(reason, "length") == 0)
        finish = "length";
    hx_event ev = {.type = HX_EV_FINISH, .finish = finish};
    if (emit(ps, &ev) != 0)
        return -1;
    json_object *pt = get(o, "prompt_eval_count"), *ct = get(o, "eval_count");
    if (pt == NULL && ct == NULL)
        return 0;
    hx_event uv = {.type = HX_EV_USAGE,
                   .prompt_tokens = hx_json_tokens(pt), /* clamped, never negative */
                   .completion_tokens = hx_json_tokens(ct)};
    return emit(ps, &uv);
}

/* One response object: a stream line, or the whole non-streamed answer
 * (which is final whatever its done flag says). */
static int handle_chunk(oll_parser *ps, json_object *o, bool final)
{
    if (!json_object_is_type(o, json_type_object))
        return fail(ps, ps->stream ? "malformed event from upstream" : "malformed response from upstream");
    json_object *e = get(o, "error");
    if (e)
        return emit_error(ps, e);
    if (!ps->meta_sent) {
        ps->meta_sent = true;
        hx_event ev = {.type = HX_EV_META, .name = get_str(o, "model")};
        if (emit(ps, &ev) != 0)
            return -1;
    }
    if (emit_message(ps, get(o, "message")) != 0)
        return -1;
    if (!final)
        return 0;
    ps->done = true;
    return emit_finish(ps, o);
}

static int on_line(void *ud, const char *line, size_t len)
{
    oll_parser *ps = ud;
    if (ps->failed)
        return -1;
    if (ps->done)
        return 0; /* nothing follows the final line; ignore stray lines */
    json_object *o = parse_exact(line, len);
    if (o == NULL)
        return fail(ps, "malformed event from upstream");
    json_object *d = get(o, "done");
    bool final = d && json_object_is_type(d, json_type_boolean) && json_object_get_boolean(d);
    int rc = handle_chunk(ps, o, final);
    json_object_put(o);
    return rc;
}

static void *ollama_parser_new(bool stream)
{
    oll_parser *ps = hx_calloc(1, sizeof *ps);
    if (ps == NULL)
        return NULL;
    ps->stream = stream;
    hx_buf_init(&ps->body, OLL_BODY_MAX);
    hx_ndjson_init(&ps->nd);
    return ps;
}

static int ollama_parser_feed(void *p, const char *data, size_t len, hx_event_sink sink, void *ud)
{
    oll_parser *ps = p;
    if (ps->failed)
        return -1;
    if (len == 0)
        return 0;
    if (!ps->stream) {
        if (hx_buf_append(&ps->body, data, len) == 0)
            return 0;
        return fail(ps, len > OLL_BODY_MAX - ps->body.len ? "upstream response too large" : "out of memory");
    }
    ps->sink = sink;
    ps->ud = ud;
    if (hx_ndjson_feed(&ps->nd, data, len, on_line, ps) != 0)
        return fail(ps, "upstream event too large (or out of memory)");
    return 0;
}

static int ollama_parser_end(void *p, hx_event_sink sink, void *ud)
{
    oll_parser *ps = p;
    if (ps->failed)
        return -1;
    ps->sink = sink;
    ps->ud = ud;
    if (ps->stream) {
        if (hx_ndjson_end(&ps->nd, on_line, ps) != 0)
            return fail(ps, "malformed event from upstream");
        return ps->done ? 0 : fail(ps, "upstream stream ended early");
    }
    if (ps->done)
        return 0;
    json_object *o = parse_exact(ps->body.data, ps->body.len);
    if (o == NULL)
        return fail(ps, "malformed response from upstream");
    int rc = handle_chunk(ps, o, true);
    json_object_put(o);
    hx_buf_free(&ps->body);
    return rc;
}

static const char *ollama_parser_error(void *p)
{
    oll_parser *ps = p;
    return ps->err[0] ? ps->err : "no error";
}

static void ollama_parser_free(void *p)
{
    oll_parser *ps = p;
    if (ps == NULL)
        return;
    hx_buf_free(&ps->body);
    hx_ndjson_free(&ps->nd);
    hx_free(ps);
}

/* ------------------------------------------------------------------------
 * Error bodies
 * ------------------------------------------------------------------------ */

/* {"error":"..."} (Ollama) or {"error":{"message":"..."}} (proxies in
 * front of it); anything else → a one-line excerpt of the body. */
static void ollama_error_message(const char *body, size_t len, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return;
    out[0] = '\0';
    json_object *o = body ? parse_exact(body, len) : NULL;
    json_object *e = get(o, "error");
    json_object *m = e && json_object_is_type(e, json_type_string) ? e : get(e, "message");
    if (m && json_object_is_type(m, json_type_string) && json_object_get_string_len(m) > 0)
        copy_line(out, outlen, json_object_get_string(m), (size_t)json_object_get_string_len(m), outlen - 1);
    json_object_put(o);
    if (out[0] != '\0')
        return;
    size_t i = 0;
    while (body && i < len && isspace((unsigned char)body[i]))
        i++;
    if (body == NULL || i == len)
        copy_line(out, outlen, "(empty body)", 12, OLL_EXCERPT_MAX);
    else
        copy_line(out, outlen, body + i, len - i, OLL_EXCERPT_MAX);
}

const hx_adapter hx_adapter_ollama = {
    .name = "ollama",
    .default_endpoint = "http://localhost:11434",
    .key_required = false,
    .build_chat = ollama_build_chat,
    .translated = {[HX_API_EMBEDDINGS] = &hx_oll_embeddings, [HX_API_COUNT_TOKENS] = &hx_count_estimate},
    .build_probe = ollama_build_probe,
    .parser_new = ollama_parser_new,
    .parser_feed = ollama_parser_feed,
    .parser_end = ollama_parser_end,
    .parser_error = ollama_parser_error,
    .parser_free = ollama_parser_free,
    .error_message = ollama_error_message,
};
