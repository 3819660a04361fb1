/* Inbound Anthropic Messages API: the request → the canonical (OpenAI Chat
 * Completions shape) request. Its renderer is in anthropic_render.c. */
#include <stdarg.h>
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
    hx_in_info *info;
    bool skip; /* the last block had no canonical form (recorded) */
    char *err;
    size_t errlen;
} in_conv;

/* What has no canonical meaning is not refused here: an Anthropic provider
 * takes the body as it is. The first such member is recorded, and any
 * other provider refuses the request naming it (chain.c). */
static void only_native(hx_in_info *info, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void only_native(hx_in_info *info, const char *fmt, ...)
{
    if (info->no_canon[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(info->no_canon, sizeof info->no_canon, fmt, ap);
    va_end(ap);
}

/* A value that asks for nothing (null, false, {} or []). */
static bool neutral(json_object *v)
{
    if (v == NULL)
        return true;
    if (json_object_is_type(v, json_type_boolean))
        return !json_object_get_boolean(v);
    if (json_object_is_type(v, json_type_object))
        return json_object_object_length(v) == 0;
    if (json_object_is_type(v, json_type_array))
        return json_object_array_length(v) == 0;
    return false;
}

/* The first member of o outside `known` (NULL-terminated) that asks for
 * something, or NULL. citations {enabled: false} asks for nothing. */
static const char *other_member(json_object *o, const char *const *known)
{
    json_object_object_foreach(o, k, v) {
        bool ok = neutral(v);
        for (size_t i = 0; !ok && known[i]; i++)
            ok = strcmp(known[i], k) == 0;
        json_object *en = NULL;
        if (!ok && strcmp(k, "citations") == 0 && json_object_object_get_ex(v, "enabled", &en))
            ok = neutral(en) && json_object_object_length(v) == 1;
        if (!ok)
            return k;
    }
    return NULL;
}

/* A block's prompt-caching marker goes onto its canonical part (tool,
 * message) under the same name. */
static int keep_cache(json_object *to, json_object *from)
{
    json_object *cc = aj_get(from, "cache_control");
    return cc == NULL ? 0 : hx_json_set(to, "cache_control", json_object_get(cc));
}

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
    if (m == NULL || hx_json_push(c->msgs, m) != 0 || hx_json_set(m, "role", json_object_new_string(role)) != 0) {
        json_object_put(val);
        return OOM(c->err, c->errlen);
    }
    return hx_json_set(m, key, val) == 0 ? 0 : OOM(c->err, c->errlen);
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
    } else if (st) {
        /* a file_id source: only Anthropic knows the file */
        only_native(c->info, "messages.%zu.content.%zu.source (an image from a \"%.20s\" source)", i, j, st);
        c->skip = true;
        return NULL;
    } else {
        hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.source.type: expected \"base64\" or \"url\"", i, j);
        return NULL;
    }
    json_object *p = json_object_new_object(), *iu = json_object_new_object();
    int rc = p && iu ? 0 : -1;
    if (rc == 0)
        rc = hx_json_set(iu, "url", json_object_new_string_len(url.data, (int)url.len));
    hx_buf_free(&url);
    if (rc != 0) {
        json_object_put(iu);
        json_object_put(p);
        OOM(c->err, c->errlen);
        return NULL;
    }
    if (hx_json_set(p, "type", json_object_new_string("image_url")) != 0 || hx_json_set(p, "image_url", iu) != 0) {
        json_object_put(p);
        OOM(c->err, c->errlen);
        return NULL;
    }
    return p;
}

/* A base64 PDF document → an OpenAI file part (its title as the file
 * name, which the model sees as OpenAI shows it); any other document has
 * no canonical form. *part stays NULL when the block is only native. */
static int document_part(in_conv *c, json_object *b, size_t i, size_t j, json_object **part)
{
    static const char *const known[] = {"type", "source", "title", "cache_control", NULL};
    json_object *src = aj_get(b, "source");
    const char *st = in_str(src, "type"), *mt = in_str(src, "media_type"), *data = in_str(src, "data");
    const char *title = in_str(b, "title"), *other = other_member(b, known);
    *part = NULL;
    if (!st || strcmp(st, "base64") != 0 || !mt || strcmp(mt, "application/pdf") != 0 || !data) {
        only_native(c->info, "messages.%zu.content.%zu (a document from a \"%.20s\" source)", i, j, st ? st : "");
        return 0;
    }
    if (other) {
        only_native(c->info, "messages.%zu.content.%zu.%.40s", i, j, other);
        return 0;
    }
    hx_buf url;
    hx_buf_init(&url, HX_IN_FIELD_MAX);
    json_object *p = json_object_new_object(), *f = json_object_new_object();
    int rc = p && f && hx_buf_printf(&url, "data:application/pdf;base64,%s", data) == 0 ? 0 : -1;
    if (rc == 0 && hx_json_set(p, "file", f) != 0)
        rc = -1;
    else if (rc != 0)
        json_object_put(f);
    if (rc == 0)
        rc = hx_json_set(p, "type", json_object_new_string("file")) ||
             hx_json_set(f, "filename", json_object_new_string(title && title[0] ? title : "document.pdf")) ||
             hx_json_set(f, "file_data", json_object_new_string_len(url.data, (int)url.len)) || keep_cache(p, b);
    hx_buf_free(&url);
    if (rc != 0) {
        json_object_put(p);
        return OOM(c->err, c->errlen);
    }
    *part = p;
    return 0;
}

/* Text of a tool_result's content: a string or an array of text blocks
 * (an image or document in a result has no canonical form). */
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
        if (type == NULL)
            return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.content.%zu.type: expected a string", i, j, k);
        if (strcmp(type, "text") != 0) {
            only_native(c->info, "messages.%zu.content.%zu.content.%zu (a \"%.20s\" block in a tool result)", i, j, k,
                        type);
            continue;
        }
        if (!is_type(t, json_type_string))
            return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.content.%zu.text: expected a string", i, j, k);
        if (append_text(out, t) != 0)
            return OOM(c->err, c->errlen);
    }
    return 0;
}

/* tool_result → a canonical tool message (cache_control kept). The
 * canonical shape says a tool failed the way OpenAI's does, in the text:
 * is_error: true becomes an "Error: " prefix every provider reads. */
static int push_tool_result(in_conv *c, json_object *b, size_t i, size_t j)
{
    static const char *const known[] = {"type", "tool_use_id", "content", "is_error", "cache_control", NULL};
    const char *id = in_str(b, "tool_use_id"), *other = other_member(b, known);
    json_object *ie = aj_get(b, "is_error");
    if (id == NULL)
        return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.tool_use_id: expected a string", i, j);
    if (ie && !is_type(ie, json_type_boolean))
        return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.is_error: expected a boolean", i, j);
    if (other)
        only_native(c->info, "messages.%zu.content.%zu.%.40s", i, j, other);
    hx_buf t;
    hx_buf_init(&t, HX_IN_FIELD_MAX);
    if ((ie && json_object_get_boolean(ie) && hx_buf_append_str(&t, "Error: ") != 0) ||
        tool_result_text(c, aj_get(b, "content"), i, j, &t) != 0) {
        hx_buf_free(&t);
        return -1;
    }
    json_object *m = json_object_new_object();
    int rc = m == NULL || hx_json_push(c->msgs, m) != 0 || hx_json_set(m, "role", json_object_new_string("tool")) != 0 ||
                     hx_json_set(m, "tool_call_id", json_object_new_string(id)) != 0 ||
                     hx_json_set(m, "content", json_object_new_string_len(t.data ? t.data : "", (int)t.len)) != 0 ||
                     keep_cache(m, b) != 0
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

json_object *hx_in_text_part(json_object *text)
{
    json_object *p = json_object_new_object();
    if (p == NULL || hx_json_set(p, "type", json_object_new_string("text")) != 0 ||
        hx_json_set(p, "text", json_object_get(text)) != 0) {
        json_object_put(p);
        return NULL;
    }
    return p;
}

/* One block of a user message → a canonical part in *part (NULL: nothing
 * to add, e.g. a block only Anthropic knows). */
static int user_part(in_conv *c, json_object *b, const char *type, size_t i, size_t j, json_object **part)
{
    static const char *const text_known[] = {"type", "text", "cache_control", NULL};
    static const char *const image_known[] = {"type", "source", "cache_control", NULL};
    const char *other = NULL;
    *part = NULL;
    if (strcmp(type, "text") == 0) {
        json_object *t = aj_get(b, "text");
        if (!is_type(t, json_type_string))
            return hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.text: expected a string", i, j);
        other = other_member(b, text_known);
        *part = hx_in_text_part(t);
    } else if (strcmp(type, "image") == 0) {
        other = other_member(b, image_known);
        c->skip = false;
        *part = image_part(c, b, i, j);
        if (*part == NULL)
            return c->skip ? 0 : -1;
    } else if (strcmp(type, "document") == 0) {
        return document_part(c, b, i, j, part);
    } else {
        /* search_result, container_upload, server tool blocks... */
        only_native(c->info, "messages.%zu.content.%zu (a \"%.20s\" block)", i, j, type);
        return 0;
    }
    if (*part == NULL || keep_cache(*part, b) != 0) {
        json_object_put(*part);
        *part = NULL;
        return OOM(c->err, c->errlen);
    }
    if (other)
        only_native(c->info, "messages.%zu.content.%zu.%.40s", i, j, other);
    return 0;
}

static int user_message(in_conv *c, json_object *content, size_t i)
{
    json_object *parts = NULL;
    size_t n = json_object_array_length(content);
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < n; j++) {
        json_object *b = json_object_array_get_idx(content, j), *p = NULL;
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
        if (rc == 0)
            rc = user_part(c, b, type, i, j, &p);
        if (rc == 0 && p && hx_json_push(parts, p) != 0)
            rc = OOM(c->err, c->errlen);
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
    int rc = tc == NULL || fn == NULL || hx_json_push(calls, tc) != 0 ? -1 : 0;
    if (rc != 0)
        json_object_put(fn);
    else if (hx_json_set(tc, "function", fn) != 0 || hx_json_set(tc, "id", json_object_new_string(id)) != 0 ||
             hx_json_set(tc, "type", json_object_new_string("function")) != 0 ||
             hx_json_set(fn, "name", json_object_new_string(name)) != 0 ||
             hx_json_set(fn, "arguments", json_object_new_string_len(args.data, (int)args.len)) != 0)
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
    if (m == NULL || hx_json_push(c->msgs, m) != 0 || hx_json_set(m, "role", json_object_new_string("assistant")) != 0)
        return OOM(c->err, c->errlen);
    if (text->len || !has_calls) {
        if (hx_json_set(m, "content", json_object_new_string_len(text->data ? text->data : "", (int)text->len)) != 0)
            return OOM(c->err, c->errlen);
    } else if (json_object_object_add(m, "content", ct) != 0) {
        return OOM(c->err, c->errlen);
    }
    if (has_calls && hx_json_set(m, "tool_calls", json_object_get(calls)) != 0)
        return OOM(c->err, c->errlen);
    return 0;
}

static int assistant_message(in_conv *c, json_object *content, size_t i)
{
    static const char *const text_known[] = {"type", "text", "cache_control", NULL};
    static const char *const use_known[] = {"type", "id", "name", "input", "cache_control", NULL};
    hx_buf text;
    hx_buf_init(&text, HX_IN_FIELD_MAX);
    json_object *calls = json_object_new_array(), *cache = NULL;
    int rc = calls ? 0 : OOM(c->err, c->errlen);
    size_t n = json_object_array_length(content);
    for (size_t j = 0; rc == 0 && j < n; j++) {
        json_object *b = json_object_array_get_idx(content, j);
        const char *type = in_str(b, "type"), *other = NULL;
        if (type == NULL) {
            rc = hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.type: expected a string", i, j);
        } else if (strcmp(type, "text") == 0) {
            json_object *t = aj_get(b, "text");
            other = other_member(b, text_known);
            rc = !is_type(t, json_type_string)
                     ? hx_fail(c->err, c->errlen, "messages.%zu.content.%zu.text: expected a string", i, j)
                 : append_text(&text, t) != 0 ? OOM(c->err, c->errlen)
                                              : 0;
        } else if (strcmp(type, "tool_use") == 0) {
            other = other_member(b, use_known);
            rc = tool_call(c, calls, b, i, j);
        } else if (strcmp(type, "thinking") != 0 && strcmp(type, "redacted_thinking") != 0) {
            /* server_tool_use, web_search_tool_result, mcp_tool_use... */
            only_native(c->info, "messages.%zu.content.%zu (a \"%.20s\" block)", i, j, type);
        } /* earlier thinking: for Anthropic only (docs/providers.md) */
        if (other)
            only_native(c->info, "messages.%zu.content.%zu.%.40s", i, j, other);
        if (aj_get(b, "cache_control"))
            cache = aj_get(b, "cache_control"); /* the message's marker: its last one */
    }
    if (rc == 0)
        rc = push_assistant(c, &text, calls);
    if (rc == 0 && cache) {
        json_object *m = json_object_array_get_idx(c->msgs, json_object_array_length(c->msgs) - 1);
        rc = hx_json_set(m, "cache_control", json_object_get(cache)) == 0 ? 0 : OOM(c->err, c->errlen);
    }
    hx_buf_free(&text);
    json_object_put(calls);
    return rc;
}

/* ---- request: top level --------------------------------------------------- */

static int in_messages(in_conv *c, json_object *body)
{
    static const char *const known[] = {"role", "content", NULL};
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
        const char *role = in_str(m, "role"), *other;
        if (!is_type(m, json_type_object))
            return hx_fail(c->err, c->errlen, "messages.%zu: expected an object", i);
        if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
            return hx_fail(c->err, c->errlen, "messages.%zu.role: expected \"user\" or \"assistant\"", i);
        if (content == NULL)
            return hx_fail(c->err, c->errlen, "messages.%zu.content is required", i);
        if ((other = other_member(m, known)) != NULL)
            only_native(c->info, "messages.%zu.%.40s", i, other);
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

/* system (string or text blocks) → the leading system message: one string,
 * or its text parts when a block carries a cache_control marker. */
static int in_system(in_conv *c, json_object *body)
{
    static const char *const known[] = {"type", "text", "cache_control", NULL};
    json_object *sys = aj_get(body, "system"), *parts = NULL;
    if (sys == NULL)
        return 0;
    if (is_type(sys, json_type_string))
        return json_object_get_string_len(sys) ? push_msg(c, "system", "content", json_object_get(sys)) : 0;
    if (!is_type(sys, json_type_array))
        return hx_fail(c->err, c->errlen, "system: expected a string or an array of text blocks");
    hx_buf t;
    hx_buf_init(&t, HX_IN_FIELD_MAX);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_object_array_length(sys); i++) {
        json_object *b = json_object_array_get_idx(sys, i), *s = aj_get(b, "text");
        const char *type = in_str(b, "type"), *other = other_member(b, known);
        if (type == NULL || strcmp(type, "text") != 0 || !is_type(s, json_type_string)) {
            rc = hx_fail(c->err, c->errlen, "system.%zu: expected a text block", i);
            break;
        }
        if (other)
            only_native(c->info, "system.%zu.%.40s", i, other);
        if ((t.len && json_object_get_string_len(s) && hx_buf_append(&t, "\n\n", 2) != 0) || append_text(&t, s) != 0)
            rc = OOM(c->err, c->errlen);
        if (rc == 0 && aj_get(b, "cache_control") && parts == NULL && (parts = json_object_new_array()) == NULL)
            rc = OOM(c->err, c->errlen);
    }
    /* Markers need the blocks kept apart: the parts, all of them. */
    for (size_t i = 0; rc == 0 && parts && i < json_object_array_length(sys); i++) {
        json_object *b = json_object_array_get_idx(sys, i), *p = hx_in_text_part(aj_get(b, "text"));
        if (hx_json_push(parts, p) != 0 || keep_cache(p, b) != 0)
            rc = OOM(c->err, c->errlen);
    }
    if (rc == 0 && parts) {
        rc = push_msg(c, "system", "content", parts);
        parts = NULL;
    } else if (rc == 0 && t.len) {
        rc = push_msg(c, "system", "content", json_object_new_string_len(t.data, (int)t.len));
    }
    json_object_put(parts);
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
        if (v == NULL || hx_json_set(v, "function", fn) != 0 || hx_json_set(v, "type", json_object_new_string("function")) != 0 ||
            hx_json_set(fn, "name", json_object_new_string(name)) != 0) {
            json_object_put(v);
            return OOM(err, errlen);
        }
    } else {
        return hx_fail(err, errlen, "tool_choice: expected {\"type\": \"auto\" | \"any\" | \"none\" | \"tool\" (with name)}");
    }
    if (hx_json_set(out, "tool_choice", v) != 0)
        return OOM(err, errlen);
    json_object *dp = aj_get(tc, "disable_parallel_tool_use");
    if (is_type(dp, json_type_boolean) && json_object_get_boolean(dp) &&
        hx_json_set(out, "parallel_tool_calls", json_object_new_boolean(0)) != 0)
        return OOM(err, errlen);
    return 0;
}


/* A custom tool → a function tool (cache_control kept on it, strict into
 * the function); server tools (web_search_*, bash_*, code_execution_*...)
 * have no canonical form. eager_input_streaming asks that the tool's input
 * stream unbuffered: every translated stream already relays argument
 * fragments as they arrive, so it is met, not dropped. */
static int in_tool(json_object *t, size_t i, json_object *arr, hx_in_info *info, char *err, size_t errlen)
{
    static const char *const known[] = {"type", "name", "description", "input_schema", "cache_control", "strict",
                                        "eager_input_streaming", NULL};
    json_object *schema = aj_get(t, "input_schema"), *desc = aj_get(t, "description"), *strict = aj_get(t, "strict");
    const char *name = in_str(t, "name"), *type = in_str(t, "type"), *other;
    if (type && strcmp(type, "custom") != 0) {
        only_native(info, "tools.%zu (a \"%.40s\" tool)", i, type);
        return 0;
    }
    if (name == NULL)
        return hx_fail(err, errlen, "tools.%zu.name: expected a string", i);
    if (!is_type(schema, json_type_object))
        return hx_fail(err, errlen, "tools.%zu.input_schema: expected an object", i);
    if (desc && !is_type(desc, json_type_string))
        return hx_fail(err, errlen, "tools.%zu.description: expected a string", i);
    if (strict && !is_type(strict, json_type_boolean))
        return hx_fail(err, errlen, "tools.%zu.strict: expected a boolean", i);
    if ((other = other_member(t, known)) != NULL)
        only_native(info, "tools.%zu.%.40s", i, other);
    json_object *o = json_object_new_object(), *fn = json_object_new_object();
    if (o == NULL || hx_json_push(arr, o) != 0 || hx_json_set(o, "function", fn) != 0) {
        json_object_put(fn);
        return OOM(err, errlen);
    }
    if (fn == NULL || hx_json_set(o, "type", json_object_new_string("function")) != 0 ||
        hx_json_set(fn, "name", json_object_new_string(name)) != 0 ||
        (desc && hx_json_set(fn, "description", json_object_get(desc)) != 0) ||
        hx_json_set(fn, "parameters", json_object_get(schema)) != 0 ||
        (strict && hx_json_set(fn, "strict", json_object_get(strict)) != 0) || keep_cache(o, t) != 0)
        return OOM(err, errlen);
    return 0;
}

static int in_tools(json_object *body, json_object *out, hx_in_info *info, char *err, size_t errlen)
{
    json_object *tools = aj_get(body, "tools"), *arr;
    if (tools != NULL && !is_type(tools, json_type_array))
        return hx_fail(err, errlen, "tools: expected an array");
    if (tools == NULL || json_object_array_length(tools) == 0)
        return 0; /* tool_choice means nothing without tools */
    if ((arr = json_object_new_array()) == NULL || hx_json_set(out, "tools", arr) != 0)
        return OOM(err, errlen);
    for (size_t i = 0; i < json_object_array_length(tools); i++)
        if (in_tool(json_object_array_get_idx(tools, i), i, arr, info, err, errlen) != 0)
            return -1;
    return in_tool_choice(body, out, err, errlen);
}

/* output_config.format (or the earlier beta's output_format): Anthropic's
 * structured output → response_format json_schema (OpenAI needs a name). */
static int in_format(json_object *f, const char *where, json_object *out, hx_in_info *info, char *err,
                     size_t errlen)
{
    const char *type = in_str(f, "type");
    json_object *schema = aj_get(f, "schema");
    if (type == NULL || strcmp(type, "json_schema") != 0) {
        only_native(info, "%s (type \"%.20s\")", where, type ? type : "");
        return 0;
    }
    if (!is_type(schema, json_type_object))
        return hx_fail(err, errlen, "%s.schema: expected an object", where);
    json_object *rf = json_object_new_object(), *js = json_object_new_object();
    if (rf == NULL || js == NULL || hx_json_set(out, "response_format", rf) != 0) {
        json_object_put(js);
        return OOM(err, errlen);
    }
    if (hx_json_set(rf, "type", json_object_new_string("json_schema")) != 0 || hx_json_set(rf, "json_schema", js) != 0 ||
        hx_json_set(js, "name", json_object_new_string("response")) != 0 ||
        hx_json_set(js, "schema", json_object_get(schema)) != 0)
        return OOM(err, errlen);
    return 0;
}

/* Member k goes into the canonical request as it is (of type t). */
static int keep_member(json_object *body, json_object *out, const char *k, json_type t, const char *what, char *err,
                       size_t errlen)
{
    json_object *v = aj_get(body, k);
    if (v == NULL)
        return 0;
    if (!is_type(v, t))
        return hx_fail(err, errlen, "%s: expected %s", k, what);
    return hx_json_set(out, k, json_object_get(v)) == 0 ? 0 : OOM(err, errlen);
}

/* Members with a canonical meaning beyond messages and sampling: thinking
 * and service_tier go as they are, output_config.format → response_format;
 * any other top-level member is recorded as only native. */
static int in_extras(json_object *body, json_object *out, hx_in_info *info, char *err, size_t errlen)
{
    static const char *const known[] = {"model", "messages", "system", "max_tokens", "stream", "temperature",
                                        "top_p", "top_k", "stop_sequences", "metadata", "tools", "tool_choice",
                                        "thinking", "service_tier", "output_config", "output_format", NULL};
    json_object *v, *oc = aj_get(body, "output_config");
    const char *other = other_member(body, known);
    if (other)
        only_native(info, "%.60s", other);
    if (keep_member(body, out, "thinking", json_type_object, "an object", err, errlen) != 0 ||
        keep_member(body, out, "service_tier", json_type_string, "a string", err, errlen) != 0)
        return -1;
    if (oc && !is_type(oc, json_type_object))
        return hx_fail(err, errlen, "output_config: expected an object");
    static const char *const oc_known[] = {"format", NULL};
    if (oc && (other = other_member(oc, oc_known)) != NULL)
        only_native(info, "output_config.%.40s", other);
    if ((v = aj_get(oc, "format")) != NULL && in_format(v, "output_config.format", out, info, err, errlen) != 0)
        return -1;
    if ((v = aj_get(body, "output_format")) != NULL && in_format(v, "output_format", out, info, err, errlen) != 0)
        return -1;
    return 0;
}

static int in_params(json_object *body, json_object *out, char *err, size_t errlen)
{
    json_object *v = aj_get(body, "max_tokens");
    if (v == NULL)
        return hx_fail(err, errlen, "max_tokens is required");
    if (!is_type(v, json_type_int) || json_object_get_int64(v) <= 0)
        return hx_fail(err, errlen, "max_tokens: expected a positive integer");
    if (hx_json_set(out, "max_tokens", json_object_get(v)) != 0)
        return OOM(err, errlen);
    static const char *const nums[] = {"temperature", "top_p", "top_k"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if ((v = aj_get(body, nums[i])) == NULL)
            continue;
        if (!is_number(v))
            return hx_fail(err, errlen, "%s: expected a number", nums[i]);
        if (hx_json_set(out, nums[i], json_object_get(v)) != 0)
            return OOM(err, errlen);
    }
    if ((v = aj_get(body, "stop_sequences")) != NULL) {
        if (!is_type(v, json_type_array))
            return hx_fail(err, errlen, "stop_sequences: expected an array of strings");
        for (size_t i = 0; i < json_object_array_length(v); i++)
            if (!is_type(json_object_array_get_idx(v, i), json_type_string))
                return hx_fail(err, errlen, "stop_sequences.%zu: expected a string", i);
        if (json_object_array_length(v) && hx_json_set(out, "stop", json_object_get(v)) != 0)
            return OOM(err, errlen);
    }
    if ((v = aj_get(body, "metadata")) != NULL) {
        json_object *u = aj_get(v, "user_id");
        if (!is_type(v, json_type_object) || (u && !is_type(u, json_type_string)))
            return hx_fail(err, errlen, "metadata: expected an object with a string user_id");
        /* user for the builders that know OpenAI's name, metadata as sent */
        if ((u && hx_json_set(out, "user", json_object_get(u)) != 0) || hx_json_set(out, "metadata", json_object_get(v)) != 0)
            return OOM(err, errlen);
    }
    return 0;
}

static int in_head(json_object *body, json_object *out, hx_in_info *info, char *err, size_t errlen)
{
    json_object *model = aj_get(body, "model"), *stream = aj_get(body, "stream");
    if (hx_in_read_model(body, true, info, err, errlen) != 0)
        return -1;
    if (stream && !is_type(stream, json_type_boolean))
        return hx_fail(err, errlen, "stream: expected a boolean");
    info->stream = stream && json_object_get_boolean(stream);
    info->include_usage = true;
    info->render = &hx_render_anthropic;
    if (hx_json_set(out, "model", json_object_get(model)) != 0 ||
        hx_json_set(out, "stream", json_object_new_boolean(info->stream)) != 0)
        return OOM(err, errlen);
    if (info->stream) {
        json_object *so = json_object_new_object();
        if (so == NULL || hx_json_set(out, "stream_options", so) != 0 ||
            hx_json_set(so, "include_usage", json_object_new_boolean(1)) != 0)
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
    in_conv c = {.msgs = json_object_new_array(), .info = info, .err = err, .errlen = errlen};
    int rc = out && c.msgs ? 0 : OOM(err, errlen);
    if (rc == 0)
        rc = in_head(body, out, info, err, errlen);
    if (rc == 0)
        rc = in_params(body, out, err, errlen);
    if (rc == 0)
        rc = in_extras(body, out, info, err, errlen);
    if (rc == 0)
        rc = in_system(&c, body);
    if (rc == 0)
        rc = in_messages(&c, body);
    if (rc == 0)
        rc = in_tools(body, out, info, err, errlen);
    if (rc == 0) {
        rc = hx_json_set(out, "messages", c.msgs) == 0 ? 0 : OOM(err, errlen);
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
