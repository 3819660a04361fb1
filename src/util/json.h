/* Small JSON writing helpers for hot paths where building a json-c tree
 * per chunk would cost more than the chunk itself. */
#ifndef HX_UTIL_JSON_H
#define HX_UTIL_JSON_H

#include <json-c/json.h>
#include <stddef.h>

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

#endif
