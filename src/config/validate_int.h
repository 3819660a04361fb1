/* Shared by the validator's files (validate.c, validate_tls.c, validate_cache.c). */
#ifndef HX_CONFIG_VALIDATE_INT_H
#define HX_CONFIG_VALIDATE_INT_H

#include "config/config.h"

typedef struct hx_vctx hx_vctx;

/* An error at a key path: "FILE:LINE:COL: path: msg" when the loader
 * recorded where path came from. */
void hx__verr(hx_vctx *v, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const hx_config *hx__vctx_cfg(const hx_vctx *v);

/* server.tls: files, certificates, keys, their dates and order. */
void hx__check_tls(hx_vctx *v);

/* A Redis connection (state.redis, llm.cache.redis). */
void hx__check_redis(hx_vctx *v, const char *path, const hx_cfg_redis *r);
/* llm.cache, when enabled. */
void hx__check_cache(hx_vctx *v);

#endif
