/* Config target: YAML text through the loader (defaults merged, ${VAR}
 * expanded from the variables hx_fuzz_setup sets, validated), then what a
 * start builds from a valid config: the printout, the route table and the
 * provider list. Invariant: a config is returned exactly when no error is. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/env.h"
#include "fuzz.h"
#include "gateway/handlers.h"
#include "http/router.h"
#include "middleware/middleware.h"
#include "provider/provider.h"
#include "util/alloc.h"

static FILE *devnull(void)
{
    static FILE *f;
    if (f == NULL)
        f = fopen("/dev/null", "w");
    return f;
}

int hx_fuzz_config(const uint8_t *data, size_t size)
{
    hx_fuzz_setup();
    hx_config_errors errs = {0};
    hx_config *c = hx_config_load_string((const char *)data, size, "fuzz.yaml", &errs);
    if (c == NULL) {
        /* An expanded value never appears in a message (HXF_KEY holds a
         * secret; only the text itself may quote it). */
        bool quoted = memmem(data, size, "sk-fuzz-env", 11) != NULL;
        for (size_t i = 0; i < errs.n; i++)
            FUZZ_CHECK(errs.items[i] != NULL && (quoted || strstr(errs.items[i], "sk-fuzz-env") == NULL));
        hx_config_errors_free(&errs);
    } else {
        FUZZ_CHECK(errs.n == 0);
        hx_config_errors_free(&errs);
        if (devnull())
            hx_config_print(c, devnull());
        char err[256];
        hx_router *rt = hx_router_build(c, hx_handlers_lookup, hx_middleware_lookup, err, sizeof err);
        hx_router_free(rt);
        hx_providers ps;
        memset(&ps, 0, sizeof ps);
        if (hx_providers_build(c, &ps, false, err, sizeof err) == 0)
            hx_providers_free(&ps);
        hx_config_unref(c);
    }
    /* The expander on the raw text too: any bytes, bounded output. */
    char *out = NULL;
    size_t olen = 0;
    bool had = false;
    hx_env_error e;
    memset(&e, 0, sizeof e);
    if (hx_env_expand((const char *)data, size, NULL, &out, &olen, &had, &e) == 0)
        FUZZ_CHECK(out != NULL && olen <= HX_ENV_MAX_VALUE + size);
    hx_free(out);
    return 0;
}
