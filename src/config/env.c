#include "config/env.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"

/* Recursion bound for defaults nested in defaults ("${A:-${B:-${C}}}"). */
#define MAX_NEST 32
#define MAX_NAME 255

typedef struct {
    const char *name;
    size_t len;
} frame;

typedef struct {
    const hx_env *env;
    hx_env_error *err;
    hx_buf *out;
    frame stack[HX_ENV_MAX_DEPTH];
    int depth;      /* variables whose value is being expanded */
    int nest;       /* expand_text calls on the C stack */
    size_t top_off; /* offset of the outermost reference in the input */
    bool had_ref;
} xctx;

static int fail(xctx *x, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(xctx *x, size_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err->msg, sizeof x->err->msg, fmt, ap);
    va_end(ap);
    x->err->offset = off;
    return -1;
}

static int put(xctx *x, const char *p, size_t n)
{
    if (n > HX_ENV_MAX_VALUE - x->out->len)
        return fail(x, x->top_off, "expanded value is longer than %d bytes", HX_ENV_MAX_VALUE);
    if (hx_buf_append(x->out, p, n) != 0) {
        x->err->nomem = true;
        return fail(x, x->top_off, "out of memory");
    }
    return 0;
}

static const char *lookup(xctx *x, const char *name)
{
    if (x->env && x->env->lookup)
        return x->env->lookup(name, x->env->lookup_ud);
    return getenv(name);
}

/* Index of the '}' closing a "${" whose body starts at `from`, or len. */
static size_t find_close(const char *s, size_t len, size_t from)
{
    int depth = 1;
    for (size_t j = from; j < len; j++) {
        if (s[j] == '$' && j + 1 < len && s[j + 1] == '$')
            j++;
        else if (s[j] == '{')
            depth++;
        else if (s[j] == '}' && --depth == 0)
            return j;
    }
    return len;
}

static size_t name_len(const char *p, size_t n)
{
    size_t i = 0;
    for (; i < n; i++) {
        char c = p[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            break;
    }
    return i;
}

static int chain_error(xctx *x, const char *name, size_t len, const char *what)
{
    char chain[sizeof x->err->msg];
    size_t used = 0;
    chain[0] = '\0';
    for (int i = 0; i < x->depth && used < sizeof chain; i++)
        used += (size_t)snprintf(chain + used, sizeof chain - used, "%.*s -> ",
                                 (int)x->stack[i].len, x->stack[i].name);
    if (used < sizeof chain)
        snprintf(chain + used, sizeof chain - used, "%.*s", (int)len, name);
    return fail(x, x->top_off, "%s: %s", what, chain);
}

static int expand_text(xctx *x, const char *s, size_t len, bool value_mode, size_t base);

/* Expands the value of variable `name` (already looked up: val). */
static int expand_var(xctx *x, const char *name, size_t nlen, const char *val)
{
    for (int i = 0; i < x->depth; i++)
        if (x->stack[i].len == nlen && memcmp(x->stack[i].name, name, nlen) == 0)
            return chain_error(x, name, nlen, "cycle in environment variables");
    if (x->depth >= HX_ENV_MAX_DEPTH)
        return chain_error(x, name, nlen, "environment variables nested more than 10 levels deep");
    x->stack[x->depth++] = (frame){name, nlen};
    int rc = expand_text(x, val, strlen(val), true, x->top_off);
    x->depth--;
    return rc;
}

/* s[i] is the '$' of "${". Sets *used to the bytes consumed. */
static int reference(xctx *x, const char *s, size_t len, size_t i, bool value_mode, size_t base,
                     size_t *used)
{
    size_t close = find_close(s, len, i + 2);
    if (close == len) {
        *used = 2;
        if (value_mode)
            return put(x, "${", 2);
        return fail(x, base + i, "invalid syntax: unterminated ${");
    }
    *used = close + 1 - i;
    const char *body = s + i + 2;
    size_t blen = close - (i + 2);
    size_t nlen = name_len(body, blen);
    bool has_def = nlen < blen && blen - nlen >= 2 && body[nlen] == ':' && body[nlen + 1] == '-';
    if (nlen == 0 || nlen > MAX_NAME || (nlen < blen && !has_def)) {
        if (value_mode)
            return put(x, s + i, *used);
        if (nlen == 0 || nlen > MAX_NAME)
            return fail(x, base + i, "invalid syntax: invalid variable name in \"${%.*s}\"",
                        (int)(blen > 40 ? 40 : blen), body);
        return fail(x, base + i, "invalid syntax: expected '}' or ':-' after \"${%.*s\"",
                    (int)nlen, body);
    }
    if (x->depth == 0)
        x->top_off = base + i;
    x->had_ref = true;
    char name[MAX_NAME + 1];
    memcpy(name, body, nlen);
    name[nlen] = '\0';
    if (x->env && x->env->note)
        x->env->note(name, x->env->note_ud);
    const char *val = lookup(x, name);
    size_t before = x->out->len;
    if (val && *val && expand_var(x, body, nlen, val) != 0)
        return -1;
    if (x->out->len == before && has_def) {
        const char *def = body + nlen + 2;
        return expand_text(x, def, blen - nlen - 2, value_mode, base + (size_t)(def - s));
    }
    return 0;
}

static int expand_text(xctx *x, const char *s, size_t len, bool value_mode, size_t base)
{
    if (++x->nest > MAX_NEST) {
        x->nest--;
        return fail(x, x->top_off, "invalid syntax: ${...} nested too deeply");
    }
    int rc = 0;
    size_t i = 0;
    while (rc == 0 && i < len) {
        const char *dollar = memchr(s + i, '$', len - i);
        size_t run = dollar ? (size_t)(dollar - (s + i)) : len - i;
        if (run) {
            rc = put(x, s + i, run);
            i += run;
            continue;
        }
        size_t used = 1;
        if (i + 1 < len && s[i + 1] == '$') {
            used = 2;
            rc = put(x, s + i, value_mode ? 2 : 1);
        } else if (i + 1 < len && s[i + 1] == '{') {
            rc = reference(x, s, len, i, value_mode, base, &used);
        } else {
            rc = put(x, "$", 1);
        }
        i += used;
    }
    x->nest--;
    return rc;
}

bool hx_env_needs_expand(const char *in, size_t len)
{
    return memchr(in, '$', len) != NULL;
}

int hx_env_expand(const char *in, size_t len, const hx_env *env, char **out, size_t *out_len,
                  bool *had_ref, hx_env_error *err)
{
    hx_buf b;
    hx_buf_init(&b, HX_ENV_MAX_VALUE + 1); /* put() refuses past the value limit first */
    *err = (hx_env_error){0};
    *out = NULL;
    xctx x = {.env = env, .err = err, .out = &b};
    if (expand_text(&x, in, len, false, 0) != 0 || put(&x, "", 0) != 0) {
        hx_buf_free(&b);
        return -1;
    }
    *out = hx_buf_steal(&b, out_len);
    if (had_ref)
        *had_ref = x.had_ref;
    return 0;
}
