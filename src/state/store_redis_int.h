/* Inside the Redis backend of the state store: the operations and their
 * replies (store_redis.c) and the connection (store_redis_conn.c:
 * connect, set-up, deadlines, reconnect, Sentinel, subscribe). */
#ifndef HX_STATE_STORE_REDIS_INT_H
#define HX_STATE_STORE_REDIS_INT_H

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "state/store.h"

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
    bool reconnect_due;   /* a READONLY answer came back: a demoted primary */
    redisAsyncContext *sc; /* a Sentinel being asked for the primary */
    struct hx_redis_tls *tls; /* the TLS relay hiredis connects through, or NULL */
    unsigned sentinel_next;
} redis_store;


/* store_redis.c */
extern const hx_store_vt hx_rs_vt;
/* Sends a command (OP_SETUP ones also while connecting): 0, or -1 out of
 * memory; an unavailable connection answers UNAVAILABLE through cb. */
int hx_rs_send(redis_store *s, op_kind op, int argc, const char **argv, const size_t *lens, hx_store_cb cb, void *ud);
/* SCRIPT LOAD of every script, as set-up commands. */
void hx_rs_load_scripts(redis_store *s);
void hx_rs_scripts_init(void);

/* store_redis_conn.c */
void hx_rs_arm(redis_store *s);
void hx_rs_destroy(hx_store *b);
void hx_rs_connect(redis_store *s);
void hx_rs_send_subscribe(redis_store *s);
/* The connection answered something only another server role gives
 * (READONLY: a primary demoted by a failover): start again. */
void hx_rs_reconnect_now(redis_store *s);

#endif
