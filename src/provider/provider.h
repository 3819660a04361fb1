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
} hx_providers;

/* Builds the list from cfg. Logs one warning per unusable provider when
 * `warn`. Returns 0 or -1 (out of memory / unknown provider, reason in err). */
int hx_providers_build(const hx_config *cfg, hx_providers *out, bool warn, char *err, size_t errlen);
void hx_providers_free(hx_providers *ps);

/* The chain for a requested model: NULL/""/"default" → every provider in
 * order; a name equal to a provider's model or one of its aliases → the
 * providers that serve it, in order. Fills idx (capacity cap) and returns
 * how many; 0 when the model is unknown. */
size_t hx_providers_chain(const hx_providers *ps, const char *model, int *idx, size_t cap);

#endif
