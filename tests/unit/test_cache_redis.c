/* The response cache's Redis type against a real redis-server (started
 * here on a free port without persistence, as test_store_redis.c): an
 * entry found from the loop that stored it, under the prefix, gone when
 * Redis' own TTL ends (the envelope's clock held still, so only PX can
 * expire it); a loop without a connection, a stalled Redis (command
 * timeout) and a stopped one are misses, answered, never a hang; a
 * worker's fini answers its pending lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cache/cache_int.h"
#include "redis_child.h"
#include "state/store.h"

static uv_loop_t loop;
static pid_t redis_pid;
static int redis_port;
static char addr[32];

static int64_t fixed_clock(void)
{
    return 1000000;
}






typedef struct {
    int calls;
    bool hit;
    char body[64];
} got;

static void on_blob(void *ud, const void *blob, size_t len)
{
    got *g = ud;
    hx_cache_entry e;
    char ct[HX_CACHE_CTYPE_MAX + 1];
    g->calls++;
    g->hit = blob && hx_cache_decode(blob, len, hx_cache_clock(), &e, ct) == 0;
    if (g->hit) {
        assert_true(e.len < sizeof g->body);
        memcpy(g->body, e.body, e.len);
        g->body[e.len] = '\0';
    }
}

static void on_store(void *ud, const hx_store_reply *r)
{
    on_blob(ud, r->rc == HX_STORE_OK ? r->data : NULL, r->len);
}

/* Runs the loop until g has its answer; the answer came within ms. */
static void wait_for(got *g, int ms)
{
    uint64_t until = uv_hrtime() + (uint64_t)ms * 1000000ull;
    while (g->calls == 0 && uv_hrtime() < until)
        hx_test_spin_ms(&loop, 5);
    assert_int_equal(g->calls, 1);
}

static hx_cache_backend *open_cache(void)
{
    hx_cfg_redis r = {.address = addr,
                      .username = "",
                      .password = "",
                      .prefix = "tc:",
                      .on_failure = "local",
                      .connect_timeout = 300,
                      .command_timeout = 300};
    hx_cache_backend *b = hx_cache_redis_new(&r);
    assert_non_null(b);
    assert_int_equal(b->vt->worker_init(b, &loop), 0);
    hx_test_spin_ms(&loop, 100); /* connected */
    return b;
}

static void put(hx_cache_backend *b, const char *key, const char *body, int64_t ttl)
{
    hx_cache_entry e = {.content_type = "application/json", .body = body, .len = strlen(body)};
    void *blob;
    size_t n;
    assert_int_equal(hx_cache_encode(&e, hx_cache_clock() + 3600000, &blob, &n), 0);
    b->vt->put(b, &loop, key, blob, n, ttl);
}

static got get(hx_cache_backend *b, void *on, const char *key, int ms)
{
    got g = {0};
    assert_int_equal(b->vt->get(b, on, key, on_blob, &g), 0);
    wait_for(&g, ms);
    return g;
}

static const char K1[] = "1111111111111111111111111111111111111111111111111111111111111111";

static int setup(void **state)
{
    (void)state;
    hx_cache_clock = fixed_clock;
    if (!hx_test_redis_installed())
        return 0;
    uv_loop_init(&loop);
    redis_port = hx_test_free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", redis_port);
    redis_pid = hx_test_redis_start(redis_port, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hx_test_redis_stop(&redis_pid);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}


static void test_hit_then_redis_ttl_ends_it(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_cache_backend *b = open_cache();
    assert_false(get(b, &loop, K1, 2000).hit);
    put(b, K1, "{\"a\":1}", 300);
    got g = get(b, &loop, K1, 2000);
    assert_true(g.hit);
    assert_string_equal(g.body, "{\"a\":1}");
    /* what Redis holds, under the prefix */
    hx_store_redis_opts o = {.address = addr, .prefix = "tc:", .connect_timeout_ms = 300, .command_timeout_ms = 300};
    hx_store *s = hx_store_redis_new(&loop, &o);
    assert_non_null(s);
    hx_test_spin_ms(&loop, 100);
    got raw = {0};
    char k[80];
    snprintf(k, sizeof k, "cache:%s", K1);
    assert_int_equal(s->vt->get(s, k, on_store, &raw), 0);
    wait_for(&raw, 2000);
    assert_true(raw.hit);
    s->vt->destroy(s);
    hx_test_spin_ms(&loop, 400); /* the envelope's clock stands still: only PX can end it */
    assert_false(get(b, &loop, K1, 2000).hit);
    /* a loop without a connection of its own: a miss at once */
    uv_loop_t other;
    uv_loop_init(&other);
    got o2 = {0};
    assert_int_equal(b->vt->get(b, &other, K1, on_blob, &o2), 0);
    assert_int_equal(o2.calls, 1);
    assert_false(o2.hit);
    uv_loop_close(&other);
    b->vt->worker_fini(b, &loop);
    b->vt->destroy(b);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_stalled_or_gone_redis_is_a_miss(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_cache_backend *b = open_cache();
    put(b, K1, "x", 60000);
    assert_true(get(b, &loop, K1, 2000).hit);
    kill(redis_pid, SIGSTOP); /* answers nothing: the command timeout (300 ms) decides */
    got g = get(b, &loop, K1, 3000);
    assert_false(g.hit);
    kill(redis_pid, SIGCONT);
    hx_test_redis_stop(&redis_pid);
    hx_test_spin_ms(&loop, 50);
    g = get(b, &loop, K1, 1000); /* down: answered as a miss, at once or after the timeout */
    assert_false(g.hit);
    /* a lookup pending when the worker ends is answered (a miss) */
    redis_pid = hx_test_redis_start(redis_port, NULL);
    hx_test_spin_ms(&loop, 400); /* reconnected (backoff from 100 ms) */
    got p = {0};
    assert_int_equal(b->vt->get(b, &loop, K1, on_blob, &p), 0);
    b->vt->worker_fini(b, &loop);
    assert_int_equal(p.calls, 1);
    b->vt->destroy(b);
    uv_run(&loop, UV_RUN_NOWAIT);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_then_redis_ttl_ends_it),
        cmocka_unit_test(test_stalled_or_gone_redis_is_a_miss),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
