/* hx_config_print: the effective configuration as YAML that loads back to
 * the same config (secrets excepted: they print as "[redacted]"). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/schema.h"
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

/* A YAML double-quoted scalar. Bytes >= 0x80 pass through (UTF-8). */
static void quoted(pctx *p, const char *s)
{
    pf(p, "\"");
    for (; *s; s++) {
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
        quoted(p, (f->flags & HX_FF_SECRET) && *s ? "[redacted]" : s);
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
        if (l->items[i].is_string)
            quoted(p, l->items[i].value);
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
