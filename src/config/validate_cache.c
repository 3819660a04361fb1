/* llm.cache validation (docs/cache.md): only when enabled. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/validate_int.h"

void hx__check_cache(hx_vctx *v)
{
    const hx_cfg_cache *c = &hx__vctx_cfg(v)->llm.cache;
    if (!c->enable)
        return;
    if (c->ttl <= 0)
        hx__verr(v, "llm.cache.ttl", "must be greater than 0");
    if (c->max_size < 1)
        hx__verr(v, "llm.cache.max_size", "must be at least 1");
    if (strcmp(c->type, "file") == 0) {
        struct stat st;
        if (!*c->dir)
            hx__verr(v, "llm.cache.dir", "type file needs a directory");
        /* A missing one is made at start (its parent must let us). */
        else if (stat(c->dir, &st) == 0 && (!S_ISDIR(st.st_mode) || access(c->dir, W_OK | X_OK) != 0))
            hx__verr(v, "llm.cache.dir", "not a writable directory: %.200s", c->dir);
    }
    if (strcmp(c->type, "redis") != 0)
        return;
    hx__check_redis(v, "llm.cache.redis", &c->redis);
    if (strcmp(c->redis.on_failure, "deny") == 0)
        hx__verr(v, "llm.cache.redis.on_failure",
                 "deny means nothing for a cache: a Redis that cannot answer is a miss (leave it local)");
}
