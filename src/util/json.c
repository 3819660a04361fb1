#include "util/json.h"

#include <stdint.h>
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

/* ---- allocation-free validation ---------------------------------------- */

typedef struct {
    const char *p, *start, *end;
    int depth, max_depth;
    size_t elements, max_elements;
    bool int_range;
    hx_json_status status;
    const char *why;
    const char *errp;
} vstate;

static void vinit(vstate *v, const char *s, size_t len, const hx_json_limits *lim)
{
    memset(v, 0, sizeof *v);
    v->p = v->start = s;
    v->end = s + len;
    v->max_depth = lim && lim->max_depth > 0 ? lim->max_depth : HX_JSON_MAX_DEPTH;
    if (v->max_depth > HX_JSON_DEPTH_CAP)
        v->max_depth = HX_JSON_DEPTH_CAP;
    v->max_elements = lim && lim->max_elements ? lim->max_elements : HX_JSON_ELEMENTS_CAP;
    v->int_range = lim && lim->int_range;
}

/* Records the first error (the innermost frame knows best). */
static int fail_at(vstate *v, const char *at, hx_json_status st, const char *why)
{
    if (v->status == HX_JSON_OK) {
        v->status = st;
        v->why = why;
        v->errp = at;
    }
    return -1;
}

/* A syntax error at v->p, named after what is there when it is one of the
 * usual non-JSON extensions. */
static int bad_char(vstate *v, const char *dflt)
{
    const char *why = dflt;
    if (v->p >= v->end)
        why = "unexpected end of input";
    else if (*v->p == '/')
        why = "comments are not allowed in JSON";
    else if (*v->p == '\'')
        why = "strings must use double quotes";
    else if (*v->p == 'N' || *v->p == 'I' || (*v->p == '-' && v->p + 1 < v->end && v->p[1] == 'I'))
        why = "NaN and Infinity are not JSON numbers";
    else if (*v->p == '}' || *v->p == ']')
        why = "trailing comma or missing value";
    return fail_at(v, v->p, HX_JSON_E_SYNTAX, why);
}

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

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'f');
}

/* key: a member name, where \u0000 is refused: json-c keeps names as C
 * strings, so "model\u0000" would become a second "model" that only json-c
 * sees (routing and the upstream would read different members). */
static int v_string(vstate *v, bool key)
{
    v->p++; /* opening quote */
    while (v->p < v->end) {
        while (v->p < v->end && plain_byte[(unsigned char)*v->p])
            v->p++; /* the common run of ordinary bytes, one test each */
        if (v->p >= v->end)
            break;
        const char *at = v->p;
        unsigned char c = (unsigned char)*v->p++;
        if (c == '"')
            return 0;
        if (c < 0x20)
            return fail_at(v, at, HX_JSON_E_SYNTAX, "control character in a string");
        if (v->p >= v->end)
            break;
        char e = *v->p++;
        if (e == 'u') {
            for (int i = 0; i < 4; i++, v->p++)
                if (v->p >= v->end || !is_hex(*v->p))
                    return fail_at(v, at, HX_JSON_E_SYNTAX, "invalid \\u escape in a string");
            if (key && memcmp(v->p - 4, "0000", 4) == 0)
                return fail_at(v, at, HX_JSON_E_SYNTAX, "NUL (\\u0000) in a member name");
        } else if (e == '\0' || !strchr("\"\\/bfnrt", e)) { /* strchr finds the terminator (fuzzing) */
            return fail_at(v, at, HX_JSON_E_SYNTAX, "invalid escape in a string");
        }
    }
    return fail_at(v, v->p, HX_JSON_E_SYNTAX, "unterminated string");
}

/* Integer text d[0..n) (no sign, no leading zero) above the largest
 * magnitude json-c holds exactly: 2^63 negative, 2^64 - 1 positive. */
static bool int_too_big(const char *d, size_t n, bool neg)
{
    const char *lim = neg ? "9223372036854775808" : "18446744073709551615";
    size_t ln = strlen(lim);
    return n > ln || (n == ln && memcmp(d, lim, n) > 0);
}

static int v_number(vstate *v)
{
    const char *s = v->p;
    bool neg = v->p < v->end && *v->p == '-';
    if (neg)
        v->p++;
    const char *d = v->p;
    while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
        v->p++;
    if (v->p == d) {
        v->p = s;
        return bad_char(v, "unexpected character");
    }
    const char *dend = v->p;
    if (*d == '0' && dend - d > 1)
        return fail_at(v, s, HX_JSON_E_SYNTAX, "leading zeros are not allowed in numbers");
    bool integer = true;
    if (v->p < v->end && *v->p == '.') {
        integer = false;
        const char *f = ++v->p;
        while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
            v->p++;
        if (v->p == f)
            return fail_at(v, s, HX_JSON_E_SYNTAX, "invalid number");
    }
    if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
        integer = false;
        v->p++;
        if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
            v->p++;
        const char *x = v->p;
        while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
            v->p++;
        if (v->p == x)
            return fail_at(v, s, HX_JSON_E_SYNTAX, "invalid number");
    }
    if (integer && v->int_range && int_too_big(d, (size_t)(dend - d), neg))
        return fail_at(v, s, HX_JSON_E_INTEGER, NULL);
    return 0;
}

static int v_literal(vstate *v, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(v->end - v->p) < n || memcmp(v->p, lit, n) != 0)
        return bad_char(v, "unexpected character");
    v->p += n;
    return 0;
}

/* Members of an object or elements of an array, after the opening bracket. */
static int v_container(vstate *v, char close, int object)
{
    if (++v->depth > v->max_depth)
        return fail_at(v, v->p, HX_JSON_E_DEPTH, NULL);
    if (object && (v->elements += HX_JSON_OBJECT_WEIGHT - 1) > v->max_elements) /* v_value counted one */
        return fail_at(v, v->p, HX_JSON_E_ELEMENTS, NULL);
    v->p++;
    skip_ws(v);
    if (v->p < v->end && *v->p == close) {
        v->p++;
        v->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(v);
        if (object) {
            if (v->p >= v->end || *v->p != '"')
                return bad_char(v, "expected a member name in double quotes");
            if (v_string(v, true) != 0)
                return -1;
            skip_ws(v);
            if (v->p >= v->end || *v->p != ':')
                return bad_char(v, "expected ':' after a member name");
            v->p++;
        }
        if (v_value(v) != 0)
            return -1;
        skip_ws(v);
        if (v->p >= v->end || (*v->p != close && *v->p != ',')) {
            const char *want = object ? "expected ',' or '}'" : "expected ',' or ']'";
            if (v->p < v->end && (*v->p == '}' || *v->p == ']')) /* the wrong bracket */
                return fail_at(v, v->p, HX_JSON_E_SYNTAX, want);
            return bad_char(v, want);
        }
        if (*v->p++ == close) {
            v->depth--;
            return 0;
        }
    }
}

static int v_value(vstate *v)
{
    skip_ws(v);
    if (v->p >= v->end)
        return bad_char(v, NULL);
    if (++v->elements > v->max_elements)
        return fail_at(v, v->p, HX_JSON_E_ELEMENTS, NULL);
    switch (*v->p) {
    case '{': return v_container(v, '}', 1);
    case '[': return v_container(v, ']', 0);
    case '"': return v_string(v, false);
    case 't': return v_literal(v, "true");
    case 'f': return v_literal(v, "false");
    case 'n': return v_literal(v, "null");
    default: return v_number(v);
    }
}

hx_json_status hx_json_check(const char *s, size_t len, const hx_json_limits *lim, hx_json_report *rep)
{
    vstate v;
    vinit(&v, s ? s : "", s ? len : 0, lim);
    if (v_value(&v) == 0) {
        skip_ws(&v);
        if (v.p != v.end)
            bad_char(&v, "data after the JSON value");
    }
    if (rep) {
        rep->status = v.status;
        rep->why = v.why;
        rep->offset = v.status == HX_JSON_OK ? 0 : (size_t)(v.errp - v.start);
        rep->elements = v.elements;
    }
    return v.status;
}

void hx_json_report_text(const hx_json_report *rep, const hx_json_limits *lim, char *out, size_t outlen)
{
    vstate v;
    vinit(&v, "", 0, lim); /* the effective limits */
    switch (rep->status) {
    case HX_JSON_OK: snprintf(out, outlen, "valid JSON"); break;
    case HX_JSON_E_SYNTAX: snprintf(out, outlen, "%s (byte %zu)", rep->why, rep->offset); break;
    case HX_JSON_E_DEPTH: snprintf(out, outlen, "nested deeper than %d levels (byte %zu)", v.max_depth, rep->offset); break;
    case HX_JSON_E_ELEMENTS:
        snprintf(out, outlen, "more than %zu values in one body (an object counts as %d)", v.max_elements,
                 HX_JSON_OBJECT_WEIGHT);
        break;
    case HX_JSON_E_INTEGER: snprintf(out, outlen, "integer out of range (byte %zu)", rep->offset); break;
    }
}

bool hx_json_valid(const char *s, size_t len)
{
    /* Nothing is built: the value count costs nothing here. */
    const hx_json_limits lim = {.max_elements = SIZE_MAX};
    return s != NULL && hx_json_check(s, len, &lim, NULL) == HX_JSON_OK;
}

json_object *hx_json_parse_limits(const char *s, size_t len, const hx_json_limits *lim)
{
    if (s == NULL || len > (size_t)0x7fffffff || hx_json_check(s, len, lim, NULL) != HX_JSON_OK)
        return NULL;
    vstate v;
    vinit(&v, "", 0, lim);
    /* json-c counts the top level as a level too: one more than ours. */
    json_tokener *tok = json_tokener_new_ex(v.max_depth + 1);
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

int hx_json_set(json_object *o, const char *k, json_object *v)
{
    if (v == NULL)
        return -1;
    if (json_object_object_add(o, k, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

int hx_json_push(json_object *a, json_object *v)
{
    if (v == NULL)
        return -1;
    if (json_object_array_add(a, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

json_object *hx_json_parse(const char *s, size_t len)
{
    return hx_json_parse_limits(s, len, NULL);
}

/* ---- token counts ---------------------------------------------------------- */

static int64_t clamp_tokens(int64_t n)
{
    return n < 0 ? 0 : n > HX_JSON_TOKENS_MAX ? HX_JSON_TOKENS_MAX : n;
}

int64_t hx_json_tokens(json_object *v)
{
    if (v == NULL)
        return 0;
    if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!(d > 0)) /* also NaN */
            return 0;
        return d >= (double)HX_JSON_TOKENS_MAX ? HX_JSON_TOKENS_MAX : (int64_t)d;
    }
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_string))
        return clamp_tokens(json_object_get_int64(v)); /* json-c saturates at INT64_MAX */
    return 0;
}

int64_t hx_tokens_add(int64_t a, int64_t b)
{
    a = clamp_tokens(a);
    b = clamp_tokens(b);
    return a > HX_JSON_TOKENS_MAX - b ? HX_JSON_TOKENS_MAX : a + b;
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
            return clamp_tokens(n);
    }
    return -1;
}

int hx_json_replace_member(const char *s, size_t len, const char *key, const char *value, size_t vlen,
                           hx_buf *out)
{
    size_t kl = strlen(key), pos = 0;
    hx_json_member m, found = {0};
    int n = 0, rc;
    while ((rc = hx_json_next_member(s, len, &pos, &m)) == 1) {
        if (m.key_escaped)
            return -1;
        if (m.klen == kl && memcmp(m.key, key, kl) == 0 && n++ == 0)
            found = m;
    }
    if (rc < 0 || n > 1)
        return -1;
    if (n == 1)
        return hx_buf_append(out, s, (size_t)(found.val - s)) || hx_buf_append(out, value, vlen) ||
                       hx_buf_append(out, found.val + found.vlen, len - (size_t)(found.val + found.vlen - s))
                   ? -1
                   : 0;
    const char *open = memchr(s, '{', len);
    if (open == NULL)
        return -1;
    size_t after = (size_t)(open + 1 - s);
    size_t i = after;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    bool empty = i < len && s[i] == '}';
    if (hx_buf_append(out, s, after) || hx_buf_append(out, "\"", 1) || hx_buf_append(out, key, kl) ||
        hx_buf_append(out, "\":", 2) || hx_buf_append(out, value, vlen) || (!empty && hx_buf_append(out, ",", 1)) ||
        hx_buf_append(out, s + after, len - after))
        return -1;
    return 0;
}

/* ---- walking ------------------------------------------------------------- */

/* A walk is inside the container it walks (depth 1), with the default
 * depth for the values it steps over. */
static void walk_init(vstate *v, const char *s, size_t len, size_t pos)
{
    vinit(v, s, len, NULL);
    v->p = s + pos;
    v->depth = 1;
    v->max_elements = SIZE_MAX;
}

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
    vstate v;
    walk_init(&v, s, len, *pos);
    int rc = walk_step(&v, pos, '{', '}');
    if (rc <= 0) {
        *pos = (size_t)(v.p - s);
        return rc;
    }
    if (v.p >= v.end || *v.p != '"')
        return -1;
    const char *k = v.p + 1;
    if (v_string(&v, true) != 0)
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
    vstate v;
    walk_init(&v, s, len, *pos);
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
