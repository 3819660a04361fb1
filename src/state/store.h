/* The state store (shared/DESIGN.md section 4): the one interface through
 * which features keep state that several instances may have to share:
 * counters with an expiry, single-use registers (0-RTT anti-replay),
 * compare-and-set, token buckets. Features call the interface, never a
 * backend, so sharing state is a configuration change.
 *
 * Asynchronous by contract, as hx_resp_store: a shared backend (Redis)
 * answers later on the caller's loop. The in-process backend calls back
 * synchronously, before the call returns, and never while it holds its
 * lock (the callback may call the store again). A call that returns -1
 * (bad arguments, no memory for the request) never calls back; every
 * other call calls back exactly once.
 *
 * Keys are NUL-free strings of at most HX_STORE_KEY_MAX bytes; values are
 * bytes. Every entry may carry an expiry (ttl_ms > 0); nothing is kept
 * without bound: the in-process backend refuses new keys past its limits
 * (HX_STORE_FULL) after dropping expired ones. */
#ifndef HX_STATE_STORE_H
#define HX_STATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HX_STORE_KEY_MAX 512
#define HX_STORE_MEMBER_MAX 128
/* Live members of one lease set, in the in-process backend. */
#define HX_STORE_LEASES_MAX 4096

typedef enum {
    HX_STORE_OK = 0,
    HX_STORE_EXISTS,      /* add_once: the key is already registered (a replay) */
    HX_STORE_NOT_FOUND,   /* get, del; cas on a missing key with an expected value */
    HX_STORE_CONFLICT,    /* cas: the value is not the expected one */
    HX_STORE_LIMITED,     /* bucket_take: fewer tokens than asked */
    HX_STORE_FULL,        /* a new key past the store's bounds */
    HX_STORE_WRONG_TYPE,  /* incr on a value that is not a counter, and the like */
    HX_STORE_UNAVAILABLE, /* the backend cannot answer (a shared one down) */
    HX_STORE_NOMEM,
} hx_store_rc;

/* What an operation answers; valid during the callback only. */
typedef struct {
    hx_store_rc rc;
    int64_t value;      /* incr: the new value; lease_acquire: live members */
    const void *data;   /* get: the value (not NUL-terminated) */
    size_t len;
    double tokens;      /* bucket_take, bucket_charge: tokens left after */
    double gate_tokens; /* bucket_take_gated: the gate's level */
    int64_t retry_ms;   /* bucket_take LIMITED: when the asked tokens are there */
} hx_store_reply;

typedef void (*hx_store_cb)(void *ud, const hx_store_reply *r);
/* A message on a subscribed channel (the channel without any prefix). */
typedef void (*hx_store_msg_fn)(void *ud, const char *channel, const void *msg, size_t len);

typedef struct hx_store hx_store;

typedef struct {
    const char *name; /* "memory", "redis" */
    int (*get)(hx_store *s, const char *key, hx_store_cb cb, void *ud);
    /* Stores the value (replacing any), with an expiry when ttl_ms > 0. */
    int (*set)(hx_store *s, const char *key, const void *val, size_t len, int64_t ttl_ms, hx_store_cb cb,
               void *ud);
    /* Registers key once: OK the first time, EXISTS while it lives. */
    int (*add_once)(hx_store *s, const char *key, int64_t ttl_ms, hx_store_cb cb, void *ud);
    /* Adds delta to a counter (a missing key counts from 0); the expiry is
     * set when the key is created and kept after. */
    int (*incr)(hx_store *s, const char *key, int64_t delta, int64_t ttl_ms, hx_store_cb cb, void *ud);
    /* Replaces the value when it equals expect (expect NULL: when the key
     * is missing). */
    int (*cas)(hx_store *s, const char *key, const void *expect, size_t elen, const void *val, size_t vlen,
               int64_t ttl_ms, hx_store_cb cb, void *ud);
    /* Takes n tokens from a bucket of `burst` refilled at rate_per_s
     * (full when created). LIMITED takes nothing. */
    int (*bucket_take)(hx_store *s, const char *key, double rate_per_s, double burst, double n, hx_store_cb cb,
                       void *ud);
    /* bucket_take from `key`, but only while the `gate` bucket holds more
     * than 0 (it is looked at, never taken from): LIMITED with value 1 when
     * the gate is empty (nothing taken), LIMITED with value 0 when key is
     * short. Both levels in the reply (tokens, gate_tokens). One atomic
     * step: a request limit behind a tokens limit. */
    int (*bucket_take_gated)(hx_store *s, const char *key, double rate_per_s, double burst, double n,
                             const char *gate, double gate_rate_per_s, double gate_burst, hx_store_cb cb, void *ud);
    /* Takes n tokens whatever the level (n < 0 gives back, never above
     * burst); the level never goes below `floor` (< 0: a debt the refill
     * pays off). OK, with the level after in tokens. */
    int (*bucket_charge)(hx_store *s, const char *key, double rate_per_s, double burst, double n, double floor,
                         hx_store_cb cb, void *ud);
    /* Leases: a set of members, each expiring ttl_ms after its last
     * acquire (a holder that dies loses its lease by itself). Acquire adds
     * or renews `member` while fewer than `limit` others hold one: OK or
     * LIMITED, with the live members (this one included when OK) in value.
     * Members are NUL-free strings of at most HX_STORE_MEMBER_MAX bytes. */
    int (*lease_acquire)(hx_store *s, const char *key, const char *member, int64_t limit, int64_t ttl_ms,
                         hx_store_cb cb, void *ud);
    /* Gives a lease back: OK, or NOT_FOUND when it was not held (expired). */
    int (*lease_release)(hx_store *s, const char *key, const char *member, hx_store_cb cb, void *ud);
    /* Sends msg to the channel's subscribers (every instance's): OK with
     * the receivers in value. Fire and forget: no delivery guarantee. */
    int (*publish)(hx_store *s, const char *channel, const void *msg, size_t len, hx_store_cb cb, void *ud);
    /* Calls fn for every message on `channel` from now on, on the store's
     * loop; kept across reconnects (messages sent while down are lost).
     * One channel per store; in the Redis backend a subscribed store
     * answers no other command (use a store of its own). */
    int (*subscribe)(hx_store *s, const char *channel, hx_store_msg_fn fn, void *ud);
    int (*del)(hx_store *s, const char *key, hx_store_cb cb, void *ud);
    void (*destroy)(hx_store *s);
} hx_store_vt;

struct hx_store {
    const hx_store_vt *vt;
};

/* Limits of the in-process backend: entries and bytes (keys and values). */
typedef struct {
    size_t max_entries;
    size_t max_bytes;
} hx_store_limits;

/* The in-process backend (thread-safe: one mutex, short sections). NULL
 * when out of memory. Destroy with s->vt->destroy(s). */
hx_store *hx_store_memory_new(const hx_store_limits *lim);
/* Tests: the clock (monotonic milliseconds) the store reads. */
void hx_store_memory_clock(hx_store *s, int64_t (*now_ms)(void));
/* Entries and bytes held now, expired ones not yet dropped included. */
void hx_store_memory_usage(hx_store *s, size_t *count, size_t *bytes);

const char *hx_store_rc_str(hx_store_rc rc);

/* ---- the Redis backend (store_redis.c) ---- */

#define HX_STORE_PREFIX_MAX 64

typedef struct {
    const char *address;        /* "host:port" or "[v6]:port" (copied) */
    const char *prefix;         /* before every key: several gateways share one Redis */
    const char *username;       /* ACL user ("" = the default user) */
    const char *password;       /* "" = no AUTH */
    int db;                     /* SELECT when > 0 */
    int64_t connect_timeout_ms; /* default 1000 */
    int64_t command_timeout_ms; /* default 1000: the oldest unanswered command past it breaks the connection */
    size_t max_pending;         /* default 10000 commands in flight; past it: UNAVAILABLE */
    /* Sentinel: the primary of `sentinel_master` is asked of the sentinels
     * ("host:port,host:port", tried in turn) before every connect, and a
     * READONLY answer (a demoted primary) reconnects; address is unused. */
    const char *sentinel_master;
    const char *sentinels;
    /* TLS to the server (state/redis_tls.h: a relay, hiredis 0.14 has
     * none): on when tls is true; the files are read when the store is made. */
    bool tls;
    const char *tls_ca_file, *tls_server_name, *tls_cert_file, *tls_key_file;
} hx_store_redis_opts;

typedef struct {
    uint64_t connect_attempts, connects, connect_errors, disconnects, timeouts, setup_errors;
    uint64_t answered, unavailable;
    uint64_t discoveries, discovery_errors; /* Sentinel answers naming the primary, and failures */
} hx_store_redis_stats;

/* A store on a loop (a worker's): asynchronous, answers on that loop, never
 * blocks it; reconnects by itself with backoff (100 ms doubling to 5 s).
 * While disconnected every call answers HX_STORE_UNAVAILABLE at once.
 * NULL on bad options or no memory. Destroy on the loop's thread. */
hx_store *hx_store_redis_new(void *uv_loop, const hx_store_redis_opts *o);
/* The same, with the reason of a failure (bad options, TLS files, memory). */
hx_store *hx_store_redis_open(void *uv_loop, const hx_store_redis_opts *o, char *err, size_t errlen);
bool hx_store_redis_connected(const hx_store *s);
/* "host:port", "[v6]:port" or "host" (port 6379): host copied into host
 * (hostlen bytes); -1 when malformed or too long. */
int hx_store_redis_parse_address(const char *addr, char *host, size_t hostlen, int *port);
void hx_store_redis_get_stats(const hx_store *s, hx_store_redis_stats *st);

#endif
