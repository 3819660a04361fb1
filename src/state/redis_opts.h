/* A Redis section of the config (state.redis, llm.cache.redis) as store
 * options, with copies of its strings that outlive the config. */
#ifndef HX_STATE_REDIS_OPTS_H
#define HX_STATE_REDIS_OPTS_H

#include "config/config.h"
#include "state/store.h"

/* Fills o from r; *owned holds every string o points to (free it with
 * hx_free once no store will be made from o). 0, or -1 out of memory. */
int hx_redis_opts_from_cfg(const hx_cfg_redis *r, hx_store_redis_opts *o, char **owned);

#endif
