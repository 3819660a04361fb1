/* Inbound APIs without a canonical form: OpenAI embeddings and Anthropic
 * messages/count_tokens. Their bodies are checked here and kept as they
 * are (the "canonical" object of the request is the parsed body itself):
 * a native provider receives the client's text, a translating one
 * (provider/adapter.h hx_translated) builds from this object. */
#include <stdio.h>
#include <string.h>

#include "gateway/inbound.h"
#include "util/fail.h"

static bool is_type(json_object *v, json_type t)
{
    return v != NULL && json_object_is_type(v, t);
}

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A token id of an input given as tokens: an integer in 0..2^31-1. */
static bool is_token(json_object *v)
{
    if (!is_type(v, json_type_int))
        return false;
    int64_t t = json_object_get_int64(v);
    return t >= 0 && t <= INT32_MAX;
}

/* input[i] when input is an array: a non-empty string, or a non-empty
 * array of token ids (the int[][] form). *kind says which form element 0
 * took: the forms do not mix. */
static int check_item(json_object *it, size_t i, int *kind, char *err, size_t errlen)
{
    int k = is_type(it, json_type_string) ? 1 : is_type(it, json_type_array) ? 2 : is_token(it) ? 3 : 0;
    if (k == 0)
        return hx_fail(err, errlen, "input[%zu]: expected a string, a token id or an array of token ids", i);
    if (i > 0 && k != *kind)
        return hx_fail(err, errlen, "input[%zu]: all inputs must have the same form (strings, token ids, or "
                       "arrays of token ids)", i);
    *kind = k;
    if (k == 1 && json_object_get_string_len(it) == 0)
        return hx_fail(err, errlen, "input[%zu]: must not be an empty string", i);
    if (k != 2)
        return 0;
    size_t n = json_object_array_length(it);
    if (n == 0)
        return hx_fail(err, errlen, "input[%zu]: must not be an empty array", i);
    for (size_t j = 0; j < n; j++)
        if (!is_token(json_object_array_get_idx(it, j)))
            return hx_fail(err, errlen, "input[%zu][%zu]: expected a token id (an integer from 0 to 2147483647)", i,
                           j);
    return 0;
}

static int check_input(json_object *in, char *err, size_t errlen)
{
    if (in == NULL || is_type(in, json_type_null))
        return hx_fail(err, errlen, "input: is required");
    if (is_type(in, json_type_string))
        return json_object_get_string_len(in) ? 0 : hx_fail(err, errlen, "input: must not be an empty string");
    if (!is_type(in, json_type_array))
        return hx_fail(err, errlen, "input: expected a string, an array of strings, an array of token ids or an "
                       "array of token arrays");
    size_t n = json_object_array_length(in);
    if (n == 0)
        return hx_fail(err, errlen, "input: must not be an empty array");
    if (n > HX_EMBED_INPUTS_MAX)
        return hx_fail(err, errlen, "input: at most %d inputs per request (got %zu)", HX_EMBED_INPUTS_MAX, n);
    int kind = 0;
    for (size_t i = 0; i < n; i++)
        if (check_item(json_object_array_get_idx(in, i), i, &kind, err, errlen) != 0)
            return -1;
    return 0;
}

static int check_options(json_object *body, char *err, size_t errlen)
{
    json_object *ef = member(body, "encoding_format"), *dim = member(body, "dimensions"), *u = member(body, "user");
    if (ef && !is_type(ef, json_type_null)) {
        const char *s = is_type(ef, json_type_string) ? json_object_get_string(ef) : "";
        if (strcmp(s, "float") != 0 && strcmp(s, "base64") != 0)
            return hx_fail(err, errlen, "encoding_format: expected \"float\" or \"base64\"");
    }
    if (dim && !is_type(dim, json_type_null) &&
        (!is_type(dim, json_type_int) || json_object_get_int64(dim) < 1 || json_object_get_int64(dim) > 65536))
        return hx_fail(err, errlen, "dimensions: expected an integer from 1 to 65536");
    if (u && !is_type(u, json_type_null) && !is_type(u, json_type_string))
        return hx_fail(err, errlen, "user: expected a string");
    return 0;
}

int hx_in_embeddings(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen)
{
    *canon = NULL;
    if (!is_type(body, json_type_object))
        return hx_fail(err, errlen, "the body must be a JSON object");
    /* model is required, as at OpenAI: the default chain serves chat models */
    if (hx_in_read_model(body, true, info, err, errlen) != 0 || check_input(member(body, "input"), err, errlen) != 0 ||
        check_options(body, err, errlen) != 0)
        return -1;
    json_object *st = member(body, "stream");
    if (st && !is_type(st, json_type_null) && !(is_type(st, json_type_boolean) && !json_object_get_boolean(st)))
        return hx_fail(err, errlen, "stream: embeddings are not streamed");
    info->stream = false;
    info->render = &hx_render_openai_chat; /* errors only: the answer is relayed or converted */
    *canon = json_object_get(body);
    return 0;
}

/* One message of a count_tokens body: the shape the estimate walks (the
 * upstream checks the rest). */
static int check_message(json_object *m, size_t i, char *err, size_t errlen)
{
    json_object *role = member(m, "role"), *content = member(m, "content");
    if (!is_type(m, json_type_object))
        return hx_fail(err, errlen, "messages[%zu]: expected an object", i);
    const char *r = is_type(role, json_type_string) ? json_object_get_string(role) : "";
    if (strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0)
        return hx_fail(err, errlen, "messages[%zu].role: expected \"user\" or \"assistant\"", i);
    if (!is_type(content, json_type_string) && !is_type(content, json_type_array))
        return hx_fail(err, errlen, "messages[%zu].content: expected a string or an array of content blocks", i);
    return 0;
}

int hx_in_count_tokens(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen)
{
    *canon = NULL;
    if (!is_type(body, json_type_object))
        return hx_fail(err, errlen, "the body must be a JSON object");
    if (hx_in_read_model(body, true, info, err, errlen) != 0)
        return -1;
    json_object *msgs = member(body, "messages"), *sys = member(body, "system"), *tools = member(body, "tools");
    if (!is_type(msgs, json_type_array))
        return hx_fail(err, errlen, "messages: expected an array");
    size_t n = json_object_array_length(msgs);
    for (size_t i = 0; i < n; i++)
        if (check_message(json_object_array_get_idx(msgs, i), i, err, errlen) != 0)
            return -1;
    if (sys && !is_type(sys, json_type_null) && !is_type(sys, json_type_string) && !is_type(sys, json_type_array))
        return hx_fail(err, errlen, "system: expected a string or an array of text blocks");
    if (tools && !is_type(tools, json_type_null) && !is_type(tools, json_type_array))
        return hx_fail(err, errlen, "tools: expected an array");
    info->stream = false;
    info->render = &hx_render_anthropic;
    *canon = json_object_get(body);
    return 0;
}
