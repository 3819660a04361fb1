/* Small JSON writing helpers for hot paths where building a json-c tree
 * per chunk would cost more than the chunk itself. */
#ifndef HX_UTIL_JSON_H
#define HX_UTIL_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Deepest nesting accepted from an upstream (and the default for clients,
 * server.max_json_depth). */
#define HX_JSON_MAX_DEPTH 64
/* The highest server.max_json_depth may be set to (the checker recurses
 * once per level). */
#define HX_JSON_DEPTH_CAP 1024
/* Default of server.max_json_elements: values (objects, arrays, strings,
 * numbers, literals) in one client body, an object counting as
 * HX_JSON_OBJECT_WEIGHT. Measured with json-c 0.16: 100k values take at
 * most ~10 MB and ~30 ms of CPU to build, whatever the body holds. */
#define HX_JSON_MAX_ELEMENTS 100000
/* What one object counts for: json-c preallocates a 16-slot hash table
 * for each (~800 bytes, ~2.4 us against ~0.1 us for a number or string),
 * so "[{},{},...]" is the costliest body per value by far. */
#define HX_JSON_OBJECT_WEIGHT 8
/* The highest server.max_json_elements may be set to, and the bound on
 * any other parse (an upstream body or event, hx_json_parse). */
#define HX_JSON_ELEMENTS_CAP 1000000
/* Token counts read from upstreams are clamped to [0, this]: far above
 * any real count, far enough below INT64_MAX that sums cannot overflow. */
#define HX_JSON_TOKENS_MAX ((int64_t)1 << 53)

/* Appends s[0..len) as a JSON string literal, quotes included. Control
 * characters become \uXXXX; invalid UTF-8 is passed through unchanged
 * (upstream text is relayed as received). Returns 0 or -1. */
int hx_json_str(hx_buf *out, const char *s, size_t len);
/* Same for a NUL-terminated string (NULL gives null). */
int hx_json_cstr(hx_buf *out, const char *s);

/* The strict RFC 8259 check that runs before any json-c object is built:
 * one pass, no allocation, bounded depth and value count. json-c alone is
 * lenient (NaN, Infinity, comments, single quotes, trailing commas) and
 * clamps integers it cannot hold, and it spends ~1 KB per value. */
typedef enum {
    HX_JSON_OK = 0,
    HX_JSON_E_SYNTAX,   /* not RFC 8259 JSON (why says what) */
    HX_JSON_E_DEPTH,    /* nested deeper than max_depth */
    HX_JSON_E_ELEMENTS, /* more than max_elements values */
    HX_JSON_E_INTEGER,  /* an integer json-c cannot hold exactly */
} hx_json_status;

typedef struct {
    int max_depth;        /* 1..HX_JSON_DEPTH_CAP; 0 = HX_JSON_MAX_DEPTH */
    size_t max_elements;  /* 0 = HX_JSON_ELEMENTS_CAP */
    bool int_range;       /* integers must lie in [INT64_MIN, UINT64_MAX] */
} hx_json_limits;

typedef struct {
    hx_json_status status;
    const char *why;      /* static text for HX_JSON_E_SYNTAX, else NULL */
    size_t offset;        /* byte of the error */
    size_t elements;      /* values counted, objects weighted (up to the error) */
} hx_json_report;

/* Checks that s[0..len) is exactly one JSON value (whitespace around it
 * allowed) within lim (NULL = defaults). Returns rep->status. */
hx_json_status hx_json_check(const char *s, size_t len, const hx_json_limits *lim, hx_json_report *rep);
/* One line for a client: "NaN and Infinity are not JSON (byte 12)". */
void hx_json_report_text(const hx_json_report *rep, const hx_json_limits *lim, char *out, size_t outlen);

/* Strict parse of exactly one JSON value in s[0..len) (surrounding
 * whitespace allowed, anything else after the value is an error): passes
 * hx_json_check with the default limits first. NULL on any error. The
 * caller puts the result. */
json_object *hx_json_parse(const char *s, size_t len);
/* Adds v under k in object o, taking v's reference even on failure.
 * 0, or -1 when v is NULL (its constructor ran out of memory) or the add
 * failed: chains of constructors need one check at the end. */
int hx_json_set(json_object *o, const char *k, json_object *v);
/* Appends v to array a under the same rules as hx_json_set. */
int hx_json_push(json_object *a, json_object *v);
/* The same with lim (already checked by the caller or not). */
json_object *hx_json_parse_limits(const char *s, size_t len, const hx_json_limits *lim);

/* A token count from an upstream (int or double member; NULL, negative,
 * NaN or any other type = 0) clamped to [0, HX_JSON_TOKENS_MAX]. */
int64_t hx_json_tokens(json_object *v);
/* a + b for counts, saturating at HX_JSON_TOKENS_MAX (negatives count 0). */
int64_t hx_tokens_add(int64_t a, int64_t b);

/* True when s[0..len) is exactly one well-formed JSON value (RFC 8259
 * syntax, nesting up to HX_JSON_MAX_DEPTH). Allocates nothing: used to
 * check an upstream body that is relayed as it is. */
bool hx_json_valid(const char *s, size_t len);

/* Walking a validated JSON text without building objects (a request that
 * is relayed as it is needs only a few of its members).
 * hx_json_member: one `"key": value` of an object; key points inside the
 * quotes (raw, `key_escaped` when it holds a backslash), value is the raw
 * text of the value. */
typedef struct {
    const char *key;
    size_t klen;
    bool key_escaped;
    const char *val;
    size_t vlen;
} hx_json_member;

/* Next member of the object s[0..len) (a whole validated object text);
 * *pos starts at 0. Returns 1 with *m, 0 after the last member, -1 when s
 * is not an object. */
int hx_json_next_member(const char *s, size_t len, size_t *pos, hx_json_member *m);
/* Next element of the array s[0..len); same contract. */
int hx_json_next_element(const char *s, size_t len, size_t *pos, const char **val, size_t *vlen);

/* Copies the object text s[0..len) (validated) to out with the top-level
 * member `key` set to the JSON text value[0..vlen): replaced where it is,
 * or inserted first when absent; everything else is kept byte for byte.
 * Returns 0, or -1 when s is not an object, when `key` appears more than
 * once or any top-level name is escaped (a reader might see another
 * value than the one replaced), or out of memory. */
int hx_json_replace_member(const char *s, size_t len, const char *key, const char *value, size_t vlen,
                           hx_buf *out);

/* The first integer value of a member named `key` anywhere in the text
 * ("usage":{"prompt_tokens":12,...} → 12), or -1; clamped to
 * HX_JSON_TOKENS_MAX. A scan, not a parse: only for bookkeeping on bodies
 * already validated. */
int64_t hx_json_find_int(const char *s, size_t len, const char *key);

#endif
