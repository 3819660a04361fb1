/* How a request's model name meets the names a provider is configured with
 * (its model, name and aliases). Shared by the provider chain and by the
 * validation of llm.model_map, so both judge a name the same way. */
#ifndef HX_CONFIG_MODEL_NAMES_H
#define HX_CONFIG_MODEL_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* True when `configured` names the model `asked`: equal, or for an Ollama
 * provider equal once the implied ":latest" tag is added to either side
 * ("llama3.2" and "llama3.2:latest" are one model; no other tag is
 * implied). A wildcard is never equal to a name. */
bool hx_model_same(const char *configured, const char *asked, bool ollama);

/* A wildcard alias ends in '*' ("claude-*", "gpt-4o*", "*"). */
bool hx_model_is_wildcard(const char *alias);

/* How well the wildcard alias matches `asked`: its prefix length + 1 when
 * asked starts with the prefix (longer prefixes match better), 0 when it
 * does not or the alias is not a wildcard. */
size_t hx_model_wildcard_match(const char *alias, const char *asked);

#endif
