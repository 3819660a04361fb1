/* YAML -> hx_config: parse with libyaml's document API, then one generic
 * walker applies the document onto the defaults, driven by the schema. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config/config.h"
#include "config/env.h"
#include "config/schema.h"
#include "obs/log.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/units.h"

#define MAX_FILE_BYTES HX__CONFIG_MAX_BYTES
#define MAX_NODES 100000   /* visits, so alias bombs stop early */
#define MAX_MAP_KEYS 4096  /* free-form maps are checked pairwise for duplicates */
#define MAX_LIST_ITEMS 4096 /* validation compares list elements pairwise */
#define MAX_SHOWN 64       /* characters of a bad value quoted in a message */
#define MAX_DEPTH HX__CONFIG_MAX_DEPTH
/* The path (key.path[index]...) of a walk: its keys come from one branch
 * of the file, so it never outgrows the file plus separators and indexes. */
#define MAX_PATH_BYTES (MAX_FILE_BYTES + MAX_DEPTH * 32)
/* The debug line naming the ${VAR}s used. */
#define MAX_VARS_LINE 4096

typedef struct {
    yaml_document_t *doc;
    const char *name;
    hx_config_errors *errs;
    struct hx_config_marks *marks;
    hx_buf path;
    hx_env env;
    hx_strlist vars; /* names of the variables used, for one debug line */
    size_t visits;
    bool oom;
    bool stop;       /* too many errors or nodes: give up walking */
} walk;

/* ---- errors ---- */

/* "NAME:LINE:COL: path: message" at a libyaml mark (0-based). */
static void werr(walk *w, yaml_mark_t mark, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void werr(walk *w, yaml_mark_t mark, const char *fmt, ...)
{
    if (w->stop)
        return;
    va_list ap;
    va_start(ap, fmt);
    const char *path = w->path.len ? w->path.data : "";
    if (hx__errors_vat(w->errs, w->name, mark.line + 1, mark.column + 1, path, fmt, ap) != 0)
        w->oom = true;
    va_end(ap);
    if (w->errs->n >= HX_CONFIG_MAX_ERRORS)
        w->stop = true;
}

/* ---- path and marks ---- */

static size_t path_push_key(walk *w, const char *key)
{
    size_t saved = w->path.len;
    int rc = saved ? hx_buf_printf(&w->path, ".%s", key) : hx_buf_append_str(&w->path, key);
    if (rc != 0)
        w->oom = true;
    return saved;
}

static size_t path_push_index(walk *w, size_t i)
{
    size_t saved = w->path.len;
    if (hx_buf_printf(&w->path, "[%zu]", i) != 0)
        w->oom = true;
    return saved;
}

static void path_pop(walk *w, size_t saved)
{
    w->path.len = saved;
    if (w->path.data)
        w->path.data[saved] = '\0';
}

static void mark_here(walk *w, const yaml_node_t *n)
{
    if (!w->oom && hx__marks_add(w->marks, w->path.data ? w->path.data : "",
                                 (int)n->start_mark.line + 1, (int)n->start_mark.column + 1) != 0)
        w->oom = true;
}

/* Counts a visit; false when the walk must stop. */
static bool visit(walk *w, const yaml_node_t *n)
{
    if (w->oom || w->stop)
        return false;
    if (++w->visits > MAX_NODES) {
        werr(w, n->start_mark, "too many YAML nodes (more than %d, alias expansion?)", MAX_NODES);
        w->stop = true;
        return false;
    }
    return true;
}

/* ---- scalars ---- */

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return *v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static void note_var(const char *name, void *ud)
{
    walk *w = ud;
    for (size_t i = 0; i < w->vars.n; i++)
        if (strcmp(w->vars.items[i], name) == 0)
            return;
    char **items = hx_realloc(w->vars.items, (w->vars.n + 1) * sizeof *items);
    if (items == NULL) {
        w->oom = true;
        return;
    }
    w->vars.items = items;
    if ((items[w->vars.n] = hx_strdup(name)) == NULL)
        w->oom = true;
    else
        w->vars.n++;
}

/* The value of scalar node n, ${...} expanded, in *out (owned).
 * Returns 1, or 0 for "keep the default" (null, or a ${...} that expanded
 * to "" when keep_empty_ref), or -1 after reporting an error. */
static int scalar_text(walk *w, const yaml_node_t *n, const char *what, bool keep_empty_ref,
                       char **out, bool *had_ref)
{
    *had_ref = false;
    if (n->type != YAML_SCALAR_NODE) {
        werr(w, n->start_mark, "expected %s, got %s", what, node_kind(n));
        return -1;
    }
    if (is_null(n))
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (!hx_env_needs_expand(v, len)) {
        *out = hx_strndup(v, len);
        w->oom = w->oom || *out == NULL;
        return *out ? 1 : -1;
    }
    size_t xl;
    hx_env_error e;
    if (hx_env_expand(v, len, &w->env, out, &xl, had_ref, &e) != 0) {
        yaml_mark_t m = n->start_mark;
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && m.line == n->end_mark.line)
            m.column += e.offset;
        if (e.nomem)
            w->oom = true;
        else
            werr(w, m, "%s", e.msg);
        return -1;
    }
    if (*had_ref) {
        /* Validation must not quote what a variable held (a secret). */
        hx_mark *mk = hx__marks_find_mut(w->marks, w->path.data ? w->path.data : "");
        if (mk)
            mk->expanded = true;
    }
    if (*had_ref && xl == 0 && keep_empty_ref) {
        hx_free(*out);
        *out = NULL;
        return 0;
    }
    return 1;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"true", "yes", "on"};
    static const char *const f[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return HX_UNITS_EINVAL;
}

static const char *type_desc(hx_ftype t)
{
    switch (t) {
    case HX_FT_BOOL:
        return "a boolean (true or false)";
    case HX_FT_INT:
        return "an integer";
    case HX_FT_DOUBLE:
        return "a number";
    case HX_FT_PERCENT:
        return "a percentage (90 or \"90%\")";
    case HX_FT_DURATION:
        return "a duration (such as 30s, 100ms, 1m30s)";
    case HX_FT_SIZE:
        return "a size (such as 1024, 16KB, 2MB)";
    case HX_FT_STRING:
        return "a string";
    case HX_FT_STRLIST:
        return "a list of strings";
    case HX_FT_KVMAP:
        return "a mapping of names to values";
    case HX_FT_LIST:
        return "a list";
    default:
        return "a mapping";
    }
}

static int convert(const hx_field *f, const char *v, void *p)
{
    switch (f->type) {
    case HX_FT_BOOL:
        return parse_bool(v, p);
    case HX_FT_INT:
        return hx_units_parse_int(v, p);
    case HX_FT_DOUBLE:
        return hx_units_parse_double(v, p);
    case HX_FT_PERCENT:
        return hx_units_parse_percent(v, p);
    case HX_FT_DURATION:
        return hx_units_parse_duration(v, p);
    case HX_FT_SIZE:
        return hx_units_parse_size(v, p);
    default:
        return HX_UNITS_EINVAL;
    }
}

static void apply_scalar(walk *w, const yaml_node_t *n, const hx_field *f, char *base)
{
    char *v = NULL;
    bool ref;
    if (scalar_text(w, n, type_desc(f->type), true, &v, &ref) <= 0)
        return;
    void *p = base + f->off;
    if (f->type == HX_FT_STRING) {
        hx_free(*(char **)p);
        *(char **)p = v;
        return;
    }
    int rc = convert(f, v, p);
    hx_free(v);
    if (rc == 0)
        return;
    /* Quote the text as written, never an expanded (possibly secret) value. */
    int len = (int)n->data.scalar.length;
    const char *raw = (const char *)n->data.scalar.value;
    const char *more = len > MAX_SHOWN ? "..." : "";
    len = len > MAX_SHOWN ? MAX_SHOWN : len;
    if (rc == HX_UNITS_ERANGE)
        werr(w, n->start_mark, "value \"%.*s%s\" is out of range", len, raw, more);
    else if (ref)
        werr(w, n->start_mark, "expected %s, but \"%.*s%s\" expands to something else",
             type_desc(f->type), len, raw, more);
    else
        werr(w, n->start_mark, "expected %s, got \"%.*s%s\"", type_desc(f->type), len, raw, more);
}

/* ---- lists and maps of scalars ---- */

static bool want(walk *w, const yaml_node_t *n, yaml_node_type_t type, hx_ftype ft)
{
    if (n->type != type) {
        werr(w, n->start_mark, "expected %s, got %s", type_desc(ft), node_kind(n));
        return false;
    }
    if (type == YAML_SEQUENCE_NODE &&
        n->data.sequence.items.top - n->data.sequence.items.start > MAX_LIST_ITEMS) {
        werr(w, n->start_mark, "too many items (at most %d)", MAX_LIST_ITEMS);
        return false;
    }
    return true;
}

static void apply_strlist(walk *w, const yaml_node_t *n, const hx_field *f, char *base)
{
    if (is_null(n) || !want(w, n, YAML_SEQUENCE_NODE, f->type))
        return;
    hx_strlist *l = (hx_strlist *)(base + f->off);
    hx__strlist_free(l);
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return;
    if ((l->items = hx_calloc(count, sizeof *l->items)) == NULL) {
        w->oom = true;
        return;
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(w->doc, n->data.sequence.items.start[i]);
        if (!visit(w, item))
            return;
        size_t saved = path_push_index(w, i);
        mark_here(w, item);
        char *v = NULL;
        bool ref;
        int rc = scalar_text(w, item, "a string", false, &v, &ref);
        if (rc == 0)
            werr(w, item->start_mark, "expected a string, got null");
        if (rc > 0)
            l->items[l->n++] = v;
        path_pop(w, saved);
    }
}

/* True when pair i of mapping n repeats the key of an earlier pair. */
static bool dup_key(walk *w, const yaml_node_t *n, size_t i, const char *key)
{
    for (size_t j = 0; j < i; j++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, n->data.mapping.pairs.start[j].key);
        if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return true;
    }
    return false;
}

/* The scalar key of pair i, or NULL after reporting an error. */
static const char *pair_key(walk *w, const yaml_node_t *map, size_t i, size_t max_keys)
{
    yaml_node_t *k = yaml_document_get_node(w->doc, map->data.mapping.pairs.start[i].key);
    if (!visit(w, k))
        return NULL;
    if (k->type != YAML_SCALAR_NODE) {
        werr(w, k->start_mark, "keys must be scalars, got %s", node_kind(k));
        return NULL;
    }
    const char *key = (const char *)k->data.scalar.value;
    if (max_keys && i >= max_keys) {
        if (i == max_keys)
            werr(w, k->start_mark, "too many keys (at most %zu)", max_keys);
        return NULL;
    }
    if (max_keys && dup_key(w, map, i, key)) {
        werr(w, k->start_mark, "duplicate key \"%s\"", key);
        return NULL;
    }
    return key;
}

static bool plain_is_string(const char *v)
{
    double d;
    return strcmp(v, "true") != 0 && strcmp(v, "false") != 0 && strcmp(v, "null") != 0 &&
           hx_units_parse_double(v, &d) != 0;
}

static void apply_kvmap(walk *w, const yaml_node_t *n, const hx_field *f, char *base)
{
    if (is_null(n) || !want(w, n, YAML_MAPPING_NODE, f->type))
        return;
    hx_kvlist *l = (hx_kvlist *)(base + f->off);
    hx__kvlist_free(l);
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (count == 0)
        return;
    if ((l->items = hx_calloc(count, sizeof *l->items)) == NULL) {
        w->oom = true;
        return;
    }
    for (size_t i = 0; i < count && !w->oom && !w->stop; i++) {
        const char *key = pair_key(w, n, i, MAX_MAP_KEYS);
        if (key == NULL)
            continue;
        yaml_node_t *vn = yaml_document_get_node(w->doc, n->data.mapping.pairs.start[i].value);
        size_t saved = path_push_key(w, key);
        mark_here(w, vn);
        char *v = NULL;
        bool ref;
        int rc = visit(w, vn) ? scalar_text(w, vn, "a scalar value", false, &v, &ref) : -1;
        if (rc == 0)
            v = hx_strdup("null");
        char *k = rc >= 0 && v ? hx_strdup(key) : NULL;
        if (k && v) {
            bool plain = vn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            l->items[l->n++] = (hx_kv){k, v, rc > 0 && (!plain || plain_is_string(v))};
        } else {
            w->oom = w->oom || rc >= 0;
            hx_free(k);
            hx_free(v);
        }
        path_pop(w, saved);
    }
}

/* ---- structs, lists and maps of structs ---- */

static void apply_struct(walk *w, const yaml_node_t *n, const hx_schema *s, char *base);

/* Edit distance, for "did you mean". Short strings only. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void unknown_key(walk *w, const yaml_node_t *k, const hx_schema *s, const char *key)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < s->n; i++) {
        size_t d = edit_distance(key, s->fields[i].name);
        if (d < best_d) {
            best_d = d;
            best = s->fields[i].name;
        }
    }
    size_t saved = path_push_key(w, key);
    if (best)
        werr(w, k->start_mark, "unknown key (did you mean %s?)", best);
    else
        werr(w, k->start_mark, "unknown key");
    path_pop(w, saved);
}

static void apply_field(walk *w, const yaml_node_t *n, const hx_field *f, char *base);

static void apply_list(walk *w, const yaml_node_t *n, const hx_field *f, char *base)
{
    if (is_null(n) || !want(w, n, YAML_SEQUENCE_NODE, f->type))
        return;
    hx__field_free(f, base);
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return;
    char *arr = hx_calloc(count, f->sub->size);
    if (arr == NULL) {
        w->oom = true;
        return;
    }
    *(char **)(base + f->off) = arr;
    size_t *done = (size_t *)(base + f->count_off);
    for (size_t i = 0; i < count; i++) {
        char *elem = arr + i * f->sub->size;
        (*done)++; /* counted first, so a half-built element is freed too */
        if (f->sub->init && f->sub->init(elem) != 0) {
            w->oom = true;
            return;
        }
        yaml_node_t *item = yaml_document_get_node(w->doc, n->data.sequence.items.start[i]);
        if (!visit(w, item))
            return;
        size_t saved = path_push_index(w, i);
        mark_here(w, item);
        apply_struct(w, item, f->sub, elem);
        path_pop(w, saved);
    }
}

static void apply_map(walk *w, const yaml_node_t *n, const hx_field *f, char *base)
{
    if (is_null(n) || !want(w, n, YAML_MAPPING_NODE, f->type))
        return;
    hx__field_free(f, base);
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (count == 0)
        return;
    char *arr = hx_calloc(count, f->sub->size);
    char **names = hx_calloc(count, sizeof *names);
    *(char **)(base + f->off) = arr;
    *(char ***)(base + f->names_off) = names;
    if (arr == NULL || names == NULL) {
        w->oom = true;
        return;
    }
    size_t *done = (size_t *)(base + f->count_off);
    for (size_t i = 0; i < count && !w->oom && !w->stop; i++) {
        const char *key = pair_key(w, n, i, MAX_MAP_KEYS);
        if (key == NULL)
            continue;
        char *elem = arr + *done * f->sub->size;
        names[*done] = hx_strdup(key);
        (*done)++;
        if (names[*done - 1] == NULL || (f->sub->init && f->sub->init(elem) != 0)) {
            w->oom = true;
            return;
        }
        yaml_node_t *vn = yaml_document_get_node(w->doc, n->data.mapping.pairs.start[i].value);
        size_t saved = path_push_key(w, key);
        if (visit(w, vn)) {
            mark_here(w, vn);
            apply_struct(w, vn, f->sub, elem);
        }
        path_pop(w, saved);
    }
}

static void apply_field(walk *w, const yaml_node_t *n, const hx_field *f, char *base)
{
    switch (f->type) {
    case HX_FT_STRLIST:
        apply_strlist(w, n, f, base);
        break;
    case HX_FT_KVMAP:
        apply_kvmap(w, n, f, base);
        break;
    case HX_FT_STRUCT:
        apply_struct(w, n, f->sub, base + f->off);
        break;
    case HX_FT_LIST:
        apply_list(w, n, f, base);
        break;
    case HX_FT_MAP:
        apply_map(w, n, f, base);
        break;
    default:
        apply_scalar(w, n, f, base);
        break;
    }
}

static void apply_struct(walk *w, const yaml_node_t *n, const hx_schema *s, char *base)
{
    if (is_null(n) || !want(w, n, YAML_MAPPING_NODE, HX_FT_STRUCT))
        return;
    bool seen[64] = {false}; /* fields already set, by index; tables are small */
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    for (size_t i = 0; i < count && !w->oom && !w->stop; i++) {
        const char *key = pair_key(w, n, i, 0);
        if (key == NULL)
            continue;
        yaml_node_t *k = yaml_document_get_node(w->doc, n->data.mapping.pairs.start[i].key);
        const hx_field *f = hx__schema_find(s, key);
        if (f == NULL) {
            unknown_key(w, k, s, key);
            continue;
        }
        size_t idx = (size_t)(f - s->fields);
        size_t saved = path_push_key(w, key);
        if (idx < 64 && seen[idx]) {
            werr(w, k->start_mark, "duplicate key \"%s\"", key);
        } else {
            if (idx < 64)
                seen[idx] = true;
            yaml_node_t *vn =
                yaml_document_get_node(w->doc, n->data.mapping.pairs.start[i].value);
            if (visit(w, vn)) {
                mark_here(w, vn);
                apply_field(w, vn, f, base);
            }
        }
        path_pop(w, saved);
    }
}

/* ---- the document ---- */

static void syntax_error(hx_config_errors *errs, const char *name, const yaml_parser_t *p,
                         bool *oom)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    int rc;
    if (p->context)
        rc = hx_config_errors_add(errs, "%s:%zu:%zu: YAML syntax error: %s (%s)", name,
                                  p->problem_mark.line + 1, p->problem_mark.column + 1,
                                  problem, p->context);
    else
        rc = hx_config_errors_add(errs, "%s:%zu:%zu: YAML syntax error: %s", name,
                                  p->problem_mark.line + 1, p->problem_mark.column + 1, problem);
    *oom = *oom || rc != 0;
}

/* Parses exactly one document into *doc; false after reporting why not. */
static bool parse_one(yaml_parser_t *p, yaml_document_t *doc, const char *name,
                      hx_config_errors *errs, bool *oom)
{
    if (!yaml_parser_load(p, doc)) {
        syntax_error(errs, name, p, oom);
        return false;
    }
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (root == NULL || is_null(root)) {
        *oom = *oom || hx_config_errors_add(errs, "%s: configuration is empty", name) != 0;
        yaml_document_delete(doc);
        return false;
    }
    yaml_document_t next;
    if (!yaml_parser_load(p, &next)) {
        syntax_error(errs, name, p, oom);
        yaml_document_delete(doc);
        return false;
    }
    yaml_node_t *extra = yaml_document_get_root_node(&next);
    if (extra != NULL) {
        *oom = *oom || hx_config_errors_add(errs, "%s:%zu:%zu: more than one YAML document "
                                            "(only one is allowed)", name,
                                            extra->start_mark.line + 1,
                                            extra->start_mark.column + 1) != 0;
    }
    yaml_document_delete(&next);
    if (extra != NULL)
        yaml_document_delete(doc);
    return extra == NULL;
}

static void log_vars(const walk *w)
{
    if (w->vars.n == 0 || hx_log_min_level() > HX_LOG_DEBUG)
        return;
    hx_buf b;
    hx_buf_init(&b, MAX_VARS_LINE);
    for (size_t i = 0; i < w->vars.n; i++)
        if (hx_buf_printf(&b, "%s%s", i ? "," : "", w->vars.items[i]) != 0)
            break;
    if (b.data)
        HX_LOG_DEBUG("config variables used", HX_F_STR("source", w->name),
                     HX_F_STR("names", b.data));
    hx_buf_free(&b);
}

/* Applies the document onto cfg; false when memory ran out. *stopped is
 * set when the walk gave up (too many errors or nodes). */
static bool walk_document(yaml_document_t *doc, const char *name, hx_config *cfg,
                          hx_config_errors *errs, bool *stopped)
{
    walk w = {.doc = doc, .name = name, .errs = errs, .marks = cfg->marks};
    hx_buf_init(&w.path, MAX_PATH_BYTES);
    w.env = (hx_env){.note = note_var, .note_ud = &w};
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (root->type != YAML_MAPPING_NODE)
        werr(&w, root->start_mark, "the top level must be a mapping, got %s", node_kind(root));
    else
        apply_struct(&w, root, &hx__config_schema, (char *)cfg);
    if (!w.oom)
        log_vars(&w);
    *stopped = w.stop;
    hx__strlist_free(&w.vars);
    hx_buf_free(&w.path);
    return !w.oom;
}

static hx_config *load_text(const char *yaml, size_t len, const char *name, const char *path,
                            hx_config_errors *errs)
{
    size_t before = errs->n;
    bool oom = false;
    hx_config *cfg = hx_config_default();
    if (cfg == NULL || (cfg->marks = hx_calloc(1, sizeof *cfg->marks)) == NULL ||
        (cfg->marks->source = hx_strdup(name)) == NULL ||
        (path && (cfg->source_path = hx_strdup(path)) == NULL)) {
        oom = true;
        goto done;
    }
    if (!hx__config_depth_ok(yaml, len, name, errs, &oom))
        goto done;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        oom = true;
        goto done;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    yaml_document_t doc;
    bool stopped = false;
    if (parse_one(&parser, &doc, name, errs, &oom)) {
        oom = !walk_document(&doc, name, cfg, errs, &stopped);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    if (!oom)
        oom = hx__config_finalize(cfg) != 0;
    if (!oom && !stopped)
        hx_config_validate(cfg, errs);
    hx__errors_sort(errs, before, name);
    if (errs->n >= HX_CONFIG_MAX_ERRORS)
        hx_config_errors_add(errs, "%s: too many errors, only the first %d are shown", name,
                             HX_CONFIG_MAX_ERRORS);
done:
    if (oom)
        hx_config_errors_add(errs, "%s: out of memory while loading the configuration", name);
    if (oom || errs->n != before) {
        hx_config_unref(cfg);
        return NULL;
    }
    hx__marks_free(cfg->marks);
    cfg->marks = NULL;
    return cfg;
}

hx_config *hx_config_load_string(const char *yaml, size_t len, const char *name,
                                 hx_config_errors *errs)
{
    name = name ? name : "<string>";
    if (len > MAX_FILE_BYTES) {
        hx_config_errors_add(errs, "%s: configuration is larger than 4 MiB", name);
        return NULL;
    }
    return load_text(yaml, len, name, NULL, errs);
}

hx_config *hx_config_load_file(const char *path, hx_config_errors *errs)
{
    size_t len;
    char *text = hx__config_read_file(path, &len, errs);
    if (text == NULL)
        return NULL;
    hx_config *cfg = load_text(text, len, path, path, errs);
    hx_free(text);
    return cfg;
}
