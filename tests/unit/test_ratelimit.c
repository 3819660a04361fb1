#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "http/request.h"
#include "middleware/ctx.h"
#include "middleware/auth.h"
#include "middleware/middleware.h"
#include "middleware/ratelimit.h"
#include "obs/log.h"
#include "util/alloc.h"

#include "capture.h"

#define KEY_ALPHA "sk-alpha-ratelimit-1"
#define KEY_TOK "sk-tok-ratelimit-2"

static void ok_handler(hx_req *r)
{
    hx_res_send(r, 200, "text/plain", "ok", 2);
}

/* ---- fixtures ---------------------------------------------------------- */

static _Atomic uint64_t fake_now = 1000000;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }
static void advance(uint64_t ms) { atomic_fetch_add(&fake_now, ms); }

static FILE *logf_;
static hx_config *cfg;

static const char *const yaml =
    "server:\n  middleware: [rate_limit, auth]\n"
    "rate_limit:\n  enabled: true\n  requests_per_minute: 60\n  burst: 3\n"
    "  trusted_proxies: [10.0.0.0/8, \"2001:db8::/32\", 192.168.1.1, 172.16.0.0/12, \"fd00::/7\"]\n"
    "auth:\n  enabled: true\n  keys:\n"
    "    - {name: alpha, key: " KEY_ALPHA ", rate_limit: {requests_per_minute: 600, burst: 5}}\n"
    "    - {name: tok, key: " KEY_TOK ", rate_limit: {requests_per_minute: 6000, burst: 100,"
    " tokens_per_minute: 600}}\n";

static char *captured_log(void)
{
    static char buf[65536];
    fflush(logf_);
    rewind(logf_);
    size_t got = fread(buf, 1, sizeof buf - 1, logf_);
    buf[got] = '\0';
    rewind(logf_);
    (void)!ftruncate(fileno(logf_), 0);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    logf_ = tmpfile();
    hx_log_set_fd(fileno(logf_));
    hx_log_set_level(HX_LOG_INFO);
    hx_log_set_json(true);
    hx_config_errors errs = {0};
    cfg = hx_config_load_string(yaml, strlen(yaml), "rl.yaml", &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.items[i]);
    hx_config_errors_free(&errs);
    if (cfg == NULL)
        return -1;
    hx_ratelimit_set_clock(fake_clock);
    return hx_ratelimit_init(cfg);
}

static int teardown(void **state)
{
    (void)state;
    hx_ratelimit_shutdown();
    hx_ratelimit_set_clock(NULL);
    hx_auth_cache_flush();
    hx_config_unref(cfg);
    hx_log_set_fd(-1);
    fclose(logf_);
    return 0;
}

typedef struct {
    const char *peer;
    const char *key;       /* X-API-Key, or NULL */
    const char *xff;       /* X-Forwarded-For, or NULL */
    const char *xff2;      /* a second X-Forwarded-For line, or NULL */
    int64_t debit;         /* LLM tokens used, debited after the response */
    int64_t reserve;       /* tokens reserved up front (hx_ratelimit_reserve_tokens) */
    int64_t reserved;      /* out: what the reservation took */
    bool settle;           /* then settle the reservation with `charge` */
    int64_t charge;
} call;

/* Runs one request through the rate_limit step; c (empty, or holding the
 * last response) gets the response. client_ip gets the resolved client
 * address when not NULL. */
static int run(call *k, hx_test_capture *c, char client_ip[48])
{
    cap_reset(c);
    hx_req *r = hx_req_new(&cap_tp, c, cfg);
    assert_non_null(r);
    r->method = "POST";
    r->path = hx_strdup("/v1/chat/completions");
    snprintf(r->peer_ip, sizeof r->peer_ip, "%s", k->peer ? k->peer : "198.51.100.7");
    hx_req_assign_id(r, false);
    if (k->key)
        assert_int_equal(hx_headers_add(&r->headers, "X-API-Key", k->key), 0);
    if (k->xff)
        assert_int_equal(hx_headers_add(&r->headers, "X-Forwarded-For", k->xff), 0);
    if (k->xff2)
        assert_int_equal(hx_headers_add(&r->headers, "X-Forwarded-For", k->xff2), 0);
    r->steps[0] = hx_mw_rate_limit;
    r->nsteps = 1;
    r->method_ok = true;
    r->handler = ok_handler;
    hx_req_next(r);
    if (k->reserve)
        k->reserved = hx_ratelimit_reserve_tokens(r, k->reserve);
    if (k->settle)
        hx_ratelimit_settle_tokens(r, k->reserved, k->charge);
    if (k->debit)
        hx_ratelimit_debit_tokens(r, k->debit);
    if (client_ip)
        snprintf(client_ip, 48, "%s", hx_client_ip(r));
    int st = c->status;
    hx_req_unref(r);
    return st;
}

static int run_ip(const char *peer, hx_test_capture *c)
{
    call k = {.peer = peer};
    return run(&k, c, NULL);
}

/* ---- tests ------------------------------------------------------------- */

/* IPv6 clients share a bucket per /64 (burst 3 here). */
static void test_ipv6_per_64(void **state)
{
    (void)state;
    hx_test_capture c = {0};
    assert_int_equal(run_ip("2001:db9:1:2::1", &c), 200);
    assert_int_equal(run_ip("2001:db9:1:2::2", &c), 200);
    assert_int_equal(run_ip("2001:db9:1:2:ffff::9", &c), 200);
    assert_int_equal(run_ip("2001:db9:1:2::abcd", &c), 429); /* same /64: the fourth */
    assert_int_equal(run_ip("2001:db9:1:3::1", &c), 200);    /* the next /64 */
    cap_free(&c);
}

static void test_burst_then_429(void **state)
{
    (void)state;
    hx_test_capture c = {0};
    const char *remaining[] = {"2", "1", "0"};
    const char *reset[] = {"1", "2", "3"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_ip("203.0.113.1", &c), 200);
        assert_string_equal(cap_header_or_empty(&c, "RateLimit-Limit"), "3");
        assert_string_equal(cap_header_or_empty(&c, "RateLimit-Remaining"), remaining[i]);
        assert_string_equal(cap_header_or_empty(&c, "RateLimit-Reset"), reset[i]);
        assert_string_equal(cap_header_or_empty(&c, "Retry-After"), "");
    }
    assert_int_equal(run_ip("203.0.113.1", &c), 429);
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Limit"), "3");
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Remaining"), "0");
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Reset"), "3");
    assert_string_equal(cap_header_or_empty(&c, "Retry-After"), "1");
    assert_non_null(strstr(cap_text(&c), "\"rate_limit_exceeded\""));
    char *log = captured_log();
    assert_non_null(strstr(log, "\"event\":\"rate_limited\""));
    assert_non_null(strstr(log, "\"kind\":\"requests\""));
    assert_non_null(strstr(log, "\"bucket\":\"ip:203.0.113.1\""));
    /* another client is not affected */
    assert_int_equal(run_ip("203.0.113.2", &c), 200);
    cap_free(&c);
}

static void test_refill(void **state)
{
    (void)state;
    hx_test_capture c = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(run_ip("203.0.113.1", &c), 200);
    assert_int_equal(run_ip("203.0.113.1", &c), 429);
    advance(999);
    assert_int_equal(run_ip("203.0.113.1", &c), 429);
    assert_string_equal(cap_header_or_empty(&c, "Retry-After"), "1");
    advance(1);
    assert_int_equal(run_ip("203.0.113.1", &c), 200);
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Remaining"), "0");
    advance(500);
    assert_int_equal(run_ip("203.0.113.1", &c), 429);
    /* refill stops at the capacity */
    advance(60000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(run_ip("203.0.113.1", &c), 200);
    assert_int_equal(run_ip("203.0.113.1", &c), 429);
    cap_free(&c);
}

static void test_key_override_and_identity(void **state)
{
    (void)state;
    hx_test_capture c = {0};
    /* one key from several addresses shares its bucket of 5 */
    const char *peers[] = {"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"};
    for (int i = 0; i < 5; i++) {
        call k = {.peer = peers[i], .key = KEY_ALPHA};
        assert_int_equal(run(&k, &c, NULL), 200);
        assert_string_equal(cap_header_or_empty(&c, "RateLimit-Limit"), "5");
    }
    call k = {.peer = "203.0.113.9", .key = KEY_ALPHA};
    assert_int_equal(run(&k, &c, NULL), 429);
    /* 600 per minute: 10 per second */
    assert_string_equal(cap_header_or_empty(&c, "Retry-After"), "1");
    char *log = captured_log();
    assert_non_null(strstr(log, "\"bucket\":\"key:alpha\""));
    assert_null(strstr(log, KEY_ALPHA));
    /* the addresses themselves still have their own (global) buckets */
    assert_int_equal(run_ip("203.0.113.1", &c), 200);
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Limit"), "3");
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Remaining"), "2");
    /* an unknown key is limited by address */
    call bad = {.peer = "203.0.113.1", .key = "sk-not-a-key"};
    assert_int_equal(run(&bad, &c, NULL), 200);
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Remaining"), "1");
    advance(100);
    assert_int_equal(run(&k, &c, NULL), 200);
    cap_free(&c);
}

static void test_xff(void **state)
{
    (void)state;
    hx_test_capture c = {0};
    char ip[48];
    struct {
        call k;
        const char *want;
    } cases[] = {
        /* untrusted peer: its X-Forwarded-For is ignored */
        {{.peer = "8.8.8.8", .xff = "203.0.113.9"}, "8.8.8.8"},
        /* trusted by CIDR: right-most entry that is not a proxy */
        {{.peer = "10.1.2.3", .xff = "192.0.2.1, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
        {{.peer = "10.1.2.3"}, "10.1.2.3"},
        /* exact IP entry; its neighbour is not trusted */
        {{.peer = "192.168.1.1", .xff = "203.0.113.5"}, "203.0.113.5"},
        {{.peer = "192.168.1.2", .xff = "203.0.113.5"}, "192.168.1.2"},
        /* IPv6 CIDR, addresses in canonical form */
        {{.peer = "2001:db8::5", .xff = "198.51.100.1, 2001:DB8:0:0::7"}, "198.51.100.1"},
        {{.peer = "2001:db8::5", .xff = "2001:db9::1"}, "2001:db9::1"},
        {{.peer = "2001:db8::5", .xff = "2001:0db8:ffff::1"}, "2001:db8:ffff::1"},
        {{.peer = "2001:db9::5", .xff = "203.0.113.5"}, "2001:db9::5"},
        /* prefixes that end inside a byte */
        {{.peer = "172.31.255.255", .xff = "203.0.113.6"}, "203.0.113.6"},
        {{.peer = "172.32.0.1", .xff = "203.0.113.6"}, "172.32.0.1"},
        {{.peer = "fdff::1", .xff = "2001:db9::3"}, "2001:db9::3"},
        {{.peer = "fe00::1", .xff = "2001:db9::3"}, "fe00::1"},
        /* IPv4-mapped peer, ports, two header lines */
        {{.peer = "::ffff:10.0.0.1", .xff = "203.0.113.7:5555"}, "203.0.113.7"},
        {{.peer = "10.0.0.1", .xff = "[2001:db9::2]:443"}, "2001:db9::2"},
        {{.peer = "10.0.0.1", .xff = "203.0.113.1", .xff2 = "203.0.113.2, 10.0.0.2"}, "203.0.113.2"},
        /* garbage: the last trusted hop stays the client */
        {{.peer = "10.0.0.1", .xff = "203.0.113.1, not-an-ip"}, "10.0.0.1"},
        {{.peer = "10.0.0.1", .xff = "203.0.113.1, nope, 10.0.0.3"}, "10.0.0.3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run(&cases[i].k, &c, ip);
        assert_string_equal(ip, cases[i].want);
    }
    /* the resolved address is the bucket */
    advance(60000);
    call viaproxy = {.peer = "10.1.2.3", .xff = "203.0.113.77"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(run(&viaproxy, &c, NULL), 200);
    viaproxy.peer = "10.200.0.1"; /* another proxy, same client */
    assert_int_equal(run(&viaproxy, &c, NULL), 429);
    assert_int_equal(run_ip("10.1.2.3", &c), 200);
    cap_free(&c);
}

/* An upstream that reports 2^53 tokens puts the client in debt for at most
 * an hour (60 x 600 tokens at 10 per second: 3601 s), not for millennia. */
static void test_tokens_debt_bounded(void **state)
{
    (void)state;
    hx_test_capture c = {0};
    call k = {.key = KEY_TOK, .debit = (int64_t)1 << 53};
    assert_int_equal(run(&k, &c, NULL), 200);
    k.debit = 0;
    assert_int_equal(run(&k, &c, NULL), 429);
    assert_string_equal(cap_header_or_empty(&c, "Retry-After"), "3601");
    cap_free(&c);
}

static void test_tokens_bucket(void **state)
{
    (void)state;
    hx_test_capture c = {0};
    call k = {.key = KEY_TOK, .debit = 700};
    assert_int_equal(run(&k, &c, NULL), 200);
    k.debit = 0;
    /* 600 per minute = 10 per second; 100 in debt: > 10 s to get above 0 */
    assert_int_equal(run(&k, &c, NULL), 429);
    assert_string_equal(cap_header_or_empty(&c, "Retry-After"), "11");
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Limit"), "600");
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Remaining"), "0");
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Reset"), "70");
    assert_non_null(strstr(cap_text(&c), "\"rate_limit_exceeded\""));
    char *log = captured_log();
    assert_non_null(strstr(log, "\"kind\":\"tokens\""));
    assert_non_null(strstr(log, "\"bucket\":\"key:tok\""));
    assert_null(strstr(log, KEY_TOK));
    advance(10000);
    assert_int_equal(run(&k, &c, NULL), 429);
    advance(100);
    assert_int_equal(run(&k, &c, NULL), 200);
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Limit"), "100");

    /* without a tokens limit, debits are ignored */
    call ip = {.peer = "203.0.113.50", .debit = 1000000};
    assert_int_equal(run(&ip, &c, NULL), 200);
    ip.debit = 0;
    assert_int_equal(run(&ip, &c, NULL), 200);
    cap_free(&c);
}

/* Reserve up front, settle at the end: a reservation blocks the client
 * while it holds the whole bucket, is given back when the real usage is
 * charged instead, and an estimate charged for a client that left counts
 * like usage. */
static void test_tokens_reserve_settle(void **state)
{
    (void)state;
    hx_test_capture c = {0};
    call k = {.key = KEY_TOK, .reserve = 1000};
    assert_int_equal(run(&k, &c, NULL), 200);
    assert_int_equal(k.reserved, 600); /* never more than the bucket */
    call plain = {.key = KEY_TOK};
    assert_int_equal(run(&plain, &c, NULL), 429);
    /* the answer came with its usage: reservation back, usage charged once */
    call fin = {.key = KEY_TOK, .settle = true, .reserved = 600, .charge = 0, .debit = 100};
    assert_int_equal(run(&fin, &c, NULL), 429); /* still decided before the refund */
    assert_int_equal(run(&plain, &c, NULL), 200);
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Limit"), "100");
    /* 500 left: a client that leaves is charged the estimate (600) */
    call gone = {.key = KEY_TOK, .reserve = 200};
    assert_int_equal(run(&gone, &c, NULL), 200);
    assert_int_equal(gone.reserved, 200);
    gone = (call){.key = KEY_TOK, .settle = true, .reserved = 200, .charge = 600};
    assert_int_equal(run(&gone, &c, NULL), 200);
    assert_int_equal(run(&plain, &c, NULL), 429); /* 500 - 600 < 0 */
    /* without a tokens limit nothing is reserved */
    call ip = {.peer = "203.0.113.51", .reserve = 1000};
    assert_int_equal(run(&ip, &c, NULL), 200);
    assert_int_equal(ip.reserved, 0);
    cap_free(&c);
}

static json_object *find_id(json_object *arr, const char *id)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i), *v;
        if (json_object_object_get_ex(o, "id", &v) && strcmp(json_object_get_string(v), id) == 0)
            return o;
    }
    return NULL;
}

static void test_export_import(void **state)
{
    (void)state;
    hx_test_capture c = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(run_ip("203.0.113.1", &c), 200);
    call k = {.key = KEY_TOK, .debit = 700};
    assert_int_equal(run(&k, &c, NULL), 200);

    json_object *arr = json_object_new_array();
    assert_int_equal(hx_ratelimit_export(arr), 2);
    json_object *ipo = find_id(arr, "ip:203.0.113.1"), *v;
    assert_non_null(ipo);
    assert_true(json_object_object_get_ex(ipo, "tokens", &v));
    assert_true(json_object_get_double(v) < 0.01);
    assert_true(json_object_object_get_ex(ipo, "tpm_tokens", &v));
    assert_null(v);
    assert_true(json_object_object_get_ex(ipo, "updated_unix_ms", &v));
    assert_true(json_object_get_int64(v) > 1600000000000);
    json_object *keyo = find_id(arr, "key:tok");
    assert_non_null(keyo);
    assert_true(json_object_object_get_ex(keyo, "tpm_tokens", &v));
    assert_true(json_object_get_double(v) < -99);

    /* round trip through text, into an empty table */
    char *text = hx_strdup(json_object_to_json_string(arr));
    json_object_put(arr);
    hx_ratelimit_shutdown();
    assert_int_equal(hx_ratelimit_count(), 0);
    assert_int_equal(hx_ratelimit_init(cfg), 0); /* as at start-up: init, then import */
    arr = json_tokener_parse(text);
    hx_free(text);
    assert_int_equal(hx_ratelimit_import(arr), 2);
    json_object_put(arr);
    assert_int_equal(run_ip("203.0.113.1", &c), 429);
    k.debit = 0;
    assert_int_equal(run(&k, &c, NULL), 429);
    /* 10 or 11 s: real wall time passed between export and import */
    const char *retry = cap_header_or_empty(&c, "Retry-After");
    assert_true(strcmp(retry, "11") == 0 || strcmp(retry, "10") == 0);

    /* malformed entries are skipped; wall time since the save refills */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long wall = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    char in[1024];
    snprintf(in, sizeof in,
             "[{\"id\":5}, \"str\", null,"
             " {\"id\":\"ip:192.0.2.1\",\"tokens\":\"x\",\"updated_unix_ms\":1},"
             " {\"id\":\"bogus:x\",\"tokens\":1,\"updated_unix_ms\":1},"
             " {\"id\":\"ip:192.0.2.2\",\"tokens\":1},"
             " {\"id\":\"ip:192.0.2.3\",\"tokens\":0,\"tpm_tokens\":null,\"updated_unix_ms\":%lld}]",
             wall - 2000);
    arr = json_tokener_parse(in);
    assert_non_null(arr);
    assert_int_equal(hx_ratelimit_import(arr), 1);
    json_object_put(arr);
    assert_int_equal(hx_ratelimit_import(NULL), 0);
    assert_int_equal(run_ip("192.0.2.3", &c), 200);
    /* 2 s refilled 2, this took 1 */
    assert_string_equal(cap_header_or_empty(&c, "RateLimit-Remaining"), "1");
    cap_free(&c);
}

static void test_table_bounded_and_idle_eviction(void **state)
{
    (void)state;
    /* more buckets than the table takes */
    json_object *arr = json_object_new_array();
    /* enough that every stripe of the table fills up */
    size_t total = HX_RATELIMIT_MAX_ENTRIES + 10000;
    for (size_t i = 0; i < total; i++) {
        char id[40];
        snprintf(id, sizeof id, "ip:10.%zu.%zu.%zu", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "tokens", json_object_new_double(0));
        json_object_object_add(o, "updated_unix_ms", json_object_new_int64(INT64_MAX / 2));
        json_object_array_add(arr, o);
    }
    assert_int_equal(hx_ratelimit_import(arr), (int)total);
    json_object_put(arr);
    assert_int_equal(hx_ratelimit_count(), HX_RATELIMIT_MAX_ENTRIES);
    hx_ratelimit_shutdown();

    /* buckets idle long enough to be full again go away lazily */
    hx_test_capture c = {0};
    char peer[48];
    for (int i = 0; i < 64; i++) {
        snprintf(peer, sizeof peer, "203.0.113.%d", i);
        run_ip(peer, &c);
    }
    assert_int_equal(hx_ratelimit_count(), 64);
    advance(3600 * 1000);
    for (int i = 0; i < 64; i++) {
        snprintf(peer, sizeof peer, "198.51.100.%d", i);
        run_ip(peer, &c);
    }
    assert_true(hx_ratelimit_count() < 100);
    cap_free(&c);
}

/* ---- many threads, one bucket ------------------------------------------ */

static atomic_int allowed;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        hx_test_capture c = {0};
        call k = {.peer = "203.0.113.200", .key = i % 2 ? KEY_ALPHA : NULL};
        if (run(&k, &c, NULL) == 200 && i % 2)
            atomic_fetch_add(&allowed, 1);
        cap_free(&c);
    }
    return NULL;
}

static void test_threads_never_exceed_capacity(void **state)
{
    (void)state;
    hx_log_set_level(HX_LOG_ERROR); /* 1000s of 429 lines */
    atomic_store(&allowed, 0);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    /* the clock does not move: exactly alpha's burst of 5 gets through */
    assert_int_equal(atomic_load(&allowed), 5);
    hx_log_set_level(HX_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_then_429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_per_64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_override_and_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_reserve_settle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_debt_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_bounded_and_idle_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_never_exceed_capacity, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
