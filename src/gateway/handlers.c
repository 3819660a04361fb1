#include "gateway/handlers.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gateway/gateway.h"
#include "util/json.h"


static void handle_health(hx_req *r)
{
    static const char body[] = "{\"status\":\"ok\"}\n";
    hx_res_header(r, "Cache-Control", "no-store");
    hx_res_send(r, 200, "application/json", body, sizeof body - 1);
}

/* Handlers whose feature has not landed answer 501 with a clear message
 * rather than pretending to work. */
static void handle_not_implemented(hx_req *r)
{
    char msg[160];
    snprintf(msg, sizeof msg, "The handler for %s is not available in this build yet.", r->path);
    hx_res_error(r, HX_ERR_NOT_IMPLEMENTED, msg);
}

typedef int (*inbound_fn)(json_object *, json_object **, hx_in_info *, char *, size_t);

static bool is_json_type(const char *ct)
{
    if (ct == NULL)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", 16) != 0)
        return false;
    return ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ';
}

/* Common front of every LLM endpoint: JSON in, canonical request out. */
static void handle_llm(hx_req *r, inbound_fn parse, const char *bad_json_msg)
{
    if (!is_json_type(hx_headers_get(&r->headers, "content-type"))) {
        hx_res_error(r, HX_ERR_INVALID_REQUEST, "Content-Type must be application/json");
        return;
    }
    json_tokener *tok = json_tokener_new_ex(HX_JSON_MAX_DEPTH);
    if (tok == NULL) {
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    json_object *body = json_tokener_parse_ex(tok, r->body.data ? r->body.data : "", (int)r->body.len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (body == NULL || jerr != json_tokener_success || used != r->body.len) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: %s", bad_json_msg,
                 r->body.len == 0 ? "the body is empty"
                 : jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "data after the JSON value");
        json_object_put(body);
        hx_res_error(r, HX_ERR_INVALID_REQUEST, msg);
        return;
    }
    json_object *canon = NULL;
    hx_in_info info = {0};
    char err[256];
    if (parse(body, &canon, &info, err, sizeof err) != 0) {
        json_object_put(body);
        hx_res_error(r, HX_ERR_INVALID_REQUEST, err);
        return;
    }
    json_object_put(body);
    hx_proxy_start(r, canon, &info);
}

static void handle_chat(hx_req *r) { handle_llm(r, hx_in_openai_chat, "Invalid JSON body"); }
static void handle_completion(hx_req *r) { handle_llm(r, hx_in_completions, "Invalid completion request format"); }
static void handle_messages(hx_req *r) { handle_llm(r, hx_in_anthropic, "Invalid JSON body"); }

static int model_entry(hx_buf *b, bool *first, const char *id, const char *owner)
{
    int rc = hx_buf_append_str(b, *first ? "{\"id\":" : ",{\"id\":") || hx_json_cstr(b, id) ||
             hx_buf_append_str(b, ",\"object\":\"model\",\"created\":0,\"owned_by\":") || hx_json_cstr(b, owner) ||
             hx_buf_append(b, "}", 1);
    *first = false;
    return rc;
}

static void handle_models(hx_req *r)
{
    hx_gw_worker *w = r->app;
    hx_buf b;
    hx_buf_init(&b, 0);
    bool first = true;
    int rc = hx_buf_append_str(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; w && rc == 0 && i < w->gw->providers.n; i++) {
        const hx_provider *p = &w->gw->providers.items[i];
        rc = model_entry(&b, &first, p->model, p->name);
        for (size_t j = 0; rc == 0 && p->aliases && j < p->aliases->n; j++)
            rc = model_entry(&b, &first, p->aliases->items[j], p->name);
    }
    if (rc == 0)
        rc = hx_buf_append_str(&b, "]}\n");
    if (rc != 0)
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
    else
        hx_res_send(r, 200, "application/json", b.data, b.len);
    hx_buf_free(&b);
}

static const struct {
    const char *name;
    hx_handler_fn fn;
} handlers[] = {
    {"health", handle_health},
    {"completion", handle_completion},
    {"chat", handle_chat},
    {"messages", handle_messages},
    {"models", handle_models},
    {"provider_health", handle_not_implemented},
    {"metrics", handle_not_implemented},
};

hx_handler_fn hx_handlers_lookup(const char *name)
{
    for (size_t i = 0; name && i < sizeof handlers / sizeof handlers[0]; i++)
        if (strcmp(handlers[i].name, name) == 0)
            return handlers[i].fn;
    return NULL;
}
