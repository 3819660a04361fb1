/* Embeddings and token counting of the mock provider (see README.md):
 * OpenAI POST /v1/embeddings, Ollama POST /api/embed, Anthropic POST
 * /v1/messages/count_tokens. Vectors are deterministic: component j of the
 * vector of text t is ((h(t) + 7919 j) mod 2001 - 1000) / 1000, printed
 * with three decimals (h = 32-bit FNV-1a of t's bytes). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mock_embed.h"

#define ME_DIMS_DEFAULT 8
#define ME_DIMS_MAX 4096

static uint32_t fnv(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static double component(uint32_t h, long j)
{
    return (double)((long)((h + 7919u * (uint32_t)j) % 2001u) - 1000) / 1000.0;
}

static long words(const char *s, size_t n)
{
    long w = 0;
    int in = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';
        w += !sp && !in;
        in = !sp;
    }
    return w;
}

static void b64(mbuf *out, const unsigned char *d, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        char q[4] = { t[v >> 18 & 63], t[v >> 12 & 63], i + 1 < n ? t[v >> 6 & 63] : '=', i + 2 < n ? t[v & 63] : '=' };
        mbuf_add(out, q, 4);
    }
}

static void vector(mbuf *out, const char *s, size_t n, long dims, int base64)
{
    uint32_t h = fnv(s, n);
    if (!base64) {
        mbuf_str(out, "[");
        for (long j = 0; j < dims; j++)
            mbuf_fmt(out, "%s%.3f", j ? "," : "", component(h, j));
        mbuf_str(out, "]");
        return;
    }
    mbuf raw = { 0 };
    for (long j = 0; j < dims; j++) {
        float f = (float)component(h, j);
        uint32_t u;
        memcpy(&u, &f, 4);
        unsigned char b[4] = { (unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                               (unsigned char)(u >> 24) };
        mbuf_add(&raw, b, 4);
    }
    mbuf_str(out, "\"");
    b64(out, (const unsigned char *)raw.data, raw.len);
    mbuf_str(out, "\"");
    mbuf_free(&raw);
}

/* The text of one input: a string, or token ids joined by spaces. *ntok
 * gets its token count (words, or ids). Returns 0, or -1 (not an input). */
static int input_text(json_object *it, int tokens_ok, mbuf *t, long *ntok)
{
    t->len = 0;
    if (json_object_is_type(it, json_type_string)) {
        mbuf_add(t, json_object_get_string(it), (size_t)json_object_get_string_len(it));
        *ntok = words(t->data ? t->data : "", t->len);
        return 0;
    }
    if (!tokens_ok || !json_object_is_type(it, json_type_array))
        return -1;
    size_t n = json_object_array_length(it);
    for (size_t i = 0; i < n; i++)
        mbuf_fmt(t, "%s%lld", i ? " " : "", (long long)json_object_get_int64(json_object_array_get_idx(it, i)));
    *ntok = (long)n;
    return 0;
}

static json_object *member(json_object *o, const char *k)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* The inputs as a list of items: a lone string or token array is one. */
static size_t inputs(json_object *in, json_object **items, int *single)
{
    *single = !json_object_is_type(in, json_type_array) ||
              (json_object_array_length(in) > 0 && !json_object_is_type(json_object_array_get_idx(in, 0), json_type_string) &&
               !json_object_is_type(json_object_array_get_idx(in, 0), json_type_array));
    *items = in;
    return *single ? 1 : json_object_array_length(in);
}

int me_embeddings(int ollama, json_object *body, mbuf *out, const char **err)
{
    json_object *in = member(body, "input"), *model = member(body, "model"), *dim = member(body, "dimensions");
    json_object *ef = member(body, "encoding_format");
    long dims = dim && json_object_is_type(dim, json_type_int) ? (long)json_object_get_int64(dim) : ME_DIMS_DEFAULT;
    int base64 = !ollama && ef && json_object_is_type(ef, json_type_string) &&
                 strcmp(json_object_get_string(ef), "base64") == 0;
    if (in == NULL || dims < 1 || dims > ME_DIMS_MAX) {
        *err = in == NULL ? "input is required" : "dimensions out of range";
        return 400;
    }
    json_object *items;
    int single;
    size_t n = inputs(in, &items, &single);
    long total = 0;
    mbuf t = { 0 }, data = { 0 };
    for (size_t i = 0; i < n; i++) {
        long k = 0;
        if (input_text(single ? in : json_object_array_get_idx(in, i), !ollama, &t, &k) != 0) {
            mbuf_free(&t);
            mbuf_free(&data);
            *err = ollama ? "invalid input type" : "'$.input' is invalid";
            return 400;
        }
        total += k > 0 ? k : 1;
        if (ollama) {
            mbuf_str(&data, i ? "," : "");
        } else {
            mbuf_fmt(&data, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        }
        vector(&data, t.data ? t.data : "", t.len, dims, base64);
        if (!ollama)
            mbuf_str(&data, "}");
    }
    mbuf_free(&t);
    const char *m = model && json_object_is_type(model, json_type_string) ? json_object_get_string(model)
                                                                         : "mock-embedding";
    if (ollama) {
        mbuf_str(out, "{\"model\":");
        mbuf_jstr(out, m, strlen(m));
        mbuf_str(out, ",\"embeddings\":[");
        mbuf_add(out, data.data, data.len);
        mbuf_fmt(out, "],\"total_duration\":14143917,\"load_duration\":1019500,\"prompt_eval_count\":%ld}", total);
    } else {
        mbuf_str(out, "{\"object\":\"list\",\"data\":[");
        mbuf_add(out, data.data, data.len);
        mbuf_str(out, "],\"model\":");
        mbuf_jstr(out, m, strlen(m));
        mbuf_fmt(out, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}", total, total);
    }
    mbuf_free(&data);
    return 200;
}

/* Words of every "text" string and string "content" under v. */
static long text_words(json_object *v)
{
    long w = 0;
    if (json_object_is_type(v, json_type_string))
        return words(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++)
            w += text_words(json_object_array_get_idx(v, i));
        return w;
    }
    if (!json_object_is_type(v, json_type_object))
        return 0;
    json_object *t = member(v, "text"), *c = member(v, "content");
    return (t ? text_words(t) : 0) + (c ? text_words(c) : 0);
}

int me_count_tokens(json_object *body, mbuf *out, const char **err)
{
    json_object *msgs = member(body, "messages");
    if (msgs == NULL || !json_object_is_type(msgs, json_type_array)) {
        *err = "messages: Field required";
        return 400;
    }
    long n = text_words(msgs);
    json_object *sys = member(body, "system");
    if (sys)
        n += text_words(sys);
    mbuf_fmt(out, "{\"input_tokens\":%ld}", n > 0 ? n : 1);
    return 200;
}
