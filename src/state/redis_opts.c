#include "state/redis_opts.h"

#include <string.h>

#include "util/alloc.h"

enum { S_ADDRESS, S_PREFIX, S_USER, S_PASSWORD, S_MASTER, S_SENTINELS, S_CA, S_NAME, S_CERT, S_KEY, S_COUNT };

int hx_redis_opts_from_cfg(const hx_cfg_redis *r, hx_store_redis_opts *o, char **owned)
{
    const hx_strlist *sl = &r->sentinel.addresses;
    size_t slen = 0;
    for (size_t i = 0; i < sl->n; i++)
        slen += strlen(sl->items[i]) + 1;
    const char *strs[S_COUNT] = {r->address, r->prefix,          r->username,      r->password,
                                 r->sentinel.master_name, "",   r->tls_ca_file,   r->tls_server_name,
                                 r->tls_cert_file, r->tls_key_file};
    size_t total = slen + 1;
    for (int i = 0; i < S_COUNT; i++) {
        if (strs[i] == NULL) /* a section built by hand (tests): unset is empty */
            strs[i] = "";
        total += strlen(strs[i]) + 1;
    }
    char *buf = hx_malloc(total);
    if (buf == NULL)
        return -1;
    const char *at[S_COUNT];
    size_t off = 0;
    for (int i = 0; i < S_COUNT; i++) {
        at[i] = buf + off;
        if (i == S_SENTINELS) { /* "host:port,host:port" */
            for (size_t k = 0; k < sl->n; k++) {
                size_t n = strlen(sl->items[k]);
                if (k)
                    buf[off++] = ',';
                memcpy(buf + off, sl->items[k], n);
                off += n;
            }
            buf[off++] = '\0';
            continue;
        }
        size_t n = strlen(strs[i]) + 1;
        memcpy(buf + off, strs[i], n);
        off += n;
    }
    *o = (hx_store_redis_opts){
        .address = at[S_ADDRESS],
        .prefix = at[S_PREFIX],
        .username = at[S_USER],
        .password = at[S_PASSWORD],
        .db = (int)r->db,
        .connect_timeout_ms = r->connect_timeout,
        .command_timeout_ms = r->command_timeout,
        .sentinel_master = at[S_MASTER],
        .sentinels = at[S_SENTINELS],
        .tls = r->tls,
        .tls_ca_file = at[S_CA],
        .tls_server_name = at[S_NAME],
        .tls_cert_file = at[S_CERT],
        .tls_key_file = at[S_KEY],
    };
    *owned = buf;
    return 0;
}
