/* The Redis backend's connection: connect (through Sentinel when
 * configured), set-up commands, the one timer (connect deadline, command
 * deadline, reconnect backoff), subscribe, destroy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/redis_tls.h"
#include "state/store_redis_int.h"
#include "util/alloc.h"

static void connect_now(redis_store *s);

static uint64_t now_ms(redis_store *s)
{
    return uv_now(s->loop);
}

static void schedule_reconnect(redis_store *s)
{
    if (s->closing)
        return;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    hx_rs_arm(s);
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
    /* Usable once the set-up's PING comes back (on_ready): a server that
     * takes connections but does not answer (stopped, overloaded) counts
     * as down, and requests fall back at once instead of waiting for it. */
    s->st.connects++;
    hx_rs_arm(s);
}

static void on_ready(void *ud, const hx_store_reply *r)
{
    redis_store *s = ud;
    if (r->rc != HX_STORE_OK || s->ac == NULL || s->closing)
        return;
    s->connected = true;
    s->backoff_ms = 0;
    hx_rs_arm(s);
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

void hx_rs_send_subscribe(redis_store *s)
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
            hx_rs_send(s, OP_SETUP, 3, argv, lens, NULL, NULL);
        else
            hx_rs_send(s, OP_SETUP, 2, (const char *[]){"AUTH", s->o.password},
                      (const size_t[]){4, strlen(s->o.password)}, NULL, NULL);
    }
    if (s->o.db > 0) {
        char db[16];
        const char *argv[] = {"SELECT", db};
        const size_t lens[] = {6, (size_t)snprintf(db, sizeof db, "%d", s->o.db)};
        hx_rs_send(s, OP_SETUP, 2, argv, lens, NULL, NULL);
    }
    if (s->sub_channel == NULL)
        hx_rs_load_scripts(s);
    hx_rs_send(s, OP_SETUP, 1, (const char *[]){"PING"}, (const size_t[]){4}, on_ready, s);
    hx_rs_send_subscribe(s);
}

/* ---- Sentinel: which server is the primary ------------------------------------------- */

static void connect_direct(redis_store *s);

/* The i-th "host:port" of the sentinel list into host/port; -1 past the end. */
static int sentinel_at(const redis_store *s, unsigned i, char *host, size_t hostlen, int *port)
{
    const char *p = s->o.sentinels;
    for (unsigned k = 0; k < i && p; k++) {
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    if (p == NULL || *p == '\0')
        return -1;
    char one[300];
    size_t n = strcspn(p, ",");
    if (n >= sizeof one)
        return -1;
    memcpy(one, p, n);
    one[n] = '\0';
    return hx_store_redis_parse_address(one, host, hostlen, port);
}

/* Done with the sentinel: from its own reply callback a polite disconnect
 * (hiredis frees it after the callback), from the timer at once. */
static void sentinel_drop(redis_store *s, bool failed, bool in_reply)
{
    redisAsyncContext *sc = s->sc;
    s->sc = NULL;
    if (sc && in_reply)
        redisAsyncDisconnect(sc);
    else if (sc)
        redisAsyncFree(sc); /* its callbacks hear NULL and find s->sc changed */
    if (failed) {
        s->st.discovery_errors++;
        schedule_reconnect(s);
    }
}

static void on_sentinel_reply(redisAsyncContext *sc, void *reply, void *privdata)
{
    redis_store *s = privdata;
    const redisReply *rp = reply;
    if (s->sc != sc || s->closing)
        return; /* given up on already */
    char port[8];
    int p;
    if (rp && rp->type == REDIS_REPLY_ARRAY && rp->elements == 2 && rp->element[0]->type == REDIS_REPLY_STRING &&
        rp->element[1]->type == REDIS_REPLY_STRING && rp->element[0]->len < sizeof s->host &&
        rp->element[1]->len < sizeof port) {
        memcpy(port, rp->element[1]->str, rp->element[1]->len);
        port[rp->element[1]->len] = '\0';
        char *end;
        p = (int)strtol(port, &end, 10);
        if (*end == '\0' && p > 0 && p <= 65535) {
            memcpy(s->host, rp->element[0]->str, rp->element[0]->len);
            s->host[rp->element[0]->len] = '\0';
            s->port = p;
            s->st.discoveries++;
            sentinel_drop(s, false, true);
            connect_direct(s);
            return;
        }
    }
    sentinel_drop(s, true, true); /* no such master here, or an odd answer: the next sentinel */
}

static void on_sentinel_disconnect(const redisAsyncContext *sc, int status)
{
    (void)status;
    redis_store *s = sc->data;
    if (s->sc == sc) { /* went before it answered */
        s->sc = NULL;
        s->st.discovery_errors++;
        schedule_reconnect(s);
    }
}

static void on_sentinel_connect(const redisAsyncContext *sc, int status)
{
    redis_store *s = sc->data;
    if (status != REDIS_OK && s->sc == sc) {
        s->sc = NULL; /* hiredis frees it after this callback */
        s->st.discovery_errors++;
        schedule_reconnect(s);
    }
}

/* Asks the next sentinel for the primary; connects there once it answers. */
static void discover(redis_store *s)
{
    char host[256];
    int port;
    if (sentinel_at(s, s->sentinel_next, host, sizeof host, &port) != 0) {
        s->sentinel_next = 0;
        if (sentinel_at(s, 0, host, sizeof host, &port) != 0) {
            schedule_reconnect(s);
            return;
        }
    }
    s->sentinel_next++;
    redisAsyncContext *sc = redisAsyncConnect(host, port);
    if (sc == NULL || sc->err || redisLibuvAttach(sc, s->loop) != REDIS_OK) {
        if (sc)
            redisAsyncFree(sc);
        s->st.discovery_errors++;
        schedule_reconnect(s);
        return;
    }
    sc->data = s;
    s->sc = sc;
    redisAsyncSetConnectCallback(sc, on_sentinel_connect);
    redisAsyncSetDisconnectCallback(sc, on_sentinel_disconnect);
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->o.sentinel_master};
    const size_t lens[] = {8, 23, strlen(s->o.sentinel_master)};
    redisAsyncCommandArgv(sc, on_sentinel_reply, s, 3, argv, lens);
    hx_rs_arm(s);
}

void hx_rs_reconnect_now(redis_store *s)
{
    s->reconnect_due = false;
    redisAsyncContext *ac = s->ac;
    if (ac)
        redisAsyncFree(ac); /* inside a reply callback hiredis frees it after; on_disconnect follows */
}

static void connect_now(redis_store *s)
{
    if (s->o.sentinel_master && *s->o.sentinel_master)
        discover(s);
    else
        connect_direct(s);
}

static void connect_direct(redis_store *s)
{
    redisAsyncContext *ac;
    if (s->tls) { /* through the relay, which carries it over TLS */
        hx_redis_tls_set_target(s->tls, s->host, s->port);
        ac = redisAsyncConnectUnix(hx_redis_tls_path(s->tls));
    } else {
        ac = redisAsyncConnect(s->host, s->port);
    }
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
    hx_rs_arm(s);
}

/* The one timer: while connecting, the connect deadline; while connected
 * with commands in flight, the oldest one's deadline; while down, the
 * reconnect. */
static void on_timer(uv_timer_t *t)
{
    redis_store *s = t->data;
    if (s->closing)
        return;
    if (s->sc) { /* the sentinel did not answer in time */
        sentinel_drop(s, true, false);
        return;
    }
    if (s->ac == NULL) {
        connect_now(s);
        return;
    }
    uint64_t now = now_ms(s);
    bool late = !s->connected || (s->head && now - s->head->sent_ms >= (uint64_t)s->o.command_timeout_ms);
    if (!late) {
        hx_rs_arm(s);
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

void hx_rs_arm(redis_store *s)
{
    if (s->closing)
        return;
    uint64_t ms;
    if (s->sc)
        ms = (uint64_t)s->o.connect_timeout_ms;
    else if (s->ac == NULL)
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

void hx_rs_destroy(hx_store *b)
{
    redis_store *s = (redis_store *)b;
    s->closing = true;
    if (s->sc) {
        redisAsyncContext *sc = s->sc;
        s->sc = NULL;
        redisAsyncFree(sc);
    }
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks hear UNAVAILABLE now */
    }
    hx_redis_tls_free(s->tls);
    s->tls = NULL;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}


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
    char err[256];
    return hx_store_redis_open(loop, o, err, sizeof err);
}

static int make_tls(redis_store *s, char *err, size_t errlen)
{
    if (!s->o.tls)
        return 0;
    const hx_redis_tls_opts to = {
        .ca_file = s->o.tls_ca_file ? s->o.tls_ca_file : "",
        .server_name = s->o.tls_server_name ? s->o.tls_server_name : "",
        .cert_file = s->o.tls_cert_file ? s->o.tls_cert_file : "",
        .key_file = s->o.tls_key_file ? s->o.tls_key_file : "",
    };
    s->tls = hx_redis_tls_new(s->loop, &to, err, errlen);
    return s->tls ? 0 : -1;
}

hx_store *hx_store_redis_open(void *loop, const hx_store_redis_opts *o, char *err, size_t errlen)
{
    hx_rs_scripts_init();
    snprintf(err, errlen, "invalid options");
    if (loop == NULL || o == NULL || o->address == NULL || (o->prefix && strlen(o->prefix) > HX_STORE_PREFIX_MAX))
        return NULL;
    redis_store *s = hx_calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.vt = &hx_rs_vt;
    s->loop = loop;
    s->o = *o;
    /* Copies of the strings: the store may outlive the config it came from. */
    const char *strs[] = {o->address,
                          o->prefix ? o->prefix : "",
                          o->username ? o->username : "",
                          o->password ? o->password : "",
                          o->sentinel_master ? o->sentinel_master : "",
                          o->sentinels ? o->sentinels : ""};
    size_t total = 0, off = 0;
    for (int i = 0; i < 6; i++)
        total += strlen(strs[i]) + 1;
    if ((s->owned = hx_malloc(total)) == NULL) {
        hx_free(s);
        return NULL;
    }
    const char **dst[] = {&s->o.address,  &s->o.prefix,          &s->o.username,
                          &s->o.password, &s->o.sentinel_master, &s->o.sentinels};
    for (int i = 0; i < 6; i++) {
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
    int port = 0;
    char h[256];
    bool sentinel = *s->o.sentinel_master;
    if ((!sentinel && hx_store_redis_parse_address(s->o.address, s->host, sizeof s->host, &port) != 0) ||
        (sentinel && sentinel_at(s, 0, h, sizeof h, &port) != 0) || make_tls(s, err, errlen) != 0) {
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
