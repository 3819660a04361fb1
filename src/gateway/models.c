/* GET /v1/models and GET /v1/models/{id}: the names a request may route
 * by, in the client's shape. A request with an `anthropic-version` header
 * comes from an Anthropic client and gets the Anthropic Models API shape
 * ({"type":"model","id","display_name","created_at"}); any other gets
 * OpenAI's ({"id","object":"model","created","owned_by"}). */
#include "gateway/models.h"

#include <stdio.h>
#include <string.h>

#include "config/model_names.h"
#include "gateway/gateway.h"
#include "util/alloc.h"
#include "util/json.h"

/* The list: names and aliases of every provider. Far above what a
 * configuration makes. */
#define MODELS_TEXT_MAX ((size_t)4 << 20)
/* A model id in a path: longer ones are not served by anything. */
#define MODEL_ID_MAX 255
/* Models have no creation date here: the Unix epoch, in both shapes. */
#define CREATED_AT "1970-01-01T00:00:00Z"

typedef struct {
    const char *id, *owner;
} entry;

static bool anthropic_client(hx_req *r)
{
    return hx_headers_get(&r->headers, "anthropic-version") != NULL;
}

static int model_json(hx_buf *b, bool anthropic, const char *id, const char *owner)
{
    if (anthropic)
        return hx_buf_append_str(b, "{\"type\":\"model\",\"id\":") || hx_json_cstr(b, id) ||
               hx_buf_append_str(b, ",\"display_name\":") || hx_json_cstr(b, id) ||
               hx_buf_append_str(b, ",\"created_at\":\"" CREATED_AT "\"}");
    return hx_buf_append_str(b, "{\"id\":") || hx_json_cstr(b, id) ||
           hx_buf_append_str(b, ",\"object\":\"model\",\"created\":0,\"owned_by\":") || hx_json_cstr(b, owner) ||
           hx_buf_append(b, "}", 1);
}

/* Every routable name once, first owner wins: each provider's model, name
 * and aliases (wildcards as written, "claude-*"), in chain order, then the
 * model map's names (owned by the first provider serving the target).
 * Returns how many were written to out (capacity cap). */
static size_t collect(const hx_providers *ps, entry *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < ps->n; i++) {
        const hx_provider *p = &ps->items[i];
        size_t na = p->aliases ? p->aliases->n : 0;
        for (size_t j = 0; j < na + 2; j++) {
            const char *id = j == 0 ? p->model : j == 1 ? p->name : p->aliases->items[j - 2];
            if (n < cap)
                out[n++] = (entry){id, p->name};
        }
    }
    for (size_t i = 0; ps->model_map && i < ps->model_map->n && n < cap; i++) {
        int idx;
        if (hx_providers_chain(ps, ps->model_map->items[i].value, &idx, NULL, 1) == 1)
            out[n++] = (entry){ps->model_map->items[i].key, ps->items[idx].name};
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = out[i].id[0] == '\0';
        for (size_t j = 0; j < kept && !seen; j++)
            seen = strcmp(out[j].id, out[i].id) == 0;
        if (!seen)
            out[kept++] = out[i];
    }
    return kept;
}

static size_t names_cap(const hx_providers *ps)
{
    size_t cap = ps->model_map ? ps->model_map->n : 0;
    for (size_t i = 0; i < ps->n; i++)
        cap += 2 + (ps->items[i].aliases ? ps->items[i].aliases->n : 0);
    return cap ? cap : 1;
}

void hx_handle_models(hx_req *r)
{
    hx_gw_worker *w = hx_req_ctx(r, HX_CTX_APP);
    if (w)
        hx_gw_worker_sync(w);
    const hx_providers *ps = w ? &w->gw->providers : NULL;
    size_t cap = ps ? names_cap(ps) : 1;
    entry *e = hx_calloc(cap, sizeof *e);
    if (e == NULL) {
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    size_t n = ps ? collect(ps, e, cap) : 0;
    bool anth = anthropic_client(r);
    hx_buf b;
    hx_buf_init(&b, MODELS_TEXT_MAX);
    int rc = hx_buf_append_str(&b, anth ? "{\"data\":[" : "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = (i && hx_buf_append(&b, ",", 1)) || model_json(&b, anth, e[i].id, e[i].owner);
    if (rc == 0 && anth) /* one page: the Anthropic SDK pages by these */
        rc = hx_buf_append_str(&b, "],\"has_more\":false,\"first_id\":") ||
             (n ? hx_json_cstr(&b, e[0].id) : hx_buf_append_str(&b, "null")) ||
             hx_buf_append_str(&b, ",\"last_id\":") ||
             (n ? hx_json_cstr(&b, e[n - 1].id) : hx_buf_append_str(&b, "null")) || hx_buf_append_str(&b, "}\n");
    else if (rc == 0)
        rc = hx_buf_append_str(&b, "]}\n");
    if (rc != 0)
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
    else
        hx_res_send(r, 200, "application/json", b.data, b.len);
    hx_buf_free(&b);
    hx_free(e);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes the path's id (SDKs send "meta-llama%2FLlama-3-8b" or
 * the '/' as it is). False when it is too long or decodes to a NUL. */
static bool decode_id(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    for (; *in; in++) {
        char c = *in;
        if (c == '%' && hexval(in[1]) >= 0 && hexval(in[2]) >= 0) {
            c = (char)(hexval(in[1]) * 16 + hexval(in[2]));
            in += 2;
        }
        if (c == '\0' || n + 1 >= outlen)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return n > 0;
}

void hx_handle_model(hx_req *r)
{
    hx_gw_worker *w = hx_req_ctx(r, HX_CTX_APP);
    if (w)
        hx_gw_worker_sync(w);
    char id[MODEL_ID_MAX + 1];
    int idx = -1;
    bool ok = decode_id(r->route_param ? r->route_param : "", id, sizeof id);
    if (ok && w && hx_providers_chain(&w->gw->providers, id, &idx, NULL, 1) != 1)
        ok = false;
    if (!ok || idx < 0) {
        char msg[700], some[256] = "";
        if (w)
            hx_providers_sample(&w->gw->providers, some, sizeof some);
        /* The id comes from the client: bound what is echoed back. */
        snprintf(msg, sizeof msg, "The model '%.64s' is not served by this gateway; it serves %s (GET /v1/models "
                 "lists them all)", ok ? id : "(unreadable id)", *some ? some : "none");
        hx_res_error(r, HX_ERR_MODEL_NOT_FOUND, msg);
        return;
    }
    hx_buf b;
    hx_buf_init(&b, MODELS_TEXT_MAX);
    if (model_json(&b, anthropic_client(r), id, w->gw->providers.items[idx].name) != 0 ||
        hx_buf_append(&b, "\n", 1) != 0)
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
    else
        hx_res_send(r, 200, "application/json", b.data, b.len);
    hx_buf_free(&b);
}
