/* The state store in Redis (issue 15's shared backend), on hiredis 0.14's
 * asynchronous API and its libuv adapter: one connection per loop (a
 * worker's), commands pipelined, answers on that loop, never a blocking
 * call. Every key gets the configured prefix, so several gateways can
 * share one Redis; operations that read and write (incr with its expiry,
 * compare-and-set, token buckets) are Lua scripts, atomic on the server.
 *
 * Failure is bounded and visible: a connect deadline, a command deadline
 * (the oldest unanswered command older than it breaks the connection:
 * Redis answers in order, so one timer watches them all), at most
 * max_pending commands in flight, and a reconnect with backoff
 * (100 ms doubling to 5 s). While disconnected every call answers
 * HX_STORE_UNAVAILABLE at once: the caller applies its on_failure rule.
 *
 * Not yet wired to a feature: docs/internals/state-store.md. */
#include "state/store.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <gnutls/crypto.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define KEY_BUF (HX_STORE_PREFIX_MAX + HX_STORE_KEY_MAX + 1)

typedef enum { OP_GET, OP_SET, OP_ADD, OP_INCR, OP_CAS, OP_BUCKET, OP_GATED, OP_CHARGE, OP_LEASE, OP_RELEASE, OP_PUBLISH, OP_DEL, OP_SETUP } op_kind;

typedef struct pending {
    struct redis_store *s;
    op_kind op;
    uint64_t sent_ms;
    hx_store_cb cb;
    void *ud;
    struct pending *next; /* FIFO: Redis answers in order */
} pending;

typedef struct redis_store {
    hx_store base;
    uv_loop_t *loop;
    redisAsyncContext *ac;
    bool connected;
    bool closing;
    uv_timer_t timer;     /* connect deadline, command deadline, reconnect */
    uint64_t backoff_ms;
    pending *head, *tail;
    size_t npending;
    size_t nsetup;        /* of them, set-up commands (AUTH, SELECT, SCRIPT LOAD): outside max_pending */
    hx_store_redis_opts o; /* its strings point into `owned` */
    char *owned;
    char host[256];
    int port;
    hx_store_redis_stats st;
    /* subscribe: the channel (prefixed) and who hears it */
    char *sub_channel;
    size_t sub_prefix_len;
    hx_store_msg_fn sub_fn;
    void *sub_ud;
    bool reload_scripts;  /* a NOSCRIPT answer came back */
} redis_store;

static void arm(redis_store *s);
static void connect_now(redis_store *s);
static void send_subscribe(redis_store *s);
static void load_scripts(redis_store *s);

static uint64_t now_ms(redis_store *s)
{
    return uv_now(s->loop);
}

static void answer(hx_store_cb cb, void *ud, hx_store_rc rc)
{
    hx_store_reply r = {.rc = rc};
    if (cb)
        cb(ud, &r);
}

/* ---- replies ------------------------------------------------------------------- */

static hx_store_rc error_rc(redis_store *s, const redisReply *rp)
{
    if (rp->str && strncmp(rp->str, "NOSCRIPT", 8) == 0)
        s->reload_scripts = true; /* SCRIPT FLUSH on the server: load them again */
    if (rp->str && strncmp(rp->str, "WRONGTYPE", 9) == 0)
        return HX_STORE_WRONG_TYPE;
    if (rp->str && strncmp(rp->str, "OOM", 3) == 0)
        return HX_STORE_FULL;
    return HX_STORE_UNAVAILABLE;
}

static void decode(const pending *p, const redisReply *rp, hx_store_reply *out)
{
    out->rc = HX_STORE_OK;
    if (rp->type == REDIS_REPLY_ERROR) {
        out->rc = error_rc(p->s, rp);
        return;
    }
    switch (p->op) {
    case OP_GET:
        if (rp->type == REDIS_REPLY_NIL)
            out->rc = HX_STORE_NOT_FOUND;
        else if (rp->type == REDIS_REPLY_STRING)
            out->data = rp->str, out->len = rp->len;
        else
            out->rc = HX_STORE_WRONG_TYPE;
        break;
    case OP_ADD:
        out->rc = rp->type == REDIS_REPLY_NIL ? HX_STORE_EXISTS : HX_STORE_OK;
        break;
    case OP_INCR:
        out->value = rp->type == REDIS_REPLY_INTEGER ? rp->integer : 0;
        break;
    case OP_CAS:
        out->rc = rp->type != REDIS_REPLY_INTEGER ? HX_STORE_UNAVAILABLE
                  : rp->integer == 1              ? HX_STORE_OK
                  : rp->integer == 0              ? HX_STORE_CONFLICT
                                                  : HX_STORE_NOT_FOUND;
        break;
    case OP_BUCKET:
        if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 3) {
            out->rc = HX_STORE_UNAVAILABLE;
            break;
        }
        out->rc = rp->element[0]->integer == 1 ? HX_STORE_OK : HX_STORE_LIMITED;
        out->tokens = rp->element[1]->str ? strtod(rp->element[1]->str, NULL) : 0;
        out->retry_ms = rp->element[2]->integer;
        break;
    case OP_GATED:
        if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 5) {
            out->rc = HX_STORE_UNAVAILABLE;
            break;
        }
        out->rc = rp->element[0]->integer == 1 ? HX_STORE_OK : HX_STORE_LIMITED;
        out->tokens = rp->element[1]->str ? strtod(rp->element[1]->str, NULL) : 0;
        out->retry_ms = rp->element[2]->integer;
        out->gate_tokens = rp->element[3]->str ? strtod(rp->element[3]->str, NULL) : 0;
        out->value = rp->element[4]->integer;
        break;
    case OP_CHARGE:
        if (rp->type != REDIS_REPLY_STRING)
            out->rc = HX_STORE_UNAVAILABLE;
        else
            out->tokens = strtod(rp->str, NULL);
        break;
    case OP_LEASE:
        if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 2 || rp->element[0]->type != REDIS_REPLY_INTEGER ||
            rp->element[1]->type != REDIS_REPLY_INTEGER) {
            out->rc = HX_STORE_UNAVAILABLE;
            break;
        }
        out->rc = rp->element[0]->integer == 1 ? HX_STORE_OK : HX_STORE_LIMITED;
        out->value = rp->element[1]->integer;
        break;
    case OP_PUBLISH:
        out->value = rp->type == REDIS_REPLY_INTEGER ? rp->integer : 0;
        break;
    case OP_RELEASE:
    case OP_DEL:
        out->rc = rp->type == REDIS_REPLY_INTEGER && rp->integer > 0 ? HX_STORE_OK : HX_STORE_NOT_FOUND;
        break;
    default:
        break;
    }
}

/* hiredis calls back once per command: with the reply, or NULL when the
 * connection went (then every pending command hears UNAVAILABLE). */
static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    pending *p = privdata;
    redis_store *s = p->s;
    if (s->head == p) { /* always the head: answers come in order */
        s->head = p->next;
        if (s->head == NULL)
            s->tail = NULL;
    }
    s->npending--;
    s->nsetup -= p->op == OP_SETUP;
    hx_store_reply out = {.rc = HX_STORE_UNAVAILABLE};
    if (r)
        decode(p, r, &out);
    if (p->op == OP_SETUP) {
        if (r == NULL || out.rc != HX_STORE_OK)
            s->st.setup_errors++;
    } else {
        s->st.answered++;
        if (out.rc == HX_STORE_UNAVAILABLE)
            s->st.unavailable++;
        if (p->cb)
            p->cb(p->ud, &out);
    }
    if (s->reload_scripts && s->connected && !s->closing)
        load_scripts(s);
    hx_free(p);
}

/* ---- sending ----------------------------------------------------------------------- */

static int send_argv(redis_store *s, op_kind op, int argc, const char **argv, const size_t *lens, hx_store_cb cb,
                     void *ud)
{
    if (!s->connected && op != OP_SETUP) {
        s->st.unavailable++;
        answer(cb, ud, HX_STORE_UNAVAILABLE);
        return 0;
    }
    if (op != OP_SETUP && s->npending - s->nsetup >= s->o.max_pending) {
        s->st.unavailable++;
        answer(cb, ud, HX_STORE_UNAVAILABLE); /* bounded: past it, fail fast */
        return 0;
    }
    pending *p = hx_calloc(1, sizeof *p);
    if (p == NULL)
        return -1;
    *p = (pending){.s = s, .op = op, .sent_ms = now_ms(s), .cb = cb, .ud = ud};
    if (redisAsyncCommandArgv(s->ac, on_reply, p, argc, argv, lens) != REDIS_OK) {
        hx_free(p);
        answer(cb, ud, HX_STORE_UNAVAILABLE);
        return 0;
    }
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    s->npending++;
    s->nsetup += op == OP_SETUP;
    if (s->npending == 1)
        arm(s);
    return 0;
}

/* prefix + key into buf; -1 when the key is not a valid store key. */
static int full_key(const redis_store *s, const char *key, char buf[KEY_BUF], size_t *len)
{
    size_t kl = key ? strnlen(key, HX_STORE_KEY_MAX + 1) : 0;
    size_t pl = strlen(s->o.prefix);
    if (kl == 0 || kl > HX_STORE_KEY_MAX)
        return -1;
    memcpy(buf, s->o.prefix, pl);
    memcpy(buf + pl, key, kl);
    buf[pl + kl] = '\0';
    *len = pl + kl;
    return 0;
}

static const char INCR_LUA[] =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return v";
/* ARGV: has_expect, expect, value, ttl_ms. 1 set, 0 conflict, -1 missing. */
static const char CAS_LUA[] =
    "local cur = redis.call('GET', KEYS[1]) "
    "if ARGV[1] == '0' then if cur then return 0 end "
    "else if not cur then return -1 end if cur ~= ARGV[2] then return 0 end end "
    "if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) "
    "else redis.call('SET', KEYS[1], ARGV[3]) end return 1";
/* ARGV: rate per s, burst, n. Server time, so instances agree. */
static const char BUCKET_LUA[] =
    "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) "
    "local b = redis.call('HMGET', KEYS[1], 't', 'ts') "
    "local tokens, ts = tonumber(b[1]), tonumber(b[2]) "
    "if not tokens then tokens, ts = burst, now end "
    "tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000) "
    "local ok, retry = 0, 0 "
    "if tokens >= n then tokens = tokens - n ok = 1 else retry = math.ceil((n - tokens) * 1000 / rate) end "
    "redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now) "
    "redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000) "
    "return {ok, tostring(tokens), retry}";
/* KEYS: the bucket, the gate. ARGV: rate, burst, n, gate rate, gate
 * burst. {ok, tokens, retry_ms, gate tokens, gate empty}. */
static const char GATED_LUA[] =
    "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) "
    "local grate, gburst = tonumber(ARGV[4]), tonumber(ARGV[5]) "
    "local g = redis.call('HMGET', KEYS[2], 't', 'ts') local gt = tonumber(g[1]) "
    "if gt then gt = math.min(gburst, gt + math.max(0, now - tonumber(g[2])) * grate / 1000) else gt = gburst end "
    "local b = redis.call('HMGET', KEYS[1], 't', 'ts') "
    "local tokens, ts = tonumber(b[1]), tonumber(b[2]) "
    "if not tokens then tokens, ts = burst, now end "
    "tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000) "
    "if gt <= 0 then return {0, tostring(tokens), 0, tostring(gt), 1} end "
    "local ok, retry = 0, 0 "
    "if tokens >= n then tokens = tokens - n ok = 1 else retry = math.ceil((n - tokens) * 1000 / rate) end "
    "redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now) "
    "redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000) "
    "return {ok, tostring(tokens), retry, tostring(gt), 0}";
/* ARGV: rate per s, burst, n, floor. The level after, as a string. */
static const char CHARGE_LUA[] =
    "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "local rate, burst, n, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]) "
    "local b = redis.call('HMGET', KEYS[1], 't', 'ts') "
    "local tokens, ts = tonumber(b[1]), tonumber(b[2]) "
    "if not tokens then tokens, ts = burst, now end "
    "tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000) "
    "tokens = math.max(floor, math.min(burst, tokens - n)) "
    "redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now) "
    "redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000) "
    "return tostring(tokens)";
/* ARGV: member, limit, ttl_ms. A sorted set scored by expiry, on the
 * server's clock. {1|0, live members}. */
static const char LEASE_LUA[] =
    "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "local limit, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
    "local n = redis.call('ZCARD', KEYS[1]) "
    "local have = redis.call('ZSCORE', KEYS[1], ARGV[1]) "
    "if not have and n >= limit then return {0, n} end "
    "redis.call('ZADD', KEYS[1], now + ttl, ARGV[1]) "
    "if redis.call('PTTL', KEYS[1]) < ttl + 1000 then redis.call('PEXPIRE', KEYS[1], ttl + 1000) end "
    "if have then return {1, n} end return {1, n + 1}";

/* The scripts go by their SHA-1 (EVALSHA): loaded on every new
 * connection before any command, and again after a NOSCRIPT (an operator's
 * SCRIPT FLUSH), so Redis does not parse and hash them per call. */
static const char *const scripts[] = {INCR_LUA, CAS_LUA, BUCKET_LUA, GATED_LUA, CHARGE_LUA, LEASE_LUA};
enum { S_INCR, S_CAS, S_BUCKET, S_GATED, S_CHARGE, S_LEASE, S_COUNT };
_Static_assert(sizeof scripts / sizeof scripts[0] == S_COUNT, "one SHA per script");
static char script_sha[S_COUNT][41];
static bool sha_ok;
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void compute_shas(void)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < S_COUNT; i++) {
        unsigned char d[20];
        if (gnutls_hash_fast(GNUTLS_DIG_SHA1, scripts[i], strlen(scripts[i]), d) != 0)
            return; /* sha_ok stays false: EVAL with the whole script */
        for (int j = 0; j < 20; j++) {
            script_sha[i][2 * j] = hex[d[j] >> 4];
            script_sha[i][2 * j + 1] = hex[d[j] & 15];
        }
    }
    sha_ok = true;
}

static void load_scripts(redis_store *s)
{
    s->reload_scripts = false;
    for (int i = 0; sha_ok && i < S_COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", scripts[i]};
        const size_t lens[] = {6, 4, strlen(scripts[i])};
        send_argv(s, OP_SETUP, 3, argv, lens, NULL, NULL);
    }
}

/* EVALSHA script 1|2 key [key2] args... */
static int eval2(redis_store *s, op_kind op, int script, const char *key, const char *key2, int nargs,
                 const char **args, const size_t *arglens, hx_store_cb cb, void *ud)
{
    char k[KEY_BUF], k2[KEY_BUF];
    size_t kl, kl2 = 0;
    if (full_key(s, key, k, &kl) != 0 || (key2 && full_key(s, key2, k2, &kl2) != 0) || nargs > 6)
        return -1;
    const char *argv[11] = {sha_ok ? "EVALSHA" : "EVAL", sha_ok ? script_sha[script] : scripts[script],
                            key2 ? "2" : "1", k, k2};
    size_t lens[11] = {sha_ok ? 7 : 4, sha_ok ? 40 : strlen(scripts[script]), 1, kl, kl2};
    int at = key2 ? 5 : 4;
    for (int i = 0; i < nargs; i++) {
        argv[at + i] = args[i];
        lens[at + i] = arglens[i];
    }
    return send_argv(s, op, at + nargs, argv, lens, cb, ud);
}

static int eval(redis_store *s, op_kind op, int script, const char *key, int nargs, const char **args,
                const size_t *arglens, hx_store_cb cb, void *ud)
{
    return eval2(s, op, script, key, NULL, nargs, args, arglens, cb, ud);
}

/* ---- the operations ----------------------------------------------------------------- */

static int r_get(hx_store *b, const char *key, hx_store_cb cb, void *ud)
{
    redis_store *s = (redis_store *)b;
    char k[KEY_BUF];
    size_t kl;
    if (full_key(s, key, k, &kl) != 0)
        return -1;
    const char *argv[] = {"GET", k};
    const size_t lens[] = {3, kl};
    return send_argv(s, OP_GET, 2, argv, lens, cb, ud);
}

static int set_like(redis_store *s, op_kind op, const char *key, const void *val, size_t len, bool nx,
                    int64_t ttl_ms, hx_store_cb cb, void *ud)
{
    char k[KEY_BUF], ttl[24];
    size_t kl;
    if (full_key(s, key, k, &kl) != 0 || (val == NULL && len > 0))
        return -1;
    const char *argv[6] = {"SET", k, val ? val : ""};
    size_t lens[6] = {3, kl, len};
    int argc = 3;
    if (nx)
        argv[argc] = "NX", lens[argc++] = 2;
    if (ttl_ms > 0) {
        argv[argc] = "PX", lens[argc++] = 2;
        lens[argc] = (size_t)snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
        argv[argc++] = ttl;
    }
    return send_argv(s, op, argc, argv, lens, cb, ud);
}

static int r_set(hx_store *b, const char *key, const void *val, size_t len, int64_t ttl_ms, hx_store_cb cb,
                 void *ud)
{
    return set_like((redis_store *)b, OP_SET, key, val, len, false, ttl_ms, cb, ud);
}

static int r_add_once(hx_store *b, const char *key, int64_t ttl_ms, hx_store_cb cb, void *ud)
{
    return set_like((redis_store *)b, OP_ADD, key, "1", 1, true, ttl_ms, cb, ud);
}

static int r_incr(hx_store *b, const char *key, int64_t delta, int64_t ttl_ms, hx_store_cb cb, void *ud)
{
    char d[24], t[24];
    const char *args[] = {d, t};
    size_t lens[] = {(size_t)snprintf(d, sizeof d, "%lld", (long long)delta),
                     (size_t)snprintf(t, sizeof t, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 0))};
    return eval((redis_store *)b, OP_INCR, S_INCR, key, 2, args, lens, cb, ud);
}

static int r_cas(hx_store *b, const char *key, const void *expect, size_t elen, const void *val, size_t vlen,
                 int64_t ttl_ms, hx_store_cb cb, void *ud)
{
    if ((val == NULL && vlen > 0) || (expect == NULL && elen > 0))
        return -1;
    char t[24];
    const char *args[] = {expect ? "1" : "0", expect ? expect : "", val ? val : "", t};
    size_t lens[] = {1, elen, vlen, (size_t)snprintf(t, sizeof t, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 0))};
    return eval((redis_store *)b, OP_CAS, S_CAS, key, 4, args, lens, cb, ud);
}

static int r_bucket_take(hx_store *b, const char *key, double rate, double burst, double n, hx_store_cb cb, void *ud)
{
    if (!(rate > 0) || !(burst > 0) || !(n >= 0))
        return -1;
    char a[3][32];
    const char *args[] = {a[0], a[1], a[2]};
    size_t lens[] = {(size_t)snprintf(a[0], sizeof a[0], "%.17g", rate),
                     (size_t)snprintf(a[1], sizeof a[1], "%.17g", burst),
                     (size_t)snprintf(a[2], sizeof a[2], "%.17g", n)};
    return eval((redis_store *)b, OP_BUCKET, S_BUCKET, key, 3, args, lens, cb, ud);
}

static int r_bucket_take_gated(hx_store *b, const char *key, double rate, double burst, double n, const char *gate,
                               double grate, double gburst, hx_store_cb cb, void *ud)
{
    if (!(rate > 0) || !(burst > 0) || !(n >= 0) || !(grate > 0) || !(gburst > 0) || gate == NULL)
        return -1;
    char a[5][32];
    const char *args[] = {a[0], a[1], a[2], a[3], a[4]};
    const double v[] = {rate, burst, n, grate, gburst};
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = (size_t)snprintf(a[i], sizeof a[i], "%.17g", v[i]);
    return eval2((redis_store *)b, OP_GATED, S_GATED, key, gate, 5, args, lens, cb, ud);
}

static int r_bucket_charge(hx_store *b, const char *key, double rate, double burst, double n, double floor,
                           hx_store_cb cb, void *ud)
{
    if (!(rate > 0) || !(burst > 0) || !isfinite(rate) || !isfinite(burst) || !isfinite(n) || !isfinite(floor) ||
        floor > burst)
        return -1;
    char a[4][32];
    const char *args[] = {a[0], a[1], a[2], a[3]};
    size_t lens[] = {(size_t)snprintf(a[0], sizeof a[0], "%.17g", rate),
                     (size_t)snprintf(a[1], sizeof a[1], "%.17g", burst),
                     (size_t)snprintf(a[2], sizeof a[2], "%.17g", n),
                     (size_t)snprintf(a[3], sizeof a[3], "%.17g", floor)};
    return eval((redis_store *)b, OP_CHARGE, S_CHARGE, key, 4, args, lens, cb, ud);
}

static int member_len(const char *member, size_t *mlen)
{
    *mlen = member ? strnlen(member, HX_STORE_MEMBER_MAX + 1) : 0;
    return *mlen == 0 || *mlen > HX_STORE_MEMBER_MAX ? -1 : 0;
}

static int r_lease_acquire(hx_store *b, const char *key, const char *member, int64_t limit, int64_t ttl_ms,
                           hx_store_cb cb, void *ud)
{
    size_t ml;
    if (limit < 1 || ttl_ms < 1 || member_len(member, &ml) != 0)
        return -1;
    char l[24], t[24];
    const char *args[] = {member, l, t};
    size_t lens[] = {ml, (size_t)snprintf(l, sizeof l, "%lld", (long long)limit),
                     (size_t)snprintf(t, sizeof t, "%lld", (long long)ttl_ms)};
    return eval((redis_store *)b, OP_LEASE, S_LEASE, key, 3, args, lens, cb, ud);
}

static int r_lease_release(hx_store *b, const char *key, const char *member, hx_store_cb cb, void *ud)
{
    redis_store *s = (redis_store *)b;
    char k[KEY_BUF];
    size_t kl, ml;
    if (member_len(member, &ml) != 0 || full_key(s, key, k, &kl) != 0)
        return -1;
    const char *argv[] = {"ZREM", k, member};
    const size_t lens[] = {4, kl, ml};
    return send_argv(s, OP_RELEASE, 3, argv, lens, cb, ud);
}

static int r_publish(hx_store *b, const char *channel, const void *msg, size_t len, hx_store_cb cb, void *ud)
{
    redis_store *s = (redis_store *)b;
    char k[KEY_BUF];
    size_t kl;
    if ((msg == NULL && len > 0) || full_key(s, channel, k, &kl) != 0)
        return -1;
    const char *argv[] = {"PUBLISH", k, msg ? msg : ""};
    const size_t lens[] = {7, kl, len};
    return send_argv(s, OP_PUBLISH, 3, argv, lens, cb, ud);
}

static int r_subscribe(hx_store *b, const char *channel, hx_store_msg_fn fn, void *ud)
{
    redis_store *s = (redis_store *)b;
    char k[KEY_BUF];
    size_t kl;
    if (fn == NULL || s->sub_channel || full_key(s, channel, k, &kl) != 0 || (s->sub_channel = hx_strdup(k)) == NULL)
        return -1;
    s->sub_prefix_len = strlen(s->o.prefix);
    s->sub_fn = fn;
    s->sub_ud = ud;
    send_subscribe(s); /* queued by hiredis while the connection comes up; every new one sends it too */
    return 0;
}

static int r_del(hx_store *b, const char *key, hx_store_cb cb, void *ud)
{
    redis_store *s = (redis_store *)b;
    char k[KEY_BUF];
    size_t kl;
    if (full_key(s, key, k, &kl) != 0)
        return -1;
    const char *argv[] = {"DEL", k};
    const size_t lens[] = {3, kl};
    return send_argv(s, OP_DEL, 2, argv, lens, cb, ud);
}

/* ---- the connection -------------------------------------------------------------------- */

static void schedule_reconnect(redis_store *s)
{
    if (s->closing)
        return;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    arm(s);
}

/* The connection is gone (hiredis has answered every pending command
 * with NULL and freed the context). */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_store *s = ac->data;
    (void)status;
    bool was = s->connected;
    s->connected = false;
    s->ac = NULL;
    if (was)
        s->st.disconnects++;
    schedule_reconnect(s);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_store *s = ac->data;
    if (status != REDIS_OK) {
        s->ac = NULL; /* hiredis frees the context after this callback */
        s->st.connect_errors++;
        schedule_reconnect(s);
        return;
    }
    s->connected = true;
    s->backoff_ms = 0;
    s->st.connects++;
    arm(s);
}

/* Every message of the subscription (hiredis keeps the callback for the
 * channel: it is not a pending command). NULL when the connection goes. */
static void on_sub_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_store *s = privdata;
    const redisReply *rp = reply;
    if (rp == NULL || s->closing || rp->type != REDIS_REPLY_ARRAY || rp->elements != 3 ||
        rp->element[0]->type != REDIS_REPLY_STRING || strcmp(rp->element[0]->str, "message") != 0 ||
        rp->element[2]->type != REDIS_REPLY_STRING || rp->element[1]->len < s->sub_prefix_len)
        return;
    s->sub_fn(s->sub_ud, rp->element[1]->str + s->sub_prefix_len, rp->element[2]->str, rp->element[2]->len);
}

static void send_subscribe(redis_store *s)
{
    if (s->sub_channel == NULL || s->ac == NULL)
        return;
    const char *argv[] = {"SUBSCRIBE", s->sub_channel};
    const size_t lens[] = {9, strlen(s->sub_channel)};
    redisAsyncCommandArgv(s->ac, on_sub_message, s, 2, argv, lens);
}

/* AUTH (an ACL user too) and SELECT go first on every new connection;
 * hiredis queues them until the socket is up. */
static void setup_commands(redis_store *s)
{
    if (*s->o.password) {
        const char *argv[] = {"AUTH", s->o.username, s->o.password};
        const size_t lens[] = {4, strlen(s->o.username), strlen(s->o.password)};
        if (*s->o.username)
            send_argv(s, OP_SETUP, 3, argv, lens, NULL, NULL);
        else
            send_argv(s, OP_SETUP, 2, (const char *[]){"AUTH", s->o.password},
                      (const size_t[]){4, strlen(s->o.password)}, NULL, NULL);
    }
    if (s->o.db > 0) {
        char db[16];
        const char *argv[] = {"SELECT", db};
        const size_t lens[] = {6, (size_t)snprintf(db, sizeof db, "%d", s->o.db)};
        send_argv(s, OP_SETUP, 2, argv, lens, NULL, NULL);
    }
    if (s->sub_channel == NULL)
        load_scripts(s);
    send_subscribe(s);
}

static void connect_now(redis_store *s)
{
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (ac == NULL || ac->err || redisLibuvAttach(ac, s->loop) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        s->st.connect_errors++;
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    s->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->st.connect_attempts++;
    setup_commands(s);
    arm(s);
}

/* The one timer: while connecting, the connect deadline; while connected
 * with commands in flight, the oldest one's deadline; while down, the
 * reconnect. */
static void on_timer(uv_timer_t *t)
{
    redis_store *s = t->data;
    if (s->closing)
        return;
    if (s->ac == NULL) {
        connect_now(s);
        return;
    }
    uint64_t now = now_ms(s);
    bool late = !s->connected || (s->head && now - s->head->sent_ms >= (uint64_t)s->o.command_timeout_ms);
    if (!late) {
        arm(s);
        return;
    }
    s->st.timeouts++;
    /* Not a polite disconnect (it would wait for the answers that are
     * late): every pending command hears UNAVAILABLE at once (on_reply
     * with NULL); a connected context also calls on_disconnect, which
     * schedules the reconnect. */
    redisAsyncContext *ac = s->ac;
    redisAsyncFree(ac);
    if (s->ac == ac) { /* never connected: no disconnect callback */
        s->ac = NULL;
        s->connected = false;
        schedule_reconnect(s);
    }
}

static void arm(redis_store *s)
{
    if (s->closing)
        return;
    uint64_t ms;
    if (s->ac == NULL)
        ms = s->backoff_ms;
    else if (!s->connected)
        ms = (uint64_t)s->o.connect_timeout_ms;
    else if (s->head) {
        uint64_t age = now_ms(s) - s->head->sent_ms, to = (uint64_t)s->o.command_timeout_ms;
        ms = age >= to ? 0 : to - age;
    } else {
        uv_timer_stop(&s->timer);
        return;
    }
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void on_timer_closed(uv_handle_t *h)
{
    redis_store *s = h->data;
    hx_free(s->sub_channel);
    hx_free(s->owned);
    hx_free(s);
}

static void r_destroy(hx_store *b)
{
    redis_store *s = (redis_store *)b;
    s->closing = true;
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks hear UNAVAILABLE now */
    }
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static const hx_store_vt redis_vt = {
    .name = "redis",
    .get = r_get,
    .set = r_set,
    .add_once = r_add_once,
    .incr = r_incr,
    .cas = r_cas,
    .bucket_take = r_bucket_take,
    .bucket_take_gated = r_bucket_take_gated,
    .bucket_charge = r_bucket_charge,
    .lease_acquire = r_lease_acquire,
    .lease_release = r_lease_release,
    .publish = r_publish,
    .subscribe = r_subscribe,
    .del = r_del,
    .destroy = r_destroy,
};

int hx_store_redis_parse_address(const char *addr, char *host, size_t hostlen, int *port)
{
    /* host:port (the last colon, so an IPv6 literal in brackets works). */
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : strlen(addr);
    if (hostlen == 0)
        return -1;
    host[0] = '\0';
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']' && hl - 2 < hostlen) {
        memcpy(host, addr + 1, hl - 2);
        host[hl - 2] = '\0';
    } else if (hl < hostlen && addr[0] != '[') {
        memcpy(host, addr, hl);
        host[hl] = '\0';
    }
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : 6379;
    if (host[0] == '\0' || p <= 0 || p > 65535 || (colon && (end == colon + 1 || *end)))
        return -1;
    *port = (int)p;
    return 0;
}

hx_store *hx_store_redis_new(void *loop, const hx_store_redis_opts *o)
{
    pthread_once(&sha_once, compute_shas);
    if (loop == NULL || o == NULL || o->address == NULL || (o->prefix && strlen(o->prefix) > HX_STORE_PREFIX_MAX))
        return NULL;
    redis_store *s = hx_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->base.vt = &redis_vt;
    s->loop = loop;
    s->o = *o;
    /* Copies of the strings: the store may outlive the config it came from. */
    const char *strs[] = {o->address, o->prefix ? o->prefix : "", o->username ? o->username : "",
                          o->password ? o->password : ""};
    size_t total = 0, off = 0;
    for (int i = 0; i < 4; i++)
        total += strlen(strs[i]) + 1;
    if ((s->owned = hx_malloc(total)) == NULL) {
        hx_free(s);
        return NULL;
    }
    const char **dst[] = {&s->o.address, &s->o.prefix, &s->o.username, &s->o.password};
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(strs[i]) + 1;
        memcpy(s->owned + off, strs[i], n);
        *dst[i] = s->owned + off;
        off += n;
    }
    if (s->o.max_pending == 0)
        s->o.max_pending = 10000;
    if (s->o.connect_timeout_ms <= 0)
        s->o.connect_timeout_ms = 1000;
    if (s->o.command_timeout_ms <= 0)
        s->o.command_timeout_ms = 1000;
    int port;
    if (hx_store_redis_parse_address(s->o.address, s->host, sizeof s->host, &port) != 0) {
        hx_free(s->owned);
        hx_free(s);
        return NULL;
    }
    s->port = port;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    connect_now(s);
    return &s->base;
}

bool hx_store_redis_connected(const hx_store *b)
{
    return ((const redis_store *)b)->connected;
}

void hx_store_redis_get_stats(const hx_store *b, hx_store_redis_stats *st)
{
    *st = ((const redis_store *)b)->st;
}
