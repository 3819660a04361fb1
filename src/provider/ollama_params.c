/* Ollama adapter, request side: what the canonical request may carry to
 * Ollama (docs/providers.md, "Translation") and reasoning → `think`. */
#include <stdbool.h>
#include <string.h>

#include "provider/ollama_int.h"
#include "provider/provider.h"
#include "util/json.h"

/* Member k of o; a JSON null counts as absent. */
static json_object *get(json_object *o, const char *k)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, k, &v))
        return NULL;
    return v;
}

static const char *get_str(json_object *o, const char *k)
{
    json_object *v = get(o, k);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Members build_body reads. */
static const char *const handled[] = {
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "seed", "presence_penalty",
    "frequency_penalty", "top_k", "max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice",
    "parallel_tool_calls", "response_format", "n", "reasoning_effort", "thinking", "user", "metadata", "service_tier",
};

/* Every member is carried or asks for nothing; the rest is refused by
 * name (docs/providers.md). user and metadata.user_id identify the end
 * user to a provider that bills and polices them: a local Ollama has
 * neither, so they change nothing and are not sent. */
int hx_oll_check_members(const hx_provider *p, json_object *canon, char *err, size_t errlen)
{
    json_object_object_foreach(canon, k, v) {
        bool known = false;
        for (size_t i = 0; i < sizeof handled / sizeof handled[0] && !known; i++)
            known = strcmp(handled[i], k) == 0;
        if (!known && !hx_canon_neutral(v))
            return hx_canon_refuse(p, err, errlen, k);
    }
    json_object *n = get(canon, "n");
    if (n && !(json_object_is_type(n, json_type_int) && json_object_get_int64(n) == 1))
        return hx_canon_refuse_why(p, err, errlen, "n", "one choice per request");
    json_object *fn = NULL;
    if (hx_oll_forced_tool(p, canon, &fn, err, errlen) != 0)
        return -1;
    /* A forced tool is answered by exactly one call: false is met. */
    json_object *pt = get(canon, "parallel_tool_calls");
    if (fn == NULL && pt && json_object_is_type(pt, json_type_boolean) && !json_object_get_boolean(pt))
        return hx_canon_refuse(p, err, errlen, "parallel_tool_calls false");
    json_object *md = get(canon, "metadata");
    if (md && json_object_is_type(md, json_type_object)) {
        json_object_object_foreach(md, mk, mv) {
            (void)mv;
            if (strcmp(mk, "user_id") != 0)
                return hx_canon_refuse(p, err, errlen, "metadata");
        }
    }
    const char *tier = get_str(canon, "service_tier");
    if (get(canon, "service_tier") &&
        !(tier && (strcmp(tier, "auto") == 0 || strcmp(tier, "default") == 0 || strcmp(tier, "standard_only") == 0)))
        return hx_canon_refuse_why(p, err, errlen, "service_tier", "Ollama has one tier");
    return 0;
}

/* The tool with this name among the offered ones (its "function"), or NULL. */
static json_object *find_tool(json_object *tools, const char *name, size_t name_len)
{
    size_t n = tools && json_object_is_type(tools, json_type_array) ? json_object_array_length(tools) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *fn = get(json_object_array_get_idx(tools, i), "function");
        json_object *nm = get(fn, "name");
        if (nm && json_object_is_type(nm, json_type_string) && (size_t)json_object_get_string_len(nm) == name_len &&
            memcmp(json_object_get_string(nm), name, name_len) == 0)
            return fn;
    }
    return NULL;
}

/* Ollama has no tool_choice; its `format` (a JSON schema the answer must
 * match) forces one shape, so a forced tool goes up as its parameters
 * schema and the answer comes back as a call of it (docs/providers.md). */
int hx_oll_forced_tool(const hx_provider *p, json_object *canon, json_object **fn, char *err, size_t errlen)
{
    *fn = NULL;
    json_object *tc = get(canon, "tool_choice"), *tools = get(canon, "tools");
    const char *choice = get_str(canon, "tool_choice");
    if (tc == NULL || (choice && (strcmp(choice, "auto") == 0 || strcmp(choice, "none") == 0)))
        return 0;
    size_t ntools = tools && json_object_is_type(tools, json_type_array) ? json_object_array_length(tools) : 0;
    if (choice && strcmp(choice, "required") == 0) {
        if (ntools != 1)
            return hx_canon_refuse_why(p, err, errlen, "tool_choice required",
                                       "Ollama can force only one schema (format), and several tools are offered");
        *fn = get(json_object_array_get_idx(tools, 0), "function");
    } else {
        json_object *nm = get(get(tc, "function"), "name");
        const char *type = get_str(tc, "type");
        if (type == NULL || strcmp(type, "function") != 0 || nm == NULL || !json_object_is_type(nm, json_type_string))
            return hx_canon_refuse_why(p, err, errlen, "tool_choice", "expected auto, none, required or a function");
        *fn = find_tool(tools, json_object_get_string(nm), (size_t)json_object_get_string_len(nm));
        if (*fn == NULL)
            return hx_canon_refuse_why(p, err, errlen, "tool_choice", "it names no offered tool");
    }
    json_object *name = get(*fn, "name"), *params = get(*fn, "parameters");
    size_t nlen = name && json_object_is_type(name, json_type_string) ? (size_t)json_object_get_string_len(name) : 0;
    if (nlen == 0 || memchr(json_object_get_string(name), '\0', nlen) ||
        (params && !json_object_is_type(params, json_type_object))) {
        *fn = NULL;
        return hx_canon_refuse_why(p, err, errlen, "tool_choice", "the forced tool needs a name and an object schema");
    }
    json_object *rf = get(canon, "response_format");
    const char *rft = get_str(rf, "type");
    if (rf && !(rft && strcmp(rft, "text") == 0)) {
        *fn = NULL;
        return hx_canon_refuse_why(p, err, errlen, "tool_choice",
                                   "a forced tool and response_format both need Ollama's one format");
    }
    return 0;
}

/* A forced tool (fn) goes up as `format`: its parameters schema (a tool
 * without one takes no arguments: an empty object), no `tools`. */
int hx_oll_map_forced(json_object *fn, json_object *root)
{
    json_object *params = get(fn, "parameters");
    if (params)
        return hx_json_set(root, "format", json_object_get(params));
    json_object *empty = json_object_new_object();
    if (empty == NULL || hx_json_set(empty, "type", json_object_new_string("object")) != 0 ||
        hx_json_set(empty, "properties", json_object_new_object()) != 0) {
        json_object_put(empty);
        return -1;
    }
    return hx_json_set(root, "format", empty);
}

/* reasoning_effort or an Anthropic client's thinking → think: a level
 * ("low", "medium", "high": gpt-oss takes them, other thinking models
 * take any level as true) or false. */
int hx_oll_map_think(const hx_provider *p, json_object *canon, json_object *root, char *err, size_t errlen)
{
    json_object *th = get(canon, "thinking"), *re = get(canon, "reasoning_effort");
    const char *level = NULL;
    if (th) {
        bool bad;
        level = hx_canon_effort_of(th, &bad);
        if (bad)
            return hx_canon_refuse_why(p, err, errlen, "thinking", "expected type enabled with budget_tokens, adaptive or disabled");
    } else if (re) {
        const char *e = json_object_is_type(re, json_type_string) ? json_object_get_string(re) : "";
        if (strcmp(e, "minimal") == 0 || strcmp(e, "low") == 0)
            level = "low";
        else if (strcmp(e, "medium") == 0)
            level = "medium";
        else if (strcmp(e, "high") == 0 || strcmp(e, "xhigh") == 0)
            level = "high";
        else if (strcmp(e, "none") != 0)
            return hx_canon_refuse_why(p, err, errlen, "reasoning_effort", "expected none, minimal, low, medium, high or xhigh");
    } else {
        return 0;
    }
    return hx_json_set(root, "think", level ? json_object_new_string(level) : json_object_new_boolean(0));
}

