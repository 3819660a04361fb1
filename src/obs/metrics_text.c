/* The text side of the metrics registry: exposition escapes, number
 * formatting, and the writer that both the registry and the collectors use,
 * which refuses anything that would make the output invalid. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/log.h"
#include "obs/metrics_int.h"
#include "util/alloc.h"

/* ---- names and values --------------------------------------------------- */

bool hx__metrics_name_ok(const char *s, bool metric)
{
    if (s == NULL || *s == '\0')
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                     (metric && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    /* Names starting with __ are reserved by Prometheus. */
    return metric || strncmp(s, "__", 2) != 0;
}

bool hx__metrics_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Length of the valid UTF-8 sequence at s, or 0 when it is invalid. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* Copies v into out (size HX_METRICS_MAX_VALUE_LEN + 1): invalid UTF-8
 * bytes become '?' (the format requires UTF-8), and long values are cut at
 * a character boundary. */
void hx__metrics_value_clean(const char *v, char *out)
{
    const unsigned char *s = (const unsigned char *)(v ? v : "");
    size_t o = 0;
    while (*s) {
        size_t n = utf8_len(s);
        if (n == 0) {
            n = 1;
            if (o + 1 > HX_METRICS_MAX_VALUE_LEN)
                break;
            out[o++] = '?';
        } else {
            if (o + n > HX_METRICS_MAX_VALUE_LEN)
                break;
            memcpy(out + o, s, n);
            o += n;
        }
        s += n;
    }
    out[o] = '\0';
}

/* Appends v with the exposition escapes; `help` text escapes only \ and
 * newline, label values also the double quote. */
static int append_escaped(hx_buf *b, const char *v, bool quote)
{
    const char *run = v;
    for (const char *p = v;; p++) {
        const char *esc = NULL;
        if (*p == '\\')
            esc = "\\\\";
        else if (*p == '\n')
            esc = "\\n";
        else if (*p == '"' && quote)
            esc = "\\\"";
        else if (*p != '\0')
            continue;
        if (hx_buf_append(b, run, (size_t)(p - run)) != 0)
            return -1;
        if (esc == NULL)
            return 0;
        if (hx_buf_append_str(b, esc) != 0)
            return -1;
        run = p + 1;
    }
}

/* Shortest text that reads back as the same double; integers plainly. */
void hx__metrics_fmt_double(double v, char *out, size_t size)
{
    if (isnan(v)) {
        snprintf(out, size, "NaN");
    } else if (isinf(v)) {
        snprintf(out, size, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, size, "%.0f", v);
    } else {
        for (int p = 1; p <= 17; p++) {
            snprintf(out, size, "%.*g", p, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
}

/* ---- writer ------------------------------------------------------------- */

static int writer_note(hx_metrics_writer *w, const char *name, const char *suffix)
{
    if (w->nnames == w->capnames) {
        size_t cap = w->capnames ? w->capnames * 2 : 64;
        char **p = hx_realloc(w->names, cap * sizeof *p);
        if (p == NULL)
            return -1;
        w->names = p;
        w->capnames = cap;
    }
    size_t n = strlen(name), m = strlen(suffix);
    char *s = hx_malloc(n + m + 1);
    if (s == NULL)
        return -1;
    memcpy(s, name, n);
    memcpy(s + n, suffix, m + 1);
    w->names[w->nnames++] = s;
    return 0;
}

static bool writer_seen(const hx_metrics_writer *w, const char *name)
{
    for (size_t i = 0; i < w->nnames; i++)
        if (strcmp(w->names[i], name) == 0)
            return true;
    return false;
}

void hx__metrics_writer_fini(hx_metrics_writer *w)
{
    for (size_t i = 0; i < w->nnames; i++)
        hx_free(w->names[i]);
    hx_free(w->names);
}

int hx__metrics_writer_fail(hx_metrics_writer *w)
{
    w->failed = true;
    return -1;
}

static const char *const type_names[] = {"counter", "gauge", "histogram"};

int hx_metrics_write_family(hx_metrics_writer *w, const char *name, const char *help,
                            hx_metric_type type)
{
    w->fam = NULL;
    const char *why = NULL;
    if (!hx__metrics_name_ok(name, true))
        why = "invalid metric name";
    else if (type > HX_METRIC_HISTOGRAM)
        why = "unknown type";
    else if (type == HX_METRIC_COUNTER && !hx__metrics_ends_with(name, "_total"))
        why = "a counter name must end in _total";
    else if (writer_seen(w, name))
        why = "family written twice";
    if (why) {
        HX_LOG_WARN("metrics: family dropped", HX_F_STR("name", name ? name : ""),
                    HX_F_STR("error", why));
        return -1;
    }
    if (writer_note(w, name, "") != 0)
        return hx__metrics_writer_fail(w);
    /* A histogram's series names are taken too. */
    if (type == HX_METRIC_HISTOGRAM &&
        (writer_note(w, name, "_bucket") != 0 || writer_note(w, name, "_sum") != 0 ||
         writer_note(w, name, "_count") != 0))
        return hx__metrics_writer_fail(w);
    if (hx_buf_printf(w->out, "# HELP %s ", name) != 0 ||
        append_escaped(w->out, help ? help : "", false) != 0 ||
        hx_buf_printf(w->out, "\n# TYPE %s %s\n", name, type_names[type]) != 0)
        return hx__metrics_writer_fail(w);
    w->fam = w->names[w->nnames - (type == HX_METRIC_HISTOGRAM ? 4 : 1)];
    w->type = type;
    return 0;
}

/* Writes `name{n1="v1",...} value`; names[i]/values[i] pairs, values cleaned
 * and escaped here. */
int hx__metrics_emit(hx_metrics_writer *w, const char *name, const char *suffix,
                const char *const *names, const char *const *values, size_t n,
                const char *value)
{
    hx_buf *b = w->out;
    if (hx_buf_printf(b, "%s%s", name, suffix) != 0)
        return hx__metrics_writer_fail(w);
    for (size_t i = 0; i < n; i++) {
        char clean[HX_METRICS_MAX_VALUE_LEN + 1];
        hx__metrics_value_clean(values[i], clean);
        if (hx_buf_printf(b, "%s%s=\"", i ? "," : "{", names[i]) != 0 ||
            append_escaped(b, clean, true) != 0 || hx_buf_append_str(b, "\"") != 0)
            return hx__metrics_writer_fail(w);
    }
    if (hx_buf_printf(b, "%s %s\n", n ? "}" : "", value) != 0)
        return hx__metrics_writer_fail(w);
    return 0;
}

static bool sample_name_ok(const hx_metrics_writer *w, const char *name)
{
    size_t n = strlen(w->fam);
    if (strncmp(name, w->fam, n) != 0)
        return false;
    if (name[n] == '\0')
        return w->type != HX_METRIC_HISTOGRAM;
    return w->type == HX_METRIC_HISTOGRAM &&
           (strcmp(name + n, "_bucket") == 0 || strcmp(name + n, "_sum") == 0 ||
            strcmp(name + n, "_count") == 0);
}

int hx_metrics_write_sample(hx_metrics_writer *w, const char *name, const char *const *labels,
                            double value)
{
    if (w->fam == NULL || name == NULL || !sample_name_ok(w, name))
        return -1;
    const char *names[HX_METRICS_MAX_LABELS + 1];
    const char *values[HX_METRICS_MAX_LABELS + 1];
    size_t n = 0;
    bool has_le = false;
    for (; labels && labels[2 * n]; n++) {
        const char *ln = labels[2 * n];
        if (n == HX_METRICS_MAX_LABELS + 1 || !hx__metrics_name_ok(ln, false))
            return -1;
        for (size_t j = 0; j < n; j++)
            if (strcmp(names[j], ln) == 0)
                return -1;
        has_le = has_le || strcmp(ln, "le") == 0;
        names[n] = ln;
        values[n] = labels[2 * n + 1] ? labels[2 * n + 1] : "";
    }
    if (w->type == HX_METRIC_HISTOGRAM && has_le != hx__metrics_ends_with(name, "_bucket"))
        return -1;
    char text[32];
    hx__metrics_fmt_double(value, text, sizeof text);
    return hx__metrics_emit(w, name, "", names, values, n, text);
}

