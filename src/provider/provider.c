#include "provider/provider.h"

#include <stdio.h>
#include <string.h>

#include "config/model_names.h"
#include "obs/log.h"
#include "util/alloc.h"

/* Which variable to set, for the warning and the 503 message. */
static const char *key_var(const char *provider)
{
    if (strcmp(provider, "anthropic") == 0)
        return "ANTHROPIC_API_KEY";
    if (strcmp(provider, "openai") == 0)
        return "OPENAI_API_KEY";
    return "the provider's api_key";
}

static int fill(hx_provider *p, const char *name, const char *type, const char *model, const char *key,
                const char *endpoint, const hx_strlist *aliases, int index, char *err, size_t errlen)
{
    p->ad = hx_adapter_find(type);
    if (p->ad == NULL) {
        snprintf(err, errlen, "unknown provider type '%s'", type);
        return -1;
    }
    bool custom = endpoint && *endpoint;
    p->name = hx_strdup(name && *name ? name : type);
    p->model = hx_strdup(model ? model : "");
    p->api_key = hx_strdup(key ? key : "");
    p->base_url = hx_strdup(custom ? endpoint : p->ad->default_endpoint);
    if (!p->name || !p->model || !p->api_key || !p->base_url) {
        hx_free(p->name);
        hx_free(p->model);
        hx_free(p->api_key);
        hx_free(p->base_url);
        memset(p, 0, sizeof *p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->aliases = aliases;
    p->index = index;
    p->usable = true;
    if (p->ad->key_required && !custom && p->api_key[0] == '\0') {
        p->usable = false;
        snprintf(p->reason, sizeof p->reason, "%s has no API key: set %s", p->name, key_var(type));
    }
    return 0;
}

static bool name_taken(const hx_providers *ps, size_t upto, const char *name)
{
    for (size_t j = 0; j < upto; j++)
        if (strcmp(ps->items[j].name, name) == 0)
            return true;
    return false;
}

int hx_providers_build(const hx_config *cfg, hx_providers *out, bool warn, char *err, size_t errlen)
{
    const hx_cfg_llm *l = &cfg->llm;
    memset(out, 0, sizeof *out);
    out->items = hx_calloc(1 + l->n_backup_providers, sizeof *out->items);
    if (out->items == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    out->model_map = &l->model_map;
    if (fill(&out->items[0], l->name, l->provider, l->model, l->api_key, l->endpoint, &l->aliases, 0, err,
             errlen) != 0)
        goto fail;
    out->n = 1;
    for (size_t i = 0; i < l->n_backup_providers; i++) {
        const hx_cfg_backup *b = &l->backup_providers[i];
        hx_provider *p = &out->items[out->n];
        if (fill(p, b->name, b->provider, b->model, b->api_key, b->endpoint, &b->aliases, (int)out->n, err, errlen) != 0)
            goto fail;
        out->n++;
        /* Names must be unique: a second "openai" becomes "openai-2" (or
         * the next free suffix). */
        if (name_taken(out, out->n - 1, p->name)) {
            char nm[160];
            for (size_t k = 2;; k++) {
                snprintf(nm, sizeof nm, "%s-%zu", p->name, k);
                if (!name_taken(out, out->n - 1, nm))
                    break;
            }
            hx_free(p->name);
            if ((p->name = hx_strdup(nm)) == NULL)
                goto fail;
        }
    }
    for (size_t i = 0; i < out->n; i++) {
        /* responses_api auto: native only for OpenAI itself, since many
         * OpenAI-compatible servers (Ollama's /v1, vLLM) lack /responses. */
        hx_provider *p = &out->items[i];
        const char *mode = i == 0 ? l->responses_api : l->backup_providers[i - 1].responses_api;
        p->responses_native = p->ad == &hx_adapter_openai &&
                              (strcmp(mode, "native") == 0 ||
                               (strcmp(mode, "auto") == 0 && strcmp(p->base_url, p->ad->default_endpoint) == 0));
    }
    for (size_t i = 0; warn && i < out->n; i++)
        if (!out->items[i].usable)
            HX_LOG_WARN("provider unusable", HX_F_STR("provider", out->items[i].name),
                        HX_F_STR("reason", out->items[i].reason));
    return 0;
fail:
    hx_providers_free(out);
    return -1;
}

void hx_providers_free(hx_providers *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        hx_free(ps->items[i].name);
        hx_free(ps->items[i].model);
        hx_free(ps->items[i].api_key);
        hx_free(ps->items[i].base_url);
    }
    /* a failed build may have filled one more than n */
    hx_free(ps->items);
    ps->items = NULL;
    ps->n = 0;
}

/* Rule 2 of hx_providers_chain. */
static bool serves_exact(const hx_provider *p, const char *model)
{
    bool ollama = p->ad == &hx_adapter_ollama;
    if (hx_model_same(p->model, model, ollama) || strcmp(p->name, model) == 0)
        return true;
    for (size_t i = 0; p->aliases && i < p->aliases->n; i++)
        if (hx_model_same(p->aliases->items[i], model, ollama))
            return true;
    return false;
}

/* Rule 4: the best wildcard alias of p for model (0 = none). */
static size_t wildcard_score(const hx_provider *p, const char *model)
{
    size_t best = 0;
    for (size_t i = 0; p->aliases && i < p->aliases->n; i++) {
        size_t s = hx_model_wildcard_match(p->aliases->items[i], model);
        if (s > best)
            best = s;
    }
    return best;
}

static size_t chain_exact(const hx_providers *ps, const char *model, int *idx, const char **send, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < ps->n && n < cap; i++)
        if (serves_exact(&ps->items[i], model)) {
            if (send)
                send[n] = ps->items[i].model;
            idx[n++] = (int)i;
        }
    return n;
}

/* Wildcard matches by descending prefix length, ties in chain order; the
 * provider is asked for the model by the name asked. */
static size_t chain_wildcard(const hx_providers *ps, const char *model, int *idx, const char **send, size_t cap)
{
    size_t n = 0, level = (size_t)-1;
    for (;;) {
        size_t next = 0;
        for (size_t i = 0; i < ps->n; i++) {
            size_t s = wildcard_score(&ps->items[i], model);
            if (s < level && s > next)
                next = s;
        }
        if (next == 0)
            return n;
        for (size_t i = 0; i < ps->n && n < cap; i++)
            if (wildcard_score(&ps->items[i], model) == next) {
                if (send)
                    send[n] = model;
                idx[n++] = (int)i;
            }
        level = next;
    }
}

static const char *mapped(const hx_providers *ps, const char *model)
{
    for (size_t i = 0; ps->model_map && i < ps->model_map->n; i++)
        if (strcmp(ps->model_map->items[i].key, model) == 0)
            return ps->model_map->items[i].value;
    return NULL;
}

size_t hx_providers_chain(const hx_providers *ps, const char *model, int *idx, const char **send, size_t cap)
{
    if (model == NULL || *model == '\0' || strcmp(model, "default") == 0) {
        size_t n = 0;
        for (; n < ps->n && n < cap; n++) {
            if (send)
                send[n] = ps->items[n].model;
            idx[n] = (int)n;
        }
        return n;
    }
    size_t n = chain_exact(ps, model, idx, send, cap);
    const char *to = n ? NULL : mapped(ps, model);
    if (to) { /* validation made sure the target is served and not mapped again */
        model = to;
        n = chain_exact(ps, model, idx, send, cap);
    }
    return n ? n : chain_wildcard(ps, model, idx, send, cap);
}

/* The k-th name for the sample: each provider's model, then the aliases,
 * then the model map's names; NULL past the end. */
static const char *sample_name(const hx_providers *ps, size_t k)
{
    if (k < ps->n)
        return ps->items[k].model;
    k -= ps->n;
    for (size_t i = 0; i < ps->n; i++) {
        size_t na = ps->items[i].aliases ? ps->items[i].aliases->n : 0;
        if (k < na)
            return ps->items[i].aliases->items[k];
        k -= na;
    }
    return ps->model_map && k < ps->model_map->n ? ps->model_map->items[k].key : NULL;
}

#define SAMPLE_NAMES 5

void hx_providers_sample(const hx_providers *ps, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    size_t used = 0, shown = 0;
    bool more = false;
    const char *nm;
    for (size_t k = 0; !more && (nm = sample_name(ps, k)) != NULL; k++) {
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(sample_name(ps, j), nm) == 0;
        if (seen || *nm == '\0')
            continue;
        size_t need = (used ? 2 : 0) + strlen(nm);
        if (shown == SAMPLE_NAMES || used + need + sizeof ", ..." > outlen) {
            more = true;
            break;
        }
        used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", nm);
        shown++;
    }
    if (more && used + sizeof ", ..." <= outlen)
        snprintf(out + used, outlen - used, "%s...", used ? ", " : "");
}
