/* hx_config_print: the effective configuration as YAML that loads back to
 * the same config (secrets excepted: they print as "[redacted]", and so do
 * passwords and secret query parameters inside URLs). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "config/schema.h"
#include "obs/log.h"
#include "util/units.h"

typedef struct {
    FILE *out;
    bool failed;
} pctx;

static void pf(pctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pf(pctx *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vfprintf(p->out, fmt, ap) < 0)
        p->failed = true;
    va_end(ap);
}

/* The body of a YAML double-quoted scalar (n bytes of s). Bytes >= 0x80
 * pass through (UTF-8). */
static void escaped(pctx *p, const char *s, size_t n)
{
    for (const char *end = s + n; s < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            pf(p, "\\%c", c);
        else if (c == '\n')
            pf(p, "\\n");
        else if (c == '\t')
            pf(p, "\\t");
        else if (c == '\r')
            pf(p, "\\r");
        else if (c < 0x20 || c == 0x7f)
            pf(p, "\\x%02x", c);
        else
            pf(p, "%c", c);
    }
}

static void quoted(pctx *p, const char *s)
{
    pf(p, "\"");
    escaped(p, s, strlen(s));
    pf(p, "\"");
}

/* Query parameters that carry credentials (signed URLs, API keys). */
static bool secret_param(const char *name, size_t n)
{
    static const char *const names[] = {"key", "sig", "signature", "code", "auth", "credential",
                                        "x-amz-signature", "x-amz-credential", "x-goog-signature"};
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return n > 0; /* a name this long is not one we know: hide its value */
    memcpy(tmp, name, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(tmp, names[i]) == 0)
            return true;
    return hx_log_is_secret_name(tmp); /* api_key, token, access_token, password ... */
}

/* Query "a=1&key=S&b" with secret values replaced. */
static void query_redacted(pctx *p, const char *q, size_t n)
{
    const char *end = q + n;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        if (eq && secret_param(q, (size_t)(eq - q))) {
            escaped(p, q, (size_t)(eq - q) + 1);
            pf(p, "[redacted]");
        } else {
            escaped(p, q, (size_t)(stop - q));
        }
        if (amp)
            pf(p, "&");
        q = amp ? amp + 1 : end;
    }
}

/* A URL with its userinfo password (or a bare userinfo, often a token) and
 * secret query parameters replaced by "[redacted]"; any other string as is. */
static void quoted_url(pctx *p, const char *s)
{
    const char *auth = strstr(s, "://");
    if (auth == NULL) {
        quoted(p, s);
        return;
    }
    auth += 3;
    /* The last '@' before the query ends the userinfo; searching past a
     * '/' too hides a password someone wrote with a raw '/' in it. */
    const char *qf = auth + strcspn(auth, "?#");
    const char *at = NULL;
    for (const char *c = auth; c < qf; c++)
        if (*c == '@')
            at = c;
    const char *rest = (at ? at : auth) + strcspn(at ? at : auth, "/?#");
    pf(p, "\"");
    escaped(p, s, (size_t)(auth - s));
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon)
            escaped(p, auth, (size_t)(colon - auth) + 1);
        pf(p, "[redacted]");
        auth = at;
    }
    escaped(p, auth, (size_t)(rest - auth));
    const char *q = strchr(rest, '?');
    const char *frag = strchr(rest, '#');
    if (q && frag && frag < q)
        q = NULL;
    size_t path_len = q ? (size_t)(q - rest) : strlen(rest);
    escaped(p, rest, path_len);
    if (q) {
        size_t qlen = frag ? (size_t)(frag - q) : strlen(q);
        pf(p, "?");
        query_redacted(p, q + 1, qlen - 1);
        escaped(p, q + qlen, strlen(q + qlen));
    }
    pf(p, "\"");
}

/* Starts a line at `indent`; the first line of a list element gets "- ". */
static void lead(pctx *p, int indent, bool *dash)
{
    if (*dash) {
        pf(p, "%*s- ", indent - 2, "");
        *dash = false;
    } else {
        pf(p, "%*s", indent, "");
    }
}

static void print_scalar(pctx *p, const hx_field *f, const void *v)
{
    char b[HX_UNITS_BUFSZ];
    switch (f->type) {
    case HX_FT_BOOL:
        pf(p, "%s", *(const bool *)v ? "true" : "false");
        break;
    case HX_FT_INT:
        pf(p, "%lld", (long long)*(const int64_t *)v);
        break;
    case HX_FT_DOUBLE:
    case HX_FT_PERCENT:
        pf(p, "%s", hx_units_format_double(*(const double *)v, b, sizeof b));
        break;
    case HX_FT_DURATION:
        pf(p, "%s", hx_units_format_duration(*(const int64_t *)v, b, sizeof b));
        break;
    case HX_FT_SIZE:
        pf(p, "%s", hx_units_format_size(*(const int64_t *)v, b, sizeof b));
        break;
    default: {
        const char *s = *(char *const *)v;
        if ((f->flags & HX_FF_SECRET) && *s)
            quoted(p, "[redacted]");
        else
            quoted_url(p, s);
        break;
    }
    }
}

static void print_strlist(pctx *p, const hx_strlist *l)
{
    pf(p, "[");
    for (size_t i = 0; i < l->n; i++) {
        pf(p, "%s", i ? ", " : "");
        quoted(p, l->items[i]);
    }
    pf(p, "]\n");
}

static void print_kvmap(pctx *p, const hx_kvlist *l, int indent)
{
    if (l->n == 0) {
        pf(p, "{}\n");
        return;
    }
    pf(p, "\n");
    for (size_t i = 0; i < l->n; i++) {
        pf(p, "%*s", indent, "");
        quoted(p, l->items[i].key);
        pf(p, ": ");
        if (hx_log_is_secret_name(l->items[i].key))
            quoted(p, "[redacted]");
        else if (l->items[i].is_string)
            quoted_url(p, l->items[i].value);
        else
            pf(p, "%s", l->items[i].value);
        pf(p, "\n");
    }
}

static void print_struct(pctx *p, const hx_schema *s, const char *base, int indent, bool dash);

static void print_array(pctx *p, const hx_field *f, const char *base, int indent)
{
    const char *arr = *(char *const *)(base + f->off);
    size_t n = *(const size_t *)(base + f->count_off);
    if (n == 0) {
        pf(p, f->type == HX_FT_MAP ? "{}\n" : "[]\n");
        return;
    }
    pf(p, "\n");
    for (size_t i = 0; i < n; i++) {
        const char *elem = arr + i * f->sub->size;
        if (f->type == HX_FT_MAP) {
            pf(p, "%*s", indent, "");
            quoted(p, (*(char *const *const *)(base + f->names_off))[i]);
            pf(p, ":\n");
            print_struct(p, f->sub, elem, indent + 2, false);
        } else {
            print_struct(p, f->sub, elem, indent + 2, true);
        }
    }
}

static void print_struct(pctx *p, const hx_schema *s, const char *base, int indent, bool dash)
{
    for (size_t i = 0; i < s->n; i++) {
        const hx_field *f = &s->fields[i];
        const void *v = base + f->off;
        lead(p, indent, &dash);
        pf(p, "%s:", f->name);
        switch (f->type) {
        case HX_FT_STRLIST:
            pf(p, " ");
            print_strlist(p, v);
            break;
        case HX_FT_KVMAP:
            pf(p, "%s", ((const hx_kvlist *)v)->n ? "" : " ");
            print_kvmap(p, v, indent + 2);
            break;
        case HX_FT_STRUCT:
            pf(p, "\n");
            print_struct(p, f->sub, v, indent + 2, false);
            break;
        case HX_FT_LIST:
        case HX_FT_MAP:
            pf(p, "%s", *(const size_t *)(base + f->count_off) ? "" : " ");
            print_array(p, f, base, indent + 2);
            break;
        default:
            pf(p, " ");
            print_scalar(p, f, v);
            pf(p, "\n");
            break;
        }
    }
}

int hx_config_print(const hx_config *cfg, FILE *out)
{
    pctx p = {.out = out};
    pf(&p, "# hapax effective configuration: defaults merged, ${VAR} expanded,\n"
           "# secrets shown as \"[redacted]\". Durations: 0 = no timeout where allowed.\n");
    print_struct(&p, &hx__config_schema, (const char *)cfg, 0, false);
    if (fflush(out) != 0)
        p.failed = true;
    return p.failed ? -1 : 0;
}
