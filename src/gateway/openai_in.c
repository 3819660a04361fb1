/* Inbound OpenAI Chat Completions and the /v1/completions endpoint (the
 * original Hapax shape and the OpenAI legacy `prompt` form). */
#include <stdio.h>
#include <string.h>

#include "gateway/inbound.h"
#include "util/fail.h"
#include "util/json.h"

/* The original Hapax limits (hapax-original.md section 5). */
#define HAPAX_INPUT_MAX (512 * 1024)
#define HAPAX_FUNCTION_DESC_MAX (5 * 1024)

/* bad(err, errlen, fmt, s): the reason, formatted with one string. */
#define bad(err, errlen, fmt, a) hx_fail((err), (errlen), (fmt), (a))

/* A string field and its length (JSON strings may hold \u0000). */
static const char *opt_string_len(json_object *body, const char *key, int *wrong, size_t *len)
{
    json_object *v;
    *len = 0;
    if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    if (!json_object_is_type(v, json_type_string)) {
        *wrong = 1;
        return NULL;
    }
    *len = (size_t)json_object_get_string_len(v);
    return json_object_get_string(v);
}

/* model, stream and stream_options.include_usage, shared by both shapes. */
static int read_common(json_object *body, hx_in_info *info, char *err, size_t errlen)
{
    if (hx_in_read_model(body, false, info, err, errlen) != 0)
        return -1;
    json_object *v, *so;
    info->stream = false;
    if (json_object_object_get_ex(body, "stream", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_boolean))
            return bad(err, errlen, "%s", "stream: expected a boolean");
        info->stream = json_object_get_boolean(v);
    }
    info->include_usage = false;
    if (json_object_object_get_ex(body, "stream_options", &so) && json_object_is_type(so, json_type_object) &&
        json_object_object_get_ex(so, "include_usage", &v))
        info->include_usage = json_object_get_boolean(v);
    return 0;
}

/* A JSON string equal to lit (lengths compared: "user\u0000x" is not "user"). */
static bool str_is(json_object *s, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)json_object_get_string_len(s) == n && memcmp(json_object_get_string(s), lit, n) == 0;
}

static int check_messages(json_object *msgs, char *err, size_t errlen)
{
    if (!json_object_is_type(msgs, json_type_array) || json_object_array_length(msgs) == 0)
        return bad(err, errlen, "%s", "messages: expected a non-empty array");
    size_t n = json_object_array_length(msgs);
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(msgs, i), *role;
        char where[64];
        snprintf(where, sizeof where, "messages[%zu]", i);
        if (!json_object_is_type(m, json_type_object))
            return bad(err, errlen, "%s: expected an object", where);
        if (!json_object_object_get_ex(m, "role", &role) || !json_object_is_type(role, json_type_string))
            return bad(err, errlen, "%s.role: expected a string", where);
        if (!str_is(role, "system") && !str_is(role, "user") && !str_is(role, "assistant") && !str_is(role, "tool") &&
            !str_is(role, "developer") && !str_is(role, "function"))
            return bad(err, errlen, "%s.role: must be system, developer, user, assistant or tool", where);
    }
    return 0;
}

int hx_in_openai_chat(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen)
{
    json_object *msgs;
    if (!json_object_is_type(body, json_type_object))
        return bad(err, errlen, "%s", "the request body must be a JSON object");
    if (!json_object_object_get_ex(body, "messages", &msgs))
        return bad(err, errlen, "%s", "messages is required");
    if (check_messages(msgs, err, errlen) != 0 || read_common(body, info, err, errlen) != 0)
        return -1;
    info->render = &hx_render_openai_chat;
    *canon = json_object_get(body); /* already canonical */
    return 0;
}

static json_object *message(const char *role, const char *content, size_t len)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "role", json_object_new_string(role));
    json_object_object_add(m, "content", json_object_new_string_len(content, (int)len));
    return m;
}

/* Copies every field but the completions-only ones into the canonical
 * request (temperature, max_tokens, stop, ... keep their exact text). */
static json_object *canon_base(json_object *body)
{
    json_object *c = json_object_new_object();
    json_object_object_foreach(body, k, v) {
        if (strcmp(k, "messages") && strcmp(k, "input") && strcmp(k, "function_description") && strcmp(k, "prompt") &&
            strcmp(k, "echo") && strcmp(k, "suffix") && strcmp(k, "best_of"))
            json_object_object_add(c, k, json_object_get(v));
    }
    return c;
}

/* OpenAI legacy: prompt is a string or an array of strings (joined). */
static int prompt_text(json_object *prompt, char *err, size_t errlen, json_object *msgs)
{
    if (json_object_is_type(prompt, json_type_string)) {
        json_object_array_add(msgs, message("user", json_object_get_string(prompt),
                                            (size_t)json_object_get_string_len(prompt)));
        return 0;
    }
    if (json_object_is_type(prompt, json_type_array) && json_object_array_length(prompt) == 1 &&
        json_object_is_type(json_object_array_get_idx(prompt, 0), json_type_string)) {
        json_object *s = json_object_array_get_idx(prompt, 0);
        json_object_array_add(msgs, message("user", json_object_get_string(s), (size_t)json_object_get_string_len(s)));
        return 0;
    }
    return bad(err, errlen, "%s", "prompt: expected a string (or an array of exactly one string)");
}

int hx_in_completions(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen)
{
    if (!json_object_is_type(body, json_type_object))
        return bad(err, errlen, "%s", "Invalid completion request format");
    if (read_common(body, info, err, errlen) != 0)
        return -1;
    int wrong = 0;
    size_t fdesc_len, input_len;
    const char *fdesc = opt_string_len(body, "function_description", &wrong, &fdesc_len);
    const char *input = opt_string_len(body, "input", &wrong, &input_len);
    json_object *msgs_in = NULL, *prompt = NULL;
    json_object_object_get_ex(body, "messages", &msgs_in);
    json_object_object_get_ex(body, "prompt", &prompt);
    if (wrong)
        return bad(err, errlen, "%s", "Invalid completion request format");
    if (fdesc && fdesc_len > HAPAX_FUNCTION_DESC_MAX)
        return bad(err, errlen, "%s", "Function description too large (max 5KB)");

    json_object *msgs = json_object_new_array();
    if (fdesc && fdesc_len)
        json_object_array_add(msgs, message("system", fdesc, fdesc_len));
    info->render = &hx_render_hapax;
    if (msgs_in && json_object_is_type(msgs_in, json_type_array) && json_object_array_length(msgs_in) > 0) {
        if (check_messages(msgs_in, err, errlen) != 0)
            goto fail;
        for (size_t i = 0; i < json_object_array_length(msgs_in); i++)
            json_object_array_add(msgs, json_object_get(json_object_array_get_idx(msgs_in, i)));
    } else if (input && input_len) {
        if (input_len > HAPAX_INPUT_MAX) {
            bad(err, errlen, "%s", "Input too large (max 512KB)");
            goto fail;
        }
        json_object_array_add(msgs, message("user", input, input_len));
    } else if (prompt && !json_object_is_type(prompt, json_type_null)) {
        if (prompt_text(prompt, err, errlen, msgs) != 0)
            goto fail;
        info->render = &hx_render_openai_legacy;
    } else {
        bad(err, errlen, "%s", "Either input or messages must be provided");
        goto fail;
    }
    if (info->stream && info->render == &hx_render_hapax) {
        bad(err, errlen, "%s", "stream is not supported for the input/messages form: use /v1/chat/completions");
        goto fail;
    }
    *canon = canon_base(body);
    json_object_object_add(*canon, "messages", msgs);
    return 0;
fail:
    json_object_put(msgs);
    return -1;
}

/* ---- the scan: no objects built -------------------------------------------- */

static bool member_is(const hx_json_member *m, const char *key)
{
    size_t n = strlen(key);
    return m->klen == n && memcmp(m->key, key, n) == 0;
}

/* A string value without escapes: its inside, or NULL. */
static const char *plain_string(const char *v, size_t vlen, size_t *len)
{
    if (vlen < 2 || v[0] != '"' || memchr(v, '\\', vlen) != NULL)
        return NULL;
    *len = vlen - 2;
    return v + 1;
}

static int scan_bool(const char *v, size_t vlen, bool *out)
{
    if (vlen == 4 && memcmp(v, "true", 4) == 0)
        *out = true;
    else if (vlen == 5 && memcmp(v, "false", 5) == 0)
        *out = false;
    else if (!(vlen == 4 && memcmp(v, "null", 4) == 0))
        return -1;
    return 0;
}

/* Every element an object whose (last) role is a known plain string. */
static int scan_messages(const char *v, size_t vlen)
{
    static const char *const roles[] = {"system", "user", "assistant", "tool", "developer", "function"};
    size_t pos = 0, n = 0, elen;
    const char *e;
    int rc;
    while ((rc = hx_json_next_element(v, vlen, &pos, &e, &elen)) == 1) {
        size_t mpos = 0, rlen = 0;
        const char *role = NULL;
        hx_json_member m;
        int mrc;
        while ((mrc = hx_json_next_member(e, elen, &mpos, &m)) == 1) {
            if (m.key_escaped)
                return -1;
            if (member_is(&m, "role"))
                role = plain_string(m.val, m.vlen, &rlen);
        }
        if (mrc < 0 || role == NULL)
            return -1;
        bool known = false;
        for (size_t i = 0; i < sizeof roles / sizeof roles[0] && !known; i++)
            known = strlen(roles[i]) == rlen && memcmp(roles[i], role, rlen) == 0;
        if (!known)
            return -1;
        n++;
    }
    return rc == 0 && n > 0 ? 0 : -1;
}

static int scan_stream_options(const char *v, size_t vlen, bool *include_usage)
{
    *include_usage = false;
    if (vlen == 0 || v[0] != '{')
        return 0; /* not an object: ignored, as by the full parse */
    size_t pos = 0;
    hx_json_member m;
    int rc;
    while ((rc = hx_json_next_member(v, vlen, &pos, &m)) == 1) {
        if (m.key_escaped)
            return -1;
        if (member_is(&m, "include_usage") && scan_bool(m.val, m.vlen, include_usage) != 0)
            return -1;
    }
    return rc;
}

int hx_in_openai_chat_scan(const char *body, size_t len, hx_in_info *info)
{
    if (body == NULL || !hx_json_valid(body, len))
        return 0;
    const char *msgs = NULL, *model = NULL, *so = NULL, *stream = NULL;
    size_t msgs_len = 0, model_len = 0, so_len = 0, stream_len = 0, pos = 0;
    hx_json_member m;
    int rc;
    /* Like json-c, the last of duplicate members counts. */
    while ((rc = hx_json_next_member(body, len, &pos, &m)) == 1) {
        if (m.key_escaped)
            return 0;
        if (member_is(&m, "messages"))
            msgs = m.val, msgs_len = m.vlen;
        else if (member_is(&m, "model"))
            model = m.val, model_len = m.vlen;
        else if (member_is(&m, "stream"))
            stream = m.val, stream_len = m.vlen;
        else if (member_is(&m, "stream_options"))
            so = m.val, so_len = m.vlen;
    }
    if (rc != 0 || msgs == NULL || scan_messages(msgs, msgs_len) != 0)
        return 0;
    info->model[0] = '\0';
    if (model && !(model_len == 4 && memcmp(model, "null", 4) == 0)) {
        size_t n;
        const char *s = plain_string(model, model_len, &n);
        if (s == NULL || n >= sizeof info->model || memchr(s, '\0', n))
            return 0;
        memcpy(info->model, s, n);
        info->model[n] = '\0';
    }
    info->stream = false;
    if (stream && scan_bool(stream, stream_len, &info->stream) != 0)
        return 0;
    info->include_usage = false;
    if (so && scan_stream_options(so, so_len, &info->include_usage) != 0)
        return 0;
    info->render = &hx_render_openai_chat;
    return 1;
}
