/* The state store's Redis backend against a real redis-server (Debian's,
 * started here on a free port without persistence, stopped after): every
 * operation's answers, the key prefix, expiry, AUTH, a Redis that stops
 * answering (command deadline, then recovery), one that goes away and
 * comes back (reconnect), the bound on commands in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "redis_child.h"
#include "state/store.h"

static uv_loop_t loop;
static pid_t redis_pid;
static int redis_port;

typedef struct {
    int calls;
    hx_store_reply r;
    char data[256];
} got;

static void on_reply(void *ud, const hx_store_reply *r)
{
    got *g = ud;
    g->calls++;
    g->r = *r;
    g->data[0] = '\0';
    if (r->data && r->len < sizeof g->data) {
        memcpy(g->data, r->data, r->len);
        g->data[r->len] = '\0';
    }
    g->r.data = g->data;
}

/* Runs the loop until g has an answer (or 5 s). */
static void wait_for(got *g)
{
    uint64_t until = uv_hrtime() + 5000000000ull;
    while (g->calls == 0 && uv_hrtime() < until)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(g->calls, 1);
}






static hx_store *open_user_store(const char *prefix, const char *user, const char *password, int64_t cmd_timeout_ms,
                                 size_t max_pending)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", redis_port);
    hx_store_redis_opts o = {.address = addr, .prefix = prefix, .username = user, .password = password,
                             .connect_timeout_ms = 500, .command_timeout_ms = cmd_timeout_ms,
                             .max_pending = max_pending};
    hx_store *s = hx_store_redis_new(&loop, &o);
    assert_non_null(s);
    uint64_t until = uv_hrtime() + 3000000000ull;
    while (!hx_store_redis_connected(s) && uv_hrtime() < until)
        uv_run(&loop, UV_RUN_ONCE);
    return s;
}

static hx_store *open_store(const char *prefix, const char *password, int64_t cmd_timeout_ms, size_t max_pending)
{
    return open_user_store(prefix, "", password, cmd_timeout_ms, max_pending);
}

static void close_store(hx_store *s)
{
    s->vt->destroy(s);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static int setup(void **state)
{
    (void)state;
    if (!hx_test_redis_installed())
        return 0;
    uv_loop_init(&loop);
    redis_port = hx_test_free_port();
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


static void test_operations(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_store *s = open_store("t1:", "", 1000, 0);
    assert_true(hx_store_redis_connected(s));
    got g = {0};
    assert_int_equal(s->vt->set(s, "k", "v\0x", 3, 0, on_reply, &g), 0);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    g = (got){0};
    s->vt->get(s, "k", on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.len, 3); /* binary-safe: the NUL is kept */
    assert_memory_equal(g.data, "v\0x", 3);
    g = (got){0};
    s->vt->get(s, "missing", on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND);
    /* single use */
    g = (got){0};
    s->vt->add_once(s, "once", 10000, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    g = (got){0};
    s->vt->add_once(s, "once", 10000, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_EXISTS);
    /* counters */
    for (int i = 1; i <= 3; i++) {
        g = (got){0};
        s->vt->incr(s, "n", 5, 10000, on_reply, &g);
        wait_for(&g);
        assert_int_equal(g.r.rc, HX_STORE_OK);
        assert_int_equal(g.r.value, 5 * i);
    }
    g = (got){0};
    s->vt->incr(s, "k", 1, 0, on_reply, &g); /* not a counter */
    wait_for(&g);
    assert_int_not_equal(g.r.rc, HX_STORE_OK);
    /* compare-and-set */
    g = (got){0};
    s->vt->cas(s, "c", "a", 1, "b", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND);
    g = (got){0};
    s->vt->cas(s, "c", NULL, 0, "a", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    g = (got){0};
    s->vt->cas(s, "c", NULL, 0, "z", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_CONFLICT);
    g = (got){0};
    s->vt->cas(s, "c", "x", 1, "b", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_CONFLICT);
    g = (got){0};
    s->vt->cas(s, "c", "a", 1, "b", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    /* token bucket: burst 3 at 1/s */
    for (int i = 0; i < 3; i++) {
        g = (got){0};
        s->vt->bucket_take(s, "b", 1.0, 3.0, 1.0, on_reply, &g);
        wait_for(&g);
        assert_int_equal(g.r.rc, HX_STORE_OK);
    }
    g = (got){0};
    s->vt->bucket_take(s, "b", 1.0, 3.0, 1.0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_LIMITED);
    assert_true(g.r.retry_ms > 0 && g.r.retry_ms <= 1000);
    /* delete */
    g = (got){0};
    s->vt->del(s, "k", on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    g = (got){0};
    s->vt->del(s, "k", on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND);
    /* bad keys are refused before anything is sent */
    char big[HX_STORE_KEY_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(s->vt->get(s, big, on_reply, &g), -1);
    assert_int_equal(s->vt->get(s, "", on_reply, &g), -1);
    close_store(s);
}

static void test_prefix_and_expiry(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_store *a = open_store("gw-a:", "", 1000, 0), *b = open_store("gw-b:", "", 1000, 0);
    got g = {0};
    a->vt->add_once(a, "same", 200, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    g = (got){0};
    b->vt->add_once(b, "same", 200, on_reply, &g); /* another gateway's namespace */
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    hx_test_spin_ms(&loop, 400);
    g = (got){0};
    a->vt->add_once(a, "same", 200, on_reply, &g); /* expired: registrable again */
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    close_store(a);
    close_store(b);
}

/* The two shared-limit operations on the server: a charge into debt and
 * back, leases with a limit, expiry and release. */
static void test_charge_and_leases(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_store *s = open_store("t3:", "", 1000, 0);
    got g = {0};
    s->vt->bucket_charge(s, "t", 10.0, 100.0, 300.0, -1000.0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_true(g.r.tokens <= -199.0 && g.r.tokens > -201.0);
    g = (got){0};
    s->vt->bucket_take(s, "t", 10.0, 100.0, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_LIMITED);
    g = (got){0};
    s->vt->bucket_charge(s, "t", 10.0, 100.0, -1000.0, -1000.0, on_reply, &g);
    wait_for(&g);
    assert_true(g.r.tokens == 100.0); /* refunds never pass the burst */
    /* the gate (t, full again) lets the take through; in debt it stops it */
    g = (got){0};
    s->vt->bucket_take_gated(s, "r", 1.0, 2.0, 1.0, "t", 10.0, 100.0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_true(g.r.gate_tokens == 100.0 && g.r.tokens == 1.0);
    g = (got){0};
    s->vt->bucket_charge(s, "t", 10.0, 100.0, 300.0, -1000.0, on_reply, &g);
    wait_for(&g);
    g = (got){0};
    s->vt->bucket_take_gated(s, "r", 1.0, 2.0, 1.0, "t", 10.0, 100.0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_LIMITED);
    assert_int_equal(g.r.value, 1);
    assert_true(g.r.gate_tokens < 0 && g.r.tokens >= 1.0);
    const char *m[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        g = (got){0};
        s->vt->lease_acquire(s, "q", m[i], 2, i < 2 ? 300 : 5000, on_reply, &g);
        wait_for(&g);
        assert_int_equal(g.r.rc, i < 2 ? HX_STORE_OK : HX_STORE_LIMITED);
        assert_int_equal(g.r.value, i < 2 ? i + 1 : 2);
    }
    hx_test_spin_ms(&loop, 400); /* both holders' leases ran out */
    g = (got){0};
    s->vt->lease_acquire(s, "q", "c", 2, 5000, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.value, 1);
    g = (got){0};
    s->vt->lease_release(s, "q", "c", on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    g = (got){0};
    s->vt->lease_release(s, "q", "c", on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND);
    close_store(s);
}

typedef struct {
    int n;
    char channel[64];
    char msg[64];
} heard;

static void on_msg(void *ud, const char *channel, const void *msg, size_t len)
{
    heard *h = ud;
    h->n++;
    snprintf(h->channel, sizeof h->channel, "%s", channel);
    snprintf(h->msg, sizeof h->msg, "%.*s", (int)len, (const char *)msg);
}

/* Publish / subscribe across two connections, prefixes kept apart, and
 * the subscription back after Redis restarts. */
static void test_pubsub(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_store *sub = open_store("ps:", "", 1000, 0), *pub = open_store("ps:", "", 1000, 0),
             *other = open_store("other:", "", 1000, 0);
    heard h = {0};
    assert_int_equal(sub->vt->subscribe(sub, "events", on_msg, &h), 0);
    assert_int_equal(sub->vt->subscribe(sub, "second", on_msg, &h), -1); /* one per store */
    got g = {0};
    for (int tries = 0; tries < 50 && g.r.value < 1; tries++) { /* until the SUBSCRIBE is in */
        g = (got){0};
        pub->vt->publish(pub, "events", "x", 1, on_reply, &g);
        wait_for(&g);
        hx_test_spin_ms(&loop, 10);
    }
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.value, 1);
    h.n = 0;
    g = (got){0};
    other->vt->publish(other, "events", "elsewhere", 9, on_reply, &g); /* another prefix: not heard */
    wait_for(&g);
    assert_int_equal(g.r.value, 0);
    g = (got){0};
    pub->vt->publish(pub, "events", "hello", 5, on_reply, &g);
    wait_for(&g);
    for (int i = 0; i < 100 && h.n == 0; i++)
        hx_test_spin_ms(&loop, 10);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.channel, "events");
    assert_string_equal(h.msg, "hello");
    close_store(sub);
    close_store(pub);
    close_store(other);
}

/* The scripts go by SHA: after an operator's SCRIPT FLUSH the next call
 * fails (NOSCRIPT), the store loads them again, and calls work again. */
static void test_scripts_reloaded_after_flush(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_store *s = open_store("t5:", "", 1000, 0);
    got g = {0};
    s->vt->incr(s, "n", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d SCRIPT FLUSH >/dev/null", redis_port);
    assert_int_equal(system(cmd), 0);
    g = (got){0};
    s->vt->incr(s, "n", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_UNAVAILABLE); /* NOSCRIPT */
    g = (got){0};
    s->vt->incr(s, "n", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.value, 2);
    close_store(s);
}

static void test_stalled_redis_times_out_then_recovers(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_store *s = open_store("t3:", "", 200, 2);
    kill(redis_pid, SIGSTOP);
    got g1 = {0}, g2 = {0}, g3 = {0};
    s->vt->set(s, "x", "1", 1, 0, on_reply, &g1);
    s->vt->set(s, "y", "1", 1, 0, on_reply, &g2);
    s->vt->set(s, "z", "1", 1, 0, on_reply, &g3); /* past max_pending: at once */
    assert_int_equal(g3.calls, 1);
    assert_int_equal(g3.r.rc, HX_STORE_UNAVAILABLE);
    uint64_t t0 = uv_hrtime();
    wait_for(&g1);
    wait_for(&g2);
    assert_int_equal(g1.r.rc, HX_STORE_UNAVAILABLE);
    assert_int_equal(g2.r.rc, HX_STORE_UNAVAILABLE);
    assert_true(uv_hrtime() - t0 < 2000000000ull); /* the command deadline, not a hang */
    hx_store_redis_stats st;
    hx_store_redis_get_stats(s, &st);
    assert_true(st.timeouts >= 1);
    kill(redis_pid, SIGCONT);
    uint64_t until = uv_hrtime() + 5000000000ull;
    while (!hx_store_redis_connected(s) && uv_hrtime() < until)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(hx_store_redis_connected(s));
    got g = {0};
    s->vt->get(s, "x", on_reply, &g);
    wait_for(&g);
    assert_true(g.r.rc == HX_STORE_OK || g.r.rc == HX_STORE_NOT_FOUND);
    close_store(s);
}

static void test_redis_restart_reconnects(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_store *s = open_store("t4:", "", 500, 0);
    hx_test_redis_stop(&redis_pid);
    hx_test_spin_ms(&loop, 100);
    got g = {0};
    s->vt->get(s, "k", on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_UNAVAILABLE); /* down: answered, not queued */
    redis_pid = hx_test_redis_start(redis_port, NULL);
    uint64_t until = uv_hrtime() + 8000000000ull;
    while (!hx_store_redis_connected(s) && uv_hrtime() < until)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(hx_store_redis_connected(s));
    g = (got){0};
    s->vt->add_once(s, "after", 1000, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    hx_store_redis_stats st;
    hx_store_redis_get_stats(s, &st);
    assert_true(st.disconnects >= 1 && st.connects >= 2);
    close_store(s);
}

static void test_auth(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_test_redis_stop(&redis_pid);
    redis_pid = hx_test_redis_start(redis_port, "s3cret-pass");
    hx_store *good = open_store("t5:", "s3cret-pass", 500, 0);
    got g = {0};
    good->vt->set(good, "k", "v", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    hx_store *bad = open_store("t5:", "wrong", 500, 0);
    g = (got){0};
    bad->vt->get(bad, "k", on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_UNAVAILABLE); /* NOAUTH: never a value */
    hx_store_redis_stats st;
    hx_store_redis_get_stats(bad, &st);
    assert_true(st.setup_errors >= 1);
    /* An ACL user: its own password, and only its keys. */
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "redis-cli -p %d -a s3cret-pass --no-auth-warning ACL SETUSER gw on '>gw-pass' '~t6:*' +@all >/dev/null",
             redis_port);
    assert_int_equal(system(cmd), 0);
    hx_store *user = open_user_store("t6:", "gw", "gw-pass", 500, 0);
    g = (got){0};
    user->vt->incr(user, "n", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_OK);
    hx_store *other = open_user_store("t7:", "gw", "gw-pass", 500, 0); /* a prefix outside its keys */
    g = (got){0};
    other->vt->incr(other, "n", 1, 0, on_reply, &g);
    wait_for(&g);
    assert_int_not_equal(g.r.rc, HX_STORE_OK);
    hx_store *wrong = open_user_store("t6:", "gw", "nope", 500, 0);
    g = (got){0};
    wrong->vt->get(wrong, "n", on_reply, &g);
    wait_for(&g);
    assert_int_equal(g.r.rc, HX_STORE_UNAVAILABLE);
    close_store(user);
    close_store(other);
    close_store(wrong);
    close_store(good);
    close_store(bad);
    hx_test_redis_stop(&redis_pid);
    redis_pid = hx_test_redis_start(redis_port, NULL);
}

static void test_bad_options(void **state)
{
    (void)state;
    NEED_REDIS();
    hx_store_redis_opts o = {.address = "127.0.0.1:notaport"};
    assert_null(hx_store_redis_new(&loop, &o));
    o.address = "127.0.0.1:70000";
    assert_null(hx_store_redis_new(&loop, &o));
    char prefix[HX_STORE_PREFIX_MAX + 2];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    o.address = "127.0.0.1:6379";
    o.prefix = prefix;
    assert_null(hx_store_redis_new(&loop, &o));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations),
        cmocka_unit_test(test_prefix_and_expiry),
        cmocka_unit_test(test_charge_and_leases),
        cmocka_unit_test(test_pubsub),
        cmocka_unit_test(test_scripts_reloaded_after_flush),
        cmocka_unit_test(test_stalled_redis_times_out_then_recovers),
        cmocka_unit_test(test_redis_restart_reconnects),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
