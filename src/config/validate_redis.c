/* state.redis and llm.cache.redis: a Redis connection (docs/scale-out.md). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/validate_int.h"
#include "state/store.h"

#define PATH_BUF 256

void hx__check_redis(hx_vctx *v, const char *path, const hx_cfg_redis *r)
{
    char p[PATH_BUF], host[256];
    int port;
    if (hx_store_redis_parse_address(r->address, host, sizeof host, &port) != 0) {
        snprintf(p, sizeof p, "%s.address", path);
        hx__verr(v, p, "invalid Redis address (host:port or [v6]:port)");
    }
    if (strlen(r->prefix) > HX_STORE_PREFIX_MAX) {
        snprintf(p, sizeof p, "%s.prefix", path);
        hx__verr(v, p, "longer than %d bytes", HX_STORE_PREFIX_MAX);
    }
    const char *files[][2] = {{"tls_ca_file", r->tls_ca_file}, {"tls_cert_file", r->tls_cert_file},
                              {"tls_key_file", r->tls_key_file}};
    for (size_t i = 0; r->tls && i < sizeof files / sizeof files[0]; i++)
        if (*files[i][1] && access(files[i][1], R_OK) != 0) {
            snprintf(p, sizeof p, "%s.%s", path, files[i][0]);
            hx__verr(v, p, "cannot read %s: %s", files[i][1], strerror(errno));
        }
    if (r->tls && (!*r->tls_cert_file) != (!*r->tls_key_file)) {
        snprintf(p, sizeof p, "%s.tls_cert_file", path);
        hx__verr(v, p, "a client certificate needs both tls_cert_file and tls_key_file");
    }
    if (!r->tls && (*r->tls_ca_file || *r->tls_cert_file || *r->tls_key_file || *r->tls_server_name)) {
        snprintf(p, sizeof p, "%s.tls", path);
        hx__verr(v, p, "tls_* settings are given but tls is false");
    }
    if (*r->username && !*r->password) {
        snprintf(p, sizeof p, "%s.username", path);
        hx__verr(v, p, "an ACL user needs a password");
    }
    const hx_cfg_sentinel *st = &r->sentinel;
    if (*st->master_name && st->addresses.n == 0) {
        snprintf(p, sizeof p, "%s.sentinel.addresses", path);
        hx__verr(v, p, "list the sentinels to ask for %s", st->master_name);
    }
    if (!*st->master_name && st->addresses.n > 0) {
        snprintf(p, sizeof p, "%s.sentinel.master_name", path);
        hx__verr(v, p, "name the primary the sentinels watch");
    }
    for (size_t i = 0; i < st->addresses.n; i++)
        if (strchr(st->addresses.items[i], ',') ||
            hx_store_redis_parse_address(st->addresses.items[i], host, sizeof host, &port) != 0) {
            snprintf(p, sizeof p, "%s.sentinel.addresses[%zu]", path, i);
            hx__verr(v, p, "invalid sentinel address (host:port)");
        }
}
