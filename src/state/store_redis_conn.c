/* The Redis backend's connection: connect (through Sentinel when
 * configured), set-up commands, the one timer (connect deadline, command
 * deadline, reconnect backoff), subscribe, destroy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    s->connected = true;
    s->backoff_ms = 0;
    s->st.connects++;
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
    hx_rs_send_subscribe(s);
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

void hx_rs_destroy(hx_store *b)
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
    hx_rs_scripts_init();
    if (loop == NULL || o == NULL || o->address == NULL || (o->prefix && strlen(o->prefix) > HX_STORE_PREFIX_MAX))
        return NULL;
    redis_store *s = hx_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->base.vt = &hx_rs_vt;
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
