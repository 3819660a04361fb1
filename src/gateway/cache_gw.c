/* The response cache on the request path: eligibility (llm.cache.enable,
 * the API, the client's Cache-Control, the scope), the lookup, a hit's
 * replay and a miss's capture. The cache itself is src/cache/. */
#include "gateway/cache_gw.h"

#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "gateway/gateway.h"
#include "util/alloc.h"
#include "util/json.h"

/* A replayed stream goes out in pieces of this size, with backpressure. */
#define REPLAY_CHUNK ((size_t)16 << 10)
/* The scope and header part of a key: a key name, a route, two headers. */
#define KEY_TEXT_MAX ((size_t)64 << 10)

struct hx_gw_cache_fill {
    char key[HX_CACHE_KEY_HEX + 1];
    hx_buf data; /* bounded by HX_CACHE_ENTRY_MAX */
    bool over;   /* the stream outgrew the bound: not stored */
};

static const char *api_name(hx_api api)
{
    switch (api) {
    case HX_API_CHAT:
        return "chat";
    case HX_API_COMPLETIONS:
        return "completions";
    case HX_API_MESSAGES:
        return "messages";
    case HX_API_EMBEDDINGS:
        return "embeddings";
    default:
        return NULL; /* Responses (ids the gateway stores), count_tokens: not cached */
    }
}

static void note(hx_req *r, hx_cache_result res)
{
    hx_cache_count(res);
    hx_gw_log(r)->cache = (uint8_t)(res + 1);
    hx_res_header(r, "X-Hapax-Cache", hx_cache_result_name(res));
}

/* Every Cache-Control value of the request, directive by directive. */
static void read_cache_control(const hx_req *r, bool *no_cache, bool *no_store)
{
    for (size_t i = 0; i < r->headers.n; i++) {
        if (strcasecmp(r->headers.items[i].name, "cache-control") != 0)
            continue;
        const char *s = r->headers.items[i].value;
        while (*s) {
            s += strspn(s, " \t,");
            size_t n = strcspn(s, ",");
            size_t t = n;
            while (t > 0 && (s[t - 1] == ' ' || s[t - 1] == '\t'))
                t--;
            if (t == 8 && strncasecmp(s, "no-cache", 8) == 0)
                *no_cache = true;
            if (t == 8 && strncasecmp(s, "no-store", 8) == 0)
                *no_store = true;
            s += n;
        }
    }
}

/* Scope and answer-changing headers into out; -1 when the scope needs an
 * identity the request lacks (scope key, no client key). */
static int key_text(hx_req *r, hx_buf *scope, hx_buf *extra)
{
    const char *sc = r->cfg->llm.cache.scope;
    int rc;
    if (strcmp(sc, "global") == 0) {
        rc = hx_buf_append_str(scope, "global");
    } else if (strcmp(sc, "route") == 0) {
        rc = hx_buf_append_str(scope, "route:") || hx_buf_append_str(scope, r->route_label ? r->route_label
                                                                            : r->path      ? r->path
                                                                                           : "");
    } else {
        const char *name = hx_auth_key_name(r);
        if (!*name)
            return -1;
        rc = hx_buf_append_str(scope, "key:") || hx_buf_append_str(scope, name);
    }
    /* Forwarded upstream as they are: they change the answer. */
    static const char *const hdrs[] = {"anthropic-version", "anthropic-beta"};
    for (size_t h = 0; rc == 0 && h < sizeof hdrs / sizeof hdrs[0]; h++)
        for (size_t i = 0; rc == 0 && i < r->headers.n; i++)
            if (strcasecmp(r->headers.items[i].name, hdrs[h]) == 0)
                rc = hx_buf_printf(extra, "%s=%s\n", hdrs[h], r->headers.items[i].value);
    return rc || hx_buf_append(scope, "", 1) || hx_buf_append(extra, "", 1) ? -2 : 0;
}

/* The request's key; -1: the scope skips it, -2: it cannot be made. */
static int make_key(hx_req *r, const hx_in_info *info, char key[HX_CACHE_KEY_HEX + 1])
{
    hx_buf scope, extra;
    hx_buf_init(&scope, KEY_TEXT_MAX);
    hx_buf_init(&extra, KEY_TEXT_MAX);
    int rc = key_text(r, &scope, &extra);
    json_object *body = NULL;
    if (rc == 0) {
        const hx_json_limits lim = {.max_depth = (int)r->cfg->server.max_json_depth,
                                    .max_elements = (size_t)r->cfg->server.max_json_elements,
                                    .int_range = true};
        body = hx_json_parse_limits(r->body.data, r->body.len, &lim);
        const hx_cache_key_parts k = {api_name(info->api), info->stream, scope.data, extra.data};
        rc = body && hx_cache_key(&k, body, key) == 0 ? 0 : -2;
    }
    json_object_put(body);
    hx_buf_free(&scope);
    hx_buf_free(&extra);
    return rc;
}

/* ---- a hit: the stored answer, a stream replayed as a stream ---- */

typedef struct {
    hx_req *r;
    char *data;
    size_t len, off;
} replay;

static void replay_done(replay *rp)
{
    rp->r->on_drain = NULL;
    rp->r->on_abort = NULL;
    hx_req_unref(rp->r);
    hx_free(rp->data);
    hx_free(rp);
}

static void replay_pump(replay *rp)
{
    while (rp->off < rp->len) {
        size_t n = rp->len - rp->off < REPLAY_CHUNK ? rp->len - rp->off : REPLAY_CHUNK;
        int rc = hx_res_write(rp->r, rp->data + rp->off, n);
        rp->off += n;
        if (rc < 0) {
            replay_done(rp);
            return;
        }
        if (rc == HX_RES_BUSY)
            return; /* on_drain goes on */
    }
    hx_res_end(rp->r);
    replay_done(rp);
}

static void on_replay_drain(hx_req *r, void *ud)
{
    (void)r;
    replay_pump(ud);
}

static void on_replay_abort(hx_req *r, void *ud)
{
    (void)r;
    replay_done(ud);
}

static void answer_hit(hx_req *r, const hx_cache_entry *e)
{
    note(r, HX_CACHE_HIT);
    if (!e->stream) {
        hx_res_send(r, 200, e->content_type, e->body, e->len);
        return;
    }
    replay *rp = hx_calloc(1, sizeof *rp);
    char *copy = e->len ? hx_malloc(e->len) : NULL;
    if (rp == NULL || (e->len && copy == NULL)) {
        hx_free(rp);
        hx_free(copy);
        hx_res_error(r, HX_ERR_INTERNAL, "out of memory replaying a cached answer");
        return;
    }
    if (e->len)
        memcpy(copy, e->body, e->len);
    *rp = (replay){.r = hx_req_ref(r), .data = copy, .len = e->len};
    hx_res_header(r, "Content-Type", e->content_type);
    hx_res_header(r, "Cache-Control", "no-cache");
    hx_res_header(r, "X-Accel-Buffering", "no");
    if (hx_res_start(r, 200) < 0) {
        replay_done(rp);
        return;
    }
    r->on_drain = on_replay_drain;
    r->on_abort = on_replay_abort;
    r->cb_ud = rp;
    replay_pump(rp);
}

/* ---- the lookup ---- */

typedef struct {
    hx_req *r;
    json_object *canon;
    hx_in_info info;
    hx_gw_cache_fill *fill;
} lookup;

static void on_lookup(void *ud, const hx_cache_entry *e)
{
    lookup *lk = ud;
    hx_req *r = lk->r;
    if (!r->aborted && e && e->stream == lk->info.stream) {
        answer_hit(r, e);
    } else if (!r->aborted) {
        note(r, HX_CACHE_MISS);
        hx_proxy_start_fill(r, lk->canon, &lk->info, lk->fill);
        lk->canon = NULL;
        lk->info.ctx_free = NULL;
        lk->fill = NULL;
    }
    json_object_put(lk->canon);
    if (lk->info.ctx_free)
        lk->info.ctx_free(lk->info.ctx);
    hx_gw_cache_fill_free(lk->fill);
    hx_req_unref(r);
    hx_free(lk);
}

static hx_gw_cache_fill *fill_new(const char *key)
{
    hx_gw_cache_fill *f = hx_calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    memcpy(f->key, key, HX_CACHE_KEY_HEX + 1);
    hx_buf_init(&f->data, HX_CACHE_ENTRY_MAX);
    return f;
}

void hx_gw_cache_start(hx_req *r, json_object *canon, const hx_in_info *info)
{
    const hx_cfg_cache *c = &r->cfg->llm.cache;
    if (!c->enable || !hx_cache_ready() || api_name(info->api) == NULL) {
        hx_proxy_start(r, canon, info);
        return;
    }
    bool no_cache = false, no_store = false;
    read_cache_control(r, &no_cache, &no_store);
    char key[HX_CACHE_KEY_HEX + 1];
    if (no_store || make_key(r, info, key) != 0) {
        note(r, HX_CACHE_BYPASS); /* the client's no-store, a scope without a key, or no memory */
        hx_proxy_start(r, canon, info);
        return;
    }
    hx_gw_cache_fill *fill = fill_new(key);
    if (no_cache || fill == NULL) { /* no-cache: a fresh answer, still stored */
        note(r, HX_CACHE_BYPASS);
        hx_proxy_start_fill(r, canon, info, fill);
        return;
    }
    lookup *lk = hx_calloc(1, sizeof *lk);
    if (lk == NULL) {
        note(r, HX_CACHE_BYPASS);
        hx_proxy_start_fill(r, canon, info, fill);
        return;
    }
    *lk = (lookup){.r = hx_req_ref(r), .canon = canon, .info = *info, .fill = fill};
    if (hx_cache_get(r->loop, key, on_lookup, lk) != 0) {
        hx_req_unref(r);
        hx_free(lk);
        note(r, HX_CACHE_BYPASS);
        hx_proxy_start_fill(r, canon, info, fill);
    }
}

/* ---- a miss: the answer as it goes to the client ---- */

void hx_gw_cache_fill_add(hx_gw_cache_fill *f, const void *data, size_t len)
{
    if (f == NULL || f->over)
        return;
    if (hx_buf_append(&f->data, data, len) != 0) {
        f->over = true; /* above the bound (or no memory): this one is not kept */
        hx_buf_free(&f->data);
    }
}

void hx_gw_cache_fill_commit(hx_gw_cache_fill *f, hx_req *r, const char *content_type, bool stream, const void *body,
                             size_t len)
{
    if (f == NULL || r->aborted || !r->cfg->llm.cache.enable)
        return;
    hx_cache_entry e = {.content_type = content_type, .stream = stream, .body = body, .len = len};
    if (body == NULL) {
        e.body = f->data.data ? f->data.data : "";
        e.len = f->over ? HX_CACHE_ENTRY_MAX + 1 : f->data.len; /* over: counted as too large */
    }
    hx_cache_put(r->loop, f->key, &e, r->cfg->llm.cache.ttl);
}

void hx_gw_cache_fill_free(hx_gw_cache_fill *f)
{
    if (f == NULL)
        return;
    hx_buf_free(&f->data);
    hx_free(f);
}
