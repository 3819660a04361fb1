#include "util/json.h"

#include <stdio.h>
#include <string.h>

int hx_json_str(hx_buf *out, const char *s, size_t len)
{
    if (hx_buf_append(out, "\"", 1) != 0)
        return -1;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            esc = tmp;
        }
        if (esc == NULL)
            continue;
        if (hx_buf_append(out, s + start, i - start) != 0 || hx_buf_append_str(out, esc) != 0)
            return -1;
        start = i + 1;
    }
    if (hx_buf_append(out, s + start, len - start) != 0)
        return -1;
    return hx_buf_append(out, "\"", 1);
}

int hx_json_cstr(hx_buf *out, const char *s)
{
    if (s == NULL)
        return hx_buf_append(out, "null", 4);
    return hx_json_str(out, s, strlen(s));
}

json_object *hx_json_parse(const char *s, size_t len)
{
    /* json-c alone takes NaN, comments, "1." ... and writes them back out
     * (found by fuzzing: an upstream's {"a":[1.]} reached the client). */
    if (s == NULL || len > (size_t)0x7fffffff || !hx_json_valid(s, len))
        return NULL;
    json_tokener *tok = json_tokener_new_ex(HX_JSON_MAX_DEPTH);
    if (tok == NULL)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, s, (int)len);
    if (o != NULL) {
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
            if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
                json_object_put(o);
                o = NULL;
                break;
            }
    } else if (json_tokener_get_error(tok) == json_tokener_continue) {
        o = json_tokener_parse_ex(tok, "", 1); /* ends a trailing number or literal */
    }
    json_tokener_free(tok);
    return o;
}

/* ---- allocation-free validation ---------------------------------------- */

typedef struct {
    const char *p, *end;
    int depth;
} vstate;

static void skip_ws(vstate *v)
{
    while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r'))
        v->p++;
}

static int v_value(vstate *v);

/* Bytes a string may hold as they are (not '"', not '\\', not a control). */
static const unsigned char plain_byte[256] = {
#define R16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20..0x2f: '"' */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50..0x5f: '\\' */
    R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1),
#undef R16
};

static int v_string(vstate *v)
{
    v->p++; /* opening quote */
    while (v->p < v->end) {
        while (v->p < v->end && plain_byte[(unsigned char)*v->p])
            v->p++; /* the common run of ordinary bytes, one test each */
        if (v->p >= v->end)
            break;
        unsigned char c = (unsigned char)*v->p++;
        if (c == '"')
            return 0;
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (v->p >= v->end)
                return -1;
            char e = *v->p++;
            if (e == 'u') {
                for (int i = 0; i < 4; i++, v->p++)
                    if (v->p >= v->end || !((*v->p >= '0' && *v->p <= '9') || ((*v->p | 32) >= 'a' && (*v->p | 32) <= 'f')))
                        return -1;
            } else if (e == '\0' || !strchr("\"\\/bfnrt", e)) {
                /* strchr finds the terminator: a NUL after a backslash
                 * passed as an escape (found by fuzzing) */
                return -1;
            }
        }
    }
    return -1;
}

static int v_number(vstate *v)
{
    const char *s = v->p;
    if (v->p < v->end && *v->p == '-')
        v->p++;
    const char *d = v->p;
    while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
        v->p++;
    if (v->p == d || (*d == '0' && v->p - d > 1))
        return -1;
    if (v->p < v->end && *v->p == '.') {
        d = ++v->p;
        while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
            v->p++;
        if (v->p == d)
            return -1;
    }
    if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
        v->p++;
        if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
            v->p++;
        d = v->p;
        while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
            v->p++;
        if (v->p == d)
            return -1;
    }
    return v->p > s ? 0 : -1;
}

static int v_literal(vstate *v, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(v->end - v->p) < n || memcmp(v->p, lit, n) != 0)
        return -1;
    v->p += n;
    return 0;
}

/* Members of an object or elements of an array, after the opening bracket. */
static int v_container(vstate *v, char close, int object)
{
    if (++v->depth > HX_JSON_MAX_DEPTH)
        return -1;
    v->p++;
    skip_ws(v);
    if (v->p < v->end && *v->p == close) {
        v->p++;
        v->depth--;
        return 0;
    }
    /* Its members sit one level deeper, as json-c counts (found by fuzzing:
     * 64 nested arrays around a number passed here, not in the parser). */
    if (v->depth >= HX_JSON_MAX_DEPTH)
        return -1;
    for (;;) {
        skip_ws(v);
        if (object) {
            if (v->p >= v->end || *v->p != '"' || v_string(v) != 0)
                return -1;
            skip_ws(v);
            if (v->p >= v->end || *v->p++ != ':')
                return -1;
        }
        if (v_value(v) != 0)
            return -1;
        skip_ws(v);
        if (v->p >= v->end)
            return -1;
        char c = *v->p++;
        if (c == close) {
            v->depth--;
            return 0;
        }
        if (c != ',')
            return -1;
    }
}

static int v_value(vstate *v)
{
    skip_ws(v);
    if (v->p >= v->end)
        return -1;
    switch (*v->p) {
    case '{': return v_container(v, '}', 1);
    case '[': return v_container(v, ']', 0);
    case '"': return v_string(v);
    case 't': return v_literal(v, "true");
    case 'f': return v_literal(v, "false");
    case 'n': return v_literal(v, "null");
    default: return v_number(v);
    }
}

bool hx_json_valid(const char *s, size_t len)
{
    vstate v = {s, s + len, 0};
    if (s == NULL || v_value(&v) != 0)
        return false;
    skip_ws(&v);
    return v.p == v.end;
}

int64_t hx_json_find_int(const char *s, size_t len, const char *key)
{
    size_t kl = strlen(key);
    const char *end = s + len;
    for (const char *p = s; p && p + kl + 2 < end; p++) {
        p = memchr(p, '"', (size_t)(end - p));
        if (p == NULL || p + kl + 2 >= end)
            break;
        if (memcmp(p + 1, key, kl) != 0 || p[kl + 1] != '"')
            continue;
        const char *q = p + kl + 2;
        while (q < end && (*q == ' ' || *q == ':' || *q == '\t' || *q == '\n' || *q == '\r'))
            q++;
        int64_t n = 0;
        bool any = false;
        while (q < end && *q >= '0' && *q <= '9' && n < INT64_MAX / 10) {
            n = n * 10 + (*q++ - '0');
            any = true;
        }
        if (any)
            return n;
    }
    return -1;
}

/* ---- walking ------------------------------------------------------------- */

/* Opens (pos 0) or continues a container walk; returns 1 at an item, 0 at
 * the end, -1 on a wrong shape. */
static int walk_step(vstate *v, size_t *pos, char open, char close)
{
    if (*pos == 0) {
        skip_ws(v);
        if (v->p >= v->end || *v->p != open)
            return -1;
        v->p++;
        skip_ws(v);
        if (v->p < v->end && *v->p == close)
            return 0;
        return 1;
    }
    skip_ws(v);
    if (v->p >= v->end)
        return -1;
    char c = *v->p++;
    if (c == close)
        return 0;
    if (c != ',')
        return -1;
    skip_ws(v);
    return 1;
}

static int walk_value(vstate *v, const char **val, size_t *vlen)
{
    skip_ws(v);
    const char *start = v->p;
    if (v_value(v) != 0)
        return -1;
    *val = start;
    *vlen = (size_t)(v->p - start);
    return 0;
}

int hx_json_next_member(const char *s, size_t len, size_t *pos, hx_json_member *m)
{
    vstate v = {s + *pos, s + len, 1};
    int rc = walk_step(&v, pos, '{', '}');
    if (rc <= 0) {
        *pos = (size_t)(v.p - s);
        return rc;
    }
    if (v.p >= v.end || *v.p != '"')
        return -1;
    const char *k = v.p + 1;
    if (v_string(&v) != 0)
        return -1;
    m->key = k;
    m->klen = (size_t)(v.p - 1 - k);
    m->key_escaped = memchr(k, '\\', m->klen) != NULL;
    skip_ws(&v);
    if (v.p >= v.end || *v.p++ != ':')
        return -1;
    if (walk_value(&v, &m->val, &m->vlen) != 0)
        return -1;
    *pos = (size_t)(v.p - s);
    return 1;
}

int hx_json_next_element(const char *s, size_t len, size_t *pos, const char **val, size_t *vlen)
{
    vstate v = {s + *pos, s + len, 1};
    int rc = walk_step(&v, pos, '[', ']');
    if (rc <= 0) {
        *pos = (size_t)(v.p - s);
        return rc;
    }
    if (walk_value(&v, val, vlen) != 0)
        return -1;
    *pos = (size_t)(v.p - s);
    return 1;
}
