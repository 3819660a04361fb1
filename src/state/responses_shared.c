/* Stored Responses API answers in the shared state store (state.backend:
 * redis), so any instance answers GET /v1/responses/{id} and
 * previous_response_id for an answer another instance stored.
 *
 * One key per response, "resp:<id>", expiring after llm.responses.ttl;
 * the value is [u32 owner length][owner][u32 response length][response]
 * [conversation]. An entry above max_bytes is not kept. The owner is
 * checked here: another key's id reads as not found. When the store
 * cannot answer, every call reports failure (-1 status): the handler
 * answers 503, never someone else's data.
 *
 * The answer that stored a response is on its way to the client while the
 * SET is on its way to Redis; the client's next request (previous_response_id,
 * GET) may reach another worker or instance first. A read that finds
 * nothing therefore asks once more RETRY_MS later. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "state/cluster.h"
#include "state/responses_store.h"
#include "util/alloc.h"

#define KEY_PREFIX "resp:"
#define OWNER_MAX 512
#define RETRY_MS 50

typedef struct {
    hx_resp_store base;
    hx_resp_store_limits lim;
} shared_store;

typedef struct {
    uv_timer_t timer; /* the one retry of a miss; owns the op once started */
    bool retried;
    char owner[OWNER_MAX + 1];
    hx_resp_get_cb get_cb;
    hx_resp_done_cb done_cb;
    void *ud;
    char key[HX_STORE_KEY_MAX + 1];
} op;

static int key_of(char *buf, const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n + sizeof KEY_PREFIX > HX_STORE_KEY_MAX + 1)
        return -1;
    memcpy(buf, KEY_PREFIX, sizeof KEY_PREFIX - 1);
    memcpy(buf + sizeof KEY_PREFIX - 1, id, n + 1);
    return 0;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The entry of a stored value whose owner is `owner`; -1 malformed, 1
 * another owner's. */
static int decode(const unsigned char *v, size_t len, const char *owner, hx_resp_entry *e)
{
    if (len < 8)
        return -1;
    uint32_t ol = get_u32(v);
    if (ol > len - 8)
        return -1;
    if (ol != strlen(owner) || memcmp(v + 4, owner, ol) != 0)
        return 1;
    uint32_t rl = get_u32(v + 4 + ol);
    if (rl > len - 8 - ol)
        return -1;
    e->response = (const char *)v + 8 + ol;
    e->response_len = rl;
    e->conversation = e->response + rl;
    e->conversation_len = len - 8 - ol - rl;
    return 0;
}

static void on_put(void *ud, const hx_store_reply *r)
{
    op *o = ud;
    if (o->done_cb)
        o->done_cb(o->ud, r->rc == HX_STORE_OK ? 0 : -1);
    hx_free(o);
}

static op *op_new(const char *id, const char *owner)
{
    op *o = strlen(owner) <= OWNER_MAX ? hx_calloc(1, sizeof *o) : NULL;
    if (o == NULL)
        return NULL;
    if (key_of(o->key, id) != 0) {
        hx_free(o);
        return NULL;
    }
    memcpy(o->owner, owner, strlen(owner) + 1);
    return o;
}

static int sh_put(hx_resp_store *b, const char *id, const char *owner, const hx_resp_entry *e, hx_resp_done_cb cb,
                  void *ud)
{
    shared_store *s = (shared_store *)b;
    hx_store *st = hx_cluster_store();
    size_t ol = strlen(owner), len = 8 + ol + e->response_len + e->conversation_len;
    op *o = op_new(id, owner);
    if (o == NULL)
        return -1;
    o->done_cb = cb;
    o->ud = ud;
    unsigned char *v = st && len <= s->lim.max_bytes && e->response_len <= UINT32_MAX ? hx_malloc(len) : NULL;
    if (v == NULL) { /* down, too large or no memory: not kept */
        on_put(o, &(hx_store_reply){.rc = HX_STORE_UNAVAILABLE});
        return 0;
    }
    put_u32(v, (uint32_t)ol);
    memcpy(v + 4, owner, ol);
    put_u32(v + 4 + ol, (uint32_t)e->response_len);
    memcpy(v + 8 + ol, e->response, e->response_len);
    memcpy(v + 8 + ol + e->response_len, e->conversation, e->conversation_len);
    int rc = st->vt->set(st, o->key, v, len, s->lim.ttl_ms, on_put, o);
    hx_free(v);
    if (rc != 0)
        hx_free(o);
    return rc;
}

static void on_get(void *ud, const hx_store_reply *r);

static void op_closed(uv_handle_t *h)
{
    hx_free(h->data);
}

static void on_retry(uv_timer_t *t)
{
    op *o = t->data;
    hx_store *st = hx_cluster_store();
    if (st == NULL || st->vt->get(st, o->key, on_get, o) != 0)
        on_get(o, &(hx_store_reply){.rc = HX_STORE_UNAVAILABLE});
}

/* Frees o: at once, or through its timer's close once it was started. */
static void op_done(op *o)
{
    if (o->retried)
        uv_close((uv_handle_t *)&o->timer, op_closed);
    else
        hx_free(o);
}

static void on_get(void *ud, const hx_store_reply *r)
{
    op *o = ud;
    hx_resp_entry e;
    uv_loop_t *loop = hx_cluster_loop();
    if (r->rc == HX_STORE_NOT_FOUND && !o->retried && loop) {
        o->retried = true;
        uv_timer_init(loop, &o->timer);
        o->timer.data = o;
        uv_timer_start(&o->timer, on_retry, RETRY_MS, 0);
        return;
    }
    if (r->rc == HX_STORE_NOT_FOUND) {
        o->get_cb(o->ud, 1, NULL);
    } else if (r->rc != HX_STORE_OK) {
        o->get_cb(o->ud, -1, NULL);
    } else {
        int d = decode(r->data, r->len, o->owner, &e);
        o->get_cb(o->ud, d, d == 0 ? &e : NULL);
    }
    op_done(o);
}

static int sh_get(hx_resp_store *b, const char *id, const char *owner, hx_resp_get_cb cb, void *ud)
{
    (void)b;
    hx_store *st = hx_cluster_store();
    op *o = op_new(id, owner);
    if (o == NULL)
        return -1;
    o->get_cb = cb;
    o->ud = ud;
    if (st == NULL) {
        on_get(o, &(hx_store_reply){.rc = HX_STORE_UNAVAILABLE});
        return 0;
    }
    int rc = st->vt->get(st, o->key, on_get, o);
    if (rc != 0)
        hx_free(o);
    return rc;
}

static void on_deleted(void *ud, const hx_store_reply *r)
{
    op *o = ud;
    o->done_cb(o->ud, r->rc == HX_STORE_OK ? 0 : r->rc == HX_STORE_NOT_FOUND ? 1 : -1);
    hx_free(o);
}

/* Delete reads first: only the owner's entry goes. */
static void on_del_read(void *ud, const hx_store_reply *r)
{
    op *o = ud;
    hx_resp_entry e;
    hx_store *st = hx_cluster_store();
    int d = r->rc == HX_STORE_OK ? decode(r->data, r->len, o->owner, &e) : r->rc == HX_STORE_NOT_FOUND ? 1 : -1;
    if (d != 0 || st == NULL || st->vt->del(st, o->key, on_deleted, o) != 0) {
        o->done_cb(o->ud, d != 0 ? d : -1);
        hx_free(o);
    }
}

static int sh_del(hx_resp_store *b, const char *id, const char *owner, hx_resp_done_cb cb, void *ud)
{
    (void)b;
    hx_store *st = hx_cluster_store();
    op *o = cb ? op_new(id, owner) : NULL;
    if (o == NULL)
        return -1;
    o->done_cb = cb;
    o->ud = ud;
    if (st == NULL) {
        cb(ud, -1);
        hx_free(o);
        return 0;
    }
    int rc = st->vt->get(st, o->key, on_del_read, o);
    if (rc != 0)
        hx_free(o);
    return rc;
}

static void sh_destroy(hx_resp_store *b)
{
    hx_free(b);
}

static const hx_resp_store_vt shared_vt = {sh_put, sh_get, sh_del, sh_destroy};

hx_resp_store *hx_resp_store_shared_new(const hx_resp_store_limits *lim)
{
    shared_store *s = hx_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->base.vt = &shared_vt;
    s->lim = *lim;
    return &s->base;
}

void hx_resp_store_shared_limits(hx_resp_store *b, const hx_resp_store_limits *lim)
{
    ((shared_store *)b)->lim = *lim;
}
