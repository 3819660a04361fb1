/* The metrics registry: families, interned series, per-thread shards and
 * the render that sums them (the text itself is in metrics_text.c).
 *
 * Memory layout: a shard holds, per family, one block of cells for every
 * possible series (max_series + the overflow one), allocated on the
 * thread's first write to that family, so a write is an index, never a
 * lookup or a lock. */
#include "obs/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/log.h"
#include "obs/metrics_int.h"
#include "util/alloc.h"

/* A value cell. Counters and histogram buckets hold integers; gauges and
 * histogram sums hold a double's bits. */
typedef _Atomic uint64_t slot_t;

/* Guards against absurd definitions (memory is reserved per thread). */
#define MAX_SERIES_LIMIT 4096

struct family {
    char *name;
    char *help;
    hx_metric_type type;
    char *labels[HX_METRICS_MAX_LABELS];
    size_t nlabels;
    double bounds[HX_METRICS_MAX_BUCKETS];
    size_t nbounds;
    size_t max_series;   /* regular series; id max_series is the overflow one */
    size_t per_series;   /* slots per series */
    double (*value_fn)(void *ud);
    void *value_ud;
    /* Series table, under g.lock. values[s * nlabels + i]. */
    char **values;
    size_t nseries;
    bool overflow_used;
    int32_t *hash;       /* open addressing; -1 = empty */
    size_t hcap;
    slot_t *gauge_base;  /* gauges: what hx_metrics_gauge_set stored */
};

/* One per writing thread; never freed before shutdown so that the counts
 * of exited threads stay in the sums. */
struct shard {
    struct shard *next;
    _Atomic(slot_t *) blocks[HX_METRICS_MAX_FAMILIES];
};

struct collector {
    hx_metrics_collect_fn fn;
    void *ud;
};

static struct {
    pthread_mutex_t lock;
    struct family *fams[HX_METRICS_MAX_FAMILIES];
    _Atomic size_t nfams;   /* published with release after a family is built */
    struct shard *shards;
    struct collector *colls;
    size_t ncolls;
    size_t capcolls;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Bumped by shutdown so that thread-local pointers to freed shards are
 * never used again (the main thread writes, shuts down, and writes again
 * in tests). */
static atomic_uint g_gen = 1;
static _Thread_local struct shard *tls_shard;
static _Thread_local unsigned tls_gen;

static inline uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static inline double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* ---- registration ------------------------------------------------------- */

static void family_free(struct family *f)
{
    if (f == NULL)
        return;
    if (f->values) {
        for (size_t i = 0; i < f->nseries * f->nlabels; i++)
            hx_free(f->values[i]);
        hx_free(f->values);
    }
    for (size_t i = 0; i < f->nlabels; i++)
        hx_free(f->labels[i]);
    hx_free(f->hash);
    hx_free(f->gauge_base);
    hx_free(f->name);
    hx_free(f->help);
    hx_free(f);
}

static const char *def_check(const hx_metric_def *d, size_t *nlabels)
{
    if (!hx__metrics_name_ok(d->name, true))
        return "invalid metric name";
    if (d->type == HX_METRIC_COUNTER && !hx__metrics_ends_with(d->name, "_total"))
        return "a counter name must end in _total";
    if (d->type != HX_METRIC_COUNTER && hx__metrics_ends_with(d->name, "_total"))
        return "only counter names end in _total";
    if (d->type > HX_METRIC_HISTOGRAM)
        return "unknown type";
    size_t n = 0;
    while (d->labels && d->labels[n]) {
        if (n == HX_METRICS_MAX_LABELS)
            return "too many labels";
        if (!hx__metrics_name_ok(d->labels[n], false))
            return "invalid label name";
        if (d->type == HX_METRIC_HISTOGRAM && strcmp(d->labels[n], "le") == 0)
            return "a histogram cannot have an le label";
        for (size_t j = 0; j < n; j++)
            if (strcmp(d->labels[j], d->labels[n]) == 0)
                return "duplicate label name";
        n++;
    }
    *nlabels = n;
    if (d->type == HX_METRIC_HISTOGRAM) {
        if (d->nbuckets == 0 || d->nbuckets > HX_METRICS_MAX_BUCKETS || d->buckets == NULL)
            return "a histogram needs 1 to HX_METRICS_MAX_BUCKETS buckets";
        for (size_t i = 0; i < d->nbuckets; i++)
            if (!isfinite(d->buckets[i]) || (i > 0 && d->buckets[i] <= d->buckets[i - 1]))
                return "bucket bounds must be finite and strictly increasing";
    }
    if (d->value_fn && (d->type != HX_METRIC_GAUGE || n > 0))
        return "value_fn is for a gauge without labels";
    if (d->max_series > MAX_SERIES_LIMIT)
        return "max_series too large";
    return NULL;
}

static struct family *family_build(const hx_metric_def *d, size_t nlabels)
{
    struct family *f = hx_calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->type = d->type;
    f->nlabels = nlabels;
    f->value_fn = d->value_fn;
    f->value_ud = d->value_ud;
    f->name = hx_strdup(d->name);
    f->help = hx_strdup(d->help ? d->help : "");
    if (f->name == NULL || f->help == NULL)
        goto fail;
    for (size_t i = 0; i < nlabels; i++) {
        f->labels[i] = hx_strdup(d->labels[i]);
        if (f->labels[i] == NULL)
            goto fail;
    }
    if (d->type == HX_METRIC_HISTOGRAM) {
        memcpy(f->bounds, d->buckets, d->nbuckets * sizeof *d->buckets);
        f->nbounds = d->nbuckets;
    }
    /* Histogram: one count per bound, one for +Inf, then the sum. */
    f->per_series = d->type == HX_METRIC_HISTOGRAM ? f->nbounds + 2 : 1;
    if (nlabels == 0) {
        f->max_series = 1;
        f->nseries = 1; /* the one series always exists */
    } else {
        f->max_series = d->max_series ? d->max_series : HX_METRICS_DEFAULT_MAX_SERIES;
        f->values = hx_calloc((f->max_series + 1) * nlabels, sizeof *f->values);
        for (f->hcap = 16; f->hcap < 2 * f->max_series; f->hcap *= 2)
            ;
        f->hash = hx_malloc(f->hcap * sizeof *f->hash);
        if (f->values == NULL || f->hash == NULL)
            goto fail;
        memset(f->hash, 0xff, f->hcap * sizeof *f->hash);
    }
    if (d->type == HX_METRIC_GAUGE) {
        f->gauge_base = hx_calloc(f->max_series + 1, sizeof *f->gauge_base);
        if (f->gauge_base == NULL)
            goto fail;
    }
    return f;
fail:
    family_free(f);
    return NULL;
}

int hx_metrics_register(const hx_metric_def *def)
{
    size_t nlabels = 0;
    const char *why = def_check(def, &nlabels);
    if (why) {
        HX_LOG_ERROR("metrics: bad family", HX_F_STR("name", def->name ? def->name : ""),
                     HX_F_STR("error", why));
        return -1;
    }
    struct family *f = family_build(def, nlabels);
    if (f == NULL) {
        HX_LOG_ERROR("metrics: out of memory", HX_F_STR("name", def->name));
        return -1;
    }
    pthread_mutex_lock(&g.lock);
    size_t n = atomic_load_explicit(&g.nfams, memory_order_relaxed);
    why = n == HX_METRICS_MAX_FAMILIES ? "too many families" : NULL;
    for (size_t i = 0; why == NULL && i < n; i++)
        if (strcmp(g.fams[i]->name, f->name) == 0)
            why = "duplicate family name";
    if (why == NULL) {
        g.fams[n] = f;
        atomic_store_explicit(&g.nfams, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&g.lock);
    if (why) {
        HX_LOG_ERROR("metrics: bad family", HX_F_STR("name", def->name), HX_F_STR("error", why));
        family_free(f);
        return -1;
    }
    return (int)n;
}

static struct family *family_get(int id)
{
    if (id < 0 || (size_t)id >= atomic_load_explicit(&g.nfams, memory_order_acquire))
        return NULL;
    return g.fams[id];
}

/* ---- series ------------------------------------------------------------- */

static uint32_t tuple_hash(char vals[][HX_METRICS_MAX_VALUE_LEN + 1], size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a, with a separator between values */
    for (size_t i = 0; i < n; i++) {
        for (const char *p = vals[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
        h = (h ^ 0xffu) * 16777619u;
    }
    return h;
}

static bool tuple_eq(const struct family *f, size_t s, char vals[][HX_METRICS_MAX_VALUE_LEN + 1])
{
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(f->values[s * f->nlabels + i], vals[i]) != 0)
            return false;
    return true;
}

/* Under g.lock: the id of the tuple, adding it while under the cap. */
static int series_intern(struct family *f, char vals[][HX_METRICS_MAX_VALUE_LEN + 1])
{
    bool all_other = true;
    for (size_t i = 0; i < f->nlabels; i++)
        all_other = all_other && strcmp(vals[i], "other") == 0;
    if (all_other)
        goto overflow; /* the same tuple as the overflow series */
    size_t h = tuple_hash(vals, f->nlabels) & (f->hcap - 1);
    for (; f->hash[h] >= 0; h = (h + 1) & (f->hcap - 1))
        if (tuple_eq(f, (size_t)f->hash[h], vals))
            return f->hash[h];
    if (f->nseries == f->max_series)
        goto overflow;
    size_t s = f->nseries;
    for (size_t i = 0; i < f->nlabels; i++) {
        f->values[s * f->nlabels + i] = hx_strdup(vals[i]);
        if (f->values[s * f->nlabels + i] == NULL) {
            for (size_t j = 0; j <= i; j++) {
                hx_free(f->values[s * f->nlabels + j]);
                f->values[s * f->nlabels + j] = NULL;
            }
            return -1;
        }
    }
    f->hash[h] = (int32_t)s;
    f->nseries++;
    return (int)s;
overflow:
    f->overflow_used = true;
    return (int)f->max_series;
}

int hx_metrics_seriesv(int family, const char *const *values, size_t n)
{
    struct family *f = family_get(family);
    if (f == NULL)
        return -1; /* metrics not initialised (unit tests, tools): writes are no-ops */
    if (n != f->nlabels) {
        HX_LOG_ERROR("metrics: wrong series", HX_F_INT("family", family),
                     HX_F_STR("name", f ? f->name : ""), HX_F_INT("values", (int64_t)n));
        return -1;
    }
    if (n == 0)
        return 0;
    char vals[HX_METRICS_MAX_LABELS][HX_METRICS_MAX_VALUE_LEN + 1];
    for (size_t i = 0; i < n; i++)
        hx__metrics_value_clean(values[i], vals[i]);
    pthread_mutex_lock(&g.lock);
    int id = series_intern(f, vals);
    pthread_mutex_unlock(&g.lock);
    return id;
}

const char *hx_metrics_status_class(int status)
{
    static const char *const cls[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    int c = status / 100;
    return status >= 100 && c >= 1 && c <= 5 ? cls[c - 1] : "other";
}

/* ---- hot path ----------------------------------------------------------- */

static struct shard *shard_get(void)
{
    unsigned gen = atomic_load_explicit(&g_gen, memory_order_relaxed);
    if (tls_shard && tls_gen == gen)
        return tls_shard;
    struct shard *s = hx_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    pthread_mutex_lock(&g.lock);
    s->next = g.shards;
    g.shards = s;
    pthread_mutex_unlock(&g.lock);
    tls_shard = s;
    tls_gen = gen;
    return s;
}

/* The calling thread's cells for one series, or NULL (write dropped). */
static slot_t *cells(int family, int series, hx_metric_type type, const struct family **fo)
{
    const struct family *f = family_get(family);
    if (f == NULL || f->type != type || f->value_fn || series < 0 ||
        (size_t)series > f->max_series)
        return NULL;
    struct shard *s = shard_get();
    if (s == NULL)
        return NULL;
    /* Only this thread stores this pointer, so a relaxed load suffices. */
    slot_t *b = atomic_load_explicit(&s->blocks[family], memory_order_relaxed);
    if (b == NULL) {
        b = hx_calloc((f->max_series + 1) * f->per_series, sizeof *b);
        if (b == NULL)
            return NULL;
        atomic_store_explicit(&s->blocks[family], b, memory_order_release);
    }
    *fo = f;
    return b + (size_t)series * f->per_series;
}

/* A shard has one writer, so load + store is an exact add without a locked
 * instruction; the atomics only keep the renderer's reads untorn. */
static inline void cell_add_u(slot_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void cell_add_d(slot_t *c, double d)
{
    double v = u2d(atomic_load_explicit(c, memory_order_relaxed)) + d;
    atomic_store_explicit(c, d2u(v), memory_order_relaxed);
}

void hx_metrics_inc(int family, int series, uint64_t n)
{
    const struct family *f;
    slot_t *c = cells(family, series, HX_METRIC_COUNTER, &f);
    if (c)
        cell_add_u(c, n);
}

void hx_metrics_gauge_add(int family, int series, double delta)
{
    const struct family *f;
    slot_t *c = cells(family, series, HX_METRIC_GAUGE, &f);
    if (c)
        cell_add_d(c, delta);
}

void hx_metrics_observe(int family, int series, double value)
{
    const struct family *f;
    slot_t *c = cells(family, series, HX_METRIC_HISTOGRAM, &f);
    if (c == NULL || isnan(value))
        return;
    size_t i = 0;
    while (i < f->nbounds && value > f->bounds[i])
        i++;
    cell_add_u(&c[i], 1);
    cell_add_d(&c[f->nbounds + 1], value);
}

void hx_metrics_gauge_set(int family, int series, double value)
{
    struct family *f = family_get(family);
    if (f == NULL || f->type != HX_METRIC_GAUGE || f->value_fn || series < 0 ||
        (size_t)series > f->max_series)
        return;
    pthread_mutex_lock(&g.lock);
    double adds = 0;
    for (struct shard *s = g.shards; s; s = s->next) {
        slot_t *b = atomic_load_explicit(&s->blocks[family], memory_order_acquire);
        if (b)
            adds += u2d(atomic_load_explicit(&b[series], memory_order_relaxed));
    }
    atomic_store_explicit(&f->gauge_base[series], d2u(value - adds), memory_order_relaxed);
    pthread_mutex_unlock(&g.lock);
}

/* ---- render ------------------------------------------------------------- */

typedef union {
    uint64_t u;
    double d;
} agg_t;

static bool cell_is_double(const struct family *f, size_t j)
{
    if (f->type == HX_METRIC_GAUGE)
        return true;
    return f->type == HX_METRIC_HISTOGRAM && j % f->per_series == f->nbounds + 1;
}

/* Under g.lock: sums every shard's cells of family id. */
static void family_sum(const struct family *f, int id, agg_t *agg, size_t ncells)
{
    for (size_t j = 0; j < ncells; j++) {
        if (f->gauge_base)
            agg[j].d = u2d(atomic_load_explicit(&f->gauge_base[j], memory_order_relaxed));
        else if (cell_is_double(f, j))
            agg[j].d = 0;
        else
            agg[j].u = 0;
    }
    for (const struct shard *s = g.shards; s; s = s->next) {
        slot_t *b = atomic_load_explicit(&s->blocks[id], memory_order_acquire);
        for (size_t j = 0; b && j < ncells; j++) {
            uint64_t v = atomic_load_explicit(&b[j], memory_order_relaxed);
            if (cell_is_double(f, j))
                agg[j].d += u2d(v);
            else
                agg[j].u += v;
        }
    }
}

static int series_write(hx_metrics_writer *w, const struct family *f, size_t s, const agg_t *c)
{
    static const char *const other[HX_METRICS_MAX_LABELS] = {"other", "other", "other", "other",
                                                             "other", "other", "other", "other"};
    const char *names[HX_METRICS_MAX_LABELS + 1];
    const char *values[HX_METRICS_MAX_LABELS + 1];
    size_t nl = f->nlabels;
    for (size_t i = 0; i < nl; i++) {
        names[i] = f->labels[i];
        values[i] = s == f->max_series ? other[i] : f->values[s * nl + i];
    }
    char text[32];
    if (f->type != HX_METRIC_HISTOGRAM) {
        if (f->type == HX_METRIC_COUNTER)
            snprintf(text, sizeof text, "%" PRIu64, c[0].u);
        else
            hx__metrics_fmt_double(c[0].d, text, sizeof text);
        return hx__metrics_emit(w, f->name, "", names, values, nl, text);
    }
    uint64_t cum = 0;
    names[nl] = "le";
    for (size_t i = 0; i <= f->nbounds; i++) {
        char le[32];
        if (i < f->nbounds)
            hx__metrics_fmt_double(f->bounds[i], le, sizeof le);
        else
            snprintf(le, sizeof le, "+Inf");
        values[nl] = le;
        cum += c[i].u;
        snprintf(text, sizeof text, "%" PRIu64, cum);
        if (hx__metrics_emit(w, f->name, "_bucket", names, values, nl + 1, text) != 0)
            return -1;
    }
    hx__metrics_fmt_double(c[f->nbounds + 1].d, text, sizeof text);
    if (hx__metrics_emit(w, f->name, "_sum", names, values, nl, text) != 0)
        return -1;
    /* The count is the +Inf bucket, so the two always agree. */
    snprintf(text, sizeof text, "%" PRIu64, cum);
    return hx__metrics_emit(w, f->name, "_count", names, values, nl, text);
}

/* Under g.lock. `fn_value` is the value_fn result, read before the lock. */
static int family_write(hx_metrics_writer *w, int id, double fn_value)
{
    const struct family *f = g.fams[id];
    if (hx_metrics_write_family(w, f->name, f->help, f->type) != 0)
        return -1;
    if (f->value_fn) {
        char text[32];
        hx__metrics_fmt_double(fn_value, text, sizeof text);
        return hx__metrics_emit(w, f->name, "", NULL, NULL, 0, text);
    }
    size_t ncells = (f->max_series + 1) * f->per_series;
    agg_t *agg = hx_malloc(ncells * sizeof *agg);
    if (agg == NULL)
        return hx__metrics_writer_fail(w);
    family_sum(f, id, agg, ncells);
    int rc = 0;
    for (size_t s = 0; rc == 0 && s < f->nseries; s++)
        rc = series_write(w, f, s, agg + s * f->per_series);
    if (rc == 0 && f->overflow_used)
        rc = series_write(w, f, f->max_series, agg + f->max_series * f->per_series);
    hx_free(agg);
    return rc;
}

int hx_metrics_render(hx_buf *out)
{
    hx_metrics_writer w = {.out = out};
    size_t nf = atomic_load_explicit(&g.nfams, memory_order_acquire);
    /* Callbacks run without the lock: they may take their own module's
     * locks, and those modules may intern series under them. */
    double fn_values[HX_METRICS_MAX_FAMILIES];
    for (size_t i = 0; i < nf; i++)
        fn_values[i] = g.fams[i]->value_fn ? g.fams[i]->value_fn(g.fams[i]->value_ud) : 0;
    pthread_mutex_lock(&g.lock);
    for (size_t i = 0; i < nf && !w.failed; i++)
        family_write(&w, (int)i, fn_values[i]);
    size_t nc = g.ncolls;
    struct collector *colls = nc ? hx_malloc(nc * sizeof *colls) : NULL;
    if (colls)
        memcpy(colls, g.colls, nc * sizeof *colls);
    else if (nc)
        w.failed = true;
    pthread_mutex_unlock(&g.lock);
    if (!w.failed)
        hx_metrics_collect_process(&w, NULL);
    for (size_t i = 0; colls && i < nc && !w.failed; i++) {
        w.fam = NULL;
        colls[i].fn(&w, colls[i].ud);
    }
    hx_free(colls);
    hx__metrics_writer_fini(&w);
    return w.failed ? -1 : 0;
}

int hx_metrics_add_collector(hx_metrics_collect_fn fn, void *ud)
{
    if (fn == NULL)
        return -1;
    int rc = 0;
    pthread_mutex_lock(&g.lock);
    if (g.ncolls == g.capcolls) {
        size_t cap = g.capcolls ? g.capcolls * 2 : 8;
        struct collector *p = hx_realloc(g.colls, cap * sizeof *p);
        if (p == NULL) {
            rc = -1;
            goto out;
        }
        g.colls = p;
        g.capcolls = cap;
    }
    g.colls[g.ncolls++] = (struct collector){fn, ud};
out:
    pthread_mutex_unlock(&g.lock);
    return rc;
}

void hx_metrics_shutdown(void)
{
    pthread_mutex_lock(&g.lock);
    size_t nf = atomic_load_explicit(&g.nfams, memory_order_relaxed);
    while (g.shards) {
        struct shard *s = g.shards;
        g.shards = s->next;
        for (size_t i = 0; i < HX_METRICS_MAX_FAMILIES; i++)
            hx_free(atomic_load_explicit(&s->blocks[i], memory_order_relaxed));
        hx_free(s);
    }
    for (size_t i = 0; i < nf; i++) {
        family_free(g.fams[i]);
        g.fams[i] = NULL;
    }
    atomic_store_explicit(&g.nfams, 0, memory_order_release);
    hx_free(g.colls);
    g.colls = NULL;
    g.ncolls = g.capcolls = 0;
    atomic_fetch_add_explicit(&g_gen, 1, memory_order_relaxed);
    pthread_mutex_unlock(&g.lock);
}

/* ---- hapax's catalog ---------------------------------------------------- */

/* LLM latencies: from a cached answer in milliseconds to a long generation
 * at the 120 s mark. */
static const double dur_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                     2.5,   5,    10,    20,   30,  60,   120};
static const double wait_buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5,
                                      1,     2.5,   5,    10,   30,  60};
/* Bodies from a one-line prompt to the 10 MB default limit. */
static const double size_buckets[] = {256, 1024, 4096, 16384, 65536, 262144, 1048576,
                                      4194304, 10485760};

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})
#define B(a) (a), (sizeof(a) / sizeof((a)[0]))

static const hx_metric_def catalog[HX_M__COUNT] = {
    [HX_M_REQUEST_DURATION] = {"hapax_request_duration_seconds",
                               "Time from receiving a request to the end of its response, in seconds.",
                               HX_METRIC_HISTOGRAM, L("route", "method", "status_class"),
                               B(dur_buckets), 256, NULL, NULL},
    [HX_M_REQUEST_SIZE] = {"hapax_request_size_bytes", "Size of request bodies in bytes.",
                           HX_METRIC_HISTOGRAM, L("route"), B(size_buckets), 0, NULL, NULL},
    [HX_M_RESPONSE_SIZE] = {"hapax_response_size_bytes", "Size of response bodies in bytes.",
                            HX_METRIC_HISTOGRAM, L("route"), B(size_buckets), 0, NULL, NULL},
    [HX_M_ACTIVE_REQUESTS] = {"hapax_active_requests", "Requests being handled right now.",
                              HX_METRIC_GAUGE, NULL, NULL, 0, 0, NULL, NULL},
    [HX_M_ERRORS] = {"hapax_errors_total", "Error responses sent, by error code.",
                     HX_METRIC_COUNTER, L("type"), NULL, 0, 0, NULL, NULL},
    [HX_M_PROVIDER_REQUESTS] = {"hapax_provider_requests_total",
                                "Attempts sent to upstream providers, by outcome (each retry and each provider "
                                "tried counts once).",
                                HX_METRIC_COUNTER, L("provider", "outcome"), NULL, 0, 0, NULL, NULL},
    [HX_M_PROVIDER_LATENCY] = {"hapax_provider_latency_seconds",
                               "Duration of upstream provider requests in seconds.",
                               HX_METRIC_HISTOGRAM, L("provider"), B(dur_buckets), 0, NULL, NULL},
    [HX_M_PROVIDER_FAILURES] = {"hapax_provider_failures_total",
                                "Failed attempts on upstream providers, by failure class (each retry and each "
                                "provider tried counts once).",
                                HX_METRIC_COUNTER, L("provider", "class"), NULL, 0, 0, NULL, NULL},
    [HX_M_RETRIES] = {"hapax_retries_total", "Retries of upstream provider requests.",
                      HX_METRIC_COUNTER, L("provider"), NULL, 0, 0, NULL, NULL},
    [HX_M_FAILOVERS] = {"hapax_failovers_total",
                        "Failovers from a provider to the next one in the chain.",
                        HX_METRIC_COUNTER, L("from_provider"), NULL, 0, 0, NULL, NULL},
    [HX_M_TOKENS] = {"hapax_tokens_total", "Tokens processed, by provider, model and kind.",
                     HX_METRIC_COUNTER, L("provider", "model", "kind"), NULL, 0, 256, NULL, NULL},
    [HX_M_QUEUE_WAIT] = {"hapax_queue_wait_seconds",
                         "Time requests waited in the queue before running, in seconds.",
                         HX_METRIC_HISTOGRAM, NULL, B(wait_buckets), 0, NULL, NULL},
    [HX_M_QUEUE_REJECTIONS] = {"hapax_queue_rejections_total",
                               "Requests rejected by the queue, by reason.",
                               HX_METRIC_COUNTER, L("reason"), NULL, 0, 0, NULL, NULL},
    [HX_M_RATE_LIMIT_HITS] = {"hapax_rate_limit_hits_total",
                              "Requests refused by the rate limiter, by limit kind.",
                              HX_METRIC_COUNTER, L("kind"), NULL, 0, 0, NULL, NULL},
    [HX_M_AUTH_FAILURES] = {"hapax_auth_failures_total",
                            "Authentication and authorization failures, by reason.",
                            HX_METRIC_COUNTER, L("reason"), NULL, 0, 0, NULL, NULL},
    [HX_M_CONFIG_RELOADS] = {"hapax_config_reloads_total", "Configuration reloads, by result.",
                             HX_METRIC_COUNTER, L("result"), NULL, 0, 0, NULL, NULL},
    [HX_M_LOAD_SHED] = {"hapax_load_shed_total", "Requests shed under load, by reason.",
                        HX_METRIC_COUNTER, L("reason"), NULL, 0, 0, NULL, NULL},
    [HX_M_PANIC] = {"hapax_panic_requests_total",
                    "Requests sent to a provider marked down because every provider of their chain was.",
                    HX_METRIC_COUNTER, L("provider"), NULL, 0, 0, NULL, NULL},
    [HX_M_RETRIES_BY_CLASS] = {"hapax_retries_by_class_total",
                               "Retries of upstream provider requests, by why the attempt before failed.",
                               HX_METRIC_COUNTER, L("provider", "class"), NULL, 0, 0, NULL, NULL},
    [HX_M_FAILOVERS_BY_CLASS] = {"hapax_failovers_by_class_total",
                                 "Failovers to the next provider, by why the provider before failed.",
                                 HX_METRIC_COUNTER, L("from_provider", "class"), NULL, 0, 0, NULL, NULL},
    [HX_M_HTTP2_GOAWAY] = {"hapax_http2_goaway_total",
                           "HTTP/2 connections ended with GOAWAY by the server, by reason.",
                           HX_METRIC_COUNTER, L("reason"), NULL, 0, 0, NULL, NULL},
    [HX_M_HTTP3_EARLY_DATA] = {"hapax_http3_early_data_total",
                               "HTTP/3 0-RTT early data, by outcome (accepted, replay refused, ...).",
                               HX_METRIC_COUNTER, L("outcome"), NULL, 0, 0, NULL, NULL},
    [HX_M_HTTP3_EVENTS] = {"hapax_http3_events_total",
                           "HTTP/3 packets no connection sends (retry, version_negotiation, stateless_reset, "
                           "refused, invalid_token) and migrations.",
                           HX_METRIC_COUNTER, L("kind"), NULL, 0, 0, NULL, NULL},
};

int hx_metrics_init(void)
{
    /* The enum values are the ids, so the catalog must come first. */
    size_t n = atomic_load_explicit(&g.nfams, memory_order_acquire);
    if (n != 0) {
        HX_LOG_ERROR("metrics: hx_metrics_init must run before any other registration",
                     HX_F_INT("families", (int64_t)n));
        return -1;
    }
    for (int i = 0; i < HX_M__COUNT; i++) {
        if (hx_metrics_register(&catalog[i]) != i) {
            hx_metrics_shutdown();
            return -1;
        }
    }
    return 0;
}
