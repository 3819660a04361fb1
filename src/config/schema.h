/* Private to src/config: the table-driven schema of hx_config.
 *
 * Each section is a table of field descriptors. One generic walker applies
 * YAML onto defaults (load.c), one generic checker enforces ranges and enum
 * values (validate.c), one generic printer writes YAML (print.c) and one
 * generic free releases everything (schema_ops.c). */
#ifndef HX_CONFIG_SCHEMA_H
#define HX_CONFIG_SCHEMA_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef enum {
    HX_FT_BOOL,     /* bool */
    HX_FT_INT,      /* int64_t */
    HX_FT_DOUBLE,   /* double */
    HX_FT_PERCENT,  /* double 0..100, "90%" or 90 */
    HX_FT_DURATION, /* int64_t ms */
    HX_FT_SIZE,     /* int64_t bytes */
    HX_FT_STRING,   /* char *, never NULL in a built config */
    HX_FT_STRLIST,  /* hx_strlist */
    HX_FT_KVMAP,    /* hx_kvlist */
    HX_FT_STRUCT,   /* nested struct at off, described by sub */
    HX_FT_LIST,     /* T *at off, size_t count at count_off */
    HX_FT_MAP,      /* T *at off, char **names at names_off, count at count_off */
} hx_ftype;

enum {
    HX_FF_SECRET = 1u << 0,   /* printed as "[redacted]", never in messages */
    HX_FF_RANGE = 1u << 1,    /* min/max (or dmin/dmax) are checked */
    HX_FF_EMPTY_OK = 1u << 2, /* enum check skips "" (reported elsewhere) */
};

typedef struct hx_schema hx_schema;

typedef struct {
    const char *name;
    hx_ftype type;
    unsigned flags;
    size_t off;
    size_t count_off;
    size_t names_off;
    int64_t min, max;          /* INT, DURATION, SIZE with HX_FF_RANGE */
    double dmin, dmax;         /* DOUBLE with HX_FF_RANGE */
    const char *neg_msg;       /* message for a value < 0 (when min >= 0) */
    const char *msg;           /* message for out of range / not in values */
    const char *const *values; /* allowed values (STRING, STRLIST), NULL-ended */
    const hx_schema *sub;      /* STRUCT, LIST, MAP */
} hx_field;

struct hx_schema {
    const char *name;
    size_t size;                  /* sizeof the struct (list/map elements) */
    int (*init)(void *elem);      /* element defaults; 0 or -1 (no memory) */
    const hx_field *fields;
    size_t n;
};

/* The whole configuration (fields of hx_config). */
extern const hx_schema hx__config_schema;

const hx_field *hx__schema_find(const hx_schema *s, const char *name);
/* Releases everything a struct described by s owns (not the struct). */
void hx__schema_free(const hx_schema *s, void *base);
/* Releases what one field of the struct at base owns (lists: all elements,
 * leaving count 0 and the pointers NULL). */
void hx__field_free(const hx_field *f, void *base);
void hx__strlist_free(hx_strlist *l);
void hx__kvlist_free(hx_kvlist *l);
/* Post-load fixes: route methods from the handler, "rate-limit" alias,
 * backup names. 0 or -1 when out of memory. */
int hx__config_finalize(hx_config *cfg);
/* Puts the --host/--port/HAPAX_* overrides into cfg (override.c); called
 * by hx__config_finalize. Returns 0 or -1 when out of memory. */
int hx__config_apply_overrides(hx_config *cfg);

/* Sorts errs->items[from..n) by the LINE:COL after "name:"; errors without
 * a position keep their order after the others. */
void hx__errors_sort(hx_config_errors *errs, size_t from, const char *name);
/* Adds "SRC:LINE:COL: PATH: message" to errs, leaving out the position when
 * line is 0, SRC when it is NULL and PATH when it is empty: the loader and
 * the validator word their errors the same way through it. */
int hx__errors_vat(hx_config_errors *errs, const char *src, size_t line, size_t col, const char *path,
                   const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

/* YAML positions of loaded values, by path ("server.port", "routes[1]"),
 * so that validation errors of a loaded config can point into the file. */
typedef struct {
    char *path;
    int line;   /* 1-based */
    int col;    /* 1-based */
    bool expanded; /* the value came from ${...}: never quoted in messages */
} hx_mark;

struct hx_config_marks {
    char *source;
    hx_mark *items;
    size_t n, cap;
};

/* input.c: the file and its shape, before the document is built. */
#define HX__CONFIG_MAX_BYTES (4 * 1024 * 1024)
/* Nesting of mappings and lists. libyaml's scanner is quadratic in the
 * nesting depth (100k levels took 23 s), so a first pass over the events
 * stops at this depth, before the document is built. */
#define HX__CONFIG_MAX_DEPTH 64
/* The file's bytes (a regular file of at most HX__CONFIG_MAX_BYTES), or
 * NULL after adding an error. */
char *hx__config_read_file(const char *path, size_t *len, hx_config_errors *errs);
/* False after reporting nesting deeper than HX__CONFIG_MAX_DEPTH (or
 * running out of memory: *oom). Syntax errors are left to the parse. */
bool hx__config_depth_ok(const char *yaml, size_t len, const char *name, hx_config_errors *errs,
                         bool *oom);

int hx__marks_add(struct hx_config_marks *m, const char *path, int line, int col);
/* The mark of path, else of its closest parent ("routes[1].path" falls back
 * to "routes[1]"), else NULL. */
const hx_mark *hx__marks_find(const struct hx_config_marks *m, const char *path);
hx_mark *hx__marks_find_mut(struct hx_config_marks *m, const char *path);
void hx__marks_free(struct hx_config_marks *m);

#endif
