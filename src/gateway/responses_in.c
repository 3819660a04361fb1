/* Inbound Responses API: a POST /v1/responses body → the canonical (Chat
 * Completions shape) request. Every member is carried with its meaning or
 * refused by name; the members a Response object echoes are kept as text
 * for the renderer. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway/responses_int.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/uuid.h"

typedef struct {
    json_object *msgs; /* canonical messages */
    char *err;
    size_t errlen;
    hx_resp_ctx *rx;
} rin;

/* {"role": role, key: val}; takes val (NULL: a JSON null). */
static json_object *new_msg(const char *role, const char *key, json_object *val)
{
    json_object *m = json_object_new_object();
    if (m == NULL || hx_json_set(m, "role", json_object_new_string(role)) != 0) {
        json_object_put(m);
        json_object_put(val);
        return NULL;
    }
    if ((val ? hx_json_set(m, key, val) : json_object_object_add(m, key, NULL)) != 0) {
        json_object_put(m);
        return NULL;
    }
    return m;
}

static int push(rin *c, json_object *m)
{
    return m && hx_json_push(c->msgs, m) == 0 ? 0 : OOM(c->err, c->errlen);
}

/* ---- message content ------------------------------------------------------- */

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
    if (p == NULL || iu == NULL || hx_json_set(iu, "url", json_object_get(url)) != 0 ||
        (!is_null(detail) && hx_json_set(iu, "detail", json_object_get(detail)) != 0) ||
        hx_json_set(p, "type", json_object_new_string("image_url")) != 0) {
        json_object_put(iu);
        json_object_put(p);
        OOM(c->err, c->errlen);
        return NULL;
    }
    if (hx_json_set(p, "image_url", iu) != 0) {
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
        rc = hx_json_set(f, keys[k], json_object_get(v));
    }
    if (rc == 0)
        rc = hx_json_set(p, "type", json_object_new_string("file"));
    if (rc == 0) {
        rc = hx_json_set(p, "file", f);
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
            if ((p = hx_in_text_part(t)) == NULL) {
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
        if (p == NULL || hx_json_push(parts, p) != 0) {
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
        if (m && refusal.len && hx_json_set(m, "refusal", json_object_new_string_len(refusal.data, (int)refusal.len)) != 0) {
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
        (hx_json_set(m, "tool_calls", json_object_new_array()) != 0 || (calls = aj_get(m, "tool_calls")) == NULL))
        return OOM(c->err, c->errlen);
    json_object *tc = json_object_new_object(), *fn = json_object_new_object();
    if (tc == NULL || fn == NULL || hx_json_set(fn, "name", json_object_new_string(name)) != 0 ||
        hx_json_set(fn, "arguments", json_object_get(args)) != 0 || hx_json_set(tc, "id", json_object_new_string(call_id)) != 0 ||
        hx_json_set(tc, "type", json_object_new_string("function")) != 0) {
        json_object_put(fn);
        json_object_put(tc);
        return OOM(c->err, c->errlen);
    }
    if (hx_json_set(tc, "function", fn) != 0 || hx_json_push(calls, tc) != 0)
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
    if (m && hx_json_set(m, "tool_call_id", json_object_new_string(call_id)) != 0) {
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
    json_object *v;
    if (hx_in_read_model(body, false, info, err, errlen) != 0)
        return -1;
    static const char *const bools[] = {"stream", "store"};
    for (size_t i = 0; i < 2; i++)
        if (!is_null(v = aj_get(body, bools[i])) && !is_type(v, json_type_boolean))
            return hx_fail(err, errlen, "%s: expected a boolean", bools[i]);
    info->stream = (v = aj_get(body, "stream")) && json_object_get_boolean(v);
    info->include_usage = true;
    info->render = &hx_render_responses;
    rx->store = is_null(v = aj_get(body, "store")) || json_object_get_boolean(v);
    if (!is_null(aj_get(body, "previous_response_id"))) {
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
    if (rc == 0 && (hx_json_set(out, "stream", json_object_new_boolean(info->stream)) != 0 ||
                    (info->model[0] && hx_json_set(out, "model", json_object_new_string(info->model)) != 0)))
        rc = OOM(err, errlen);
    if (rc == 0 && info->stream) {
        json_object *so = json_object_new_object();
        if (so == NULL || hx_json_set(out, "stream_options", so) != 0 ||
            hx_json_set(so, "include_usage", json_object_new_boolean(1)) != 0)
            rc = OOM(err, errlen);
    }
    if (rc == 0)
        rc = hx_resp_in_members(body, out, err, errlen);
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
        if (hx_json_push(all, new_msg("system", "content", json_object_get(instr))) != 0)
            rc = OOM(err, errlen);
        rx->instructions = true;
    }
    for (size_t i = 0; rc == 0 && i < json_object_array_length(c.msgs); i++)
        if (hx_json_push(all, json_object_get(json_object_array_get_idx(c.msgs, i))) != 0)
            rc = OOM(err, errlen);
    if (rc == 0) {
        rc = hx_json_set(out, "messages", all) == 0 ? 0 : OOM(err, errlen);
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
        rc = hx_json_push(all, json_object_get(json_object_array_get_idx(msgs, i)));
    for (size_t i = 0; rc == 0 && i < json_object_array_length(stored); i++)
        rc = hx_json_push(all, json_object_get(json_object_array_get_idx(stored, i)));
    for (size_t i = at; rc == 0 && i < n; i++)
        rc = hx_json_push(all, json_object_get(json_object_array_get_idx(msgs, i)));
    json_object_put(stored);
    if (rc != 0 || hx_json_set(canon, "messages", all) != 0) {
        if (rc != 0)
            json_object_put(all);
        return -1;
    }
    return 0;
}
