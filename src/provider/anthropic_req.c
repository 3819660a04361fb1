/* Anthropic adapter, request side: the canonical (OpenAI Chat Completions
 * shape) request → an Anthropic Messages API request. */
#include <stdio.h>
#include <string.h>

#include "provider/anthropic_int.h"
#include "provider/provider.h"
#include "util/alloc.h"
#include "util/fail.h"

#define ANTH_DEFAULT_MAX_TOKENS 4096


/* ---- request: messages --------------------------------------------------- */

typedef struct {
    json_object *msgs;         /* output messages */
    json_object *last_content; /* content array of the last output message */
    const char *last_role;
    bool last_from_string;     /* it came from one string content: collapse */
    hx_buf system;
    json_object *sys_blocks;   /* the same as blocks, sent when one is cached */
    bool sys_cache;
    const hx_provider *p;
    char *err;
    size_t errlen;
} anth_conv;

/* A message built from a single string keeps the string form. */
static void conv_finish_last(anth_conv *c)
{
    json_object *m, *b;
    if (!c->last_from_string || json_object_array_length(c->last_content) != 1)
        return;
    b = json_object_array_get_idx(c->last_content, 0);
    if (strcmp(aj_str(b, "type") ? aj_str(b, "type") : "", "text") != 0)
        return;
    m = json_object_array_get_idx(c->msgs, json_object_array_length(c->msgs) - 1);
    json_object *txt = aj_get(b, "text");
    json_object_get(txt);
    if (hx_json_set(m, "content", txt) != 0)
        return; /* the block form stays valid */
    c->last_content = NULL;
    c->last_from_string = false;
}

/* Appends blocks as a message of `role`, merged into the previous one when
 * it has the same role (Anthropic requires alternation). Takes blocks. */
static int conv_emit(anth_conv *c, const char *role, json_object *blocks, bool from_string)
{
    size_t n = json_object_array_length(blocks);
    if (n == 0) {
        json_object_put(blocks);
        return 0;
    }
    if (c->last_role && strcmp(c->last_role, role) == 0 && c->last_content) {
        for (size_t i = 0; i < n; i++)
            if (hx_json_push(c->last_content, json_object_get(json_object_array_get_idx(blocks, i))) != 0) {
                json_object_put(blocks);
                return hx_fail(c->err, c->errlen, "out of memory");
            }
        json_object_put(blocks);
        c->last_from_string = false;
        return 0;
    }
    if (c->last_role)
        conv_finish_last(c);
    json_object *m = json_object_new_object();
    if (m == NULL || hx_json_push(c->msgs, m) != 0 || hx_json_set(m, "role", json_object_new_string(role)) != 0) {
        json_object_put(blocks);
        return hx_fail(c->err, c->errlen, "out of memory");
    }
    if (hx_json_set(m, "content", blocks) != 0)
        return hx_fail(c->err, c->errlen, "out of memory");
    c->last_content = blocks;
    c->last_role = role;
    c->last_from_string = from_string;
    return 0;
}

static json_object *text_block(const char *s, size_t len)
{
    json_object *b = json_object_new_object();
    if (b == NULL)
        return NULL;
    if (hx_json_set(b, "type", json_object_new_string("text")) != 0 || hx_json_set(b, "text", json_object_new_string_len(s, (int)len)) != 0) {
        json_object_put(b);
        return NULL;
    }
    return b;
}

/* Prompt-caching markers (an Anthropic client's, kept in the canonical
 * request on parts, system and tools) go back where they were. */
static int keep_cache(json_object *b, json_object *from)
{
    json_object *cc = aj_get(from, "cache_control");
    return cc == NULL ? 0 : hx_json_set(b, "cache_control", json_object_get(cc));
}

/* The cache_control of the last part of a content array that has one. */
static json_object *parts_cache(json_object *content)
{
    json_object *cc = NULL;
    if (content && json_object_is_type(content, json_type_array))
        for (size_t j = 0; j < json_object_array_length(content); j++)
            if (aj_get(json_object_array_get_idx(content, j), "cache_control"))
                cc = json_object_array_get_idx(content, j);
    return cc;
}

/* The `source` of an image block from a data: or http(s) URL. */
static json_object *image_source(anth_conv *c, const char *url, size_t i, size_t j)
{
    json_object *src = json_object_new_object();
    int rc = src ? 0 : -1;
    if (rc == 0 && strncmp(url, "data:", 5) == 0) {
        const char *comma = strchr(url, ',');
        const char *semi = comma ? memchr(url + 5, ';', (size_t)(comma - url - 5)) : NULL;
        if (semi == NULL || semi == url + 5 || comma - url < 13 || memcmp(comma - 7, ";base64", 7) != 0) {
            json_object_put(src);
            hx_fail(c->err, c->errlen, "messages.%zu.content.%zu: image data URL must be data:<media type>;base64,<data>", i, j);
            return NULL;
        }
        rc |= hx_json_set(src, "type", json_object_new_string("base64"));
        rc |= hx_json_set(src, "media_type", json_object_new_string_len(url + 5, (int)(semi - url - 5)));
        rc |= hx_json_set(src, "data", json_object_new_string(comma + 1));
    } else if (rc == 0 && (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0)) {
        rc |= hx_json_set(src, "type", json_object_new_string("url"));
        rc |= hx_json_set(src, "url", json_object_new_string(url));
    } else if (rc == 0) {
        json_object_put(src);
        hx_fail(c->err, c->errlen, "messages.%zu.content.%zu: image URL must be a data: or http(s) URL", i, j);
        return NULL;
    }
    if (rc != 0) {
        json_object_put(src);
        hx_fail(c->err, c->errlen, "out of memory");
        return NULL;
    }
    return src;
}

/* {type:image, source:{...}} from an OpenAI image_url part. */
static json_object *image_block(anth_conv *c, json_object *part, size_t i, size_t j)
{
    json_object *iu = aj_get(part, "image_url");
    const char *url = iu && json_object_is_type(iu, json_type_string) ? json_object_get_string(iu) : aj_str(iu, "url");
    if (url == NULL) {
        hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.image_url.url is required", i, j);
        return NULL;
    }
    json_object *src = image_source(c, url, i, j);
    if (src == NULL)
        return NULL;
    json_object *b = json_object_new_object();
    if (b == NULL || hx_json_set(b, "type", json_object_new_string("image")) != 0) {
        json_object_put(src);
        json_object_put(b);
        hx_fail(c->err, c->errlen, "out of memory");
        return NULL;
    }
    if (hx_json_set(b, "source", src) != 0) {
        json_object_put(b);
        hx_fail(c->err, c->errlen, "out of memory");
        return NULL;
    }
    return b;
}

/* User content (string or parts) → blocks appended to `blocks`. */
static int user_blocks(anth_conv *c, json_object *content, size_t i, json_object *blocks)
{
    if (content == NULL)
        return 0;
    if (json_object_is_type(content, json_type_string)) {
        if (json_object_get_string_len(content) == 0)
            return 0;
        return hx_json_push(blocks, text_block(json_object_get_string(content), (size_t)json_object_get_string_len(content))) == 0
                   ? 0
                   : hx_fail(c->err, c->errlen, "out of memory");
    }
    if (!json_object_is_type(content, json_type_array))
        return hx_fail(c->err, c->errlen, "messages.%zu.content: expected a string or an array", i);
    size_t n = json_object_array_length(content);
    for (size_t j = 0; j < n; j++) {
        json_object *part = json_object_array_get_idx(content, j), *b;
        const char *type = aj_str(part, "type");
        if (type && strcmp(type, "text") == 0) {
            json_object *t = aj_get(part, "text");
            if (t == NULL || !json_object_is_type(t, json_type_string))
                return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.text: expected a string", i, j);
            if (json_object_get_string_len(t) == 0)
                continue;
            b = text_block(json_object_get_string(t), (size_t)json_object_get_string_len(t));
            if (b == NULL)
                return hx_fail(c->err, c->errlen, "out of memory");
        } else if (type && strcmp(type, "image_url") == 0) {
            if ((b = image_block(c, part, i, j)) == NULL)
                return -1;
        } else {
            return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu: content part type \"%s\" is not supported by anthropic",
                        i, j, type ? type : "");
        }
        if (keep_cache(b, part) != 0) {
            json_object_put(b);
            return hx_fail(c->err, c->errlen, "out of memory");
        }
        if (hx_json_push(blocks, b) != 0)
            return hx_fail(c->err, c->errlen, "out of memory");
    }
    return 0;
}

static int tool_use_blocks(anth_conv *c, json_object *calls, size_t i, json_object *blocks)
{
    if (!json_object_is_type(calls, json_type_array))
        return hx_fail(c->err, c->errlen, "messages.%zu.tool_calls: expected an array", i);
    size_t n = json_object_array_length(calls);
    for (size_t j = 0; j < n; j++) {
        json_object *tc = json_object_array_get_idx(calls, j), *fn = aj_get(tc, "function");
        const char *id = aj_str(tc, "id"), *name = aj_str(fn, "name");
        if (id == NULL || name == NULL)
            return hx_fail(c->err, c->errlen, "messages.%zu.tool_calls.%zu: id and function.name are required", i, j);
        json_object *a = aj_get(fn, "arguments"), *input = NULL;
        bool str = a && json_object_is_type(a, json_type_string);
        const char *args = str ? json_object_get_string(a) : "";
        size_t alen = str ? (size_t)json_object_get_string_len(a) : 0, k = 0;
        while (k < alen && (args[k] == ' ' || args[k] == '\t' || args[k] == '\r' || args[k] == '\n'))
            k++;
        if (a != NULL && json_object_is_type(a, json_type_object))
            input = json_object_get(a);
        else if (a == NULL || (str && k == alen))
            input = json_object_new_object();
        else if (!str || (input = hx_anth_parse_json(args, alen)) == NULL || !json_object_is_type(input, json_type_object)) {
            json_object_put(input);
            return hx_fail(c->err, c->errlen, "messages.%zu.tool_calls.%zu: tool call arguments are not valid JSON", i, j);
        }
        json_object *b = json_object_new_object();
        if (b == NULL || hx_json_push(blocks, b) != 0 || hx_json_set(b, "type", json_object_new_string("tool_use")) != 0 ||
            hx_json_set(b, "id", json_object_new_string(id)) != 0 || hx_json_set(b, "name", json_object_new_string(name)) != 0) {
            json_object_put(input);
            return hx_fail(c->err, c->errlen, "out of memory");
        }
        if (hx_json_set(b, "input", input) != 0)
            return hx_fail(c->err, c->errlen, "out of memory");
    }
    return 0;
}

static int conv_tool_result(anth_conv *c, json_object *m, size_t i)
{
    const char *id = aj_str(m, "tool_call_id");
    if (id == NULL)
        return hx_fail(c->err, c->errlen, "messages.%zu.tool_call_id is required", i);
    hx_buf t;
    hx_buf_init(&t, HX_UP_REQUEST_BODY_MAX);
    json_object *blocks = json_object_new_array(), *b = json_object_new_object();
    int rc = blocks && b && hx_content_text(aj_get(m, "content"), &t) == 0 ? 0 : -1;
    if (rc == 0)
        rc = hx_json_set(b, "type", json_object_new_string("tool_result")) | hx_json_set(b, "tool_use_id", json_object_new_string(id)) |
             hx_json_set(b, "content", json_object_new_string_len(t.data ? t.data : "", (int)t.len)) |
             keep_cache(b, aj_get(m, "cache_control") ? m : parts_cache(aj_get(m, "content")));
    hx_buf_free(&t);
    if (rc != 0 || hx_json_push(blocks, b) != 0) {
        if (rc != 0)
            json_object_put(b);
        json_object_put(blocks);
        return hx_fail(c->err, c->errlen, "out of memory");
    }
    return conv_emit(c, "user", blocks, false);
}

/* A system message's text blocks, with their cache_control (a message-level
 * one marks its last block). */
static int conv_system_blocks(anth_conv *c, json_object *m, json_object *content)
{
    size_t n = content && json_object_is_type(content, json_type_array) ? json_object_array_length(content) : 1;
    json_object *last = NULL;
    for (size_t j = 0; j < n; j++) {
        json_object *part = json_object_is_type(content, json_type_array) ? json_object_array_get_idx(content, j) : NULL;
        json_object *t = part ? aj_get(part, "text") : content;
        const char *type = part ? aj_str(part, "type") : "text";
        if (t == NULL || !json_object_is_type(t, json_type_string) || type == NULL || strcmp(type, "text") != 0 ||
            json_object_get_string_len(t) == 0)
            continue;
        json_object *b = text_block(json_object_get_string(t), (size_t)json_object_get_string_len(t));
        if (hx_json_push(c->sys_blocks, b) != 0 || keep_cache(b, part) != 0)
            return hx_fail(c->err, c->errlen, "out of memory");
        c->sys_cache = c->sys_cache || aj_get(part, "cache_control");
        last = b;
    }
    if (last && aj_get(m, "cache_control")) {
        c->sys_cache = true;
        if (keep_cache(last, m) != 0)
            return hx_fail(c->err, c->errlen, "out of memory");
    }
    return 0;
}

/* What a canonical message may carry to Anthropic. */
static const char *const msg_members[] = {"role", "content", "tool_calls", "tool_call_id", "cache_control", NULL};

static int conv_message(anth_conv *c, json_object *m, size_t i)
{
    if (hx_canon_check_message(c->p, m, i, msg_members, c->err, c->errlen) != 0)
        return -1;
    const char *role = aj_str(m, "role");
    json_object *content = aj_get(m, "content");
    if (role == NULL)
        return hx_fail(c->err, c->errlen, "messages.%zu.role is required", i);
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
        size_t before = c->system.len;
        if (before && hx_buf_append(&c->system, "\n\n", 2) != 0)
            return hx_fail(c->err, c->errlen, "out of memory");
        if (hx_content_text(content, &c->system) != 0)
            return hx_fail(c->err, c->errlen, "out of memory");
        if (c->system.len == before + (before ? 2 : 0))
            c->system.len = before; /* empty: no separator */
        if (c->system.data)
            c->system.data[c->system.len] = '\0';
        return conv_system_blocks(c, m, content);
    }
    if (strcmp(role, "tool") == 0)
        return conv_tool_result(c, m, i);
    bool user = strcmp(role, "user") == 0;
    if (!user && strcmp(role, "assistant") != 0)
        return hx_fail(c->err, c->errlen, "messages.%zu.role: unsupported role \"%s\"", i, role);
    json_object *blocks = json_object_new_array();
    if (blocks == NULL)
        return hx_fail(c->err, c->errlen, "out of memory");
    int rc;
    if (user) {
        rc = user_blocks(c, content, i, blocks);
    } else {
        hx_buf t;
        hx_buf_init(&t, HX_UP_REQUEST_BODY_MAX);
        rc = hx_content_text(content, &t) == 0 ? 0 : hx_fail(c->err, c->errlen, "out of memory");
        json_object *tb = rc == 0 && t.len ? text_block(t.data, t.len) : NULL;
        if (rc == 0 && t.len && (hx_json_push(blocks, tb) != 0 || keep_cache(tb, parts_cache(content)) != 0))
            rc = hx_fail(c->err, c->errlen, "out of memory");
        hx_buf_free(&t);
        if (rc == 0 && aj_get(m, "tool_calls"))
            rc = tool_use_blocks(c, aj_get(m, "tool_calls"), i, blocks);
    }
    if (rc != 0) {
        json_object_put(blocks);
        return -1;
    }
    bool from_string = content && json_object_is_type(content, json_type_string) && !aj_get(m, "tool_calls");
    return conv_emit(c, user ? "user" : "assistant", blocks, from_string);
}

static int conv_messages(const hx_provider *p, json_object *canon, json_object *out, char *err, size_t errlen)
{
    json_object *msgs = aj_get(canon, "messages");
    if (msgs == NULL || !json_object_is_type(msgs, json_type_array))
        return hx_fail(err, errlen, "messages: expected an array");
    anth_conv c = {.msgs = json_object_new_array(), .sys_blocks = json_object_new_array(), .p = p, .err = err,
                   .errlen = errlen};
    hx_buf_init(&c.system, HX_UP_REQUEST_BODY_MAX);
    if (c.msgs == NULL || c.sys_blocks == NULL) {
        json_object_put(c.msgs);
        json_object_put(c.sys_blocks);
        return hx_fail(err, errlen, "out of memory");
    }
    int rc = 0;
    size_t n = json_object_array_length(msgs);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = conv_message(&c, json_object_array_get_idx(msgs, i), i);
    if (rc == 0 && c.last_role)
        conv_finish_last(&c);
    if (rc == 0 && json_object_array_length(c.msgs) == 0)
        rc = hx_fail(err, errlen, "messages: at least one non-system message with content is required");
    if (rc == 0 && c.sys_cache) {
        rc = hx_json_set(out, "system", c.sys_blocks) == 0 ? 0 : hx_fail(err, errlen, "out of memory");
        c.sys_blocks = NULL;
    } else if (rc == 0 && c.system.len &&
               hx_json_set(out, "system", json_object_new_string_len(c.system.data, (int)c.system.len)) != 0) {
        rc = hx_fail(err, errlen, "out of memory");
    }
    if (rc == 0) {
        rc = hx_json_set(out, "messages", c.msgs) == 0 ? 0 : hx_fail(err, errlen, "out of memory");
        c.msgs = NULL;
    }
    json_object_put(c.msgs);
    json_object_put(c.sys_blocks);
    hx_buf_free(&c.system);
    return rc;
}

/* ---- request: tools and parameters -------------------------------------- */

static int conv_tool_choice(json_object *canon, json_object *out, char *err, size_t errlen)
{
    json_object *tc = aj_get(canon, "tool_choice"), *pt = aj_get(canon, "parallel_tool_calls");
    const char *type = "auto", *name = NULL;
    if (tc && json_object_is_type(tc, json_type_string)) {
        const char *s = json_object_get_string(tc);
        if (strcmp(s, "required") == 0)
            type = "any";
        else if (strcmp(s, "none") == 0)
            type = "none";
        else if (strcmp(s, "auto") != 0)
            return hx_fail(err, errlen, "tool_choice: unsupported value \"%s\"", s);
    } else if (tc) {
        name = aj_str(aj_get(tc, "function"), "name");
        if (name == NULL)
            return hx_fail(err, errlen, "tool_choice: expected \"auto\", \"required\", \"none\" or {\"type\":\"function\",\"function\":{\"name\":...}}");
        type = "tool";
    } else if (!(pt && json_object_is_type(pt, json_type_boolean) && !json_object_get_boolean(pt))) {
        return 0;
    }
    json_object *o = json_object_new_object();
    int rc = o ? hx_json_set(o, "type", json_object_new_string(type)) : -1;
    if (rc == 0 && name)
        rc = hx_json_set(o, "name", json_object_new_string(name));
    if (rc == 0 && strcmp(type, "none") != 0 && pt && json_object_is_type(pt, json_type_boolean) &&
        !json_object_get_boolean(pt))
        rc = hx_json_set(o, "disable_parallel_tool_use", json_object_new_boolean(1));
    if (rc != 0) {
        json_object_put(o);
        return hx_fail(err, errlen, "out of memory");
    }
    return hx_json_set(out, "tool_choice", o) == 0 ? 0 : hx_fail(err, errlen, "out of memory");
}

static json_object *default_schema(void)
{
    json_object *s = json_object_new_object();
    if (s && (hx_json_set(s, "type", json_object_new_string("object")) != 0 || hx_json_set(s, "properties", json_object_new_object()) != 0)) {
        json_object_put(s);
        return NULL;
    }
    return s;
}

static int conv_tools(json_object *canon, json_object *out, char *err, size_t errlen)
{
    json_object *tools = aj_get(canon, "tools");
    if (tools == NULL)
        return 0;
    if (!json_object_is_type(tools, json_type_array))
        return hx_fail(err, errlen, "tools: expected an array");
    size_t n = json_object_array_length(tools);
    if (n == 0)
        return 0;
    json_object *arr = json_object_new_array();
    if (arr == NULL || hx_json_set(out, "tools", arr) != 0)
        return hx_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(tools, i), *fn = aj_get(t, "function");
        const char *type = aj_str(t, "type"), *name = aj_str(fn, "name"), *desc = aj_str(fn, "description");
        if (type && strcmp(type, "function") != 0)
            return hx_fail(err, errlen, "tools.%zu: tool type \"%s\" is not supported by anthropic", i, type);
        if (name == NULL)
            return hx_fail(err, errlen, "tools.%zu.function.name is required", i);
        json_object *params = aj_get(fn, "parameters"), *o = json_object_new_object();
        if (o == NULL || hx_json_push(arr, o) != 0 || hx_json_set(o, "name", json_object_new_string(name)) != 0 ||
            (desc && hx_json_set(o, "description", json_object_new_string(desc)) != 0) ||
            hx_json_set(o, "input_schema", params ? json_object_get(params) : default_schema()) != 0 ||
            keep_cache(o, aj_get(t, "cache_control") ? t : fn) != 0)
            return hx_fail(err, errlen, "out of memory");
    }
    return conv_tool_choice(canon, out, err, errlen);
}

static int conv_params(json_object *canon, json_object *out, bool stream, char *err, size_t errlen)
{
    json_object *mt = aj_get(canon, "max_completion_tokens"), *v;
    if (mt == NULL)
        mt = aj_get(canon, "max_tokens");
    if (mt && (!json_object_is_type(mt, json_type_int) || json_object_get_int64(mt) <= 0))
        return hx_fail(err, errlen, "max_tokens must be a positive integer");
    if (hx_json_set(out, "max_tokens", mt ? json_object_get(mt) : json_object_new_int(ANTH_DEFAULT_MAX_TOKENS)) != 0)
        return hx_fail(err, errlen, "out of memory");
    static const char *const pass[] = {"temperature", "top_p", "top_k"};
    for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++)
        if ((v = aj_get(canon, pass[i])) != NULL && hx_json_set(out, pass[i], json_object_get(v)) != 0)
            return hx_fail(err, errlen, "out of memory");
    if ((v = aj_get(canon, "stop")) != NULL) {
        json_object *arr = json_object_new_array();
        if (arr == NULL || hx_json_set(out, "stop_sequences", arr) != 0)
            return hx_fail(err, errlen, "out of memory");
        if (json_object_is_type(v, json_type_string)) {
            if (hx_json_push(arr, json_object_get(v)) != 0)
                return hx_fail(err, errlen, "out of memory");
        } else if (json_object_is_type(v, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *s = json_object_array_get_idx(v, i);
                if (!json_object_is_type(s, json_type_string))
                    return hx_fail(err, errlen, "stop.%zu: expected a string", i);
                if (hx_json_push(arr, json_object_get(s)) != 0)
                    return hx_fail(err, errlen, "out of memory");
            }
        } else {
            return hx_fail(err, errlen, "stop: expected a string or an array");
        }
        if (json_object_array_length(arr) == 0)
            json_object_object_del(out, "stop_sequences");
    }
    if (stream && hx_json_set(out, "stream", json_object_new_boolean(1)) != 0)
        return hx_fail(err, errlen, "out of memory");
    return 0;
}

static int auth_headers(const hx_provider *p, hx_headers *h)
{
    if (p->api_key && p->api_key[0] && hx_headers_add(h, "x-api-key", p->api_key) != 0)
        return -1;
    return hx_headers_add(h, "anthropic-version", HX_ANTH_VERSION);
}

int hx_anth_build_chat(const hx_provider *p, json_object *canon, bool stream, hx_up_request *out, char *err,
                       size_t errlen)
{
    hx_up_request_init(out);
    json_object *body = json_object_new_object();
    int rc = body ? 0 : hx_fail(err, errlen, "out of memory");
    if (rc == 0 && !json_object_is_type(canon, json_type_object))
        rc = hx_fail(err, errlen, "request must be a JSON object");
    if (rc == 0 && hx_json_set(body, "model", json_object_new_string(p->model ? p->model : "")) != 0)
        rc = hx_fail(err, errlen, "out of memory");
    if (rc == 0)
        rc = conv_messages(p, canon, body, err, errlen);
    if (rc == 0)
        rc = conv_params(canon, body, stream, err, errlen);
    if (rc == 0)
        rc = hx_anth_conv_extras(p, canon, body, err, errlen);
    if (rc == 0)
        rc = conv_tools(canon, body, err, errlen);
    if (rc == 0 && ((out->url = hx_url_join(p->base_url ? p->base_url : "", "messages")) == NULL ||
                    hx_headers_add(&out->headers, "Content-Type", "application/json") != 0 ||
                    auth_headers(p, &out->headers) != 0 || hx_json_append(&out->body, body) != 0))
        rc = hx_fail(err, errlen, "out of memory");
    out->method = "POST";
    json_object_put(body);
    if (rc != 0)
        hx_up_request_free(out);
    return rc;
}

int hx_anth_build_probe(const hx_provider *p, hx_up_request *out)
{
    hx_up_request_init(out);
    out->method = "GET";
    if ((out->url = hx_url_join(p->base_url ? p->base_url : "", "models")) == NULL || auth_headers(p, &out->headers) != 0) {
        hx_up_request_free(out);
        return -1;
    }
    return 0;
}
