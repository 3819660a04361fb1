/* Loading a configuration from YAML text in a unit test: shared by the
 * suites that need a real hx_config (routing, gateway, prober...). */
#ifndef HX_TEST_CFG_LOAD_H
#define HX_TEST_CFG_LOAD_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"

/* yaml must load; the test fails with the first error otherwise. */
static inline hx_config *load_cfg(const char *yaml)
{
    hx_config_errors e = {0};
    hx_config *c = hx_config_load_string(yaml, strlen(yaml), "test.yaml", &e);
    if (c == NULL)
        fail_msg("config did not load: %s", e.n ? e.items[0] : "?");
    hx_config_errors_free(&e);
    return c;
}

/* yaml must be refused with an error containing needle. */
static inline void load_bad(const char *yaml, const char *needle)
{
    hx_config_errors e = {0};
    hx_config *c = hx_config_load_string(yaml, strlen(yaml), "test.yaml", &e);
    bool found = false;
    for (size_t i = 0; i < e.n; i++)
        found = found || strstr(e.items[i], needle) != NULL;
    if (c != NULL || !found) {
        for (size_t i = 0; i < e.n; i++)
            fprintf(stderr, "  %s\n", e.items[i]);
        hx_config_unref(c);
        hx_config_errors_free(&e);
        fail_msg("expected an error containing \"%s\" for:\n%s", needle, yaml);
    }
    hx_config_errors_free(&e);
}

#endif
