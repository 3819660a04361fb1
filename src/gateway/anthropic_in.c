/* Inbound Anthropic Messages API: the request → the canonical (OpenAI Chat
 * Completions shape) request. Its renderer is in anthropic_render.c. */
#include <stdio.h>
#include <string.h>

#include "gateway/inbound.h"
#include "provider/adapter.h"
#include "provider/anthropic_int.h"
#include "util/alloc.h"
#include "util/fail.h"


#define OOM(e, n) hx_fail((e), (n), "out of memory")

typedef struct {
    json_object *msgs; /* canonical messages */
    char *err;
    size_t errlen;
} in_conv;

/* String member k, or NULL, also when it holds a NUL: these are names,
 * ids and types that meet C strings (a NUL would separate what is checked
 * from what is sent). */
static const char *in_str(json_object *o, const char *k)
{
    const char *s = aj_str(o, k);
    return s && strlen(s) == (size_t)json_object_get_string_len(aj_get(o, k)) ? s : NULL;
}

/* Appends the text of a string object (NUL and all). */
static int append_text(hx_buf *out, json_object *s)
{
    return hx_buf_append(out, json_object_get_string(s), (size_t)json_object_get_string_len(s));
}

static bool is_type(json_object *o, json_type t)
{
    return o != NULL && json_object_is_type(o, t);
}

static bool is_number(json_object *o)
{
    return is_type(o, json_type_int) || is_type(o, json_type_double);
}

/* Pushes a new {role, <key>: val} message; takes val. */
static int push_msg(in_conv *c, const char *role, const char *key, json_object *val)
{
    json_object *m = json_object_new_object();
    if (m == NULL || aj_push(c->msgs, m) != 0 || aj_set(m, "role", json_object_new_string(role)) != 0) {
        json_object_put(val);
        return OOM(c->err, c->errlen);
    }
    return aj_set(m, key, val) == 0 ? 0 : OOM(c->err, c->errlen);
}

/* ---- request: content blocks -------------------------------------------- */

/* An image block → an OpenAI image_url part. */
static json_object *image_part(in_conv *c, json_object *b, size_t i, size_t j)
{
    json_object *src = aj_get(b, "source");
    const char *st = in_str(src, "type");
    hx_buf url;
    hx_buf_init(&url, HX_IN_FIELD_MAX);
    if (st && strcmp(st, "base64") == 0) {
        const char *mt = in_str(src, "media_type"), *data = in_str(src, "data");
        if (mt == NULL || data == NULL) {
            hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.source: media_type and data are required", i, j);
            return NULL;
        }
        if (hx_buf_printf(&url, "data:%s;base64,%s", mt, data) != 0) {
            OOM(c->err, c->errlen);
            return NULL;
        }
    } else if (st && strcmp(st, "url") == 0) {
        const char *u = in_str(src, "url");
        if (u == NULL) {
            hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.source.url: expected a string", i, j);
            return NULL;
        }
        if (hx_buf_append_str(&url, u) != 0) {
            OOM(c->err, c->errlen);
            return NULL;
        }
    } else {
        hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.source.type: expected \"base64\" or \"url\"", i, j);
        return NULL;
    }
    json_object *p = json_object_new_object(), *iu = json_object_new_object();
    int rc = p && iu ? 0 : -1;
    if (rc == 0)
        rc = aj_set(iu, "url", json_object_new_string_len(url.data, (int)url.len));
    hx_buf_free(&url);
    if (rc != 0) {
        json_object_put(iu);
        json_object_put(p);
        OOM(c->err, c->errlen);
        return NULL;
    }
    if (aj_set(p, "type", json_object_new_string("image_url")) != 0 || aj_set(p, "image_url", iu) != 0) {
        json_object_put(p);
        OOM(c->err, c->errlen);
        return NULL;
    }
    return p;
}

/* Text of a tool_result's content: a string or an array of text blocks. */
static int tool_result_text(in_conv *c, json_object *content, size_t i, size_t j, hx_buf *out)
{
    if (content == NULL)
        return 0;
    if (is_type(content, json_type_string))
        return append_text(out, content) == 0 ? 0 : OOM(c->err, c->errlen);
    if (!is_type(content, json_type_array))
        return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.content: expected a string or an array", i, j);
    for (size_t k = 0; k < json_object_array_length(content); k++) {
        json_object *b = json_object_array_get_idx(content, k), *t = aj_get(b, "text");
        const char *type = in_str(b, "type");
        if (type == NULL || strcmp(type, "text") != 0 || !is_type(t, json_type_string))
            return hx_fail(c->err, c->errlen,
                        "messages.%zu.content.%zu.content.%zu: only text blocks are supported in tool results", i, j, k);
        if (append_text(out, t) != 0)
            return OOM(c->err, c->errlen);
    }
    return 0;
}

static int push_tool_result(in_conv *c, json_object *b, size_t i, size_t j)
{
    const char *id = in_str(b, "tool_use_id");
    if (id == NULL)
        return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.tool_use_id: expected a string", i, j);
    hx_buf t;
    hx_buf_init(&t, HX_IN_FIELD_MAX);
    if (tool_result_text(c, aj_get(b, "content"), i, j, &t) != 0) {
        hx_buf_free(&t);
        return -1;
    }
    json_object *m = json_object_new_object();
    int rc = m == NULL || aj_push(c->msgs, m) != 0 || aj_set(m, "role", json_object_new_string("tool")) != 0 ||
                     aj_set(m, "tool_call_id", json_object_new_string(id)) != 0 ||
                     aj_set(m, "content", json_object_new_string_len(t.data ? t.data : "", (int)t.len)) != 0
                 ? OOM(c->err, c->errlen)
                 : 0;
    hx_buf_free(&t);
    return rc;
}

/* Flushes the pending user parts as one user message. */
static int flush_user(in_conv *c, json_object **parts)
{
    json_object *p = *parts;
    *parts = NULL;
    if (p == NULL)
        return 0;
    if (json_object_array_length(p) == 0) {
        json_object_put(p);
        return 0;
    }
    return push_msg(c, "user", "content", p);
}

static int text_part(json_object *parts, json_object *text)
{
    json_object *p = json_object_new_object();
    if (p == NULL || aj_push(parts, p) != 0 || aj_set(p, "type", json_object_new_string("text")) != 0)
        return -1;
    return aj_set(p, "text", json_object_get(text));
}

static int user_message(in_conv *c, json_object *content, size_t i)
{
    json_object *parts = NULL;
    size_t n = json_object_array_length(content);
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < n; j++) {
        json_object *b = json_object_array_get_idx(content, j);
        const char *type = in_str(b, "type");
        if (type == NULL) {
            rc = hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.type: expected a string", i, j);
        } else if (strcmp(type, "tool_result") == 0) {
            rc = flush_user(c, &parts);
            if (rc == 0)
                rc = push_tool_result(c, b, i, j);
            continue;
        }
        if (rc == 0 && parts == NULL && (parts = json_object_new_array()) == NULL)
            rc = OOM(c->err, c->errlen);
        if (rc != 0)
            break;
        if (strcmp(type, "text") == 0) {
            json_object *t = aj_get(b, "text");
            if (!is_type(t, json_type_string))
                rc = hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.text: expected a string", i, j);
            else if (text_part(parts, t) != 0)
                rc = OOM(c->err, c->errlen);
        } else if (strcmp(type, "image") == 0) {
            json_object *p = image_part(c, b, i, j);
            rc = p == NULL ? -1 : aj_push(parts, p) == 0 ? 0 : OOM(c->err, c->errlen);
        } else {
            rc = hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.type: unsupported block type \"%s\" in a user message",
                      i, j, type);
        }
    }
    if (rc == 0)
        return flush_user(c, &parts);
    json_object_put(parts);
    return -1;
}

/* A tool_use block → an OpenAI tool call (arguments = JSON text of input). */
static int tool_call(in_conv *c, json_object *calls, json_object *b, size_t i, size_t j)
{
    const char *id = in_str(b, "id"), *name = in_str(b, "name");
    json_object *input = aj_get(b, "input");
    if (id == NULL || name == NULL)
        return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu: tool_use needs a string id and name", i, j);
    if (input != NULL && !is_type(input, json_type_object))
        return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.input: expected an object", i, j);
    hx_buf args;
    hx_buf_init(&args, HX_IN_FIELD_MAX);
    if (input ? hx_json_append(&args, input) != 0 : hx_buf_append_str(&args, "{}") != 0) {
        hx_buf_free(&args);
        return OOM(c->err, c->errlen);
    }
    json_object *tc = json_object_new_object(), *fn = json_object_new_object();
    int rc = tc == NULL || fn == NULL || aj_push(calls, tc) != 0 ? -1 : 0;
    if (rc != 0)
        json_object_put(fn);
    else if (aj_set(tc, "function", fn) != 0 || aj_set(tc, "id", json_object_new_string(id)) != 0 ||
             aj_set(tc, "type", json_object_new_string("function")) != 0 ||
             aj_set(fn, "name", json_object_new_string(name)) != 0 ||
             aj_set(fn, "arguments", json_object_new_string_len(args.data, (int)args.len)) != 0)
        rc = -1;
    hx_buf_free(&args);
    return rc == 0 ? 0 : OOM(c->err, c->errlen);
}

/* {role:assistant, content: text (null when empty and there are tool
 * calls), tool_calls}. */
static int push_assistant(in_conv *c, const hx_buf *text, json_object *calls)
{
    bool has_calls = json_object_array_length(calls) > 0;
    json_object *m = json_object_new_object(), *ct = NULL;
    if (m == NULL || aj_push(c->msgs, m) != 0 || aj_set(m, "role", json_object_new_string("assistant")) != 0)
        return OOM(c->err, c->errlen);
    if (text->len || !has_calls) {
        if (aj_set(m, "content", json_object_new_string_len(text->data ? text->data : "", (int)text->len)) != 0)
            return OOM(c->err, c->errlen);
    } else if (json_object_object_add(m, "content", ct) != 0) {
        return OOM(c->err, c->errlen);
    }
    if (has_calls && aj_set(m, "tool_calls", json_object_get(calls)) != 0)
        return OOM(c->err, c->errlen);
    return 0;
}

static int assistant_message(in_conv *c, json_object *content, size_t i)
{
    hx_buf text;
    hx_buf_init(&text, HX_IN_FIELD_MAX);
    json_object *calls = json_object_new_array();
    int rc = calls ? 0 : OOM(c->err, c->errlen);
    size_t n = json_object_array_length(content);
    for (size_t j = 0; rc == 0 && j < n; j++) {
        json_object *b = json_object_array_get_idx(content, j);
        const char *type = in_str(b, "type");
        if (type == NULL) {
            rc = hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.type: expected a string", i, j);
        } else if (strcmp(type, "text") == 0) {
            json_object *t = aj_get(b, "text");
            rc = !is_type(t, json_type_string)
                     ? hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.text: expected a string", i, j)
                 : append_text(&text, t) != 0 ? OOM(c->err, c->errlen)
                                              : 0;
        } else if (strcmp(type, "tool_use") == 0) {
            rc = tool_call(c, calls, b, i, j);
        } else if (strcmp(type, "thinking") != 0 && strcmp(type, "redacted_thinking") != 0) {
            rc = hx_fail(c->err, c->errlen,
                      "messages.%zu.content.%zu.type: unsupported block type \"%s\" in an assistant message", i, j, type);
        }
    }
    if (rc == 0)
        rc = push_assistant(c, &text, calls);
    hx_buf_free(&text);
    json_object_put(calls);
    return rc;
}

/* ---- request: top level --------------------------------------------------- */

static int in_messages(in_conv *c, json_object *body)
{
    json_object *msgs = aj_get(body, "messages");
    if (msgs == NULL)
        return hx_fail(c->err, c->errlen, "messages is required");
    if (!is_type(msgs, json_type_array))
        return hx_fail(c->err, c->errlen, "messages: expected an array");
    size_t n = json_object_array_length(msgs);
    if (n == 0)
        return hx_fail(c->err, c->errlen, "messages: at least one message is required");
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(msgs, i), *content = aj_get(m, "content");
        const char *role = in_str(m, "role");
        if (!is_type(m, json_type_object))
            return hx_fail(c->err, c->errlen, "messages.%zu: expected an object", i);
        if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
            return hx_fail(c->err, c->errlen, "messages.%zu.role: expected \"user\" or \"assistant\"", i);
        if (content == NULL)
            return hx_fail(c->err, c->errlen, "messages.%zu.content is required", i);
        int rc;
        if (is_type(content, json_type_string))
            rc = push_msg(c, role, "content", json_object_get(content));
        else if (!is_type(content, json_type_array))
            rc = hx_fail(c->err, c->errlen, "messages.%zu.content: expected a string or an array", i);
        else
            rc = role[0] == 'u' ? user_message(c, content, i) : assistant_message(c, content, i);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* system (string or text blocks) → the leading system message. */
static int in_system(in_conv *c, json_object *body)
{
    json_object *sys = aj_get(body, "system");
    if (sys == NULL)
        return 0;
    if (is_type(sys, json_type_string))
        return json_object_get_string_len(sys) ? push_msg(c, "system", "content", json_object_get(sys)) : 0;
    if (!is_type(sys, json_type_array))
        return hx_fail(c->err, c->errlen, "system: expected a string or an array of text blocks");
    hx_buf t;
    hx_buf_init(&t, HX_IN_FIELD_MAX);
    for (size_t i = 0; i < json_object_array_length(sys); i++) {
        json_object *b = json_object_array_get_idx(sys, i), *s = aj_get(b, "text");
        const char *type = in_str(b, "type");
        if (type == NULL || strcmp(type, "text") != 0 || !is_type(s, json_type_string)) {
            hx_buf_free(&t);
            return hx_fail(c->err, c->errlen, "system.%zu: expected a text block", i);
        }
        if ((t.len && json_object_get_string_len(s) && hx_buf_append(&t, "\n\n", 2) != 0) || append_text(&t, s) != 0) {
            hx_buf_free(&t);
            return OOM(c->err, c->errlen);
        }
    }
    int rc = t.len ? push_msg(c, "system", "content", json_object_new_string_len(t.data, (int)t.len)) : 0;
    hx_buf_free(&t);
    return rc;
}

static int in_tool_choice(json_object *body, json_object *out, char *err, size_t errlen)
{
    json_object *tc = aj_get(body, "tool_choice"), *v = NULL;
    if (tc == NULL)
        return 0;
    const char *type = in_str(tc, "type"), *name = in_str(tc, "name");
    if (type && strcmp(type, "auto") == 0)
        v = json_object_new_string("auto");
    else if (type && strcmp(type, "any") == 0)
        v = json_object_new_string("required");
    else if (type && strcmp(type, "none") == 0)
        v = json_object_new_string("none");
    else if (type && strcmp(type, "tool") == 0 && name) {
        json_object *fn = json_object_new_object();
        v = json_object_new_object();
        if (v == NULL || aj_set(v, "function", fn) != 0 || aj_set(v, "type", json_object_new_string("function")) != 0 ||
            aj_set(fn, "name", json_object_new_string(name)) != 0) {
            json_object_put(v);
            return OOM(err, errlen);
        }
    } else {
        return hx_fail(err, errlen, "tool_choice: expected {\"type\": \"auto\" | \"any\" | \"none\" | \"tool\" (with name)}");
    }
    if (aj_set(out, "tool_choice", v) != 0)
        return OOM(err, errlen);
    json_object *dp = aj_get(tc, "disable_parallel_tool_use");
    if (is_type(dp, json_type_boolean) && json_object_get_boolean(dp) &&
        aj_set(out, "parallel_tool_calls", json_object_new_boolean(0)) != 0)
        return OOM(err, errlen);
    return 0;
}

static int in_tools(json_object *body, json_object *out, char *err, size_t errlen)
{
    json_object *tools = aj_get(body, "tools"), *arr;
    if (tools != NULL && !is_type(tools, json_type_array))
        return hx_fail(err, errlen, "tools: expected an array");
    if (tools == NULL || json_object_array_length(tools) == 0)
        return 0; /* tool_choice means nothing without tools */
    if ((arr = json_object_new_array()) == NULL || aj_set(out, "tools", arr) != 0)
        return OOM(err, errlen);
    for (size_t i = 0; i < json_object_array_length(tools); i++) {
        json_object *t = json_object_array_get_idx(tools, i), *schema = aj_get(t, "input_schema");
        const char *name = in_str(t, "name"), *type = in_str(t, "type");
        json_object *desc = aj_get(t, "description");
        if (type && strcmp(type, "custom") != 0)
            return hx_fail(err, errlen, "tools.%zu.type: tool type \"%s\" is not supported", i, type);
        if (name == NULL)
            return hx_fail(err, errlen, "tools.%zu.name: expected a string", i);
        if (!is_type(schema, json_type_object))
            return hx_fail(err, errlen, "tools.%zu.input_schema: expected an object", i);
        if (desc && !is_type(desc, json_type_string))
            return hx_fail(err, errlen, "tools.%zu.description: expected a string", i);
        json_object *o = json_object_new_object(), *fn = json_object_new_object();
        if (o == NULL || aj_push(arr, o) != 0 || aj_set(o, "function", fn) != 0) {
            json_object_put(fn);
            return OOM(err, errlen);
        }
        if (fn == NULL || aj_set(o, "type", json_object_new_string("function")) != 0 ||
            aj_set(fn, "name", json_object_new_string(name)) != 0 ||
            (desc && aj_set(fn, "description", json_object_get(desc)) != 0) ||
            aj_set(fn, "parameters", json_object_get(schema)) != 0)
            return OOM(err, errlen);
    }
    return in_tool_choice(body, out, err, errlen);
}

static int in_params(json_object *body, json_object *out, char *err, size_t errlen)
{
    json_object *v = aj_get(body, "max_tokens");
    if (v == NULL)
        return hx_fail(err, errlen, "max_tokens is required");
    if (!is_type(v, json_type_int) || json_object_get_int64(v) <= 0)
        return hx_fail(err, errlen, "max_tokens: expected a positive integer");
    if (aj_set(out, "max_tokens", json_object_get(v)) != 0)
        return OOM(err, errlen);
    static const char *const nums[] = {"temperature", "top_p", "top_k"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if ((v = aj_get(body, nums[i])) == NULL)
            continue;
        if (!is_number(v))
            return hx_fail(err, errlen, "%s: expected a number", nums[i]);
        if (aj_set(out, nums[i], json_object_get(v)) != 0)
            return OOM(err, errlen);
    }
    if ((v = aj_get(body, "stop_sequences")) != NULL) {
        if (!is_type(v, json_type_array))
            return hx_fail(err, errlen, "stop_sequences: expected an array of strings");
        for (size_t i = 0; i < json_object_array_length(v); i++)
            if (!is_type(json_object_array_get_idx(v, i), json_type_string))
                return hx_fail(err, errlen, "stop_sequences.%zu: expected a string", i);
        if (json_object_array_length(v) && aj_set(out, "stop", json_object_get(v)) != 0)
            return OOM(err, errlen);
    }
    if ((v = aj_get(body, "metadata")) != NULL) {
        json_object *u = aj_get(v, "user_id");
        if (!is_type(v, json_type_object) || (u && !is_type(u, json_type_string)))
            return hx_fail(err, errlen, "metadata: expected an object with a string user_id");
        if (u && aj_set(out, "user", json_object_get(u)) != 0)
            return OOM(err, errlen);
    }
    return 0;
}

static int in_head(json_object *body, json_object *out, hx_in_info *info, char *err, size_t errlen)
{
    json_object *model = aj_get(body, "model"), *stream = aj_get(body, "stream");
    if (model == NULL)
        return hx_fail(err, errlen, "model is required");
    if (!is_type(model, json_type_string) || json_object_get_string_len(model) == 0)
        return hx_fail(err, errlen, "model: expected a non-empty string");
    if ((size_t)json_object_get_string_len(model) >= sizeof info->model)
        return hx_fail(err, errlen, "model: name too long");
    if (strlen(json_object_get_string(model)) != (size_t)json_object_get_string_len(model))
        return hx_fail(err, errlen, "model: must not contain NUL characters");
    snprintf(info->model, sizeof info->model, "%s", json_object_get_string(model));
    if (stream && !is_type(stream, json_type_boolean))
        return hx_fail(err, errlen, "stream: expected a boolean");
    info->stream = stream && json_object_get_boolean(stream);
    info->include_usage = true;
    info->render = &hx_render_anthropic;
    if (aj_set(out, "model", json_object_get(model)) != 0 || aj_set(out, "stream", json_object_new_boolean(info->stream)) != 0)
        return OOM(err, errlen);
    if (info->stream) {
        json_object *so = json_object_new_object();
        if (so == NULL || aj_set(out, "stream_options", so) != 0 ||
            aj_set(so, "include_usage", json_object_new_boolean(1)) != 0)
            return OOM(err, errlen);
    }
    return 0;
}

int hx_in_anthropic(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen)
{
    *canon = NULL;
    memset(info, 0, sizeof *info);
    if (!is_type(body, json_type_object))
        return hx_fail(err, errlen, "request body must be a JSON object");
    json_object *out = json_object_new_object();
    in_conv c = {.msgs = json_object_new_array(), .err = err, .errlen = errlen};
    int rc = out && c.msgs ? 0 : OOM(err, errlen);
    if (rc == 0)
        rc = in_head(body, out, info, err, errlen);
    if (rc == 0)
        rc = in_params(body, out, err, errlen);
    if (rc == 0)
        rc = in_system(&c, body);
    if (rc == 0)
        rc = in_messages(&c, body);
    if (rc == 0)
        rc = in_tools(body, out, err, errlen);
    if (rc == 0) {
        rc = aj_set(out, "messages", c.msgs) == 0 ? 0 : OOM(err, errlen);
        c.msgs = NULL;
    }
    json_object_put(c.msgs);
    if (rc != 0) {
        json_object_put(out);
        return -1;
    }
    *canon = out;
    return 0;
}
