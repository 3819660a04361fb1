/* Private to the Anthropic adapter (anthropic.c, anthropic_req.c) and the
 * Anthropic inbound API (gateway/anthropic_in.c): small json-c helpers and
 * the request builders. */
#ifndef HX_PROVIDER_ANTHROPIC_INT_H
#define HX_PROVIDER_ANTHROPIC_INT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "provider/adapter.h"
#include "util/json.h"

#define HX_ANTH_VERSION "2023-06-01"

/* Member k of an object, or NULL when o is no object, k is missing or null. */
static inline json_object *aj_get(json_object *o, const char *k)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, k, &v))
        return NULL;
    return v;
}

/* String member k, or NULL. */
static inline const char *aj_str(json_object *o, const char *k)
{
    json_object *v = aj_get(o, k);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Integer member k, or 0. */
static inline int64_t aj_int(json_object *o, const char *k)
{
    json_object *v = aj_get(o, k);
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
}

/* Parses exactly one JSON value from s[0..len) (only whitespace may
 * follow). NULL when malformed or out of memory. */
json_object *hx_anth_parse_json(const char *s, size_t len);

int hx_anth_build_chat(const hx_provider *p, json_object *canon, bool stream, hx_up_request *out, char *err,
                       size_t errlen);
int hx_anth_build_probe(const hx_provider *p, hx_up_request *out);
extern const hx_native hx_anth_native_count_tokens;

/* The members beyond messages, tools and sampling (anthropic_params.c):
 * thinking, output_config, metadata, service_tier; every other member the
 * canonical request carries must ask for nothing, else it is refused by
 * name. Call after max_tokens is in out. 0 or -1 with err. */
int hx_anth_conv_extras(const hx_provider *p, json_object *canon, json_object *out, char *err, size_t errlen);

/* The Messages API spoken natively (anthropic_native.c). */
/* The headers of a native Anthropic request (messages, count_tokens): the
 * provider's x-api-key (never the client's), the client's
 * anthropic-version (HX_ANTH_VERSION when it sent none) and every
 * anthropic-beta. 0, or -1 (out of memory, or a client value that is not
 * one short line: then the request is rebuilt). */
int hx_anth_native_headers(const hx_provider *p, const hx_req *r, hx_headers *out);
extern const hx_native hx_anth_native_messages;

#endif
