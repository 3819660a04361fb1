#include "middleware/middleware.h"

#include <string.h>

#include "middleware/auth.h"
#include "middleware/queue.h"
#include "middleware/ratelimit.h"
#include "middleware/ratelimit_int.h"
#include "state/snapshot.h"

hx_step_fn hx_middleware_lookup(const hx_config *cfg, const char *name, unsigned handler_flags, bool explicit_list)
{
    bool inherit = !explicit_list;
    bool spends = handler_flags & HX_HANDLER_SPENDS, open = handler_flags & HX_HANDLER_OPEN;
    if (strcmp(name, "cors") == 0)
        return cfg->cors.enabled ? hx_mw_cors : NULL;
    if (strcmp(name, "queue") == 0)
        return cfg->queue.enabled && (explicit_list || spends) ? hx_mw_queue : NULL;
    if (strcmp(name, "rate_limit") == 0)
        return cfg->rate_limit.enabled && !(inherit && open) ? hx_mw_rate_limit : NULL;
    if (strcmp(name, "auth") == 0)
        return cfg->auth.enabled && !(inherit && open) ? hx_mw_auth : NULL;
    return NULL;
}

/* The "ratelimit" section of the state file: every bucket, so a restart
 * does not hand each client a fresh allowance. */
static int save_buckets(json_object *out, void *ud)
{
    (void)ud;
    json_object *arr = json_object_new_array();
    if (arr == NULL || hx_ratelimit_export(arr) < 0) {
        json_object_put(arr);
        return -1;
    }
    json_object_object_add(out, "buckets", arr);
    return 0;
}

static int restore_buckets(json_object *in, void *ud)
{
    (void)ud;
    json_object *arr;
    if (!json_object_object_get_ex(in, "buckets", &arr) || !json_object_is_type(arr, json_type_array))
        return -1;
    return hx_ratelimit_import(arr) < 0 ? -1 : 0;
}

int hx_middleware_init(const hx_config *cfg)
{
    if (hx_queue_init(cfg) != 0)
        return -1;
    if (hx_ratelimit_init(cfg) != 0 ||
        hx_snapshot_register("ratelimit", save_buckets, restore_buckets, NULL) != 0) {
        hx_ratelimit_shutdown();
        hx_queue_shutdown();
        return -1;
    }
    return 0;
}

void hx_middleware_reconfigure(const hx_config *cfg)
{
    hx_queue_reconfigure(cfg);
}

void hx_middleware_shutdown(void)
{
    hx_snapshot_unregister("ratelimit");
    hx_auth_cache_flush();
    hx_ratelimit_shutdown();
    hx_queue_shutdown();
}

int hx_middleware_worker_init(void *loop)
{
    if (hx_rl_shared_worker_init(loop) != 0)
        return -1;
    if (hx_queue_worker_init(loop) != 0) {
        hx_rl_shared_worker_fini(loop);
        return -1;
    }
    return 0;
}

void hx_middleware_worker_fini(void *loop)
{
    hx_queue_worker_fini(loop);
    hx_rl_shared_worker_fini(loop);
}
