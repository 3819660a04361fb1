/* Anthropic messages/count_tokens for providers that have no such call
 * (OpenAI-compatible, Ollama): an estimate made locally, without spending
 * the upstream's compute, answered as {"input_tokens":N} with the header
 * X-Hapax-Token-Estimate: true. The rule (docs/providers.md): a quarter of
 * the characters of every text (system, messages, tool results, thinking,
 * tool inputs and tool definitions as JSON text), plus a fixed 1600 tokens
 * per image or non-text document (Anthropic's cost of a ~1.15 megapixel
 * image), plus 4 per message, at least 1. */
#include <stdio.h>
#include <string.h>

#include "provider/adapter.h"
#include "util/fail.h"

#define EST_MEDIA_TOKENS 1600
#define EST_MESSAGE_TOKENS 4

static const char *type_of(json_object *o)
{
    json_object *t = NULL;
    return json_object_object_get_ex(o, "type", &t) && json_object_is_type(t, json_type_string)
               ? json_object_get_string(t) : "";
}

/* JSON text length of v (tool inputs and definitions). */
static size_t json_chars(json_object *v)
{
    size_t n = 0;
    json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &n);
    return n;
}

/* Characters of text under v; images and binary documents counted apart.
 * The depth is bounded by the request's JSON check. */
static size_t text_chars(json_object *v, size_t *media)
{
    if (json_object_is_type(v, json_type_string))
        return (size_t)json_object_get_string_len(v);
    size_t n = 0;
    if (json_object_is_type(v, json_type_array)) {
        size_t len = json_object_array_length(v);
        for (size_t i = 0; i < len; i++)
            n += text_chars(json_object_array_get_idx(v, i), media);
        return n;
    }
    if (!json_object_is_type(v, json_type_object))
        return 0;
    const char *t = type_of(v);
    json_object *src = NULL;
    if (strcmp(t, "image") == 0 ||
        (strcmp(t, "document") == 0 && !(json_object_object_get_ex(v, "source", &src) && strcmp(type_of(src), "text") == 0))) {
        (*media)++;
        return 0;
    }
    json_object_object_foreach(v, k, val) {
        if (strcmp(k, "type") == 0 || strcmp(k, "id") == 0 || strcmp(k, "tool_use_id") == 0 ||
            strcmp(k, "signature") == 0 || strcmp(k, "cache_control") == 0 || strcmp(k, "media_type") == 0)
            continue;
        n += strcmp(k, "input") == 0 ? json_chars(val) : text_chars(val, media);
    }
    return n;
}

int hx_count_estimate_tokens(json_object *body, int64_t *tokens)
{
    json_object *msgs = NULL, *sys = NULL, *tools = NULL;
    size_t media = 0, chars = 0, nmsg = 0;
    if (json_object_object_get_ex(body, "system", &sys))
        chars += text_chars(sys, &media);
    if (json_object_object_get_ex(body, "messages", &msgs) && json_object_is_type(msgs, json_type_array)) {
        nmsg = json_object_array_length(msgs);
        for (size_t i = 0; i < nmsg; i++) {
            json_object *c = NULL;
            if (json_object_object_get_ex(json_object_array_get_idx(msgs, i), "content", &c))
                chars += text_chars(c, &media);
        }
    }
    if (json_object_object_get_ex(body, "tools", &tools) && json_object_is_type(tools, json_type_array))
        chars += json_chars(tools);
    int64_t t = (int64_t)((chars + 3) / 4) + (int64_t)(media * EST_MEDIA_TOKENS) + (int64_t)(nmsg * EST_MESSAGE_TOKENS);
    *tokens = t > 0 ? t : 1;
    return 0;
}

static int estimate_local(json_object *body, hx_buf *out, char *err, size_t errlen)
{
    int64_t t = 0;
    hx_count_estimate_tokens(body, &t);
    if (hx_buf_printf(out, "{\"input_tokens\":%lld}", (long long)t) != 0)
        return hx_fail(err, errlen, "out of memory");
    return 0;
}

const hx_translated hx_count_estimate = {
    .local = estimate_local,
    .local_header = "X-Hapax-Token-Estimate",
};
