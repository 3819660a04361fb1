#include "gateway/handlers.h"

#include <stdio.h>
#include <string.h>

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

static const struct {
    const char *name;
    hx_handler_fn fn;
} handlers[] = {
    {"health", handle_health},
    {"completion", handle_not_implemented},
    {"chat", handle_not_implemented},
    {"messages", handle_not_implemented},
    {"models", handle_not_implemented},
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
