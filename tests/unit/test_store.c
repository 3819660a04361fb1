/* The state store's in-process backend: every operation's answers, expiry
 * on a fake clock, the entry and byte bounds, keys that must not be
 * truncated, allocation failures, and a single-use register that holds
 * under threads racing for the same key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "state/store.h"
#include "util/alloc.h"

static int64_t fake_now = 1000;
static int64_t fake_clock(void) { return fake_now; }

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
    if (r->data) {
        assert_true(r->len < sizeof g->data);
        memcpy(g->data, r->data, r->len);
        g->data[r->len] = '\0';
        g->r.data = g->data;
    }
}

static hx_store *mk(size_t entries, size_t bytes)
{
    hx_store_limits lim = {entries, bytes};
    hx_store *s = hx_store_memory_new(&lim);
    assert_non_null(s);
    hx_store_memory_clock(s, fake_clock);
    fake_now = 1000;
    return s;
}

/* Each call answers exactly once, synchronously for this backend. */
#define ONCE(g, call)                                                                                            \
    do {                                                                                                         \
        (g).calls = 0;                                                                                           \
        assert_int_equal((call), 0);                                                                             \
        assert_int_equal((g).calls, 1);                                                                          \
    } while (0)

static void test_set_get_del(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    ONCE(g, s->vt->get(s, "k", on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND);
    ONCE(g, s->vt->set(s, "k", "v\0w", 3, 0, on_reply, &g)); /* bytes, NUL included */
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->get(s, "k", on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.len, 3);
    assert_memory_equal(g.r.data, "v\0w", 3);
    ONCE(g, s->vt->del(s, "k", on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->del(s, "k", on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND);
    size_t n, b;
    hx_store_memory_usage(s, &n, &b);
    assert_int_equal(n, 0);
    assert_int_equal(b, 0);
    s->vt->destroy(s);
}

/* The 0-RTT register: the first registration wins, every later one is a
 * replay until the expiry; then the key may be used again. */
static void test_add_once_and_expiry(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    ONCE(g, s->vt->add_once(s, "0rtt:abc", 10000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->add_once(s, "0rtt:abc", 10000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_EXISTS);
    fake_now += 9999;
    ONCE(g, s->vt->add_once(s, "0rtt:abc", 10000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_EXISTS);
    fake_now += 1;
    ONCE(g, s->vt->add_once(s, "0rtt:abc", 10000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    s->vt->destroy(s);
}

static void test_incr(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    ONCE(g, s->vt->incr(s, "c", 5, 1000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.value, 5);
    fake_now += 500; /* the expiry is set at creation, not moved */
    ONCE(g, s->vt->incr(s, "c", -2, 1000, on_reply, &g));
    assert_int_equal(g.r.value, 3);
    fake_now += 500;
    ONCE(g, s->vt->incr(s, "c", 1, 1000, on_reply, &g));
    assert_int_equal(g.r.value, 1);
    ONCE(g, s->vt->incr(s, "c", INT64_MAX, 0, on_reply, &g)); /* saturates */
    assert_int_equal(g.r.value, INT64_MAX);
    ONCE(g, s->vt->set(s, "b", "x", 1, 0, on_reply, &g));
    ONCE(g, s->vt->incr(s, "b", 1, 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_WRONG_TYPE);
    s->vt->destroy(s);
}

static void test_cas(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    ONCE(g, s->vt->cas(s, "k", "a", 1, "b", 1, 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND);
    ONCE(g, s->vt->cas(s, "k", NULL, 0, "a", 1, 0, on_reply, &g)); /* create when missing */
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->cas(s, "k", NULL, 0, "z", 1, 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_CONFLICT);
    ONCE(g, s->vt->cas(s, "k", "x", 1, "b", 1, 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_CONFLICT);
    ONCE(g, s->vt->cas(s, "k", "a", 1, "bb", 2, 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->get(s, "k", on_reply, &g));
    assert_string_equal(g.data, "bb");
    s->vt->destroy(s);
}

static void test_bucket(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    for (int i = 0; i < 3; i++) {
        ONCE(g, s->vt->bucket_take(s, "rl", 1.0, 3, 1, on_reply, &g));
        assert_int_equal(g.r.rc, HX_STORE_OK);
    }
    ONCE(g, s->vt->bucket_take(s, "rl", 1.0, 3, 1, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_LIMITED);
    assert_int_equal(g.r.retry_ms, 1000);
    fake_now += 1000;
    ONCE(g, s->vt->bucket_take(s, "rl", 1.0, 3, 1, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->bucket_take(s, "rl", 1.0, 3, 5, on_reply, &g)); /* more than the burst: never */
    assert_int_equal(g.r.rc, HX_STORE_LIMITED);
    assert_int_equal(g.r.retry_ms, -1);
    /* A refilled bucket expires: nothing kept for an idle client. */
    size_t n, b;
    hx_store_memory_usage(s, &n, &b);
    assert_int_equal(n, 1);
    fake_now += 10000;
    ONCE(g, s->vt->get(s, "rl", on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND);
    hx_store_memory_usage(s, &n, &b);
    assert_int_equal(n, 0);
    assert_int_equal(s->vt->bucket_take(s, "rl", 0, 3, 1, on_reply, &g), -1);
    s->vt->destroy(s);
}

/* bucket_charge: a debt below zero down to the floor, refunds capped at
 * the burst, refill paying the debt off. */
static void test_bucket_charge(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    ONCE(g, s->vt->bucket_charge(s, "t", 10.0, 100, 30, -1000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_true(g.r.tokens == 70);
    ONCE(g, s->vt->bucket_charge(s, "t", 10.0, 100, 5000, -1000, on_reply, &g));
    assert_true(g.r.tokens == -1000); /* the floor */
    fake_now += 1000;
    ONCE(g, s->vt->bucket_take(s, "t", 10.0, 100, 0, on_reply, &g)); /* a look: 10 paid back */
    assert_int_equal(g.r.rc, HX_STORE_LIMITED);
    assert_true(g.r.tokens == -990);
    ONCE(g, s->vt->bucket_charge(s, "t", 10.0, 100, -5000, -1000, on_reply, &g)); /* refund, capped */
    assert_true(g.r.tokens == 100);
    ONCE(g, s->vt->set(s, "v", "x", 1, 0, on_reply, &g));
    ONCE(g, s->vt->bucket_charge(s, "v", 10.0, 100, 1, -10, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_WRONG_TYPE);
    assert_int_equal(s->vt->bucket_charge(s, "t", 10.0, 100, 1, 200, on_reply, &g), -1); /* floor > burst */
    s->vt->destroy(s);
}

/* Leases: a limit on live members, renewal, release, expiry (a dead
 * holder's lease comes back by itself), and the set gone once empty. */
/* A take gated by another bucket: nothing taken while the gate is empty. */
static void test_bucket_take_gated(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    ONCE(g, s->vt->bucket_take_gated(s, "req", 1.0, 2, 1, "tok", 10.0, 100, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_true(g.r.tokens == 1 && g.r.gate_tokens == 100);
    ONCE(g, s->vt->bucket_charge(s, "tok", 10.0, 100, 150, -1000, on_reply, &g)); /* the gate in debt */
    ONCE(g, s->vt->bucket_take_gated(s, "req", 1.0, 2, 1, "tok", 10.0, 100, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_LIMITED);
    assert_int_equal(g.r.value, 1);
    assert_true(g.r.gate_tokens == -50 && g.r.tokens == 1); /* nothing taken */
    fake_now += 6000; /* the gate is back above 0, the request bucket full */
    ONCE(g, s->vt->bucket_take_gated(s, "req", 1.0, 2, 1, "tok", 10.0, 100, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->bucket_take_gated(s, "req", 1.0, 2, 1, "tok", 10.0, 100, on_reply, &g));
    ONCE(g, s->vt->bucket_take_gated(s, "req", 1.0, 2, 1, "tok", 10.0, 100, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_LIMITED); /* the request bucket short */
    assert_int_equal(g.r.value, 0);
    assert_int_equal(s->vt->bucket_take_gated(s, "req", 1.0, 2, 1, "", 10.0, 100, on_reply, &g), -1);
    s->vt->destroy(s);
}

static int msgs;
static char last_msg[32];

static void on_msg(void *ud, const char *channel, const void *msg, size_t len)
{
    (void)ud;
    assert_string_equal(channel, "c");
    msgs++;
    snprintf(last_msg, sizeof last_msg, "%.*s", (int)len, (const char *)msg);
}

static void test_pubsub(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    ONCE(g, s->vt->publish(s, "c", "a", 1, on_reply, &g));
    assert_int_equal(g.r.value, 0);
    assert_int_equal(s->vt->subscribe(s, "c", on_msg, NULL), 0);
    assert_int_equal(s->vt->subscribe(s, "d", on_msg, NULL), -1);
    ONCE(g, s->vt->publish(s, "c", "hi", 2, on_reply, &g));
    assert_int_equal(g.r.value, 1);
    assert_int_equal(msgs, 1);
    assert_string_equal(last_msg, "hi");
    ONCE(g, s->vt->publish(s, "other", "x", 1, on_reply, &g));
    assert_int_equal(msgs, 1);
    s->vt->destroy(s);
}

static void test_leases(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    ONCE(g, s->vt->lease_acquire(s, "q", "a", 2, 1000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.value, 1);
    ONCE(g, s->vt->lease_acquire(s, "q", "b", 2, 1000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.value, 2);
    ONCE(g, s->vt->lease_acquire(s, "q", "c", 2, 1000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_LIMITED);
    assert_int_equal(g.r.value, 2);
    fake_now += 600;
    ONCE(g, s->vt->lease_acquire(s, "q", "a", 2, 1000, on_reply, &g)); /* renewal, not a new member */
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.value, 2);
    fake_now += 600; /* b expired, a renewed */
    ONCE(g, s->vt->lease_acquire(s, "q", "c", 2, 1000, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    assert_int_equal(g.r.value, 2);
    ONCE(g, s->vt->lease_release(s, "q", "b", on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND);
    ONCE(g, s->vt->lease_release(s, "q", "a", on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->lease_release(s, "q", "c", on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    size_t n, b;
    hx_store_memory_usage(s, &n, &b);
    assert_int_equal(n, 0);
    assert_int_equal(b, 0);
    char big[HX_STORE_MEMBER_MAX + 2];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(s->vt->lease_acquire(s, "q", big, 2, 1000, on_reply, &g), -1);
    assert_int_equal(s->vt->lease_acquire(s, "q", "a", 0, 1000, on_reply, &g), -1);
    s->vt->destroy(s);
}

/* Past its bounds a new key is refused (expired entries make room first);
 * existing keys keep working. */
static void test_bounds(void **state)
{
    (void)state;
    hx_store *s = mk(3, 64);
    got g;
    ONCE(g, s->vt->add_once(s, "a", 100, on_reply, &g));
    ONCE(g, s->vt->add_once(s, "b", 0, on_reply, &g));
    ONCE(g, s->vt->add_once(s, "c", 0, on_reply, &g));
    ONCE(g, s->vt->add_once(s, "d", 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_FULL);
    fake_now += 100; /* "a" expired: room */
    ONCE(g, s->vt->add_once(s, "d", 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->del(s, "b", on_reply, &g));
    char big[80];
    memset(big, 'x', sizeof big);
    ONCE(g, s->vt->set(s, "big", big, sizeof big, 0, on_reply, &g)); /* over max_bytes */
    assert_int_equal(g.r.rc, HX_STORE_FULL);
    ONCE(g, s->vt->get(s, "big", on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_NOT_FOUND); /* nothing half-made left */
    ONCE(g, s->vt->set(s, "c2", "v", 1, 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    ONCE(g, s->vt->set(s, "c2", big, sizeof big, 0, on_reply, &g)); /* a replacement too big */
    assert_int_equal(g.r.rc, HX_STORE_FULL);
    ONCE(g, s->vt->get(s, "c2", on_reply, &g));
    assert_string_equal(g.data, "v"); /* the old value stays */
    s->vt->destroy(s);
}

/* Keys are never truncated: empty, too long, or NULL are refused without
 * a callback; the longest key works. */
static void test_keys(void **state)
{
    (void)state;
    hx_store *s = mk(1000, 1 << 20);
    got g = {0};
    static char k[HX_STORE_KEY_MAX + 2];
    memset(k, 'k', HX_STORE_KEY_MAX + 1);
    assert_int_equal(s->vt->add_once(s, k, 0, on_reply, &g), -1);
    assert_int_equal(s->vt->add_once(s, "", 0, on_reply, &g), -1);
    assert_int_equal(s->vt->get(s, NULL, on_reply, &g), -1);
    assert_int_equal(g.calls, 0);
    k[HX_STORE_KEY_MAX] = '\0';
    ONCE(g, s->vt->add_once(s, k, 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    k[HX_STORE_KEY_MAX - 1] = 'j'; /* differs in the last byte only */
    ONCE(g, s->vt->add_once(s, k, 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_OK);
    /* Many keys: the table grows and every key is still found. */
    char name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "key-%d", i);
        ONCE(g, s->vt->incr(s, name, i, 0, on_reply, &g));
    }
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "key-%d", i);
        ONCE(g, s->vt->get(s, name, on_reply, &g));
        assert_int_equal(g.r.value, i);
    }
    s->vt->destroy(s);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    hx_store *s = mk(100, 1 << 20);
    got g;
    hx_alloc_fail_at(1, 1);
    ONCE(g, s->vt->add_once(s, "a", 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_NOMEM);
    ONCE(g, s->vt->set(s, "b", "v", 1, 0, on_reply, &g));
    assert_int_equal(g.r.rc, HX_STORE_NOMEM);
    hx_alloc_fail_at(0, 0);
    ONCE(g, s->vt->set(s, "b", "v", 1, 0, on_reply, &g));
    hx_alloc_fail_at(1, 1);
    ONCE(g, s->vt->get(s, "b", on_reply, &g)); /* the copy for the caller */
    assert_int_equal(g.r.rc, HX_STORE_NOMEM);
    hx_alloc_fail_at(0, 0);
    size_t n, b;
    hx_store_memory_usage(s, &n, &b);
    assert_int_equal(n, 1);
    assert_int_equal(b, 2);
    s->vt->destroy(s);
}

/* Threads race to register the same keys: each key is won exactly once. */
#define RACERS 4
#define RACE_KEYS 2000
typedef struct {
    hx_store *s;
    int won;
} racer;

static void count_win(void *ud, const hx_store_reply *r)
{
    if (r->rc == HX_STORE_OK)
        ((racer *)ud)->won++;
}

static void *race(void *arg)
{
    racer *r = arg;
    char k[32];
    for (int i = 0; i < RACE_KEYS; i++) {
        snprintf(k, sizeof k, "0rtt:%d", i);
        assert_int_equal(r->s->vt->add_once(r->s, k, 60000, count_win, r), 0);
    }
    return NULL;
}

static void test_add_once_threads(void **state)
{
    (void)state;
    hx_store *s = mk(RACE_KEYS, 1 << 20);
    racer rs[RACERS];
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        rs[i] = (racer){s, 0};
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    int won = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        won += rs[i].won;
    }
    assert_int_equal(won, RACE_KEYS);
    s->vt->destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_del),
        cmocka_unit_test(test_add_once_and_expiry),
        cmocka_unit_test(test_incr),
        cmocka_unit_test(test_cas),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_bucket_charge),
        cmocka_unit_test(test_bucket_take_gated),
        cmocka_unit_test(test_leases),
        cmocka_unit_test(test_pubsub),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_add_once_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
