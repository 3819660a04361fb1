/* Anthropic adapter, request side: the canonical members beyond messages,
 * tools and sampling (anthropic_req.c). Each is carried with its meaning
 * (reasoning_effort → thinking, response_format → output_config.format,
 * user → metadata.user_id, ...) or refused by name: nothing is dropped
 * (docs/providers.md, "Translation"). */
#include <stdio.h>
#include <string.h>

#include "provider/anthropic_int.h"
#include "provider/provider.h"
#include "util/fail.h"

/* Thinking budgets for OpenAI's reasoning_effort levels (Anthropic's
 * minimum is 1024). */
#define ANTH_BUDGET_LOW 1024
#define ANTH_BUDGET_MEDIUM 4096
#define ANTH_BUDGET_HIGH 16384
#define ANTH_BUDGET_XHIGH 32768
/* Answer room added above the budget when the client set no max_tokens. */
#define ANTH_ANSWER_TOKENS 4096

/* Members the request builder reads (anthropic_req.c and below). */
static const char *const handled[] = {
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "top_k", "stop", "tools", "tool_choice", "parallel_tool_calls", "n", "user", "metadata", "response_format",
    "reasoning_effort", "thinking", "service_tier",
};

/* Members Anthropic has no equivalent for: accepted only with a value that
 * asks for nothing (hx_canon_neutral). The rest of any unknown member is
 * refused the same way. */
static bool is_handled(const char *k)
{
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
        if (strcmp(handled[i], k) == 0)
            return true;
    return false;
}

static int check_members(const hx_provider *p, json_object *canon, char *err, size_t errlen)
{
    json_object_object_foreach(canon, k, v) {
        /* A seed of 0 is a seed: only null asks for nothing. */
        if (is_handled(k) || (strcmp(k, "seed") == 0 ? v == NULL : hx_canon_neutral(v)))
            continue;
        /* logprobs, top_logprobs, seed, presence_penalty, frequency_penalty,
         * logit_bias, store, audio, modalities, prediction, ... */
        if (strcmp(k, "modalities") == 0 && json_object_is_type(v, json_type_array) &&
            json_object_array_length(v) == 1 &&
            strcmp(json_object_get_string(json_object_array_get_idx(v, 0)), "text") == 0)
            continue; /* text only: what Anthropic answers anyway */
        return hx_canon_refuse(p, err, errlen, k);
    }
    json_object *n = aj_get(canon, "n");
    if (n && !(json_object_is_type(n, json_type_int) && json_object_get_int64(n) == 1))
        return hx_canon_refuse_why(p, err, errlen, "n", "one choice per request");
    return 0;
}

/* reasoning_effort → thinking.budget_tokens; max_tokens must stay above it. */
static int conv_effort(const hx_provider *p, json_object *canon, json_object *out, char *err, size_t errlen)
{
    json_object *re = aj_get(canon, "reasoning_effort");
    if (re == NULL || aj_get(canon, "thinking"))
        return 0; /* an Anthropic client's own thinking wins */
    if (!json_object_is_type(re, json_type_string))
        return hx_fail(err, errlen, "reasoning_effort: expected a string");
    const char *e = json_object_get_string(re);
    int64_t budget;
    if (strcmp(e, "none") == 0)
        return 0; /* no reasoning: Anthropic's default */
    if (strcmp(e, "minimal") == 0 || strcmp(e, "low") == 0)
        budget = ANTH_BUDGET_LOW;
    else if (strcmp(e, "medium") == 0)
        budget = ANTH_BUDGET_MEDIUM;
    else if (strcmp(e, "high") == 0)
        budget = ANTH_BUDGET_HIGH;
    else if (strcmp(e, "xhigh") == 0)
        budget = ANTH_BUDGET_XHIGH;
    else
        return hx_canon_refuse_why(p, err, errlen, "reasoning_effort", "expected none, minimal, low, medium, high or xhigh");
    /* Both count thinking inside max_tokens: a client limit stays the
     * limit, and the budget shrinks to fit below it. */
    bool client_max = aj_get(canon, "max_completion_tokens") || aj_get(canon, "max_tokens");
    int64_t max = aj_int(out, "max_tokens");
    if (client_max && max <= ANTH_BUDGET_LOW)
        return hx_canon_refuse_why(p, err, errlen, "reasoning_effort",
                                   "thinking needs max_tokens (or max_completion_tokens) above 1024");
    if (client_max && budget >= max)
        budget = max - 1;
    if (!client_max && hx_json_set(out, "max_tokens", json_object_new_int64(budget + ANTH_ANSWER_TOKENS)) != 0)
        return hx_fail(err, errlen, "out of memory");
    json_object *t = json_object_new_object();
    if (t == NULL || hx_json_set(out, "thinking", t) != 0 || hx_json_set(t, "type", json_object_new_string("enabled")) != 0 ||
        hx_json_set(t, "budget_tokens", json_object_new_int64(budget)) != 0)
        return hx_fail(err, errlen, "out of memory");
    return 0;
}

/* response_format → output_config.format (structured outputs). */
static int conv_format(const hx_provider *p, json_object *canon, json_object *out, char *err, size_t errlen)
{
    json_object *rf = aj_get(canon, "response_format");
    if (rf == NULL)
        return 0;
    const char *type = aj_str(rf, "type");
    if (type == NULL)
        return hx_fail(err, errlen, "response_format.type: expected a string");
    if (strcmp(type, "text") == 0)
        return 0; /* plain text: the default */
    if (strcmp(type, "json_object") == 0)
        /* Anthropic constrains output to a schema only; "any JSON object"
         * cannot be asked for without changing the meaning. */
        return hx_canon_refuse_why(p, err, errlen, "response_format json_object",
                                   "send response_format json_schema with a schema instead");
    if (strcmp(type, "json_schema") != 0)
        return hx_canon_refuse(p, err, errlen, "response_format type");
    json_object *schema = aj_get(aj_get(rf, "json_schema"), "schema");
    if (schema == NULL || !json_object_is_type(schema, json_type_object))
        return hx_fail(err, errlen, "response_format.json_schema.schema: expected an object");
    json_object *oc = json_object_new_object(), *f = json_object_new_object();
    if (oc == NULL || f == NULL || hx_json_set(out, "output_config", oc) != 0) {
        json_object_put(f);
        return hx_fail(err, errlen, "out of memory");
    }
    if (hx_json_set(oc, "format", f) != 0 || hx_json_set(f, "type", json_object_new_string("json_schema")) != 0 ||
        hx_json_set(f, "schema", json_object_get(schema)) != 0)
        return hx_fail(err, errlen, "out of memory");
    return 0;
}

/* user and an Anthropic client's metadata → metadata.user_id. */
static int conv_metadata(const hx_provider *p, json_object *canon, json_object *out, char *err, size_t errlen)
{
    json_object *md = aj_get(canon, "metadata");
    const char *user = aj_str(canon, "user");
    if (md && !json_object_is_type(md, json_type_object))
        return hx_fail(err, errlen, "metadata: expected an object");
    if (md) {
        json_object_object_foreach(md, k, v) {
            (void)v;
            if (strcmp(k, "user_id") != 0) {
                char field[96];
                snprintf(field, sizeof field, "metadata.%.80s", k);
                return hx_canon_refuse(p, err, errlen, field);
            }
        }
    }
    const char *uid = aj_str(md, "user_id");
    if (uid == NULL && user && user[0])
        uid = user;
    if (uid == NULL)
        return 0;
    json_object *o = json_object_new_object();
    if (o == NULL || hx_json_set(out, "metadata", o) != 0 || hx_json_set(o, "user_id", json_object_new_string(uid)) != 0)
        return hx_fail(err, errlen, "out of memory");
    return 0;
}

/* service_tier: Anthropic knows "auto" and "standard_only"; OpenAI's
 * "default" (the standard tier) is the latter. */
static int conv_tier(const hx_provider *p, json_object *canon, json_object *out, char *err, size_t errlen)
{
    json_object *st = aj_get(canon, "service_tier");
    if (st == NULL)
        return 0;
    const char *s = json_object_is_type(st, json_type_string) ? json_object_get_string(st) : "";
    if (strcmp(s, "default") == 0)
        s = "standard_only";
    if (strcmp(s, "auto") != 0 && strcmp(s, "standard_only") != 0)
        return hx_canon_refuse_why(p, err, errlen, "service_tier", "expected auto, standard_only or default");
    return hx_json_set(out, "service_tier", json_object_new_string(s)) == 0 ? 0 : hx_fail(err, errlen, "out of memory");
}

int hx_anth_conv_extras(const hx_provider *p, json_object *canon, json_object *out, char *err, size_t errlen)
{
    json_object *th = aj_get(canon, "thinking");
    if (check_members(p, canon, err, errlen) != 0 || conv_effort(p, canon, out, err, errlen) != 0 ||
        conv_format(p, canon, out, err, errlen) != 0 || conv_metadata(p, canon, out, err, errlen) != 0 ||
        conv_tier(p, canon, out, err, errlen) != 0)
        return -1;
    if (th && hx_json_set(out, "thinking", json_object_get(th)) != 0)
        return hx_fail(err, errlen, "out of memory");
    return 0;
}
