/* The Responses API's members besides its input: tools, tool_choice,
 * text.format, reasoning and the sampling and bookkeeping members, each
 * carried into the canonical request or refused by name. */
#include <stdio.h>

#include "gateway/responses_int.h"

/* ---- tools, tool_choice, text.format ----------------------------------------- */

static int in_tools(json_object *tools, json_object *out, char *err, size_t errlen)
{
    if (is_null(tools))
        return 0;
    if (!is_type(tools, json_type_array))
        return hx_fail(err, errlen, "tools: expected an array");
    json_object *list = json_object_new_array();
    if (list == NULL || hx_json_set(out, "tools", list) != 0)
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
        int rc = fn && ct && hx_json_push(list, ct) == 0 ? 0 : -1;
        if (rc != 0) {
            json_object_put(fn);
            json_object_put(ct);
            return OOM(err, errlen);
        }
        if (hx_json_set(ct, "type", json_object_new_string("function")) != 0 || hx_json_set(ct, "function", fn) != 0)
            return OOM(err, errlen);
        json_object_object_foreach(t, k, v) {
            if (strcmp(k, "type") == 0)
                continue;
            if (strcmp(k, "name") && strcmp(k, "description") && strcmp(k, "parameters") && strcmp(k, "strict"))
                return hx_fail(err, errlen, "tools[%zu].%s: not a member of a function tool", i, k);
            if (!is_null(v) && hx_json_set(fn, k, json_object_get(v)) != 0)
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
        return hx_json_set(out, "tool_choice", json_object_get(tc)) == 0 ? 0 : OOM(err, errlen);
    if (is_type(tc, json_type_object) && str_eq(aj_get(tc, "type"), "function")) {
        const char *name = in_str(tc, "name");
        if (name == NULL)
            return hx_fail(err, errlen, "tool_choice.name: expected a string");
        json_object *c = json_object_new_object(), *fn = json_object_new_object();
        if (c == NULL || fn == NULL || hx_json_set(fn, "name", json_object_new_string(name)) != 0 ||
            hx_json_set(c, "type", json_object_new_string("function")) != 0) {
            json_object_put(c);
            json_object_put(fn);
            return OOM(err, errlen);
        }
        if (hx_json_set(c, "function", fn) != 0 || hx_json_set(out, "tool_choice", c) != 0)
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
            if (!is_null(v) && hx_json_set(out, "verbosity", json_object_get(v)) != 0)
                return OOM(err, errlen);
        } else if (strcmp(k, "format") != 0) {
            return hx_fail(err, errlen, "text.%s: not supported", k);
        }
    }
    json_object *f = aj_get(text, "format"), *type = aj_get(f, "type");
    if (is_null(f) || str_eq(type, "text"))
        return 0;
    json_object *rf = json_object_new_object();
    if (rf == NULL || hx_json_set(out, "response_format", rf) != 0)
        return OOM(err, errlen);
    if (str_eq(type, "json_object"))
        return hx_json_set(rf, "type", json_object_new_string("json_object")) == 0 ? 0 : OOM(err, errlen);
    if (!str_eq(type, "json_schema"))
        return hx_fail(err, errlen, "text.format.type: expected text, json_object or json_schema");
    if (in_str(f, "name") == NULL || !is_type(aj_get(f, "schema"), json_type_object))
        return hx_fail(err, errlen, "text.format: a json_schema format needs a name and a schema object");
    json_object *js = json_object_new_object();
    if (js == NULL || hx_json_set(rf, "type", json_object_new_string("json_schema")) != 0 ||
        hx_json_set(rf, "json_schema", js) != 0)
        return OOM(err, errlen);
    json_object_object_foreach(f, fk, fv) {
        if (strcmp(fk, "type") == 0)
            continue;
        if (strcmp(fk, "name") && strcmp(fk, "schema") && strcmp(fk, "description") && strcmp(fk, "strict"))
            return hx_fail(err, errlen, "text.format.%s: not a member of a json_schema format", fk);
        if (!is_null(fv) && hx_json_set(js, fk, json_object_get(fv)) != 0)
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
    if (!is_null(aj_get(body, "max_tool_calls")))
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
            if (!is_null(v) && hx_json_set(out, "reasoning_effort", json_object_get(v)) != 0)
                return OOM(err, errlen);
        } else if (strcmp(k, "summary") && strcmp(k, "generate_summary")) {
            return hx_fail(err, errlen, "reasoning.%s: not supported", k);
        }
    }
    return 0;
}

int hx_resp_in_members(json_object *body, json_object *out, char *err, size_t errlen)
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
        if (members[i].to && !is_null(v) && hx_json_set(out, members[i].to, json_object_get(v)) != 0)
            return OOM(err, errlen);
    }
    if (check_own(body, err, errlen) != 0 || in_reasoning(aj_get(body, "reasoning"), out, err, errlen) != 0 ||
        in_text(aj_get(body, "text"), out, err, errlen) != 0 || in_tools(aj_get(body, "tools"), out, err, errlen) != 0)
        return -1;
    return in_tool_choice(aj_get(body, "tool_choice"), out, err, errlen);
}
