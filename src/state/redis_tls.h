/* TLS to Redis for hiredis 0.14, which has none: a relay on the store's
 * loop. hiredis connects to a Unix socket in a private directory (mode
 * 0700: only this user reaches the plain side); each connection there is
 * carried to the Redis server over TLS (GnuTLS client: the server's
 * certificate verified against a CA file or the system's trust store and
 * the server name, an optional client certificate for Redis's
 * tls-auth-clients). Bounded: a side that cannot take what it is given
 * (past HX_REDIS_TLS_QUEUE_MAX queued) ends that connection, which the
 * store sees as a disconnect. */
#ifndef HX_STATE_REDIS_TLS_H
#define HX_STATE_REDIS_TLS_H

#include <stddef.h>
#include <uv.h>

#define HX_REDIS_TLS_QUEUE_MAX (8u << 20)

typedef struct {
    const char *ca_file;     /* "" = the system's trust store */
    const char *server_name; /* "" = the host the relay connects to */
    const char *cert_file;   /* client certificate and key ("" = none) */
    const char *key_file;
} hx_redis_tls_opts;

typedef struct hx_redis_tls hx_redis_tls;

/* NULL with a reason in err (files, memory, the socket). Free on the
 * loop's thread; the loop must run once more to release the handles. */
hx_redis_tls *hx_redis_tls_new(uv_loop_t *loop, const hx_redis_tls_opts *o, char *err, size_t errlen);
/* Where new relayed connections go (the address, or Sentinel's answer). */
void hx_redis_tls_set_target(hx_redis_tls *t, const char *host, int port);
/* The Unix socket hiredis connects to. */
const char *hx_redis_tls_path(const hx_redis_tls *t);
void hx_redis_tls_free(hx_redis_tls *t);

#endif
