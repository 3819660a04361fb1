#include "gateway/gateway.h"

#include <string.h>

#include "obs/log.h"
#include "util/alloc.h"

int hx_gateway_init(hx_gateway *g, hx_config *cfg, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    if (hx_providers_build(cfg, &g->providers, true, err, errlen) != 0)
        return -1;
    g->cfg = hx_config_ref(cfg);
    return 0;
}

void hx_gateway_free(hx_gateway *g)
{
    hx_providers_free(&g->providers);
    hx_config_unref(g->cfg);
    g->cfg = NULL;
}

void *hx_gateway_worker_init(void *loop, void *gateway)
{
    hx_gw_worker *w = hx_calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->gw = gateway;
    w->up = hx_upstream_new(loop);
    if (w->up == NULL) {
        hx_free(w);
        return NULL;
    }
    return w;
}

void hx_gateway_worker_fini(void *worker)
{
    hx_gw_worker *w = worker;
    hx_upstream_free(w->up);
    hx_free(w);
}
