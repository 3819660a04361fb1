/* Small JSON writing helpers for hot paths where building a json-c tree
 * per chunk would cost more than the chunk itself. */
#ifndef HX_UTIL_JSON_H
#define HX_UTIL_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Deepest nesting accepted from a client or an upstream. */
#define HX_JSON_MAX_DEPTH 64

/* Appends s[0..len) as a JSON string literal, quotes included. Control
 * characters become \uXXXX; invalid UTF-8 is passed through unchanged
 * (upstream text is relayed as received). Returns 0 or -1. */
int hx_json_str(hx_buf *out, const char *s, size_t len);
/* Same for a NUL-terminated string (NULL gives null). */
int hx_json_cstr(hx_buf *out, const char *s);

/* Strict parse of exactly one JSON value in s[0..len) (surrounding
 * whitespace allowed, anything else after the value is an error; a bare
 * number at the very end is complete). NULL on any error. The caller puts
 * the result. */
json_object *hx_json_parse(const char *s, size_t len);

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

/* The first integer value of a member named `key` anywhere in the text
 * ("usage":{"prompt_tokens":12,...} → 12), or -1. A scan, not a parse:
 * only for bookkeeping on bodies already validated. */
int64_t hx_json_find_int(const char *s, size_t len, const char *key);

#endif
