/* Internals of the Responses API's parser, shared by responses_in.c (the
 * input items) and responses_params.c (the other members). Not for use
 * outside src/gateway/responses*.c. */
#ifndef HX_GATEWAY_RESPONSES_INT_H
#define HX_GATEWAY_RESPONSES_INT_H

#include <string.h>

#include "gateway/responses.h"
#include "provider/anthropic_int.h"
#include "util/fail.h"

#define OOM(e, n) hx_fail((e), (n), "out of memory")

static inline bool is_type(json_object *o, json_type t)
{
    return o != NULL && json_object_is_type(o, t);
}

static inline bool is_null(json_object *o)
{
    return o == NULL || json_object_is_type(o, json_type_null);
}

/* String member k without NULs (names, ids, types meet C strings), or NULL. */
static inline const char *in_str(json_object *o, const char *k)
{
    const char *s = aj_str(o, k);
    return s && strlen(s) == (size_t)json_object_get_string_len(aj_get(o, k)) ? s : NULL;
}

static inline bool str_eq(json_object *s, const char *lit)
{
    size_t n = strlen(lit);
    return is_type(s, json_type_string) && (size_t)json_object_get_string_len(s) == n &&
           memcmp(json_object_get_string(s), lit, n) == 0;
}

/* Every member of a Responses request but model, input and the store's:
 * carried into the canonical request `out` or refused by name (err). */
int hx_resp_in_members(json_object *body, json_object *out, char *err, size_t errlen);

#endif
