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
 * This file: the operations and their replies; store_redis_conn.c: the
 * connection. docs/internals/state-store.md. */
#include "state/store_redis_int.h"

#include <gnutls/crypto.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

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
    if (rp->str && strncmp(rp->str, "READONLY", 8) == 0)
        s->reconnect_due = true; /* a failover demoted this server: ask Sentinel again */
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
        if (p->cb) /* the PING that ends the set-up: the connection is usable */
            p->cb(p->ud, &out);
    } else {
        s->st.answered++;
        if (out.rc == HX_STORE_UNAVAILABLE)
            s->st.unavailable++;
        if (p->cb)
            p->cb(p->ud, &out);
    }
    if (s->reload_scripts && s->connected && !s->closing)
        hx_rs_load_scripts(s);
    if (s->reconnect_due && s->ac && !s->closing)
        hx_rs_reconnect_now(s);
    hx_free(p);
}

/* ---- sending ----------------------------------------------------------------------- */

int hx_rs_send(redis_store *s, op_kind op, int argc, const char **argv, const size_t *lens, hx_store_cb cb,
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
        hx_rs_arm(s);
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

void hx_rs_load_scripts(redis_store *s)
{
    s->reload_scripts = false;
    for (int i = 0; sha_ok && i < S_COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", scripts[i]};
        const size_t lens[] = {6, 4, strlen(scripts[i])};
        hx_rs_send(s, OP_SETUP, 3, argv, lens, NULL, NULL);
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
    return hx_rs_send(s, op, at + nargs, argv, lens, cb, ud);
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
    return hx_rs_send(s, OP_GET, 2, argv, lens, cb, ud);
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
    return hx_rs_send(s, op, argc, argv, lens, cb, ud);
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
    return hx_rs_send(s, OP_RELEASE, 3, argv, lens, cb, ud);
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
    return hx_rs_send(s, OP_PUBLISH, 3, argv, lens, cb, ud);
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
    hx_rs_send_subscribe(s); /* queued by hiredis while the connection comes up; every new one sends it too */
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
    return hx_rs_send(s, OP_DEL, 2, argv, lens, cb, ud);
}

/* ---- the connection -------------------------------------------------------------------- */

const hx_store_vt hx_rs_vt = {
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
    .destroy = hx_rs_destroy,
};

void hx_rs_scripts_init(void)
{
    pthread_once(&sha_once, compute_shas);
}
