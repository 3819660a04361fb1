/* Test certificates for test_tls and test_tls_config: made at test time by
 * tests/certs/gen.sh in a temporary directory (no key is committed).
 * Use tls_certs_setup / tls_certs_teardown as the group fixtures and
 * tls_at("server.pem") for a file. */
#ifndef HX_TEST_TLS_CERTS_H
#define HX_TEST_TLS_CERTS_H

#include <stdio.h>
#include <stdlib.h>

static char tls_dir[256];

static const char *tls_at(const char *name)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", tls_dir, name);
    return p;
}

static int tls_certs_setup(void **state)
{
    (void)state;
    snprintf(tls_dir, sizeof tls_dir, "%s/hx-tls-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tls_dir) == NULL)
        return -1;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "sh tests/certs/gen.sh %s", tls_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int tls_certs_teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
    return system(cmd) == 0 ? 0 : -1;
}


#endif
