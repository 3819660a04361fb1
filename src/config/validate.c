/* Validation of a built config: a generic pass over the schema (ranges,
 * allowed values) and hand-written cross-field checks. Every problem is
 * reported; nothing stops at the first. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "config/model_names.h"
#include "config/schema.h"
#include "config/validate_int.h"
#include "util/alloc.h"
#include "util/units.h"

#define PATH_MAX_LEN 256
#define MAX_SHOWN 64
/* The steering program reads one byte of the connection ID (quic_steer.h). */
#define HX_QUIC_WORKERS_MAX 256

/* ---- the error list ---- */

/* The attribute checks the callers' formats (clang's -Wformat-nonliteral). */
static int errors_vadd(hx_config_errors *errs, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static int errors_vadd(hx_config_errors *errs, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return -1;
    char *s = hx_malloc((size_t)n + 1);
    if (s == NULL)
        return -1;
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    char **items = hx_realloc(errs->items, (errs->n + 1) * sizeof *items);
    if (items == NULL) {
        hx_free(s);
        return -1;
    }
    errs->items = items;
    errs->items[errs->n++] = s;
    return 0;
}

int hx_config_errors_add(hx_config_errors *errs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = errors_vadd(errs, fmt, ap);
    va_end(ap);
    return rc;
}

void hx_config_errors_free(hx_config_errors *errs)
{
    if (errs == NULL)
        return;
    for (size_t i = 0; i < errs->n; i++)
        hx_free(errs->items[i]);
    hx_free(errs->items);
    errs->items = NULL;
    errs->n = 0;
}

int hx__errors_vat(hx_config_errors *errs, const char *src, size_t line, size_t col, const char *path,
                   const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *sep = path && *path ? ": " : "";
    if (path == NULL)
        path = "";
    if (src && line)
        return hx_config_errors_add(errs, "%s:%zu:%zu: %s%s%s", src, line, col, path, sep, msg);
    if (src)
        return hx_config_errors_add(errs, "%s: %s%s%s", src, path, sep, msg);
    return hx_config_errors_add(errs, "%s%s%s", path, sep, msg);
}

/* Line and column of "NAME:LINE:COL: ..." (0 when there are none). */
static void error_pos(const char *e, size_t name_len, unsigned long *line, unsigned long *col)
{
    *line = *col = 0;
    if (strlen(e) <= name_len || e[name_len] != ':')
        return;
    char *end;
    *line = strtoul(e + name_len + 1, &end, 10);
    if (*end == ':')
        *col = strtoul(end + 1, NULL, 10);
}

/* Stable insertion sort: there are at most HX_CONFIG_MAX_ERRORS. */
void hx__errors_sort(hx_config_errors *errs, size_t from, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = from + 1; i < errs->n; i++) {
        char *e = errs->items[i];
        unsigned long l, c;
        error_pos(e, nl, &l, &c);
        size_t j = i;
        for (; j > from; j--) {
            unsigned long pl, pc;
            error_pos(errs->items[j - 1], nl, &pl, &pc);
            bool before = l && (pl == 0 || l < pl || (l == pl && c < pc));
            if (!before)
                break;
            errs->items[j] = errs->items[j - 1];
        }
        errs->items[j] = e;
    }
}

struct hx_vctx {
    const hx_config *cfg;
    hx_config_errors *errs;
    size_t added;
};
typedef hx_vctx vctx;

/* "FILE:LINE:COL: path: msg" when the loader recorded where path came from,
 * else "FILE: path: msg" or "path: msg". */
static void verr(vctx *v, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void verr(vctx *v, const char *path, const char *fmt, ...)
{
    if (v->errs->n >= HX_CONFIG_MAX_ERRORS)
        return;
    const struct hx_config_marks *m = v->cfg->marks;
    const hx_mark *mk = hx__marks_find(m, path);
    const char *src = m ? m->source : v->cfg->source_path;
    va_list ap;
    va_start(ap, fmt);
    int rc = hx__errors_vat(v->errs, src, mk ? (size_t)mk->line : 0, mk ? (size_t)mk->col : 0, path, fmt, ap);
    va_end(ap);
    if (rc == 0)
        v->added++;
}

void hx__verr(hx_vctx *v, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    verr(v, path, "%s", msg);
}

const hx_config *hx__vctx_cfg(const hx_vctx *v)
{
    return v->cfg;
}

static const char *pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *pathf(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, PATH_MAX_LEN, fmt, ap);
    va_end(ap);
    return buf;
}

static bool in_list(const char *s, const char *const *values)
{
    for (size_t i = 0; values[i]; i++)
        if (strcmp(s, values[i]) == 0)
            return true;
    return false;
}

/* ---- generic pass ---- */

static const char *fmt_value(hx_ftype t, int64_t x, char *out)
{
    if (t == HX_FT_DURATION)
        return hx_units_format_duration(x, out, HX_UNITS_BUFSZ);
    if (t == HX_FT_SIZE)
        return hx_units_format_size(x, out, HX_UNITS_BUFSZ);
    snprintf(out, HX_UNITS_BUFSZ, "%lld", (long long)x);
    return out;
}

static void check_int(vctx *v, const hx_field *f, const char *path, int64_t x)
{
    if (!(f->flags & HX_FF_RANGE) || (x >= f->min && x <= f->max))
        return;
    char a[HX_UNITS_BUFSZ], lo[HX_UNITS_BUFSZ], hi[HX_UNITS_BUFSZ];
    fmt_value(f->type, x, a);
    fmt_value(f->type, f->min, lo);
    fmt_value(f->type, f->max, hi);
    if (x < 0 && f->neg_msg && f->min >= 0)
        verr(v, path, "%s: %s", f->neg_msg, a);
    else if (f->msg)
        verr(v, path, "%s: %s", f->msg, a);
    else if (f->max == INT64_MAX && f->min == 1)
        verr(v, path, "must be greater than 0 (got %s)", a);
    else if (f->max == INT64_MAX)
        verr(v, path, "must be at least %s (got %s)", lo, a);
    else
        verr(v, path, "must be between %s and %s (got %s)", lo, hi, a);
}

static void check_double(vctx *v, const hx_field *f, const char *path, double x)
{
    char a[HX_UNITS_BUFSZ], lo[HX_UNITS_BUFSZ], hi[HX_UNITS_BUFSZ];
    double min = f->type == HX_FT_PERCENT ? 0 : f->dmin;
    double max = f->type == HX_FT_PERCENT ? 100 : f->dmax;
    if ((f->type != HX_FT_PERCENT && !(f->flags & HX_FF_RANGE)) || (x >= min && x <= max))
        return;
    verr(v, path, "must be between %s and %s (got %s)", hx_units_format_double(min, lo, sizeof lo),
         hx_units_format_double(max, hi, sizeof hi), hx_units_format_double(x, a, sizeof a));
}

/* s, or a stand-in when the value at path came from ${...}: what a
 * variable holds may be a secret (found by fuzzing). */
static const char *shown(const vctx *v, const char *path, const char *s)
{
    const hx_mark *mk = hx__marks_find(v->cfg->marks, path);
    return mk && mk->expanded ? "(the value of its ${...})" : s;
}

static void check_enum(vctx *v, const hx_field *f, const char *path, const char *s)
{
    if (!f->values || in_list(s, f->values) || (*s == '\0' && (f->flags & HX_FF_EMPTY_OK)))
        return;
    char allowed[256];
    size_t used = 0;
    allowed[0] = '\0';
    for (size_t i = 0; f->values[i] && used < sizeof allowed; i++)
        used += (size_t)snprintf(allowed + used, sizeof allowed - used, "%s%s", i ? ", " : "",
                                 f->values[i]);
    const hx_mark *mk = hx__marks_find(v->cfg->marks, path);
    if (mk && mk->expanded) /* found by fuzzing: a variable's value was quoted */
        verr(v, path, "%s: the value of its ${...} (allowed: %s)", f->msg ? f->msg : "invalid value",
             allowed);
    else
        verr(v, path, "%s: %.*s%s (allowed: %s)", f->msg ? f->msg : "invalid value", MAX_SHOWN, s,
             strlen(s) > MAX_SHOWN ? "..." : "", allowed);
}

static void check_struct(vctx *v, const hx_schema *s, const char *base, const char *prefix);

static void check_elements(vctx *v, const hx_field *f, const char *base, const char *path)
{
    const char *arr = *(char *const *)(base + f->off);
    size_t n = *(const size_t *)(base + f->count_off);
    char sub[PATH_MAX_LEN];
    for (size_t i = 0; i < n; i++) {
        if (f->type == HX_FT_MAP)
            pathf(sub, "%s.%s", path, (*(char *const *const *)(base + f->names_off))[i]);
        else
            pathf(sub, "%s[%zu]", path, i);
        check_struct(v, f->sub, arr + i * f->sub->size, sub);
    }
}

static void check_field(vctx *v, const hx_field *f, const char *base, const char *path)
{
    const void *p = base + f->off;
    char sub[PATH_MAX_LEN];
    switch (f->type) {
    case HX_FT_INT:
    case HX_FT_DURATION:
    case HX_FT_SIZE:
        check_int(v, f, path, *(const int64_t *)p);
        break;
    case HX_FT_DOUBLE:
    case HX_FT_PERCENT:
        check_double(v, f, path, *(const double *)p);
        break;
    case HX_FT_STRING:
        check_enum(v, f, path, *(char *const *)p);
        break;
    case HX_FT_STRLIST:
        for (size_t i = 0; f->values && i < ((const hx_strlist *)p)->n; i++)
            check_enum(v, f, pathf(sub, "%s[%zu]", path, i), ((const hx_strlist *)p)->items[i]);
        break;
    case HX_FT_STRUCT:
        check_struct(v, f->sub, (const char *)p, path);
        break;
    case HX_FT_LIST:
    case HX_FT_MAP:
        check_elements(v, f, base, path);
        break;
    default:
        break;
    }
}

static void check_struct(vctx *v, const hx_schema *s, const char *base, const char *prefix)
{
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < s->n; i++) {
        const hx_field *f = &s->fields[i];
        if (*prefix)
            pathf(path, "%s.%s", prefix, f->name);
        else
            pathf(path, "%s", f->name);
        check_field(v, f, base, path);
    }
}

/* ---- cross-field checks ---- */

static void check_file(vctx *v, const char *path, const char *file, const char *what)
{
    struct stat st;
    if (*file && stat(file, &st) != 0)
        verr(v, path, "HTTP/3 TLS %s file not accessible: %s", what, strerror(errno));
}

/* Only when enabled, in the original's order, plus "not supported yet". */
static void check_http3(vctx *v)
{
    const hx_cfg_http3 *h = &v->cfg->server.http3;
    char d[HX_UNITS_BUFSZ];
    if (!h->enabled)
        return;
    if (h->port < 0 || h->port > 65535)
        verr(v, "server.http3.port", "invalid HTTP/3 port: %lld", (long long)h->port);
    if (!*h->tls_cert_file)
        verr(v, "server.http3.tls_cert_file", "HTTP/3 enabled but TLS certificate file not specified");
    if (!*h->tls_key_file)
        verr(v, "server.http3.tls_key_file", "HTTP/3 enabled but TLS key file not specified");
    if (h->idle_timeout < 0)
        verr(v, "server.http3.idle_timeout", "negative HTTP/3 idle timeout: %s",
             hx_units_format_duration(h->idle_timeout, d, sizeof d));
    if (h->max_bi_streams_concurrent < 0)
        verr(v, "server.http3.max_bi_streams_concurrent",
             "negative HTTP/3 max bidirectional streams: %lld", (long long)h->max_bi_streams_concurrent);
    if (h->max_uni_streams_concurrent < 0)
        verr(v, "server.http3.max_uni_streams_concurrent",
             "negative HTTP/3 max unidirectional streams: %lld",
             (long long)h->max_uni_streams_concurrent);
    if (h->max_stream_receive_window <= 0)
        verr(v, "server.http3.max_stream_receive_window",
             "HTTP/3 max stream receive window must be positive");
    if (h->max_connection_receive_window <= 0)
        verr(v, "server.http3.max_connection_receive_window",
             "HTTP/3 max connection receive window must be positive");
    /* HTTP/3 itself needs 3 unidirectional streams from the client
     * (control, QPACK encoder and decoder: RFC 9114 6.2). */
    if (h->max_uni_streams_concurrent >= 0 && h->max_uni_streams_concurrent < 3)
        verr(v, "server.http3.max_uni_streams_concurrent",
             "HTTP/3 needs at least 3 unidirectional streams per client (control and QPACK), not %lld",
             (long long)h->max_uni_streams_concurrent);
    if (h->max_bi_streams_concurrent == 0)
        verr(v, "server.http3.max_bi_streams_concurrent", "0 bidirectional streams would serve no request");
    if (h->port == 0)
        verr(v, "server.http3.port", "HTTP/3 needs a fixed port (Alt-Svc announces it)");
    if (strcmp(h->address_validation, "auto") != 0 && strcmp(h->address_validation, "always") != 0 &&
        strcmp(h->address_validation, "never") != 0)
        verr(v, "server.http3.address_validation", "must be auto, always or never, not '%s'",
             h->address_validation);
    if (v->cfg->server.workers > HX_QUIC_WORKERS_MAX)
        verr(v, "server.workers", "HTTP/3 serves at most %d workers (one byte of the connection ID)",
             HX_QUIC_WORKERS_MAX);
    check_file(v, "server.http3.tls_cert_file", h->tls_cert_file, "certificate");
    check_file(v, "server.http3.tls_key_file", h->tls_key_file, "key");
    if (h->enable_0rtt && h->max_0rtt_size <= 0)
        verr(v, "server.http3.max_0rtt_size",
             "HTTP/3 max 0-RTT size must be positive when 0-RTT is enabled");
    else if (h->enable_0rtt && h->max_0rtt_size > 1024 * 1024)
        verr(v, "server.http3.max_0rtt_size", "HTTP/3 max 0-RTT size exceeds maximum allowed (1MB)");
}

static void check_chain(vctx *v, const hx_strlist *l, const char *prefix)
{
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < l->n; i++) {
        pathf(path, "%s[%zu]", prefix, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(l->items[i], l->items[j]) == 0)
                verr(v, path, "middleware %s is listed twice", l->items[i]);
    }
}

static bool list_has(const hx_strlist *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i], name) == 0)
            return true;
    return false;
}

#define HX_HANDLER_NAME_(name, flags) #name,
const char *const hx_config_handler_names[] = {HX_HANDLER_LIST(HX_HANDLER_NAME_) NULL};

unsigned hx_config_handler_flags(const char *h)
{
#define HX_HANDLER_ROW_(name, flags) {#name, flags},
    static const struct {
        const char *name;
        unsigned flags;
    } rows[] = {HX_HANDLER_LIST(HX_HANDLER_ROW_)};
    for (size_t i = 0; h && i < sizeof rows / sizeof rows[0]; i++)
        if (strcmp(h, rows[i].name) == 0)
            return rows[i].flags;
    return 0;
}

bool hx_config_serves_unauthenticated(const hx_config *cfg)
{
    if (!cfg->auth.enabled)
        return true;
    /* A route's own chain replaces the global one: auth on, but a
     * spending route whose chain lacks it, is still open. */
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const hx_cfg_route *r = &cfg->routes[i];
        if (!(hx_config_handler_flags(r->handler) & HX_HANDLER_SPENDS))
            continue;
        if (!list_has(r->middleware.n ? &r->middleware : &cfg->server.middleware, "auth"))
            return true;
    }
    return false;
}

/* Secure by default: without client keys on every spending route, only
 * loopback may be served (the providers' keys would be spent by anyone
 * who can connect) unless the operator opts in. Checked at start and at
 * every reload. */
static void check_exposure(vctx *v)
{
    const hx_cfg_server *s = &v->cfg->server;
    if (s->allow_unauthenticated || !*s->host || hx_config_host_is_loopback(s->host) ||
        !hx_config_serves_unauthenticated(v->cfg))
        return;
    const char *from = hx_config_override_host_source();
    /* A host from --host/HAPAX_HOST is quoted; one from ${...} is not. */
    const char *host = from ? s->host : shown(v, "server.host", s->host);
    char what[80];
    snprintf(what, sizeof what, "%.*s%s%s%s", MAX_SHOWN, host, from ? " (from " : "", from ? from : "",
             from ? ")" : "");
    verr(v, "server.host",
         "%s is not a loopback address and client authentication is off%s: anyone who can connect "
         "would spend the provider keys. Either configure client keys (auth.enabled: true with "
         "auth.keys) or set server.allow_unauthenticated: true to serve without keys on purpose",
         what, v->cfg->auth.enabled ? " for a completion route (its middleware lacks auth)" : "");
}

static void check_server(vctx *v)
{
    const hx_cfg_server *s = &v->cfg->server;
    if (!*s->host)
        verr(v, "server.host", "empty host");
    const hx_cfg_sys_health *h = &s->health_check;
    static const char *const checks[] = {"memory", "cpu", "disk", "latency", NULL};
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < h->checks.n; i++)
        if (!in_list(h->checks.items[i].key, checks))
            verr(v, pathf(path, "server.health_check.checks.%s", h->checks.items[i].key),
                 "unknown check (memory, cpu, disk or latency)");
    if (h->enabled && h->memory_threshold <= 0 && h->cpu_threshold <= 0 && h->disk_threshold <= 0 &&
        h->latency_threshold <= 0)
        verr(v, "server.health_check", "enabled but no threshold set (memory_threshold, cpu_threshold, "
                                       "disk_threshold or latency_threshold)");
    check_chain(v, &s->middleware, "server.middleware");
    check_http3(v);
    hx__check_tls(v);
    check_exposure(v);
}

static void check_aliases(vctx *v, const hx_strlist *aliases, const char *at)
{
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < aliases->n; i++)
        if (aliases->items[i][0] == '\0')
            verr(v, pathf(path, "%s.aliases[%zu]", at, i), "empty alias");
}

static void check_backups(vctx *v)
{
    const hx_cfg_llm *l = &v->cfg->llm;
    char path[PATH_MAX_LEN], at[PATH_MAX_LEN];
    for (size_t i = 0; i < l->n_backup_providers; i++) {
        const hx_cfg_backup *b = &l->backup_providers[i];
        if (!*b->provider)
            verr(v, pathf(path, "llm.backup_providers[%zu].provider", i), "empty provider");
        if (!*b->model)
            verr(v, pathf(path, "llm.backup_providers[%zu].model", i), "empty model");
        for (size_t j = 0; j < i; j++)
            if (*b->name && strcmp(b->name, l->backup_providers[j].name) == 0)
                verr(v, pathf(path, "llm.backup_providers[%zu].name", i),
                     "duplicate backup provider name \"%s\"", b->name);
        /* Names are unique across providers. Only a backup that kept its
         * default name (its type) meeting the primary's default name is
         * renamed ("openai-2", provider.c); chosen names are never. */
        const char *primary = *l->name ? l->name : l->provider;
        bool chosen = *l->name || strcmp(b->name, b->provider) != 0;
        if (chosen && strcmp(b->name, primary) == 0)
            verr(v, pathf(path, "llm.backup_providers[%zu].name", i),
                 "duplicate provider name \"%s\" (also the primary's, llm.name)", b->name);
        check_aliases(v, &b->aliases, pathf(at, "llm.backup_providers[%zu]", i));
        if (strcmp(b->responses_api, "native") == 0 && strcmp(b->provider, "openai") != 0)
            verr(v, pathf(path, "llm.backup_providers[%zu].responses_api", i),
                 "native needs provider openai (only OpenAI-compatible servers may have /responses)");
    }
}

/* One provider's routing names, for the model map's checks. */
typedef struct {
    const char *name, *model;
    const hx_strlist *aliases;
    bool ollama;
} route_names;

static route_names provider_names_at(const hx_cfg_llm *l, size_t i)
{
    if (i == 0)
        return (route_names){*l->name ? l->name : l->provider, l->model, &l->aliases,
                             strcmp(l->provider, "ollama") == 0};
    const hx_cfg_backup *b = &l->backup_providers[i - 1];
    return (route_names){b->name, b->model, &b->aliases, strcmp(b->provider, "ollama") == 0};
}

/* The provider (its name) that serves `model` by an exact name, or with
 * `wildcards` also by a wildcard alias; NULL when none does. The same rules
 * as the provider chain (provider.h). */
static const char *served_by(const hx_cfg_llm *l, const char *model, bool wildcards)
{
    for (size_t i = 0; i <= l->n_backup_providers; i++) {
        route_names r = provider_names_at(l, i);
        if (hx_model_same(r.model, model, r.ollama) || strcmp(r.name, model) == 0)
            return r.name;
        for (size_t j = 0; j < r.aliases->n; j++)
            if (hx_model_same(r.aliases->items[j], model, r.ollama) ||
                (wildcards && hx_model_wildcard_match(r.aliases->items[j], model)))
                return r.name;
    }
    return NULL;
}

/* llm.model_map: each name maps straight to a model some provider serves;
 * a name a provider serves already would never be looked up. */
static void check_model_map(vctx *v)
{
    const hx_cfg_llm *l = &v->cfg->llm;
    const hx_kvlist *m = &l->model_map;
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < m->n; i++) {
        const char *from = m->items[i].key, *to = m->items[i].value;
        pathf(path, "llm.model_map.%s", from);
        const char *by = served_by(l, from, false);
        if (*from == '\0' || strcmp(from, "default") == 0)
            verr(v, path, "\"%.*s\" cannot be mapped (it names the whole chain)", MAX_SHOWN, from);
        else if (by)
            verr(v, path, "\"%.*s\" is served by provider %s already: remove the entry or that name", MAX_SHOWN,
                 from, by);
        if (*to == '\0') {
            verr(v, path, "empty target model");
            continue;
        }
        const char *ts = shown(v, path, to);
        bool again = false;
        for (size_t j = 0; j < m->n && !again; j++)
            again = strcmp(m->items[j].key, to) == 0;
        if (again)
            verr(v, path, "maps to \"%.*s\", which is mapped too: map each name straight to a served model",
                 MAX_SHOWN, ts);
        else if (served_by(l, to, true) == NULL)
            verr(v, path, "maps to \"%.*s\", which no provider serves (its model, name or aliases)", MAX_SHOWN,
                 ts);
    }
    if (strcmp(l->responses_api, "native") == 0 && strcmp(l->provider, "openai") != 0)
        verr(v, "llm.responses_api", "native needs provider openai (only OpenAI-compatible servers may have "
                                     "/responses)");
}

static void check_llm(vctx *v)
{
    const hx_cfg_llm *l = &v->cfg->llm;
    char a[HX_UNITS_BUFSZ];
    if (!*l->provider)
        verr(v, "llm.provider", "empty LLM provider");
    if (!*l->model)
        verr(v, "llm.model", "empty LLM model");
    hx__check_cache(v);
    if (l->retry.max_delay < l->retry.initial_delay)
        verr(v, "llm.retry.max_delay", "must not be less than initial_delay (%s)",
             hx_units_format_duration(l->retry.initial_delay, a, sizeof a));
    const hx_cfg_provider_health *h = &l->health_check;
    if (h->enabled && h->interval <= 0)
        verr(v, "llm.health_check.interval", "must be greater than 0 when health checks are enabled");
    if (h->enabled && h->timeout <= 0)
        verr(v, "llm.health_check.timeout", "must be greater than 0 when health checks are enabled");
    if (h->enabled && h->failure_threshold < 1)
        verr(v, "llm.health_check.failure_threshold",
             "must be at least 1 when health checks are enabled");
    check_aliases(v, &l->aliases, "llm");
    check_backups(v);
    check_model_map(v);
}

static bool is_hex64(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f') ||
              (s[n] >= 'A' && s[n] <= 'F')))
            return false;
    return n == 64;
}

static void check_auth(vctx *v)
{
    const hx_cfg_auth *a = &v->cfg->auth;
    char path[PATH_MAX_LEN];
    if (a->enabled && a->n_keys == 0)
        verr(v, "auth.keys", "at least one key is required when auth is enabled");
    for (size_t i = 0; i < a->n_keys; i++) {
        const hx_cfg_auth_key *k = &a->keys[i];
        if (!*k->name)
            verr(v, pathf(path, "auth.keys[%zu].name", i), "empty key name");
        int forms = (*k->key != 0) + (*k->key_sha256 != 0) + (*k->client_cert != 0);
        if (forms > 1)
            verr(v, pathf(path, "auth.keys[%zu]", i), "set only one of key, key_sha256 and client_cert");
        if (forms == 0)
            verr(v, pathf(path, "auth.keys[%zu]", i), "one of key, key_sha256 or client_cert is required");
        if (*k->client_cert && !(strncmp(k->client_cert, "sha256:", 7) == 0 && is_hex64(k->client_cert + 7)) &&
            !(strncmp(k->client_cert, "subject:", 8) == 0 && k->client_cert[8] &&
              strlen(k->client_cert + 8) <= HX_PEER_SUBJECT_MAX))
            verr(v, pathf(path, "auth.keys[%zu].client_cert", i),
                 "must be \"sha256:\" and 64 hexadecimal characters (the certificate's SHA-256 fingerprint) "
                 "or \"subject:\" and its subject DN (at most %d characters)", HX_PEER_SUBJECT_MAX);
        if (*k->key_sha256 && !is_hex64(k->key_sha256))
            verr(v, pathf(path, "auth.keys[%zu].key_sha256", i),
                 "must be 64 hexadecimal characters (a SHA-256 digest)");
        for (size_t j = 0; j < i; j++)
            if (*k->name && strcmp(k->name, a->keys[j].name) == 0)
                verr(v, pathf(path, "auth.keys[%zu].name", i), "duplicate key name \"%s\"",
                     k->name);
    }
}

static void check_features(vctx *v)
{
    const hx_config *c = v->cfg;
    if (c->n_providers)
        verr(v, "providers", "not supported; use llm and llm.backup_providers");
    if (c->provider_preference.n)
        verr(v, "provider_preference", "not supported; use llm and llm.backup_providers");
    if (c->queue.enabled && c->queue.save_interval > 0 && c->queue.save_interval < 100)
        verr(v, "queue.save_interval", "must be 0 (off) or at least 100ms");
    for (size_t i = 0; c->cors.allow_credentials && i < c->cors.allow_origins.n; i++)
        if (strcmp(c->cors.allow_origins.items[i], "*") == 0)
            verr(v, "cors.allow_credentials",
                 "cannot be true when allow_origins contains \"*\" (browsers reject it)");
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < c->cors.expose_headers.n; i++) {
        const char *h = c->cors.expose_headers.items[i];
        size_t n = strlen(h);
        if (n > 1 && h[n - 1] == '*')
            verr(v, pathf(path, "cors.expose_headers[%zu]", i),
                 "browsers take no patterns here: list the header names (patterns work in allow_headers)");
    }
    if (c->rate_limit.enabled && c->rate_limit.limits.requests_per_minute <= 0 &&
        c->rate_limit.limits.tokens_per_minute <= 0)
        verr(v, "rate_limit", "set requests_per_minute or tokens_per_minute when enabled");
    if (c->metrics.path[0] != '/')
        verr(v, "metrics.path", "must start with '/'");
    if (strcmp(c->state.backend, "redis") == 0)
        hx__check_redis(v, "state.redis", &c->state.redis);
    check_auth(v);
}

/* routes[].health_check: what route_health.h can check. */
static void check_route_health(vctx *v, const hx_cfg_route *r, size_t i)
{
    char path[PATH_MAX_LEN];
    if (hx_config_handler_flags(r->handler) & HX_HANDLER_OPEN)
        verr(v, pathf(path, "routes[%zu].health_check.enabled", i),
             "handler %s is served by hapax itself: there is nothing upstream to check", r->handler);
    if (strchr(r->path, '{'))
        verr(v, pathf(path, "routes[%zu].health_check.enabled", i),
             "a path with a {parameter} has no single <path>/health");
    for (size_t k = 0; k < r->health_check.checks.n; k++) {
        const hx_kv *c = &r->health_check.checks.items[k];
        const char *t = c->value ? c->value : "";
        int64_t ms;
        if (strcmp(t, "http") == 0 || strcmp(t, "tcp") == 0 || strcmp(t, "threshold") == 0 ||
            (hx_units_parse_duration(t, &ms) == 0 && ms > 0))
            continue;
        verr(v, pathf(path, "routes[%zu].health_check.checks.%s", i, c->key),
             "unknown check type '%.*s' (http, tcp, threshold or a duration such as 500ms)", MAX_SHOWN,
             shown(v, path, t));
    }
}

static void check_routes(vctx *v)
{
    const hx_config *c = v->cfg;
    char path[PATH_MAX_LEN];
    if (c->n_routes == 0)
        verr(v, "routes", "at least one route is required");
    for (size_t i = 0; i < c->n_routes; i++) {
        const hx_cfg_route *r = &c->routes[i];
        if (!*r->path)
            verr(v, pathf(path, "routes[%zu].path", i), "empty path in route %zu", i);
        const char *rp = shown(v, pathf(path, "routes[%zu].path", i), r->path);
        if (*r->path && r->path[0] != '/')
            verr(v, path, "must start with '/': %.*s", MAX_SHOWN, rp);
        for (size_t j = 0; *r->path && j < i; j++)
            if (strcmp(r->path, c->routes[j].path) == 0)
                verr(v, pathf(path, "routes[%zu].path", i), "duplicate path %.*s (also routes[%zu])",
                     MAX_SHOWN, rp, j);
        if (!*r->handler)
            verr(v, pathf(path, "routes[%zu].handler", i), "empty handler in route %zu", i);
        for (const char *q = r->version; *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
                  *q == '.' || *q == '-' || *q == '_')) {
                verr(v, pathf(path, "routes[%zu].version", i),
                     "must be letters, digits, '.', '-' or '_' (it becomes a path segment)");
                break;
            }
        if (r->health_check.enabled)
            check_route_health(v, r, i);
        check_chain(v, &r->middleware, pathf(path, "routes[%zu].middleware", i));
    }
}

static bool chain_has(const hx_config *c, const char *name)
{
    for (size_t i = 0; i < c->server.middleware.n; i++)
        if (strcmp(c->server.middleware.items[i], name) == 0)
            return true;
    for (size_t r = 0; r < c->n_routes; r++)
        for (size_t i = 0; i < c->routes[r].middleware.n; i++)
            if (strcmp(c->routes[r].middleware.items[i], name) == 0)
                return true;
    return false;
}

/* A section's `enabled` turns its step on; the chains give the order. An
 * enabled section that no chain lists would be silently ignored. */
static void check_enabled_in_chain(vctx *v)
{
    const hx_config *c = v->cfg;
    const struct {
        const char *name;
        bool on;
    } sec[] = {{"cors", c->cors.enabled},
               {"queue", c->queue.enabled},
               {"rate_limit", c->rate_limit.enabled},
               {"auth", c->auth.enabled}};
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < sizeof sec / sizeof sec[0]; i++)
        if (sec[i].on && !chain_has(c, sec[i].name))
            verr(v, pathf(path, "%s.enabled", sec[i].name),
                 "%s is enabled but neither server.middleware nor any route's middleware lists it",
                 sec[i].name);
}

size_t hx_config_validate(const hx_config *cfg, hx_config_errors *errs)
{
    vctx v = {.cfg = cfg, .errs = errs};
    check_struct(&v, &hx__config_schema, (const char *)cfg, "");
    check_server(&v);
    check_llm(&v);
    check_features(&v);
    check_routes(&v);
    check_enabled_in_chain(&v);
    return v.added;
}
