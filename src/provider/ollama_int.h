/* Private to the Ollama adapter: ollama.c (chat), ollama_params.c and
 * ollama_embed.c (OpenAI embeddings through /api/embed). */
#ifndef HX_PROVIDER_OLLAMA_INT_H
#define HX_PROVIDER_OLLAMA_INT_H

#include <json-c/json.h>
#include <stddef.h>

#include "provider/adapter.h"

/* URL (base + path), method and the optional Bearer key of a request. */
int hx_oll_start_request(const hx_provider *p, const char *path, const char *method, hx_up_request *out);

extern const hx_translated hx_oll_embeddings;

/* Every member of the canonical request is carried by the Ollama request
 * or asks for nothing; the rest is refused by name. 0 or -1 with err. */
int hx_oll_check_members(const hx_provider *p, json_object *canon, char *err, size_t errlen);
/* The tool a canonical tool_choice forces (its "function" object, borrowed
 * from canon, with a non-empty name and an object or absent "parameters"),
 * *fn = NULL when none is forced. 0, or -1 with err: a choice Ollama
 * cannot carry ("required" among several tools, an unknown name, or with
 * a response_format). */
int hx_oll_forced_tool(const hx_provider *p, json_object *canon, json_object **fn, char *err, size_t errlen);
/* The forced tool fn as `format` in root (its parameters schema). 0 or -1. */
int hx_oll_map_forced(json_object *fn, json_object *root);
/* reasoning_effort / thinking → `think` in root. 0 or -1 with err. */
int hx_oll_map_think(const hx_provider *p, json_object *canon, json_object *root, char *err, size_t errlen);

#endif
