/* The response cache (src/cache/): the canonical key (member order and
 * spacing do not matter, every value and part does), the entry envelope,
 * the LRU index's bounds, the memory and file backends (bounds, expiry on
 * a fake clock, files named by key that a restart finds again) and
 * allocation failures. The Redis type: test_cache_redis.c and tests/integration/test_cache.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache_int.h"
#include "util/alloc.h"

static int64_t fake_now = 1000000;
static int64_t fake_clock(void)
{
    return fake_now;
}

static int setup(void **state)
{
    (void)state;
    fake_now = 1000000;
    hx_cache_clock = fake_clock;
    return 0;
}

static void key_of(const char *json, const hx_cache_key_parts *k, char out[HX_CACHE_KEY_HEX + 1])
{
    json_object *o = json_tokener_parse(json);
    assert_non_null(o);
    assert_int_equal(hx_cache_key(k, o, out), 0);
    json_object_put(o);
}

static const hx_cache_key_parts PARTS = {"chat", false, "key:one", ""};

static void test_key_ignores_order_and_spacing(void **state)
{
    (void)state;
    char a[65], b[65];
    key_of("{\"a\":1,\"b\":2}", &PARTS, a);
    key_of("{ \"b\" : 2 , \"a\" : 1 }", &PARTS, b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 64);
    key_of("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.5}", &PARTS, a);
    key_of("{\"temperature\":0.5,\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],\"model\":\"m\"}", &PARTS, b);
    assert_string_equal(a, b);
    key_of("{\"s\":\"\\u0041\"}", &PARTS, a); /* an escape is the same string */
    key_of("{\"s\":\"A\"}", &PARTS, b);
    assert_string_equal(a, b);
}

static void assert_differ(const char *x, const hx_cache_key_parts *kx, const char *y, const hx_cache_key_parts *ky)
{
    char a[65], b[65];
    key_of(x, kx, a);
    key_of(y, ky, b);
    if (strcmp(a, b) == 0)
        fail_msg("same key for %s and %s", x, y);
}

static void test_key_differs_on_every_part(void **state)
{
    (void)state;
    const char *base = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.5}";
    assert_differ(base, &PARTS,
                  "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.7}",
                  &PARTS);
    assert_differ(base, &PARTS,
                  "{\"model\":\"n\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.5}",
                  &PARTS);
    assert_differ(base, &PARTS,
                  "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"ho\"}],\"temperature\":0.5}",
                  &PARTS);
    assert_differ(
        base, &PARTS,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.5,\"tools\":[]}",
        &PARTS);
    const hx_cache_key_parts stream = {"chat", true, "key:one", ""}, api = {"messages", false, "key:one", ""},
                             scope = {"chat", false, "key:two", ""}, extra = {"chat", false, "key:one", "v=1\n"};
    assert_differ(base, &PARTS, base, &stream);
    assert_differ(base, &PARTS, base, &api);
    assert_differ(base, &PARTS, base, &scope);
    assert_differ(base, &PARTS, base, &extra);
    /* length-prefixed and typed: no two values collide by concatenation */
    assert_differ("{\"a\":\"bc\"}", &PARTS, "{\"ab\":\"c\"}", &PARTS);
    assert_differ("{\"a\":1}", &PARTS, "{\"a\":\"1\"}", &PARTS);
    assert_differ("{\"a\":[1,2]}", &PARTS, "{\"a\":[2,1]}", &PARTS);
    assert_differ("{\"a\":[[1],2]}", &PARTS, "{\"a\":[[1,2]]}", &PARTS);
    assert_differ("{\"a\":null}", &PARTS, "{\"a\":false}", &PARTS);
    assert_differ("{\"a\":{}}", &PARTS, "{\"a\":[]}", &PARTS);
}

static void test_envelope(void **state)
{
    (void)state;
    hx_cache_entry in = {.content_type = "text/event-stream", .stream = true, .body = "data: x\n\n", .len = 9}, out;
    void *blob;
    size_t n;
    char ct[HX_CACHE_CTYPE_MAX + 1];
    assert_int_equal(hx_cache_encode(&in, 5000, &blob, &n), 0);
    assert_int_equal(hx_cache_decode(blob, n, 4999, &out, ct), 0);
    assert_string_equal(out.content_type, "text/event-stream");
    assert_true(out.stream);
    assert_int_equal(out.len, 9);
    assert_memory_equal(out.body, "data: x\n\n", 9);
    assert_int_equal(hx_cache_decode(blob, n, 5000, &out, ct), -1); /* expired */
    assert_int_equal(hx_cache_decode(blob, 10, 0, &out, ct), -1);   /* truncated */
    ((char *)blob)[0] = 'X';
    assert_int_equal(hx_cache_decode(blob, n, 0, &out, ct), -1); /* not an entry */
    hx_free(blob);
    hx_cache_entry big = {.content_type = "application/json", .body = "", .len = HX_CACHE_ENTRY_MAX + 1};
    assert_int_equal(hx_cache_encode(&big, 5000, &blob, &n), -1);
}

static void mkkey(char out[65], int i)
{
    snprintf(out, 65, "%064x", i);
}

static int evicted[16], nevicted;
static void on_evict(void *ud, const char *key, void *data)
{
    (void)ud;
    (void)data;
    evicted[nevicted++] = (int)strtol(key + 56, NULL, 16);
}

static void test_lru_bounds(void **state)
{
    (void)state;
    hx_cache_lru *l = hx_cache_lru_new(2, 100);
    assert_non_null(l);
    char k[65];
    size_t sz, n, bytes;
    nevicted = 0;
    for (int i = 1; i <= 2; i++) {
        mkkey(k, i);
        assert_int_equal(hx_cache_lru_put(l, k, hx_strdup("x"), 10, on_evict, NULL), 0);
    }
    mkkey(k, 1);
    assert_non_null(hx_cache_lru_find(l, k, &sz)); /* 1 becomes the most recent */
    mkkey(k, 3);
    assert_int_equal(hx_cache_lru_put(l, k, hx_strdup("x"), 10, on_evict, NULL), 0);
    assert_int_equal(nevicted, 1);
    assert_int_equal(evicted[0], 2);
    mkkey(k, 2);
    assert_null(hx_cache_lru_find(l, k, &sz));
    hx_cache_lru_usage(l, &n, &bytes);
    assert_int_equal(n, 2);
    assert_int_equal(bytes, 20);
    /* the byte bound: 95 bytes push both others out */
    mkkey(k, 4);
    assert_int_equal(hx_cache_lru_put(l, k, hx_strdup("x"), 95, on_evict, NULL), 0);
    hx_cache_lru_usage(l, &n, &bytes);
    assert_int_equal(n, 1);
    assert_int_equal(bytes, 95);
    assert_int_equal(nevicted, 3);
    /* larger than the whole bound: refused, nothing evicted */
    mkkey(k, 5);
    assert_int_equal(hx_cache_lru_put(l, k, hx_strdup("x"), 101, on_evict, NULL), -1);
    assert_int_equal(nevicted, 3);
    /* a replacement is not an eviction and keeps the count */
    mkkey(k, 4);
    assert_int_equal(hx_cache_lru_put(l, k, hx_strdup("y"), 5, on_evict, NULL), 0);
    hx_cache_lru_usage(l, &n, &bytes);
    assert_int_equal(n, 1);
    assert_int_equal(bytes, 5);
    assert_int_equal(nevicted, 3);
    assert_int_equal(hx_cache_lru_put(l, "short", hx_strdup("x"), 1, NULL, NULL), -1);
    hx_cache_lru_free(l);
}

typedef struct {
    int calls;
    bool hit;
    char body[64];
} got;

static void on_get(void *ud, const hx_cache_entry *e)
{
    got *g = ud;
    g->calls++;
    g->hit = e != NULL;
    g->body[0] = '\0';
    if (e) {
        assert_true(e->len < sizeof g->body);
        memcpy(g->body, e->body, e->len);
        g->body[e->len] = '\0';
    }
}

/* A backend through the blob interface, as cache.c drives it. */
static void be_put(hx_cache_backend *b, const char *key, const char *body, int64_t ttl)
{
    hx_cache_entry e = {.content_type = "application/json", .body = body, .len = strlen(body)};
    void *blob;
    size_t n;
    assert_int_equal(hx_cache_encode(&e, fake_now + ttl, &blob, &n), 0);
    b->vt->put(b, NULL, key, blob, n, ttl);
}

static void on_blob(void *ud, const void *blob, size_t len)
{
    got *g = ud;
    hx_cache_entry e;
    char ct[HX_CACHE_CTYPE_MAX + 1];
    on_get(g, blob && hx_cache_decode(blob, len, fake_now, &e, ct) == 0 ? &e : NULL);
}

static got be_get(hx_cache_backend *b, const char *key)
{
    got g = {0};
    assert_int_equal(b->vt->get(b, NULL, key, on_blob, &g), 0);
    assert_int_equal(g.calls, 1); /* without a loop: answered at once */
    return g;
}

static void test_memory_backend(void **state)
{
    (void)state;
    hx_cache_backend *b = hx_cache_mem_new(2, 1 << 20);
    assert_non_null(b);
    char k1[65], k2[65], k3[65];
    mkkey(k1, 1);
    mkkey(k2, 2);
    mkkey(k3, 3);
    assert_false(be_get(b, k1).hit);
    be_put(b, k1, "one", 1000);
    be_put(b, k2, "two", 5000);
    got g = be_get(b, k1);
    assert_true(g.hit);
    assert_string_equal(g.body, "one");
    be_put(b, k3, "three", 5000); /* max_size 2: k2, least recently used, goes */
    assert_false(be_get(b, k2).hit);
    assert_true(be_get(b, k3).hit);
    fake_now += 1000; /* k1's ttl is over: a miss, and its room is freed */
    assert_false(be_get(b, k1).hit);
    size_t n, bytes;
    assert_true(b->vt->usage(b, &n, &bytes));
    assert_int_equal(n, 1);
    b->vt->destroy(b);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_file_backend(void **state)
{
    (void)state;
    char dir[] = "/tmp/hx-cache-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[64];
    snprintf(sub, sizeof sub, "%s/entries", dir); /* made by the backend */
    hx_cache_backend *b = hx_cache_file_new(sub, 2, 1 << 20);
    assert_non_null(b);
    char k1[65], k2[65], k3[65], path[256];
    mkkey(k1, 1);
    mkkey(k2, 2);
    mkkey(k3, 3);
    be_put(b, k1, "one", 1000);
    be_put(b, k2, "two", 5000);
    be_put(b, k3, "three", 5000); /* k1 goes, file and all */
    assert_int_equal(count_files(sub), 2);
    snprintf(path, sizeof path, "%s/%s", sub, k1);
    assert_int_not_equal(access(path, F_OK), 0);
    got g = be_get(b, k2);
    assert_true(g.hit);
    assert_string_equal(g.body, "two");
    assert_false(be_get(b, k1).hit);
    assert_false(be_get(b, "../../etc/passwd").hit); /* only key names are files */
    b->vt->destroy(b);
    /* a restart finds the entries again */
    b = hx_cache_file_new(sub, 2, 1 << 20);
    assert_non_null(b);
    size_t n, bytes;
    assert_true(b->vt->usage(b, &n, &bytes));
    assert_int_equal(n, 2);
    g = be_get(b, k3);
    assert_true(g.hit);
    assert_string_equal(g.body, "three");
    fake_now += 5000; /* expired: a miss, and the file goes */
    assert_false(be_get(b, k3).hit);
    assert_int_equal(count_files(sub), 1);
    assert_true(b->vt->usage(b, &n, &bytes));
    assert_int_equal(n, 1);
    b->vt->destroy(b);
    /* a smaller bound at start keeps the newest */
    b = hx_cache_file_new(sub, 5, 1 << 20);
    assert_non_null(b);
    be_put(b, k1, "one", 5000);
    b->vt->destroy(b);
    b = hx_cache_file_new(sub, 1, 1 << 20);
    assert_non_null(b);
    assert_int_equal(count_files(sub), 1);
    assert_true(be_get(b, k1).hit);
    b->vt->destroy(b);
    snprintf(path, sizeof path, "%s/%s", sub, k1);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

/* Every allocation of the key, the envelope and the memory backend fails
 * in turn: an error or a miss each time, never a crash or a leak. */
static void test_allocation_failures(void **state)
{
    (void)state;
    json_object *o = json_tokener_parse("{\"b\":[1,{\"c\":2,\"a\":3}],\"a\":\"x\"}");
    char k[65], good[65];
    assert_int_equal(hx_cache_key(&PARTS, o, good), 0);
    for (unsigned long nth = 1; nth < 20; nth++) {
        hx_alloc_fail_at(nth, 0);
        if (hx_cache_key(&PARTS, o, k) == 0)
            assert_string_equal(k, good);
        hx_alloc_fail_at(0, 0);
    }
    json_object_put(o);
    for (unsigned long nth = 1; nth < 20; nth++) {
        hx_cache_backend *b = hx_cache_mem_new(4, 1 << 20);
        hx_alloc_fail_at(nth, 0);
        if (b) {
            char key[65];
            mkkey(key, 7);
            hx_cache_entry e = {.content_type = "application/json", .body = "{}", .len = 2};
            void *blob;
            size_t n;
            if (hx_cache_encode(&e, fake_now + 1000, &blob, &n) == 0)
                b->vt->put(b, NULL, key, blob, n, 1000);
            got g = {0};
            if (b->vt->get(b, NULL, key, on_blob, &g) == 0)
                assert_int_equal(g.calls, 1);
        }
        hx_alloc_fail_at(0, 0);
        if (b)
            b->vt->destroy(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_key_ignores_order_and_spacing, setup),
        cmocka_unit_test_setup(test_key_differs_on_every_part, setup),
        cmocka_unit_test_setup(test_envelope, setup),
        cmocka_unit_test_setup(test_lru_bounds, setup),
        cmocka_unit_test_setup(test_memory_backend, setup),
        cmocka_unit_test_setup(test_file_backend, setup),
        cmocka_unit_test_setup(test_allocation_failures, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
