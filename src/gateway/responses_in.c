/* Inbound Responses API: a POST /v1/responses body → the canonical (Chat
 * Completions shape) request. Every member is carried with its meaning or
 * refused by name; the members a Response object echoes are kept as text
 * for the renderer. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway/responses.h"
#include "provider/anthropic_int.h"
#include "util/alloc.h"
#include "util/fail.h"
#include "util/json.h"
#include "util/uuid.h"

#define OOM(e, n) hx_fail((e), (n), "out of memory")

typedef struct {
    json_object *msgs; /* canonical messages */
    char *err;
    size_t errlen;
    hx_resp_ctx *rx;
} rin;

static bool is_type(json_object *o, json_type t)
{
    return o != NULL && json_object_is_type(o, t);
}

static bool is_null(json_object *o)
{
    return o == NULL || json_object_is_type(o, json_type_null);
}

/* String member k without NULs (names, ids, types meet C strings), or NULL. */
static const char *in_str(json_object *o, const char *k)
{
    const char *s = aj_str(o, k);
    return s && strlen(s) == (size_t)json_object_get_string_len(aj_get(o, k)) ? s : NULL;
}

static bool str_eq(json_object *s, const char *lit)
{
    size_t n = strlen(lit);
    return is_type(s, json_type_string) && (size_t)json_object_get_string_len(s) == n &&
           memcmp(json_object_get_string(s), lit, n) == 0;
}

/* {"role": role, key: val}; takes val (NULL: a JSON null). */
static json_object *new_msg(const char *role, const char *key, json_object *val)
{
    json_object *m = json_object_new_object();
    if (m == NULL || aj_set(m, "role", json_object_new_string(role)) != 0) {
        json_object_put(m);
        json_object_put(val);
        return NULL;
    }
    if ((val ? aj_set(m, key, val) : json_object_object_add(m, key, NULL)) != 0) {
        json_object_put(m);
        return NULL;
    }
    return m;
}

static int push(rin *c, json_object *m)
{
    return m && aj_push(c->msgs, m) == 0 ? 0 : OOM(c->err, c->errlen);
}

/* ---- message content ------------------------------------------------------- */

static json_object *text_part(json_object *text)
{
    json_object *p = json_object_new_object();
    if (p == NULL || aj_set(p, "type", json_object_new_string("text")) != 0 ||
        aj_set(p, "text", json_object_get(text)) != 0) {
        json_object_put(p);
        return NULL;
    }
    return p;
}

/* input_image → {type:image_url, image_url:{url, detail}}. */
static json_object *image_part(rin *c, json_object *b, const char *where)
{
    json_object *url = aj_get(b, "image_url"), *detail = aj_get(b, "detail");
    if (!is_null(aj_get(b, "file_id"))) {
        hx_fail(c->err, c->errlen, "%s.file_id: files uploaded to OpenAI are not supported here: send image_url "
                "(a data: or https: URL)", where);
        return NULL;
    }
    if (!is_type(url, json_type_string)) {
        hx_fail(c->err, c->errlen, "%s.image_url: expected a string", where);
        return NULL;
    }
    if (!is_null(detail) && !is_type(detail, json_type_string)) {
        hx_fail(c->err, c->errlen, "%s.detail: expected a string", where);
        return NULL;
    }
    json_object *p = json_object_new_object(), *iu = json_object_new_object();
    if (p == NULL || iu == NULL || aj_set(iu, "url", json_object_get(url)) != 0 ||
        (!is_null(detail) && aj_set(iu, "detail", json_object_get(detail)) != 0) ||
        aj_set(p, "type", json_object_new_string("image_url")) != 0) {
        json_object_put(iu);
        json_object_put(p);
        OOM(c->err, c->errlen);
        return NULL;
    }
    if (aj_set(p, "image_url", iu) != 0) {
        json_object_put(p);
        OOM(c->err, c->errlen);
        return NULL;
    }
    return p;
}

/* input_file → {type:file, file:{filename, file_data | file_id}} (the Chat
 * Completions file part; providers that cannot read files refuse it). */
static json_object *file_part(rin *c, json_object *b, const char *where)
{
    if (!is_null(aj_get(b, "file_url"))) {
        hx_fail(c->err, c->errlen, "%s.file_url: not supported: send file_data", where);
        return NULL;
    }
    json_object *f = json_object_new_object(), *p = json_object_new_object();
    int rc = f && p ? 0 : -1;
    static const char *const keys[] = {"filename", "file_data", "file_id"};
    for (size_t k = 0; rc == 0 && k < 3; k++) {
        json_object *v = aj_get(b, keys[k]);
        if (is_null(v))
            continue;
        if (!is_type(v, json_type_string)) {
            json_object_put(f);
            json_object_put(p);
            hx_fail(c->err, c->errlen, "%s.%s: expected a string", where, keys[k]);
            return NULL;
        }
        rc = aj_set(f, keys[k], json_object_get(v));
    }
    if (rc == 0)
        rc = aj_set(p, "type", json_object_new_string("file"));
    if (rc == 0) {
        rc = aj_set(p, "file", f);
        f = NULL;
    }
    if (rc != 0) {
        json_object_put(f);
        json_object_put(p);
        OOM(c->err, c->errlen);
        return NULL;
    }
    return p;
}

/* User, system and developer content: a string or input_* parts. */
static int input_content(rin *c, const char *role, json_object *content, const char *where)
{
    if (is_type(content, json_type_string))
        return push(c, new_msg(role, "content", json_object_get(content)));
    if (!is_type(content, json_type_array))
        return hx_fail(c->err, c->errlen, "%s.content: expected a string or an array", where);
    json_object *parts = json_object_new_array();
    if (parts == NULL)
        return OOM(c->err, c->errlen);
    for (size_t j = 0; j < json_object_array_length(content); j++) {
        json_object *b = json_object_array_get_idx(content, j), *p = NULL;
        json_object *type = aj_get(b, "type");
        char w[96];
        snprintf(w, sizeof w, "%s.content[%zu]", where, j);
        if (str_eq(type, "input_text") || str_eq(type, "output_text")) {
            json_object *t = aj_get(b, "text");
            if (!is_type(t, json_type_string)) {
                json_object_put(parts);
                return hx_fail(c->err, c->errlen, "%s.text: expected a string", w);
            }
            if ((p = text_part(t)) == NULL) {
                json_object_put(parts);
                return OOM(c->err, c->errlen);
            }
        } else if (str_eq(type, "input_image")) {
            p = image_part(c, b, w);
        } else if (str_eq(type, "input_file")) {
            p = file_part(c, b, w);
        } else {
            json_object_put(parts);
            return hx_fail(c->err, c->errlen, "%s.type: %s parts are not supported (input_text, input_image, "
                           "input_file are)", w,
                           is_type(type, json_type_string) ? json_object_get_string(type) : "untyped");
        }
        if (p == NULL || aj_push(parts, p) != 0) {
            json_object_put(parts);
            return p ? OOM(c->err, c->errlen) : -1;
        }
    }
    return push(c, new_msg(role, "content", parts));
}

/* The last message when it is an assistant message that function calls
 * can join (no tool answer after it yet), else NULL. */
static json_object *open_assistant(rin *c)
{
    size_t n = json_object_array_length(c->msgs);
    json_object *last = n ? json_object_array_get_idx(c->msgs, n - 1) : NULL;
    return last && str_eq(aj_get(last, "role"), "assistant") ? last : NULL;
}

/* Assistant content (output_text / refusal parts, or a string) → one
 * assistant message with its text as a string. */
static int assistant_content(rin *c, json_object *content, const char *where)
{
    if (is_type(content, json_type_string))
        return push(c, new_msg("assistant", "content", json_object_get(content)));
    if (!is_type(content, json_type_array))
        return hx_fail(c->err, c->errlen, "%s.content: expected a string or an array", where);
    hx_buf text, refusal;
    hx_buf_init(&text, HX_IN_FIELD_MAX);
    hx_buf_init(&refusal, HX_IN_FIELD_MAX);
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < json_object_array_length(content); j++) {
        json_object *b = json_object_array_get_idx(content, j), *type = aj_get(b, "type");
        bool is_refusal = str_eq(type, "refusal");
        json_object *t = aj_get(b, is_refusal ? "refusal" : "text");
        if (!str_eq(type, "output_text") && !str_eq(type, "input_text") && !is_refusal)
            rc = hx_fail(c->err, c->errlen, "%s.content[%zu].type: assistant content must be output_text or refusal",
                         where, j);
        else if (!is_type(t, json_type_string))
            rc = hx_fail(c->err, c->errlen, "%s.content[%zu].%s: expected a string", where, j,
                         is_refusal ? "refusal" : "text");
        else if (hx_buf_append(is_refusal ? &refusal : &text, json_object_get_string(t),
                               (size_t)json_object_get_string_len(t)) != 0)
            rc = OOM(c->err, c->errlen);
    }
    json_object *m = NULL;
    if (rc == 0) {
        m = new_msg("assistant", "content", json_object_new_string_len(text.data ? text.data : "", (int)text.len));
        if (m && refusal.len && aj_set(m, "refusal", json_object_new_string_len(refusal.data, (int)refusal.len)) != 0) {
            json_object_put(m);
            m = NULL;
        }
        rc = push(c, m);
    }
    hx_buf_free(&text);
    hx_buf_free(&refusal);
    return rc;
}

static int message_item(rin *c, json_object *it, const char *where)
{
    json_object *role = aj_get(it, "role"), *content = aj_get(it, "content");
    if (str_eq(role, "assistant"))
        return assistant_content(c, content, where);
    static const char *const roles[] = {"user", "system", "developer"};
    for (size_t k = 0; k < 3; k++)
        if (str_eq(role, roles[k]))
            return input_content(c, roles[k], content, where);
    return hx_fail(c->err, c->errlen, "%s.role: must be user, system, developer or assistant", where);
}

/* function_call → a tool call of the (open or new) assistant message. */
static int function_call_item(rin *c, json_object *it, const char *where)
{
    const char *call_id = in_str(it, "call_id"), *name = in_str(it, "name");
    json_object *args = aj_get(it, "arguments");
    if (call_id == NULL || name == NULL)
        return hx_fail(c->err, c->errlen, "%s: call_id and name must be strings", where);
    if (!is_type(args, json_type_string))
        return hx_fail(c->err, c->errlen, "%s.arguments: expected a string", where);
    json_object *m = open_assistant(c), *calls;
    if (m == NULL) {
        if (push(c, new_msg("assistant", "content", NULL)) != 0)
            return -1;
        m = open_assistant(c);
    }
    if ((calls = aj_get(m, "tool_calls")) == NULL &&
        (aj_set(m, "tool_calls", json_object_new_array()) != 0 || (calls = aj_get(m, "tool_calls")) == NULL))
        return OOM(c->err, c->errlen);
    json_object *tc = json_object_new_object(), *fn = json_object_new_object();
    if (tc == NULL || fn == NULL || aj_set(fn, "name", json_object_new_string(name)) != 0 ||
        aj_set(fn, "arguments", json_object_get(args)) != 0 || aj_set(tc, "id", json_object_new_string(call_id)) != 0 ||
        aj_set(tc, "type", json_object_new_string("function")) != 0) {
        json_object_put(fn);
        json_object_put(tc);
        return OOM(c->err, c->errlen);
    }
    if (aj_set(tc, "function", fn) != 0 || aj_push(calls, tc) != 0)
        return OOM(c->err, c->errlen);
    return 0;
}

/* function_call_output → a tool message (output: a string or text parts). */
static int function_output_item(rin *c, json_object *it, const char *where)
{
    const char *call_id = in_str(it, "call_id");
    json_object *out = aj_get(it, "output");
    if (call_id == NULL)
        return hx_fail(c->err, c->errlen, "%s.call_id: expected a string", where);
    json_object *content = NULL;
    if (is_type(out, json_type_string)) {
        content = json_object_get(out);
    } else if (is_type(out, json_type_array)) {
        hx_buf t;
        hx_buf_init(&t, HX_IN_FIELD_MAX);
        for (size_t j = 0; j < json_object_array_length(out); j++) {
            json_object *b = json_object_array_get_idx(out, j), *s = aj_get(b, "text");
            if (!str_eq(aj_get(b, "type"), "input_text") || !is_type(s, json_type_string)) {
                hx_buf_free(&t);
                return hx_fail(c->err, c->errlen, "%s.output[%zu]: only input_text parts are supported", where, j);
            }
            if (hx_buf_append(&t, json_object_get_string(s), (size_t)json_object_get_string_len(s)) != 0) {
                hx_buf_free(&t);
                return OOM(c->err, c->errlen);
            }
        }
        content = json_object_new_string_len(t.data ? t.data : "", (int)t.len);
        hx_buf_free(&t);
    } else {
        return hx_fail(c->err, c->errlen, "%s.output: expected a string or an array", where);
    }
    json_object *m = new_msg("tool", "content", content);
    if (m && aj_set(m, "tool_call_id", json_object_new_string(call_id)) != 0) {
        json_object_put(m);
        m = NULL;
    }
    return push(c, m);
}

/* item_reference: a reasoning item is dropped like the item itself; a
 * message of the store becomes an assistant turn filled in later
 * (hx_resp_fill_ref), which function calls after it join. */
static int item_ref(rin *c, json_object *it, size_t i, const char *where)
{
    const char *id = in_str(it, "id");
    if (id == NULL)
        return hx_fail(c->err, c->errlen, "%s.id: expected a string", where);
    if (strncmp(id, "rs_", 3) == 0)
        return 0;
    if (strncmp(id, "msg_", 4) != 0 || strlen(id) >= sizeof c->rx->refs[0].id)
        return hx_fail(c->err, c->errlen, "%s.type: item_reference items must name a message (msg_...) or "
                       "reasoning (rs_...) of this gateway's responses", where);
    if (c->rx->nrefs == HX_RESP_MAX_REFS)
        return hx_fail(c->err, c->errlen, "%s: more than %d item_reference items", where, HX_RESP_MAX_REFS);
    if (push(c, new_msg("assistant", "content", NULL)) != 0)
        return -1;
    hx_resp_ref *ref = &c->rx->refs[c->rx->nrefs++];
    snprintf(ref->id, sizeof ref->id, "%s", id);
    ref->item = i;
    ref->index = json_object_array_length(c->msgs) - 1;
    return 0;
}

static int in_input(rin *c, json_object *input)
{
    if (input == NULL)
        return hx_fail(c->err, c->errlen, "input is required");
    if (is_type(input, json_type_string))
        return push(c, new_msg("user", "content", json_object_get(input)));
    if (!is_type(input, json_type_array))
        return hx_fail(c->err, c->errlen, "input: expected a string or an array of items");
    for (size_t i = 0; i < json_object_array_length(input); i++) {
        json_object *it = json_object_array_get_idx(input, i), *type = aj_get(it, "type");
        char w[48];
        snprintf(w, sizeof w, "input[%zu]", i);
        int rc;
        if (!is_type(it, json_type_object))
            rc = hx_fail(c->err, c->errlen, "%s: expected an object", w);
        else if (is_null(type) || str_eq(type, "message"))
            rc = message_item(c, it, w);
        else if (str_eq(type, "function_call"))
            rc = function_call_item(c, it, w);
        else if (str_eq(type, "function_call_output"))
            rc = function_output_item(c, it, w);
        else if (str_eq(type, "reasoning"))
            rc = 0; /* the model's earlier reasoning: chat APIs take no such input (docs/providers.md) */
        else if (str_eq(type, "item_reference"))
            rc = item_ref(c, it, i, w);
        else
            rc = hx_fail(c->err, c->errlen, "%s.type: %s items are not supported here (message, function_call, "
                         "function_call_output and reasoning are; built-in tools need an OpenAI upstream)", w,
                         in_str(it, "type") ? in_str(it, "type") : "non-string");
        if (rc != 0)
            return -1;
    }
    if (json_object_array_length(c->msgs) == 0)
        return hx_fail(c->err, c->errlen, "input: must not be empty");
    return 0;
}

/* ---- tools, tool_choice, text.format ----------------------------------------- */

static int in_tools(json_object *tools, json_object *out, char *err, size_t errlen)
{
    if (is_null(tools))
        return 0;
    if (!is_type(tools, json_type_array))
        return hx_fail(err, errlen, "tools: expected an array");
    json_object *list = json_object_new_array();
    if (list == NULL || aj_set(out, "tools", list) != 0)
        return OOM(err, errlen);
    for (size_t i = 0; i < json_object_array_length(tools); i++) {
        json_object *t = json_object_array_get_idx(tools, i), *type = aj_get(t, "type");
        if (!str_eq(type, "function"))
            return hx_fail(err, errlen, "tools[%zu].type: %s is a built-in OpenAI tool: only an OpenAI upstream with "
                           "the native Responses API can run it", i,
                           in_str(t, "type") ? in_str(t, "type") : "(missing)");
        if (in_str(t, "name") == NULL)
            return hx_fail(err, errlen, "tools[%zu].name: expected a string", i);
        json_object *fn = json_object_new_object(), *ct = json_object_new_object();
        int rc = fn && ct && aj_push(list, ct) == 0 ? 0 : -1;
        if (rc != 0) {
            json_object_put(fn);
            json_object_put(ct);
            return OOM(err, errlen);
        }
        if (aj_set(ct, "type", json_object_new_string("function")) != 0 || aj_set(ct, "function", fn) != 0)
            return OOM(err, errlen);
        json_object_object_foreach(t, k, v) {
            if (strcmp(k, "type") == 0)
                continue;
            if (strcmp(k, "name") && strcmp(k, "description") && strcmp(k, "parameters") && strcmp(k, "strict"))
                return hx_fail(err, errlen, "tools[%zu].%s: not a member of a function tool", i, k);
            if (!is_null(v) && aj_set(fn, k, json_object_get(v)) != 0)
                return OOM(err, errlen);
        }
    }
    return 0;
}

static int in_tool_choice(json_object *tc, json_object *out, char *err, size_t errlen)
{
    if (is_null(tc))
        return 0;
    if (str_eq(tc, "none") || str_eq(tc, "auto") || str_eq(tc, "required"))
        return aj_set(out, "tool_choice", json_object_get(tc)) == 0 ? 0 : OOM(err, errlen);
    if (is_type(tc, json_type_object) && str_eq(aj_get(tc, "type"), "function")) {
        const char *name = in_str(tc, "name");
        if (name == NULL)
            return hx_fail(err, errlen, "tool_choice.name: expected a string");
        json_object *c = json_object_new_object(), *fn = json_object_new_object();
        if (c == NULL || fn == NULL || aj_set(fn, "name", json_object_new_string(name)) != 0 ||
            aj_set(c, "type", json_object_new_string("function")) != 0) {
            json_object_put(c);
            json_object_put(fn);
            return OOM(err, errlen);
        }
        if (aj_set(c, "function", fn) != 0 || aj_set(out, "tool_choice", c) != 0)
            return OOM(err, errlen);
        return 0;
    }
    return hx_fail(err, errlen, "tool_choice: only \"none\", \"auto\", \"required\" and {\"type\":\"function\","
                   "\"name\":...} are supported (built-in and allowed_tools choices need an OpenAI upstream)");
}

/* text.format → response_format; text.verbosity → verbosity. */
static int in_text(json_object *text, json_object *out, char *err, size_t errlen)
{
    if (is_null(text))
        return 0;
    if (!is_type(text, json_type_object))
        return hx_fail(err, errlen, "text: expected an object");
    json_object_object_foreach(text, k, v) {
        if (strcmp(k, "verbosity") == 0) {
            if (!is_null(v) && aj_set(out, "verbosity", json_object_get(v)) != 0)
                return OOM(err, errlen);
        } else if (strcmp(k, "format") != 0) {
            return hx_fail(err, errlen, "text.%s: not supported", k);
        }
    }
    json_object *f = aj_get(text, "format"), *type = aj_get(f, "type");
    if (is_null(f) || str_eq(type, "text"))
        return 0;
    json_object *rf = json_object_new_object();
    if (rf == NULL || aj_set(out, "response_format", rf) != 0)
        return OOM(err, errlen);
    if (str_eq(type, "json_object"))
        return aj_set(rf, "type", json_object_new_string("json_object")) == 0 ? 0 : OOM(err, errlen);
    if (!str_eq(type, "json_schema"))
        return hx_fail(err, errlen, "text.format.type: expected text, json_object or json_schema");
    if (in_str(f, "name") == NULL || !is_type(aj_get(f, "schema"), json_type_object))
        return hx_fail(err, errlen, "text.format: a json_schema format needs a name and a schema object");
    json_object *js = json_object_new_object();
    if (js == NULL || aj_set(rf, "type", json_object_new_string("json_schema")) != 0 ||
        aj_set(rf, "json_schema", js) != 0)
        return OOM(err, errlen);
    json_object_object_foreach(f, fk, fv) {
        if (strcmp(fk, "type") == 0)
            continue;
        if (strcmp(fk, "name") && strcmp(fk, "schema") && strcmp(fk, "description") && strcmp(fk, "strict"))
            return hx_fail(err, errlen, "text.format.%s: not a member of a json_schema format", fk);
        if (!is_null(fv) && aj_set(js, fk, json_object_get(fv)) != 0)
            return OOM(err, errlen);
    }
    return 0;
}

/* ---- the other members --------------------------------------------------------- */

typedef enum { K_NUMBER, K_POS_INT, K_BOOL, K_STRING, K_OWN } kind;

/* Members carried into the canonical request under `to` (NULL = handled
 * on their own below, or only echoed). */
static const struct {
    const char *name;
    kind k;
    const char *to;
} members[] = {
    {"temperature", K_NUMBER, "temperature"},
    {"top_p", K_NUMBER, "top_p"},
    {"max_output_tokens", K_POS_INT, "max_completion_tokens"},
    {"parallel_tool_calls", K_BOOL, "parallel_tool_calls"},
    {"user", K_STRING, "user"},
    {"service_tier", K_STRING, "service_tier"},
    {"prompt_cache_key", K_STRING, "prompt_cache_key"},
    {"prompt_cache_retention", K_STRING, "prompt_cache_retention"},
    {"safety_identifier", K_STRING, "safety_identifier"},
    {"stream", K_BOOL, NULL},
    {"store", K_BOOL, NULL},
    {"background", K_BOOL, NULL},
    {"previous_response_id", K_STRING, NULL},
    {"instructions", K_STRING, NULL},
    {"model", K_OWN, NULL},
    {"input", K_OWN, NULL},
    {"tools", K_OWN, NULL},
    {"tool_choice", K_OWN, NULL},
    {"text", K_OWN, NULL},
    {"reasoning", K_OWN, NULL},
    {"metadata", K_OWN, NULL},
    {"truncation", K_OWN, NULL},
    {"include", K_OWN, NULL},
    {"stream_options", K_OWN, NULL},
    {"max_tool_calls", K_OWN, NULL},
    {"top_logprobs", K_OWN, NULL},
};

static int check_kind(const char *k, kind kd, json_object *v, char *err, size_t errlen)
{
    if (is_null(v) || kd == K_OWN)
        return 0;
    bool ok = kd == K_NUMBER   ? is_type(v, json_type_int) || is_type(v, json_type_double)
              : kd == K_POS_INT ? is_type(v, json_type_int) && json_object_get_int64(v) > 0
              : kd == K_BOOL    ? is_type(v, json_type_boolean)
                                : is_type(v, json_type_string);
    if (ok)
        return 0;
    return hx_fail(err, errlen, "%s: expected %s", k,
                   kd == K_NUMBER ? "a number" : kd == K_POS_INT ? "a positive integer"
                   : kd == K_BOOL ? "a boolean" : "a string");
}

/* Members whose values the canonical path can only take in part. */
static int check_own(json_object *body, char *err, size_t errlen)
{
    json_object *v;
    if ((v = aj_get(body, "background")) && json_object_get_boolean(v))
        return hx_fail(err, errlen, "background: background responses are not supported");
    if (!is_null(v = aj_get(body, "truncation")) && !str_eq(v, "disabled"))
        return hx_fail(err, errlen, "truncation: only \"disabled\" is supported (the gateway does not shorten a "
                       "conversation to fit the model)");
    if (!is_null(v = aj_get(body, "max_tool_calls")))
        return hx_fail(err, errlen, "max_tool_calls: not supported (providers' chat APIs cannot bound tool calls)");
    if (!is_null(v = aj_get(body, "top_logprobs")) && !(is_type(v, json_type_int) && json_object_get_int64(v) == 0))
        return hx_fail(err, errlen, "top_logprobs: log probabilities are not supported on /v1/responses");
    if (!is_null(v = aj_get(body, "stream_options")) && !is_type(v, json_type_object))
        return hx_fail(err, errlen, "stream_options: expected an object");
    if (!is_null(v)) {
        json_object_object_foreach(v, sk, sv) {
            (void)sv;
            if (strcmp(sk, "include_obfuscation") != 0)
                return hx_fail(err, errlen, "stream_options.%s: not supported", sk);
        }
    }
    if (!is_null(v = aj_get(body, "metadata"))) {
        if (!is_type(v, json_type_object))
            return hx_fail(err, errlen, "metadata: expected an object of strings");
        json_object_object_foreach(v, mk, mv) {
            if (!is_type(mv, json_type_string))
                return hx_fail(err, errlen, "metadata.%s: expected a string", mk);
        }
    }
    if (!is_null(v = aj_get(body, "include"))) {
        if (!is_type(v, json_type_array))
            return hx_fail(err, errlen, "include: expected an array");
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *s = json_object_array_get_idx(v, i);
            if (!str_eq(s, "reasoning.encrypted_content") && !str_eq(s, "message.input_image.image_url"))
                return hx_fail(err, errlen, "include[%zu]: %s is not supported", i,
                               is_type(s, json_type_string) ? json_object_get_string(s) : "a non-string");
        }
    }
    return 0;
}

/* reasoning.effort → reasoning_effort; summary is what the renderer shows
 * the model's thinking as (reasoning items with summary_text). */
static int in_reasoning(json_object *r, json_object *out, char *err, size_t errlen)
{
    if (is_null(r))
        return 0;
    if (!is_type(r, json_type_object))
        return hx_fail(err, errlen, "reasoning: expected an object");
    json_object_object_foreach(r, k, v) {
        if (strcmp(k, "effort") == 0) {
            if (!is_null(v) && !is_type(v, json_type_string))
                return hx_fail(err, errlen, "reasoning.effort: expected a string");
            if (!is_null(v) && aj_set(out, "reasoning_effort", json_object_get(v)) != 0)
                return OOM(err, errlen);
        } else if (strcmp(k, "summary") && strcmp(k, "generate_summary")) {
            return hx_fail(err, errlen, "reasoning.%s: not supported", k);
        }
    }
    return 0;
}

static int in_members(json_object *body, json_object *out, char *err, size_t errlen)
{
    json_object_object_foreach(body, k, v) {
        size_t i = 0, n = sizeof members / sizeof members[0];
        while (i < n && strcmp(members[i].name, k) != 0)
            i++;
        if (i == n) {
            if ((strcmp(k, "prompt") == 0 || strcmp(k, "conversation") == 0) && is_null(v))
                continue;
            return hx_fail(err, errlen, "%s: not supported by this gateway on /v1/responses", k);
        }
        if (check_kind(k, members[i].k, v, err, errlen) != 0)
            return -1;
        if (members[i].to && !is_null(v) && aj_set(out, members[i].to, json_object_get(v)) != 0)
            return OOM(err, errlen);
    }
    if (check_own(body, err, errlen) != 0 || in_reasoning(aj_get(body, "reasoning"), out, err, errlen) != 0 ||
        in_text(aj_get(body, "text"), out, err, errlen) != 0 || in_tools(aj_get(body, "tools"), out, err, errlen) != 0)
        return -1;
    return in_tool_choice(aj_get(body, "tool_choice"), out, err, errlen);
}

/* ---- the echo: request members every Response object repeats ----------------- */

/* ,"k":value (no comma before the first member of an object). */
static int echo_member(hx_buf *b, json_object *body, const char *k, const char *dflt)
{
    json_object *v = aj_get(body, k);
    bool first = b->len == 0 || b->data[b->len - 1] == '{';
    if (hx_buf_printf(b, "%s\"%s\":", first ? "" : ",", k) != 0)
        return -1;
    if (is_null(v))
        return hx_buf_append_str(b, dflt);
    return hx_json_append(b, v);
}

static int make_echo(hx_resp_ctx *rx, json_object *body)
{
    hx_buf *b = &rx->echo;
    json_object *r = aj_get(body, "reasoning");
    int rc = echo_member(b, body, "background", "false") || echo_member(b, body, "instructions", "null") ||
             echo_member(b, body, "max_output_tokens", "null") || echo_member(b, body, "metadata", "{}") ||
             echo_member(b, body, "parallel_tool_calls", "true") ||
             echo_member(b, body, "previous_response_id", "null") || hx_buf_append_str(b, ",\"reasoning\":{") ||
             echo_member(b, r, "effort", "null") || echo_member(b, r, "summary", "null") ||
             hx_buf_append(b, "}", 1) || echo_member(b, body, "service_tier", "null") ||
             hx_buf_printf(b, ",\"store\":%s", rx->store ? "true" : "false") ||
             echo_member(b, body, "temperature", "null") ||
             echo_member(b, body, "text", "{\"format\":{\"type\":\"text\"}}") ||
             echo_member(b, body, "tool_choice", "\"auto\"") || echo_member(b, body, "tools", "[]") ||
             echo_member(b, body, "top_p", "null") || echo_member(b, body, "truncation", "\"disabled\"") ||
             echo_member(b, body, "user", "null");
    return rc ? -1 : 0;
}

void hx_resp_ctx_free(void *ctx)
{
    hx_resp_ctx *rx = ctx;
    if (rx == NULL)
        return;
    hx_free(rx->owner);
    hx_free(rx->prev_id);
    hx_buf_free(&rx->echo);
    hx_buf_free(&rx->input);
    hx_buf_free(&rx->prefix);
    hx_free(rx);
}

/* model, stream, store, previous_response_id: what routing, the store and
 * the native path need whatever the rest holds. */
static int in_head(json_object *body, hx_in_info *info, hx_resp_ctx *rx, char *err, size_t errlen)
{
    json_object *model = aj_get(body, "model"), *v;
    if (!is_null(model)) {
        if (!is_type(model, json_type_string))
            return hx_fail(err, errlen, "model: expected a string");
        size_t len = (size_t)json_object_get_string_len(model);
        if (len >= sizeof info->model)
            return hx_fail(err, errlen, "model: name too long");
        if (strlen(json_object_get_string(model)) != len)
            return hx_fail(err, errlen, "model: must not contain NUL characters");
        memcpy(info->model, json_object_get_string(model), len + 1);
    }
    static const char *const bools[] = {"stream", "store"};
    for (size_t i = 0; i < 2; i++)
        if (!is_null(v = aj_get(body, bools[i])) && !is_type(v, json_type_boolean))
            return hx_fail(err, errlen, "%s: expected a boolean", bools[i]);
    info->stream = (v = aj_get(body, "stream")) && json_object_get_boolean(v);
    info->include_usage = true;
    info->render = &hx_render_responses;
    rx->store = is_null(v = aj_get(body, "store")) || json_object_get_boolean(v);
    if (!is_null(v = aj_get(body, "previous_response_id"))) {
        const char *id = in_str(body, "previous_response_id");
        if (id == NULL || *id == '\0' || strlen(id) >= sizeof rx->id)
            return hx_fail(err, errlen, "previous_response_id: expected a response id");
        if ((rx->prev_id = hx_strdup(id)) == NULL)
            return OOM(err, errlen);
    }
    hx_random_id(rx->id, sizeof rx->id, "resp_");
    rx->created_at = (int64_t)time(NULL);
    return 0;
}

/* The canonical request: instructions as the system message, then input. */
static json_object *build_canon(json_object *body, const hx_in_info *info, hx_resp_ctx *rx, char *err, size_t errlen)
{
    json_object *out = json_object_new_object(), *instr = aj_get(body, "instructions");
    rin c = {.msgs = json_object_new_array(), .err = err, .errlen = errlen, .rx = rx};
    int rc = out && c.msgs ? 0 : OOM(err, errlen);
    if (rc == 0 && (aj_set(out, "stream", json_object_new_boolean(info->stream)) != 0 ||
                    (info->model[0] && aj_set(out, "model", json_object_new_string(info->model)) != 0)))
        rc = OOM(err, errlen);
    if (rc == 0 && info->stream) {
        json_object *so = json_object_new_object();
        if (so == NULL || aj_set(out, "stream_options", so) != 0 ||
            aj_set(so, "include_usage", json_object_new_boolean(1)) != 0)
            rc = OOM(err, errlen);
    }
    if (rc == 0)
        rc = in_members(body, out, err, errlen);
    if (rc == 0)
        rc = in_input(&c, aj_get(body, "input"));
    if (rc == 0)
        rx->ninput = json_object_array_length(c.msgs);
    if (rc == 0 && (hx_json_append(&rx->input, c.msgs) != 0 || make_echo(rx, body) != 0))
        rc = OOM(err, errlen);
    json_object *all = rc == 0 ? json_object_new_array() : NULL;
    if (rc == 0 && all == NULL)
        rc = OOM(err, errlen);
    if (rc == 0 && is_type(instr, json_type_string)) {
        if (aj_push(all, new_msg("system", "content", json_object_get(instr))) != 0)
            rc = OOM(err, errlen);
        rx->instructions = true;
    }
    for (size_t i = 0; rc == 0 && i < json_object_array_length(c.msgs); i++)
        if (aj_push(all, json_object_get(json_object_array_get_idx(c.msgs, i))) != 0)
            rc = OOM(err, errlen);
    if (rc == 0) {
        rc = aj_set(out, "messages", all) == 0 ? 0 : OOM(err, errlen);
        all = NULL;
    }
    json_object_put(all);
    json_object_put(c.msgs);
    if (rc != 0) {
        json_object_put(out);
        return NULL;
    }
    return out;
}

int hx_in_responses(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen)
{
    *canon = NULL;
    if (!is_type(body, json_type_object))
        return hx_fail(err, errlen, "the request body must be a JSON object");
    hx_resp_ctx *rx = hx_calloc(1, sizeof *rx);
    if (rx == NULL)
        return OOM(err, errlen);
    hx_buf_init(&rx->echo, HX_RESP_ECHO_MAX);
    hx_buf_init(&rx->input, HX_RESP_CONV_MAX);
    hx_buf_init(&rx->prefix, HX_RESP_CONV_MAX);
    if (in_head(body, info, rx, err, errlen) != 0) {
        hx_resp_ctx_free(rx);
        return -1;
    }
    info->ctx = rx;
    info->ctx_free = hx_resp_ctx_free;
    *canon = build_canon(body, info, rx, rx->canon_err, sizeof rx->canon_err);
    if (*canon == NULL)
        snprintf(err, errlen, "%s", rx->canon_err);
    return 0;
}

int hx_resp_splice(json_object *canon, hx_resp_ctx *rx, const char *conv, size_t len)
{
    json_object *stored = hx_json_parse(conv, len), *msgs = aj_get(canon, "messages");
    if (!is_type(stored, json_type_array) || !is_type(msgs, json_type_array) ||
        hx_buf_append(&rx->prefix, conv, len) != 0) {
        json_object_put(stored);
        return -1;
    }
    /* After the instructions (they are not inherited: the API's rule). */
    size_t at = rx->instructions ? 1 : 0, n = json_object_array_length(msgs);
    json_object *all = json_object_new_array();
    int rc = all ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < at; i++)
        rc = aj_push(all, json_object_get(json_object_array_get_idx(msgs, i)));
    for (size_t i = 0; rc == 0 && i < json_object_array_length(stored); i++)
        rc = aj_push(all, json_object_get(json_object_array_get_idx(stored, i)));
    for (size_t i = at; rc == 0 && i < n; i++)
        rc = aj_push(all, json_object_get(json_object_array_get_idx(msgs, i)));
    json_object_put(stored);
    if (rc != 0 || aj_set(canon, "messages", all) != 0) {
        if (rc != 0)
            json_object_put(all);
        return -1;
    }
    rx->prev_spliced = true;
    return 0;
}
