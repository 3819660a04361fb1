/* The response cache on the request path (docs/cache.md): whether a
 * request may be answered from llm.cache, the lookup before the provider
 * chain, the replay of a hit (a stream as a stream) and the capture of a
 * fresh answer, stored only when it went to the client whole. */
#ifndef HX_GATEWAY_CACHE_GW_H
#define HX_GATEWAY_CACHE_GW_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "gateway/inbound.h"
#include "http/request.h"

/* What a miss collects for the cache, owned by the request's proxy. */
typedef struct hx_gw_cache_fill hx_gw_cache_fill;

/* In place of hx_proxy_start for the LLM APIs: answers from the cache,
 * or sends the request on (owning canon and info->ctx as it does). */
void hx_gw_cache_start(hx_req *r, json_object *canon, const hx_in_info *info);
/* hx_proxy_start with a fill (NULL: nothing is collected); owns it. */
void hx_proxy_start_fill(hx_req *r, json_object *canon, const hx_in_info *info, hx_gw_cache_fill *fill);

/* Bytes of a streamed answer as they go to the client. */
void hx_gw_cache_fill_add(hx_gw_cache_fill *f, const void *data, size_t len);
/* The answer went to the client whole (2xx, not cut, client still
 * there): stores it. body NULL: what fill_add collected (a stream).
 * f NULL does nothing. */
void hx_gw_cache_fill_commit(hx_gw_cache_fill *f, hx_req *r, const char *content_type, bool stream, const void *body,
                             size_t len);
void hx_gw_cache_fill_free(hx_gw_cache_fill *f);

#endif
