/* The Responses API around the proxy: the process's responses store,
 * previous_response_id (the stored conversation prepended before the
 * request goes to a provider), storing completed responses, and
 * GET / DELETE /v1/responses/{id}. */
#include "gateway/responses.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "gateway/gateway.h"
#include "util/json.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "state/cluster.h"
#include "util/alloc.h"

/* ---- the store ----------------------------------------------------------------- */

static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static hx_resp_store *store;
static hx_resp_store_limits store_lim;

hx_resp_store *hx_responses_store(const hx_config *cfg)
{
    hx_resp_store_limits lim = {(size_t)cfg->llm.responses.max_stored, (size_t)cfg->llm.responses.max_bytes,
                                cfg->llm.responses.ttl};
    bool shared = hx_cluster_enabled();
    pthread_mutex_lock(&store_mu);
    if (store == NULL)
        store = shared ? hx_resp_store_shared_new(&lim) : hx_resp_store_memory_new(&lim);
    else if (memcmp(&lim, &store_lim, sizeof lim) != 0 && shared)
        hx_resp_store_shared_limits(store, &lim);
    else if (memcmp(&lim, &store_lim, sizeof lim) != 0)
        hx_resp_store_memory_limits(store, &lim); /* a reload changed them */
    if (store)
        store_lim = lim;
    hx_resp_store *s = store;
    pthread_mutex_unlock(&store_mu);
    return s;
}

/* /metrics: what the store holds (0 before the first /v1/responses). */
void hx_responses_collect(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    size_t count = 0, bytes = 0;
    pthread_mutex_lock(&store_mu);
    if (store && !hx_cluster_enabled()) /* in Redis: counted there */
        hx_resp_store_memory_usage(store, &count, &bytes);
    pthread_mutex_unlock(&store_mu);
    hx_metrics_write_family(w, "hapax_responses_stored", "Responses kept for previous_response_id (llm.responses).",
                            HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_responses_stored", NULL, (double)count);
    hx_metrics_write_family(w, "hapax_responses_stored_bytes", "Their size in bytes (llm.responses.max_bytes).",
                            HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_responses_stored_bytes", NULL, (double)bytes);
}

/* The inside of a JSON array text "[a,b]" → "a,b" (may be empty). */
static void array_inside(const char *s, size_t n, const char **in, size_t *len)
{
    while (n && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        *in = s + 1;
        *len = n - 2;
    } else {
        *in = s;
        *len = 0;
    }
}

/* No ud: a shared backend may answer after the request is gone. */
static void on_saved(void *ud, int status)
{
    (void)ud;
    if (status != 0)
        HX_LOG_WARN("a response was not stored",
                    HX_F_STR("why", "larger than llm.responses.max_bytes, or out of memory"));
}

void hx_resp_save(hx_resp_ctx *rx, const char *response, size_t rlen, const char *out_msg, size_t mlen)
{
    if (rx == NULL || !rx->store || rx->st == NULL)
        return;
    /* The conversation so far: the stored one, this input, this answer. */
    hx_buf conv;
    hx_buf_init(&conv, HX_RESP_CONV_MAX);
    const char *a, *b;
    size_t alen, blen;
    array_inside(rx->prefix.data ? rx->prefix.data : "", rx->prefix.len, &a, &alen);
    array_inside(rx->input.data ? rx->input.data : "", rx->input.len, &b, &blen);
    int rc = hx_buf_append(&conv, "[", 1) || hx_buf_append(&conv, a, alen) ||
             (alen && blen && hx_buf_append(&conv, ",", 1)) || hx_buf_append(&conv, b, blen) ||
             ((alen || blen) && hx_buf_append(&conv, ",", 1)) || hx_buf_append(&conv, out_msg, mlen) ||
             hx_buf_append(&conv, "]", 1);
    hx_resp_entry e = {response, rlen, conv.data, conv.len};
    if (rc != 0 || rx->st->vt->put(rx->st, rx->id, rx->owner ? rx->owner : "", &e, on_saved, NULL) != 0)
        on_saved(NULL, -1);
    hx_buf_free(&conv);
}

/* ---- POST: previous_response_id ------------------------------------------------ */

static const char *owner_of(const hx_req *r)
{
    const hx_cfg_auth_key *k = hx_auth_key(r);
    return k && k->name ? k->name : "";
}

/* ---- POST: item references, previous_response_id ---------------------------------- */

/* The input's text after its placeholders were filled: messages
 * [instructions?, input...] of canon. */
int hx_resp_input_refresh(json_object *canon, hx_resp_ctx *rx)
{
    json_object *msgs, *part = json_object_new_array();
    size_t off = rx->instructions ? 1 : 0;
    int rc = part && json_object_object_get_ex(canon, "messages", &msgs) ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < rx->ninput; i++) {
        json_object *m = json_object_array_get_idx(msgs, off + i);
        rc = m && json_object_array_add(part, json_object_get(m)) == 0 ? 0 : -1;
    }
    hx_buf_reset(&rx->input);
    if (rc == 0)
        rc = hx_json_append(&rx->input, part);
    json_object_put(part);
    return rc;
}

/* The text of a stored message item: its output_text parts joined. */
static json_object *message_text(json_object *resp, const char *id)
{
    json_object *out, *content, *v;
    if (!json_object_object_get_ex(resp, "output", &out) || !json_object_is_type(out, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(out); i++) {
        json_object *it = json_object_array_get_idx(out, i);
        if (!json_object_object_get_ex(it, "id", &v) || strcmp(json_object_get_string(v), id) != 0 ||
            !json_object_object_get_ex(it, "content", &content) || !json_object_is_type(content, json_type_array))
            continue;
        hx_buf t;
        hx_buf_init(&t, HX_RESP_CONV_MAX);
        int rc = 0;
        for (size_t j = 0; rc == 0 && j < json_object_array_length(content); j++)
            if (json_object_object_get_ex(json_object_array_get_idx(content, j), "text", &v))
                rc = hx_buf_append(&t, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        json_object *s = rc == 0 ? json_object_new_string_len(t.data ? t.data : "", (int)t.len) : NULL;
        hx_buf_free(&t);
        return s;
    }
    return NULL;
}

int hx_resp_fill_ref(json_object *canon, const hx_resp_ctx *rx, const hx_resp_ref *ref, const char *response,
                     size_t len)
{
    json_object *resp = hx_json_parse(response, len), *msgs, *m;
    if (resp == NULL || !json_object_object_get_ex(canon, "messages", &msgs) ||
        (m = json_object_array_get_idx(msgs, (rx->instructions ? 1 : 0) + ref->index)) == NULL) {
        json_object_put(resp);
        return -1;
    }
    json_object *text = message_text(resp, ref->id);
    json_object_put(resp);
    if (text == NULL)
        return 1;
    return json_object_object_add(m, "content", text) == 0 ? 0 : -1;
}

/* A request waiting for the store: its item references are looked up one
 * by one, then its previous_response_id, then it goes to the providers. */
typedef struct {
    hx_req *r;
    json_object *canon;
    hx_in_info info;
    int ref;                   /* next item reference to look up */
    bool prev_done;
} pending;

static void pending_drop(pending *pd)
{
    json_object_put(pd->canon);
    if (pd->info.ctx_free)
        pd->info.ctx_free(pd->info.ctx);
    hx_req_unref(pd->r);
    hx_free(pd);
}

static void not_found(hx_req *r, const char *param, const char *id)
{
    char msg[320];
    snprintf(msg, sizeof msg, "%s: no stored %s has the id '%.128s' (unknown, expired, deleted, or stored by "
             "another key)", param, strncmp(param, "input", 5) == 0 ? "item" : "response", id);
    hx_res_error(r, HX_ERR_NOT_FOUND, msg);
}

/* Sends the request on; pd keeps nothing. */
static void pending_go(pending *pd)
{
    hx_proxy_start(pd->r, pd->canon, &pd->info);
    pd->canon = NULL;
    pd->info.ctx = NULL;
    pd->info.ctx_free = NULL;
}

/* Something of the request is not in the store: a native provider may
 * know it (the canonical path is then off), else 404 naming it. Returns
 * false when the request was answered. */
static bool unknown_to_store(pending *pd, const char *param, const char *id)
{
    hx_resp_ctx *rx = pd->info.ctx;
    int native = hx_responses_native_chain(pd->r, &pd->info);
    if (native <= 0) {
        if (native < 0)
            hx_res_error(pd->r, HX_ERR_INTERNAL, NULL);
        else
            not_found(pd->r, param, id);
        return false;
    }
    if (!rx->canon_err[0])
        snprintf(rx->canon_err, sizeof rx->canon_err, "%.32s: '%.96s' is not in this gateway's store, and this "
                 "provider has no Responses API of its own", param, id);
    snprintf(pd->info.no_canon, sizeof pd->info.no_canon, "%s", rx->canon_err);
    return true;
}

static void pending_step(pending *pd);

static void on_ref(void *ud, int status, const hx_resp_entry *e)
{
    pending *pd = ud;
    hx_resp_ctx *rx = pd->info.ctx;
    const hx_resp_ref *ref = &rx->refs[pd->ref++];
    int rc = status == 0 ? hx_resp_fill_ref(pd->canon, rx, ref, e->response, e->response_len) : status;
    char param[48];
    snprintf(param, sizeof param, "input[%zu].id", ref->item);
    if (rc < 0) {
        hx_res_error(pd->r, HX_ERR_INTERNAL, "the stored response could not be read");
    } else if (rc == 0 || unknown_to_store(pd, param, ref->id)) {
        if (pd->ref < rx->nrefs || hx_resp_input_refresh(pd->canon, rx) == 0) {
            pending_step(pd);
            return;
        }
        hx_res_error(pd->r, HX_ERR_INTERNAL, NULL);
    }
    pending_drop(pd);
}

static void on_prev(void *ud, int status, const hx_resp_entry *e)
{
    pending *pd = ud;
    hx_resp_ctx *rx = pd->info.ctx;
    pd->prev_done = true;
    if (status == 0 && pd->canon && hx_resp_splice(pd->canon, rx, e->conversation, e->conversation_len) == 0) {
        /* Our conversation: no provider knows it, so it goes the canonical way. */
        pd->info.native_off = true;
        pending_step(pd);
        return;
    }
    if (status == 0)
        hx_res_error(pd->r, pd->canon ? HX_ERR_INTERNAL : HX_ERR_INVALID_REQUEST,
                     pd->canon ? "the stored conversation could not be read" : rx->canon_err);
    else if (status < 0)
        hx_res_error(pd->r, HX_ERR_UNAVAILABLE, "the responses store could not be read");
    else if (unknown_to_store(pd, "previous_response_id", rx->prev_id)) {
        pending_step(pd);
        return;
    }
    pending_drop(pd);
}

static void pending_step(pending *pd)
{
    hx_resp_ctx *rx = pd->info.ctx;
    hx_resp_store *st = hx_responses_store(pd->r->cfg);
    int rc = 0;
    if (pd->r->aborted) {
        pending_drop(pd);
        return;
    }
    if (pd->canon && !pd->info.no_canon[0] && pd->ref < rx->nrefs) {
        /* msg_X is the message of resp_X */
        char id[sizeof rx->id];
        snprintf(id, sizeof id, "resp_%s", rx->refs[pd->ref].id + 4);
        rc = st->vt->get(st, id, rx->owner, on_ref, pd);
    } else if (rx->prev_id && !pd->prev_done) {
        rc = st->vt->get(st, rx->prev_id, rx->owner, on_prev, pd);
    } else {
        pending_go(pd);
        pending_drop(pd);
        return;
    }
    if (rc != 0) {
        hx_res_error(pd->r, HX_ERR_UNAVAILABLE, "the responses store could not be read");
        pending_drop(pd);
    }
}

void hx_responses_start(hx_req *r, json_object *canon, hx_in_info *info)
{
    hx_resp_ctx *rx = info->ctx;
    hx_resp_store *st = hx_responses_store(r->cfg);
    rx->owner = hx_strdup(owner_of(r));
    rx->st = rx->store ? st : NULL;
    if (rx->owner == NULL || st == NULL) {
        json_object_put(canon);
        hx_resp_ctx_free(rx);
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    int native = rx->prev_id == NULL && canon == NULL ? hx_responses_native_chain(r, info) : 1;
    if (native <= 0) {
        /* Only the canonical path could serve, and it cannot carry this. */
        hx_res_error(r, native < 0 ? HX_ERR_INTERNAL : HX_ERR_INVALID_REQUEST, native < 0 ? NULL : rx->canon_err);
        hx_resp_ctx_free(rx);
        return;
    }
    if (canon == NULL) {
        /* Only a provider that takes the body as it is can serve it. */
        snprintf(info->no_canon, sizeof info->no_canon, "%s", rx->canon_err);
    }
    pending *pd = hx_calloc(1, sizeof *pd);
    if (pd == NULL) {
        json_object_put(canon);
        hx_resp_ctx_free(rx);
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    *pd = (pending){.r = hx_req_ref(r), .canon = canon, .info = *info};
    pending_step(pd);
}

/* ---- GET and DELETE /v1/responses/{id} ----------------------------------------- */

static void on_get(void *ud, int status, const hx_resp_entry *e)
{
    hx_req *r = ud;
    if (status == 0) {
        hx_res_header(r, "Cache-Control", "no-store");
        hx_res_send(r, 200, "application/json", e->response, e->response_len);
    } else if (status == 1) {
        not_found(r, "response_id", r->route_param);
    } else {
        hx_res_error(r, HX_ERR_UNAVAILABLE, "the responses store could not be read");
    }
    hx_req_unref(r);
}

static void on_del(void *ud, int status)
{
    hx_req *r = ud;
    if (status == 0) {
        hx_buf b;
        hx_buf_init(&b, 512);
        if (hx_buf_append_str(&b, "{\"id\":") || hx_json_cstr(&b, r->route_param) ||
            hx_buf_append_str(&b, ",\"object\":\"response\",\"deleted\":true}\n"))
            hx_res_error(r, HX_ERR_INTERNAL, NULL);
        else
            hx_res_send(r, 200, "application/json", b.data, b.len);
        hx_buf_free(&b);
    } else if (status == 1) {
        not_found(r, "response_id", r->route_param);
    } else {
        hx_res_error(r, HX_ERR_UNAVAILABLE, "the responses store could not be changed");
    }
    hx_req_unref(r);
}

void hx_responses_by_id(hx_req *r)
{
    const char *id = r->route_param;
    hx_resp_store *st = hx_responses_store(r->cfg);
    if (id == NULL || *id == '\0' || strlen(id) >= sizeof ((hx_resp_ctx *)0)->id) {
        hx_res_error(r, HX_ERR_NOT_FOUND, "response_id: expected a response id in the path");
        return;
    }
    if (strcmp(r->method, "GET") == 0 && r->query && strstr(r->query, "stream=true")) {
        hx_res_error(r, HX_ERR_INVALID_REQUEST, "stream: replaying a stored response as events is not supported");
        return;
    }
    if (st == NULL) {
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    int rc = strcmp(r->method, "DELETE") == 0
                 ? st->vt->del(st, id, owner_of(r), on_del, hx_req_ref(r))
                 : st->vt->get(st, id, owner_of(r), on_get, hx_req_ref(r));
    if (rc != 0) {
        hx_res_error(r, HX_ERR_UNAVAILABLE, "the responses store could not be read");
        hx_req_unref(r); /* the reference the callback would have dropped */
    }
}

int hx_responses_native_chain(hx_req *r, const hx_in_info *info)
{
    hx_gw_worker *w = hx_req_ctx(r, HX_CTX_APP);
    if (w == NULL)
        return 0;
    hx_gw_worker_sync(w);
    const hx_providers *ps = &w->gw->providers;
    /* A chain never holds more than every provider once (the config bounds
     * their number); this path is rare (the canonical form failed). */
    int *idx = hx_calloc(ps->n ? ps->n : 1, sizeof *idx);
    if (idx == NULL)
        return -1;
    size_t n = hx_providers_chain(ps, info->model, idx, NULL, ps->n);
    int native = 0;
    for (size_t i = 0; i < n && !native; i++)
        native = ps->items[idx[i]].responses_native && ps->items[idx[i]].usable;
    hx_free(idx);
    return native;
}

/* ---- the error dialect ------------------------------------------------------------ */

/* The parameter an error is about: our messages begin with it
 * ("tools[0].type: ..."), else null. */
static size_t param_len(const char *m)
{
    size_t n = strspn(m, "abcdefghijklmnopqrstuvwxyz_.[]0123456789");
    return n > 0 && n < 96 && m[n] == ':' && m[n + 1] == ' ' ? n : 0;
}

int hx_resp_err_render(hx_buf *out, hx_err e, const char *message, const char *request_id)
{
    const hx_err_info *info = hx_err_get(e);
    const char *m = message ? message : info->message;
    size_t pl = param_len(m);
    int rc = hx_buf_append_str(out, "{\"error\":{\"message\":") || hx_json_cstr(out, m) ||
             hx_buf_append_str(out, ",\"type\":") || hx_json_cstr(out, info->type) ||
             hx_buf_append_str(out, ",\"param\":") ||
             (pl ? hx_json_str(out, m, pl) : hx_buf_append_str(out, "null")) ||
             hx_buf_append_str(out, ",\"code\":") || hx_json_cstr(out, info->code) ||
             hx_buf_append_str(out, ",\"request_id\":") || hx_json_cstr(out, request_id ? request_id : "") ||
             hx_buf_append_str(out, "}}\n");
    return rc ? -1 : 0;
}
