/* OpenAI embeddings through Ollama's POST /api/embed (hx_translated).
 *
 * Request: {model, input (a string or strings), dimensions} plus Ollama's
 * own members when the client sent them (truncate, options, keep_alive);
 * token-id inputs and other members are refused by name. `user` is not
 * sent: Ollama has no end-user id, and the vectors do not depend on it.
 * Answer: {embeddings:[[...]], prompt_eval_count} becomes OpenAI's list
 * ({object:"list", data:[{object:"embedding", index, embedding}], model,
 * usage}); encoding_format "base64" is done here, as OpenAI does it: the
 * float32 little-endian array, base64-encoded. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "provider/ollama_int.h"
#include "provider/provider.h"
#include "util/fail.h"
#include "util/json.h"

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) && !json_object_is_type(v, json_type_null) ? v : NULL;
}

/* Ollama takes text only: a string or an array of strings. */
static bool text_input(json_object *in)
{
    if (json_object_is_type(in, json_type_string))
        return true;
    return json_object_array_length(in) > 0 && json_object_is_type(json_object_array_get_idx(in, 0),
                                                                    json_type_string);
}

/* The members of an OpenAI embeddings body and where they go. */
static int embed_member(const char *k, json_object *v, json_object *up, char *err, size_t errlen)
{
    if (strcmp(k, "model") == 0 || strcmp(k, "encoding_format") == 0 || strcmp(k, "user") == 0 ||
        json_object_is_type(v, json_type_null))
        return 0; /* replaced; done here; no meaning for Ollama (docs/providers.md) */
    if (strcmp(k, "input") == 0 && !text_input(v))
        return hx_fail(err, errlen, "input: token ids cannot be sent to Ollama (its /api/embed takes text only)");
    if (strcmp(k, "input") == 0 || strcmp(k, "dimensions") == 0 || strcmp(k, "truncate") == 0 ||
        strcmp(k, "options") == 0 || strcmp(k, "keep_alive") == 0)
        return hx_json_set(up, k, json_object_get(v));
    return hx_fail(err, errlen, "%s: not supported by Ollama's /api/embed", k);
}

static int embed_build(const hx_provider *p, json_object *body, hx_up_request *out, char *err, size_t errlen)
{
    json_object *up = json_object_new_object();
    int rc = up ? 0 : hx_fail(err, errlen, "out of memory");
    if (rc == 0 && (p->model == NULL || *p->model == '\0'))
        rc = hx_fail(err, errlen, "ollama: no model configured");
    if (rc == 0 && hx_json_set(up, "model", json_object_new_string(p->model)) != 0)
        rc = hx_fail(err, errlen, "out of memory");
    json_object_object_foreach(body, k, v) {
        if (rc == 0)
            rc = embed_member(k, v, up, err, errlen);
    }
    if (rc == 0 && (hx_oll_start_request(p, "api/embed", "POST", out) != 0 ||
                    hx_headers_add(&out->headers, "Content-Type", "application/json") != 0 ||
                    hx_json_append(&out->body, up) != 0))
        rc = hx_fail(err, errlen, "out of memory");
    json_object_put(up);
    return rc;
}

static int b64_append(hx_buf *out, const unsigned char *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        if (hx_buf_append(out, q, 4) != 0)
            return -1;
    }
    return 0;
}

/* One vector as OpenAI's base64: float32, little-endian, encoded. */
static int vector_base64(json_object *vec, hx_buf *out)
{
    size_t n = json_object_array_length(vec);
    if (hx_buf_append(out, "\"", 1) != 0)
        return -1;
    for (size_t i = 0; i < n; i += 3) { /* three floats = 12 bytes = 16 characters, no padding */
        unsigned char b[12];
        size_t k = 0;
        for (size_t j = i; j < n && j < i + 3; j++) {
            float f = (float)json_object_get_double(json_object_array_get_idx(vec, j));
            uint32_t u;
            memcpy(&u, &f, sizeof u);
            for (int s = 0; s < 32; s += 8)
                b[k++] = (unsigned char)(u >> s);
        }
        if (b64_append(out, b, k) != 0)
            return -1;
    }
    return hx_buf_append(out, "\"", 1);
}

static bool is_vector(json_object *v)
{
    if (!json_object_is_type(v, json_type_array))
        return false;
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        json_object *x = json_object_array_get_idx(v, i);
        if (!json_object_is_type(x, json_type_double) && !json_object_is_type(x, json_type_int))
            return false;
    }
    return true;
}

static int malformed(hx_relay *rl, const char *why)
{
    snprintf(rl->err, sizeof rl->err, "%s", why);
    return -1;
}

/* data[...] of the OpenAI list; the numbers keep the upstream's text. */
static int render_data(json_object *embs, bool b64, hx_buf *out)
{
    size_t n = json_object_array_length(embs);
    int rc = hx_buf_append_str(out, "\"data\":[");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_object *vec = json_object_array_get_idx(embs, i);
        rc = hx_buf_printf(out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        if (rc == 0)
            rc = b64 ? vector_base64(vec, out) : hx_json_append(out, vec);
        if (rc == 0)
            rc = hx_buf_append(out, "}", 1);
    }
    return rc || hx_buf_append(out, "]", 1);
}

static int embed_convert(const hx_provider *p, json_object *body, const char *data, size_t len, hx_buf *out,
                         hx_relay *rl)
{
    json_object *o = hx_json_parse(data, len), *embs = member(o, "embeddings"), *in = member(body, "input");
    json_object *ef = member(body, "encoding_format"), *model = member(o, "model");
    size_t want = json_object_is_type(in, json_type_array) ? json_object_array_length(in) : 1;
    int rc = 0;
    if (o == NULL || !json_object_is_type(embs, json_type_array))
        rc = malformed(rl, "upstream returned no embeddings");
    else if (json_object_array_length(embs) != want)
        rc = malformed(rl, "upstream returned a different number of embeddings than inputs");
    for (size_t i = 0; rc == 0 && i < want; i++)
        if (!is_vector(json_object_array_get_idx(embs, i)))
            rc = malformed(rl, "upstream returned an embedding that is not an array of numbers");
    if (rc != 0) {
        json_object_put(o);
        return -1;
    }
    int64_t pt = hx_json_tokens(member(o, "prompt_eval_count"));
    rl->prompt_tokens = pt;
    rl->completion_tokens = 0;
    rl->usage_seen = true;
    const char *m = json_object_is_type(model, json_type_string) ? json_object_get_string(model) : p->model;
    bool b64 = ef && strcmp(json_object_get_string(ef), "base64") == 0;
    rc = hx_buf_append_str(out, "{\"object\":\"list\",") || render_data(embs, b64, out) ||
         hx_buf_append_str(out, ",\"model\":") || hx_json_cstr(out, m) ||
         hx_buf_printf(out, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)pt,
                       (long long)pt);
    json_object_put(o);
    return rc ? malformed(rl, "out of memory converting the answer") : 0;
}

const hx_translated hx_oll_embeddings = {
    .build = embed_build,
    .convert = embed_convert,
};
