/* Configured providers at runtime: the primary (`llm`) and each of
 * `llm.backup_providers`, in order, with the adapter of their wire format.
 * Built once per configuration; immutable afterwards. */
#ifndef HX_PROVIDER_PROVIDER_H
#define HX_PROVIDER_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "provider/adapter.h"

struct hx_provider {
    char *name;                /* unique: "ollama", "anthropic", or the backup's name */
    const hx_adapter *ad;
    char *model;
    char *api_key;             /* secret: never logged */
    char *base_url;            /* endpoint, or the adapter's default */
    const hx_strlist *aliases; /* borrowed from the config (may be NULL) */
    bool usable;               /* false: missing key; see reason */
    char reason[192];          /* why unusable: names the variable to set */
    int index;                 /* position in the default chain */
    bool responses_native;     /* /v1/responses goes to {base_url}/responses as it is (responses_api) */
};

typedef struct {
    hx_provider *items;
    size_t n;
    const hx_kvlist *model_map; /* borrowed from the config: client name -> served name */
} hx_providers;

/* Builds the list from cfg. Logs one warning per unusable provider when
 * `warn`. Returns 0 or -1 (out of memory / unknown provider, reason in err). */
int hx_providers_build(const hx_config *cfg, hx_providers *out, bool warn, char *err, size_t errlen);
void hx_providers_free(hx_providers *ps);

/* The chain for a requested model, first rule that finds a provider:
 *  1. NULL/""/"default": every provider in order;
 *  2. exact: a provider's model, name or a non-wildcard alias (for Ollama
 *     ":latest" is implied on either side): those providers, in order;
 *  3. llm.model_map: the mapped name, by rules 2 and 4;
 *  4. wildcard aliases ("claude-*"): the matching providers, longest prefix
 *     first, then in chain order.
 * Fills idx and, when `send` is not NULL, send[i]: the model name to ask
 * provider idx[i] for (its configured model; for a wildcard match the name
 * asked, which is `model` itself or a string of the model map). Capacity
 * cap; returns how many; 0 when the model is unknown. */
size_t hx_providers_chain(const hx_providers *ps, const char *model, int *idx, const char **send, size_t cap);

/* A few served model names for an error message ("a, b, c, ..."); always
 * NUL-terminated, cut at a name boundary. */
void hx_providers_sample(const hx_providers *ps, char *out, size_t outlen);

#endif
