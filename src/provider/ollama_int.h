/* Private to the Ollama adapter (ollama.c, ollama_params.c). */
#ifndef HX_PROVIDER_OLLAMA_INT_H
#define HX_PROVIDER_OLLAMA_INT_H

#include <json-c/json.h>
#include <stddef.h>

#include "provider/adapter.h"

/* Every member of the canonical request is carried by the Ollama request
 * or asks for nothing; the rest is refused by name. 0 or -1 with err. */
int hx_oll_check_members(const hx_provider *p, json_object *canon, char *err, size_t errlen);
/* reasoning_effort / thinking → `think` in root. 0 or -1 with err. */
int hx_oll_map_think(const hx_provider *p, json_object *canon, json_object *root, char *err, size_t errlen);

#endif
