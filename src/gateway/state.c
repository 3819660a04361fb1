/* The "providers" section of the state file: each provider's breaker and
 * health, so a restart does not send traffic to a provider known to be
 * down. Keyed by provider name; a provider no longer configured is
 * skipped. Monotonic deadlines do not survive a reboot, so an open
 * breaker is saved as the time it had left, and the wall-clock time spent
 * down is taken off at restore. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway/gateway.h"
#include "obs/log.h"
#include "state/snapshot.h"
#include "util/json.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_object *breaker_state(const hx_breaker_snap *bs, uint64_t now)
{
    json_object *b = json_object_new_object();
    if (b == NULL)
        return NULL;
    int64_t left = bs->open_until_ms > now ? (int64_t)(bs->open_until_ms - now) : 0;
    if (hx_json_set(b, "state", json_object_new_string(hx_breaker_state_name(bs->state))) != 0 ||
        hx_json_set(b, "window_requests", json_object_new_int64(bs->window_requests)) != 0 ||
        hx_json_set(b, "window_failures", json_object_new_int64(bs->window_failures)) != 0 ||
        hx_json_set(b, "open_remaining_ms", json_object_new_int64(left)) != 0 ||
        hx_json_set(b, "trips", json_object_new_int64((int64_t)bs->trips)) != 0) {
        json_object_put(b);
        return NULL;
    }
    return b;
}

static json_object *health_state(const hx_health_snap *hs)
{
    json_object *h = json_object_new_object();
    if (h == NULL)
        return NULL;
    if (hx_json_set(h, "healthy", json_object_new_boolean(hs->healthy)) != 0 ||
        hx_json_set(h, "consecutive_failures", json_object_new_int64(hs->consecutive_failures)) != 0 ||
        hx_json_set(h, "last_error", json_object_new_string(hs->last_error)) != 0 ||
        hx_json_set(h, "last_fail", json_object_new_string(hx_fail_name(hs->last_fail))) != 0 ||
        hx_json_set(h, "last_change_unix", json_object_new_int64(hs->last_change_unix)) != 0) {
        json_object_put(h);
        return NULL;
    }
    return h;
}

static json_object *provider_state(hx_gateway *g, size_t i, uint64_t now)
{
    hx_breaker_snap bs;
    hx_breaker_snapshot(g->breakers[i], &bs);
    hx_health_snap hs;
    hx_health_snapshot(g->health[i], &hs);
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    if (hx_json_set(o, "breaker", breaker_state(&bs, now)) != 0 || hx_json_set(o, "health", health_state(&hs)) != 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static int save_providers(json_object *out, void *ud)
{
    (void)ud;
    hx_gateway *g = hx_gateway_current();
    if (g == NULL)
        return 0;
    uint64_t now = hx_gateway_now_ms();
    json_object *ps = json_object_new_object();
    int rc = ps ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < g->providers.n; i++)
        rc = hx_json_set(ps, g->providers.items[i].name, provider_state(g, i, now));
    if (rc == 0 && hx_json_set(out, "saved_unix_ms", json_object_new_int64(wall_ms())) != 0)
        rc = -1;
    if (rc == 0) {
        rc = hx_json_set(out, "providers", ps);
        ps = NULL; /* taken by add, even when it failed */
    }
    json_object_put(ps);
    hx_gateway_unref(g);
    return rc;
}

static int64_t get_int(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

/* A count from the file: negative or oversized values are not trusted. */
static uint32_t clamp_u32(int64_t v)
{
    return v < 0 ? 0 : v > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int breaker_state_of(const char *s)
{
    if (s && strcmp(s, "open") == 0)
        return HX_BREAKER_OPEN;
    if (s && strcmp(s, "half_open") == 0)
        return HX_BREAKER_HALF_OPEN;
    return HX_BREAKER_CLOSED;
}

static void restore_one(hx_gateway *g, size_t i, json_object *o, int64_t away_ms)
{
    json_object *b, *h, *v;
    uint64_t now = hx_gateway_now_ms();
    if (json_object_object_get_ex(o, "breaker", &b) && json_object_is_type(b, json_type_object)) {
        hx_breaker_snap bs;
        hx_breaker_snapshot(g->breakers[i], &bs);
        bs.state = breaker_state_of(json_object_object_get_ex(b, "state", &v) ? json_object_get_string(v) : NULL);
        bs.window_requests = clamp_u32(get_int(b, "window_requests"));
        bs.window_failures = clamp_u32(get_int(b, "window_failures"));
        int64_t left = get_int(b, "open_remaining_ms") - (away_ms > 0 ? away_ms : 0);
        bs.open_until_ms = now + (uint64_t)(left > 0 ? left : 0);
        bs.trips = (uint64_t)get_int(b, "trips");
        hx_breaker_restore(g->breakers[i], &bs, now);
    }
    if (json_object_object_get_ex(o, "health", &h) && json_object_is_type(h, json_type_object)) {
        hx_health_snap hs;
        hx_health_snapshot(g->health[i], &hs);
        hs.healthy = !json_object_object_get_ex(h, "healthy", &v) || json_object_get_boolean(v);
        hs.consecutive_failures = get_int(h, "consecutive_failures");
        hs.last_change_unix = get_int(h, "last_change_unix");
        const char *e = json_object_object_get_ex(h, "last_error", &v) ? json_object_get_string(v) : "";
        snprintf(hs.last_error, sizeof hs.last_error, "%s", e ? e : "");
        /* the class decides (admit names an unreachable address), not the text */
        hs.last_fail = json_object_object_get_ex(h, "last_fail", &v) && json_object_is_type(v, json_type_string)
                           ? hx_fail_from_name(json_object_get_string(v), (size_t)json_object_get_string_len(v))
                           : HX_FAIL_NONE;
        hx_health_restore(g->health[i], &hs);
    }
    HX_LOG_INFO("provider state restored", HX_F_STR("event", "state_restore"),
                HX_F_STR("provider", g->providers.items[i].name),
                HX_F_STR("breaker", hx_breaker_state_name(hx_breaker_state(g->breakers[i], now))),
                HX_F_BOOL("healthy", hx_health_ok(g->health[i])));
}

static int restore_providers(json_object *in, void *ud)
{
    (void)ud;
    json_object *ps;
    if (!json_object_object_get_ex(in, "providers", &ps) || !json_object_is_type(ps, json_type_object))
        return -1;
    int64_t away = wall_ms() - get_int(in, "saved_unix_ms");
    hx_gateway *g = hx_gateway_current();
    if (g == NULL)
        return 0;
    for (size_t i = 0; i < g->providers.n; i++) {
        json_object *o;
        if (json_object_object_get_ex(ps, g->providers.items[i].name, &o) && json_object_is_type(o, json_type_object))
            restore_one(g, i, o, away);
    }
    hx_gateway_unref(g);
    return 0;
}

int hx_gateway_state_register(void)
{
    return hx_snapshot_register("providers", save_providers, restore_providers, NULL);
}
