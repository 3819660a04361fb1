/* Differential target: the allocation-free JSON scanner (hx_json_valid and
 * the member/element walk) and the OpenAI chat scan against json-c. Where
 * the scanner accepts, json-c must accept the same text and agree on its
 * shape; where the chat scan accepts, the full parse must accept with the
 * same routing facts. */
#include <json-c/json.h>
#include <string.h>

#include "fuzz.h"
#include "gateway/inbound.h"
#include "util/json.h"

/* Walks a validated value with the scanner and compares with json-c. */
static void walk_compare(const char *s, size_t len, json_object *o, int depth)
{
    size_t pos = 0;
    if (json_object_is_type(o, json_type_object)) {
        hx_json_member m;
        size_t n = 0;
        bool escaped = false;
        int rc;
        while ((rc = hx_json_next_member(s, len, &pos, &m)) == 1) {
            n++;
            FUZZ_CHECK(hx_json_valid(m.val, m.vlen));
            escaped |= m.key_escaped;
            if (!m.key_escaped && depth < 8 && memchr(m.key, '\0', m.klen) == NULL) {
                char key[256];
                if (m.klen < sizeof key) {
                    memcpy(key, m.key, m.klen);
                    key[m.klen] = '\0';
                    json_object *v = NULL;
                    FUZZ_CHECK(json_object_object_get_ex(o, key, &v));
                }
            }
        }
        FUZZ_CHECK(rc == 0);
        /* Duplicate keys collapse in json-c: never more members there. */
        FUZZ_CHECK((size_t)json_object_object_length(o) <= n);
        if (!escaped && n > 0)
            FUZZ_CHECK(json_object_object_length(o) > 0);
    } else if (json_object_is_type(o, json_type_array)) {
        const char *v;
        size_t vlen, n = 0;
        int rc;
        while ((rc = hx_json_next_element(s, len, &pos, &v, &vlen)) == 1) {
            FUZZ_CHECK(hx_json_valid(v, vlen));
            json_object *e = json_object_array_get_idx(o, n);
            FUZZ_CHECK(e != NULL || (vlen == 4 && memcmp(v, "null", 4) == 0));
            if (e != NULL && depth < 8)
                walk_compare(v, vlen, e, depth + 1);
            n++;
        }
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(n == json_object_array_length(o));
    } else {
        FUZZ_CHECK(hx_json_next_member(s, len, &pos, &(hx_json_member){0}) == -1);
    }
}

static void chat_scan_compare(const char *s, size_t len)
{
    hx_in_info a = {0};
    if (hx_in_openai_chat_scan(s, len, &a) != 1)
        return;
    json_object *o = hx_json_parse(s, len);
    FUZZ_CHECK(o != NULL);
    if (o == NULL)
        return;
    hx_in_info b = {0};
    json_object *canon = NULL;
    char err[256];
    int rc = hx_in_openai_chat(o, &canon, &b, err, sizeof err);
    FUZZ_CHECK(rc == 0);
    if (rc == 0) {
        FUZZ_CHECK(a.stream == b.stream);
        FUZZ_CHECK(a.include_usage == b.include_usage);
        FUZZ_CHECK(strcmp(a.model, b.model) == 0);
    }
    json_object_put(canon);
    json_object_put(o);
}

int hx_fuzz_json(const uint8_t *data, size_t size)
{
    hx_fuzz_setup();
    const char *s = (const char *)data;
    bool valid = hx_json_valid(s, size);
    json_object *o = hx_json_parse(s, size);
    if (valid) {
        /* json-c's null is a NULL object */
        size_t a = 0, b = size;
        while (a < b && strchr(" \t\r\n", s[a]) && s[a])
            a++;
        while (b > a && strchr(" \t\r\n", s[b - 1]) && s[b - 1])
            b--;
        FUZZ_CHECK(o != NULL || (b - a == 4 && memcmp(s + a, "null", 4) == 0));
        if (o != NULL)
            walk_compare(s, size, o, 0);
    }
    /* Bookkeeping scan: any text, never a crash or a negative but -1. */
    int64_t n = hx_json_find_int(s, size, "prompt_tokens");
    FUZZ_CHECK(n >= -1);
    chat_scan_compare(s, size);
    /* Writing back: a string literal of the raw bytes must be valid JSON. */
    hx_buf b;
    hx_buf_init(&b, 0);
    if (hx_json_str(&b, s, size) == 0) {
        FUZZ_CHECK(b.len >= 2);
        /* invalid UTF-8 is passed through, so only the syntax is checked */
        FUZZ_CHECK(hx_json_valid(b.data, b.len));
        /* and json-c reads back exactly the bytes written */
        json_object *back = hx_json_parse(b.data, b.len);
        FUZZ_CHECK(back != NULL && json_object_is_type(back, json_type_string));
        if (back && json_object_is_type(back, json_type_string))
            FUZZ_CHECK((size_t)json_object_get_string_len(back) == size &&
                       memcmp(json_object_get_string(back), s, size) == 0);
        json_object_put(back);
    }
    hx_buf_free(&b);
    json_object_put(o);
    return 0;
}
