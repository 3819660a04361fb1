/* The generic operations on a struct the schema describes (free, field
 * lookup), the source marks the loader records, and the config's reference
 * counting. The tables and the defaults are in schema.c. */
#include "config/schema.h"

#include <string.h>

#include "util/alloc.h"

/* ---- generic free ---- */

void hx__strlist_free(hx_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        hx_free(l->items[i]);
    hx_free(l->items);
    l->items = NULL;
    l->n = 0;
}

void hx__kvlist_free(hx_kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        hx_free(l->items[i].key);
        hx_free(l->items[i].value);
    }
    hx_free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void free_array(const hx_field *f, char *base)
{
    char **arr = (char **)(base + f->off);
    size_t *count = (size_t *)(base + f->count_off);
    char ***names = f->type == HX_FT_MAP ? (char ***)(base + f->names_off) : NULL;
    for (size_t i = 0; *arr && i < *count; i++)
        hx__schema_free(f->sub, *arr + i * f->sub->size);
    for (size_t i = 0; names && *names && i < *count; i++)
        hx_free((*names)[i]);
    hx_free(*arr);
    *arr = NULL;
    if (names) {
        hx_free(*names);
        *names = NULL;
    }
    *count = 0;
}

void hx__field_free(const hx_field *f, void *base)
{
    char *b = base;
    switch (f->type) {
    case HX_FT_STRING:
        hx_free(*(char **)(b + f->off));
        *(char **)(b + f->off) = NULL;
        break;
    case HX_FT_STRLIST:
        hx__strlist_free((hx_strlist *)(b + f->off));
        break;
    case HX_FT_KVMAP:
        hx__kvlist_free((hx_kvlist *)(b + f->off));
        break;
    case HX_FT_STRUCT:
        hx__schema_free(f->sub, b + f->off);
        break;
    case HX_FT_LIST:
    case HX_FT_MAP:
        free_array(f, b);
        break;
    default:
        break;
    }
}

void hx__schema_free(const hx_schema *s, void *base)
{
    for (size_t i = 0; i < s->n; i++)
        hx__field_free(&s->fields[i], base);
}

const hx_field *hx__schema_find(const hx_schema *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return &s->fields[i];
    return NULL;
}

/* ---- marks ---- */

int hx__marks_add(struct hx_config_marks *m, const char *path, int line, int col)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        hx_mark *items = hx_realloc(m->items, cap * sizeof *items);
        if (items == NULL)
            return -1;
        m->items = items;
        m->cap = cap;
    }
    char *p = hx_strdup(path);
    if (p == NULL)
        return -1;
    m->items[m->n++] = (hx_mark){p, line, col, false};
    return 0;
}

/* Index of the mark for path or its nearest marked ancestor; m->n if none. */
static size_t marks_index(const struct hx_config_marks *m, const char *path)
{
    if (m == NULL)
        return 0;
    size_t len = strlen(path);
    while (len > 0) {
        for (size_t i = 0; i < m->n; i++)
            if (strncmp(m->items[i].path, path, len) == 0 && m->items[i].path[len] == '\0')
                return i;
        while (len > 0 && path[len - 1] != '.' && path[len - 1] != '[')
            len--;
        if (len > 0)
            len--; /* drop the '.' or '[' too */
    }
    return m->n;
}

const hx_mark *hx__marks_find(const struct hx_config_marks *m, const char *path)
{
    size_t i = marks_index(m, path);
    return m && i < m->n ? &m->items[i] : NULL;
}

/* The loader flags a mark (expanded); a const result would need a cast. */
hx_mark *hx__marks_find_mut(struct hx_config_marks *m, const char *path)
{
    size_t i = marks_index(m, path);
    return m && i < m->n ? &m->items[i] : NULL;
}

void hx__marks_free(struct hx_config_marks *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        hx_free(m->items[i].path);
    hx_free(m->items);
    hx_free(m->source);
    hx_free(m);
}

/* ---- reference counting ---- */

hx_config *hx_config_ref(hx_config *cfg)
{
    if (cfg)
        atomic_fetch_add(&cfg->refs, 1);
    return cfg;
}

void hx_config_unref(hx_config *cfg)
{
    if (cfg == NULL || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    hx__schema_free(&hx__config_schema, cfg);
    hx_free(cfg->source_path);
    hx__marks_free(cfg->marks);
    hx_free(cfg);
}
