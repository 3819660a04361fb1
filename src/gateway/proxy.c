/* One LLM request on its way through the provider chain.
 *
 * For each provider in the chain: build the upstream request with its
 * adapter, call it, translate its answer into canonical events and render
 * them for the client. A failure before anything has gone to the client
 * moves on to the next provider; once the first byte has gone out, a
 * failure ends the stream with an error event in the client's format. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway/gateway.h"
#include "middleware/auth.h"
#include "obs/metrics.h"
#include "obs/log.h"
#include "provider/sse.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/uuid.h"

#define HX_ERRBODY_MAX (64 * 1024)
/* Largest non-streamed answer relayed as it is. */
#define HX_RELAY_BODY_MAX (64 * 1024 * 1024)

typedef struct proxy {
    int refs;
    hx_req *req;
    hx_gw_worker *gw;
    hx_gateway *g;             /* reference: the gateway the request started with */
    json_object *canon;
    hx_in_info info;
    int *chain;                /* provider indexes, in order */
    size_t nchain;
    size_t pos;
    const hx_provider *prov;
    void *parser;
    const hx_adapter *parser_ad; /* the adapter that made `parser` */
    hx_up_call *call;
    hx_render render;
    hx_buf out;
    hx_buf errbody;
    int up_status;
    char retry_after[32];
    bool head_sent;
    bool paused;
    bool finished;
    uint64_t health_noted;     /* providers (bit = index) already reported unhealthy by this request */
    struct proxy *wait_prev, *wait_next; /* in gw->waiting while a retry timer runs */
    bool any_answered;         /* some upstream produced an HTTP answer */
    bool relay_raw;            /* same wire format both sides: relay the body as it is */
    bool relay_sse;            /* same for a stream: relay each event as it is */
    bool sse_done;             /* the relayed stream sent [DONE] */
    hx_sse sse;
    char relay_err[160];
    char rate_limited[32];     /* Retry-After of a provider that answered 429 ("" = none) */
    bool saw_429;
    hx_err last_err;
    char last_msg[384];
    hx_buf states;             /* "name: why; ..." for the final message */
    uint64_t attempt_ns;       /* when the current attempt started */
    uint64_t breaker_gen;      /* generation of the breaker admission held */
    bool breaker_held;         /* the current attempt holds an admission */
    int tries;                 /* attempts on the current provider */
    uv_timer_t *retry_timer;   /* backoff before retrying the same provider */
    uint64_t open_wait_ms;     /* shortest wait until a skipped breaker admits */
} proxy;

static void next_attempt(proxy *p);
static void after_failure(proxy *p, hx_retry_class cls);
static void log_failures(proxy *p);
static void record(proxy *p, bool ok, const char *why);

static proxy *proxy_ref(proxy *p)
{
    p->refs++;
    return p;
}

static void wait_unlink(proxy *p)
{
    hx_gw_worker *w = p->gw;
    if (p->wait_prev)
        p->wait_prev->wait_next = p->wait_next;
    else if (w->waiting == p)
        w->waiting = p->wait_next;
    if (p->wait_next)
        p->wait_next->wait_prev = p->wait_prev;
    p->wait_prev = p->wait_next = NULL;
}

static void proxy_unref(proxy *p)
{
    if (--p->refs > 0)
        return;
    if (p->parser)
        p->parser_ad->parser_free(p->parser);
    hx_render_free(&p->render);
    hx_sse_free(&p->sse);
    hx_buf_free(&p->out);
    hx_buf_free(&p->errbody);
    hx_buf_free(&p->states);
    hx_free(p->chain);
    wait_unlink(p);
    if (p->retry_timer) {
        p->retry_timer->data = NULL;
        uv_close((uv_handle_t *)p->retry_timer, (uv_close_cb)hx_free);
    }
    json_object_put(p->canon);
    p->req->on_abort = NULL;
    p->req->on_drain = NULL;
    hx_req_unref(p->req);
    hx_gateway_unref(p->g);
    hx_free(p);
}

static hx_breaker *breaker_of(proxy *p)
{
    return p->g->breakers[p->prov->index];
}

/* The verdict of the current attempt for its provider's breaker:
 * 1 success, 0 failure, -1 no verdict (the client's own error, abort). */
static void breaker_verdict(proxy *p, int v)
{
    if (!p->breaker_held)
        return;
    p->breaker_held = false;
    if (v < 0)
        hx_breaker_release_gen(breaker_of(p), p->breaker_gen);
    else
        hx_breaker_record_gen(breaker_of(p), p->breaker_gen, v == 1, hx_gateway_now_ms());
}

/* The request is answered (or the client is gone): stop everything. */
static void finish(proxy *p)
{
    if (p->finished)
        return;
    p->finished = true;
    hx_req *r = p->req;
    if (p->prov && (r->log_prompt_tokens > 0 || r->log_completion_tokens > 0)) {
        const hx_gw_provider_metrics *m = &p->g->pm[p->prov->index];
        hx_metrics_inc(HX_M_TOKENS, m->tok_prompt, (uint64_t)r->log_prompt_tokens);
        hx_metrics_inc(HX_M_TOKENS, m->tok_completion, (uint64_t)r->log_completion_tokens);
    }
    log_failures(p);
    breaker_verdict(p, -1);
    if (p->retry_timer)
        uv_timer_stop(p->retry_timer);
    if (p->call) {
        hx_up_call_cancel(p->call);
        p->call = NULL;
    }
    proxy_unref(p);
}

/* Why a provider did not serve, for the final message and the access log. */
static void note_state(proxy *p, const char *name, const char *why)
{
    if (p->states.len)
        hx_buf_append_str(&p->states, "; ");
    hx_buf_printf(&p->states, "%s: %s", name, why);
}

/* The provider was tried and failed: also health and breaker evidence. */
static void note_failure(proxy *p, const char *why)
{
    record(p, false, why);
    note_state(p, p->prov->name, why);
}

static void set_provider_headers(proxy *p)
{
    char n[16];
    snprintf(n, sizeof n, "%d", p->req->log_attempts);
    hx_res_header(p->req, "X-Hapax-Provider", p->prov ? p->prov->name : "none");
    hx_res_header(p->req, "X-Hapax-Attempts", n);
}

/* The access log names why earlier providers did not serve. */
static void log_failures(proxy *p)
{
    hx_req *r = p->req;
    if (p->states.len && r->log_failures[0] == '\0')
        snprintf(r->log_failures, sizeof r->log_failures, "%s", p->states.data);
}

static void answer_error(proxy *p, hx_err e, const char *msg)
{
    hx_req *r = p->req;
    log_failures(p);
    if (p->retry_after[0] && e == HX_ERR_RATE_LIMITED)
        hx_res_header(r, "Retry-After", p->retry_after);
    if (e == HX_ERR_UNAVAILABLE)
        hx_res_header(r, "Retry-After", p->retry_after[0] ? p->retry_after : "5");
    if (r->log_attempts)
        set_provider_headers(p);
    hx_res_error(r, e, msg);
    finish(p);
}

/* ---- client side ------------------------------------------------------------- */

/* Sends what the renderer produced. Returns HX_UP_CONTINUE, HX_UP_PAUSE
 * (client full) or HX_UP_STOP (client gone). */
static int flush_out(proxy *p)
{
    hx_req *r = p->req;
    if (p->out.len == 0)
        return HX_UP_CONTINUE;
    if (!p->head_sent) {
        p->head_sent = true;
        hx_res_header(r, "Content-Type", p->info.render->stream_content_type);
        hx_res_header(r, "Cache-Control", "no-cache");
        hx_res_header(r, "X-Accel-Buffering", "no");
        set_provider_headers(p);
        if (hx_res_start(r, 200) < 0)
            return HX_UP_STOP;
    }
    int rc = hx_res_write(r, p->out.data, p->out.len);
    hx_buf_reset(&p->out);
    if (rc < 0)
        return HX_UP_STOP;
    if (rc == HX_RES_BUSY) {
        p->paused = true;
        return HX_UP_PAUSE;
    }
    return HX_UP_CONTINUE;
}

static void on_client_drain(hx_req *r, void *ud)
{
    (void)r;
    proxy *p = ud;
    if (p->paused && p->call) {
        p->paused = false;
        proxy_ref(p);
        hx_up_call_resume(p->call);
        proxy_unref(p);
    }
}

static void on_client_abort(hx_req *r, void *ud)
{
    (void)r;
    finish(ud);
}

static int on_event(void *ud, const hx_event *ev)
{
    proxy *p = ud;
    if (ev->type == HX_EV_USAGE) {
        p->req->log_prompt_tokens = ev->prompt_tokens;
        p->req->log_completion_tokens = ev->completion_tokens;
    }
    if (!p->info.stream)
        return hx_render_collect(&p->render, ev);
    return p->render.vt->stream_event(&p->render, ev, &p->out);
}

/* ---- upstream side ----------------------------------------------------------- */

static void on_up_head(void *ud, int status, const hx_headers *h)
{
    proxy *p = ud;
    p->up_status = status;
    p->any_answered = true;
    const char *ra = hx_headers_get(h, "retry-after");
    snprintf(p->retry_after, sizeof p->retry_after, "%s", ra ? ra : "");
    if (status >= 200 && status < 300 && p->relay_sse) {
        hx_sse_free(&p->sse);
        hx_sse_init(&p->sse);
        p->sse_done = false;
        p->relay_err[0] = '\0';
    } else if (status >= 200 && status < 300 && !p->relay_raw) {
        p->parser = p->prov->ad->parser_new(p->info.stream);
        p->parser_ad = p->prov->ad;
    }
}

/* One event of an OpenAI stream relayed to an OpenAI client: checked,
 * counted, passed on as it is (no parse into events, no re-rendering). */
static int on_relay_event(void *ud, const char *event, const char *data, size_t len)
{
    (void)event;
    proxy *p = ud;
    if (p->sse_done)
        return 0;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        p->sse_done = true;
        return 0;
    }
    if (!hx_json_valid(data, len) || len < 2 || data[0] != '{') {
        snprintf(p->relay_err, sizeof p->relay_err, "malformed event from upstream");
        return -1;
    }
    if (len > 9 && memcmp(data, "{\"error\"", 8) == 0) {
        char m[128];
        p->prov->ad->error_message(data, len, m, sizeof m);
        snprintf(p->relay_err, sizeof p->relay_err, "%s", m);
        return -1;
    }
    if (memmem(data, len, "\"usage\":{", 9) != NULL) {
        int64_t pt = hx_json_find_int(data, len, "prompt_tokens");
        int64_t ct = hx_json_find_int(data, len, "completion_tokens");
        p->req->log_prompt_tokens = pt > 0 ? pt : 0;
        p->req->log_completion_tokens = ct > 0 ? ct : 0;
        /* the usage chunk we asked for on the client's behalf */
        if (!p->info.include_usage && memmem(data, len, "\"choices\":[]", 12) != NULL)
            return 0;
    }
    return hx_buf_append(&p->out, "data: ", 6) || hx_buf_append(&p->out, data, len) ||
                   hx_buf_append(&p->out, "\n\n", 2)
               ? -1
               : 0;
}

static int on_up_data(void *ud, const char *data, size_t len)
{
    proxy *p = ud;
    if (p->up_status < 200 || p->up_status >= 300) {
        size_t room = HX_ERRBODY_MAX - p->errbody.len;
        hx_buf_append(&p->errbody, data, len < room ? len : room);
        return HX_UP_CONTINUE;
    }
    if (p->relay_raw)
        return hx_buf_append(&p->out, data, len) == 0 ? HX_UP_CONTINUE : HX_UP_STOP;
    if (p->relay_sse) {
        if (hx_sse_feed(&p->sse, data, len, on_relay_event, p) != 0) {
            if (!p->relay_err[0])
                snprintf(p->relay_err, sizeof p->relay_err, "malformed event from upstream");
            return HX_UP_STOP;
        }
        return flush_out(p);
    }
    if (p->parser == NULL)
        return HX_UP_STOP;
    if (p->prov->ad->parser_feed(p->parser, data, len, on_event, p) != 0)
        return HX_UP_STOP;
    return p->info.stream ? flush_out(p) : HX_UP_CONTINUE;
}

/* Maps a failed upstream answer; returns true when the next provider may
 * be tried (nothing the client did wrong). */
static bool classify_status(proxy *p, hx_err *e, char *msg, size_t msglen)
{
    char upmsg[256];
    p->prov->ad->error_message(p->errbody.data ? p->errbody.data : "", p->errbody.len, upmsg, sizeof upmsg);
    int s = p->up_status;
    if (s == 401 || s == 403) {
        *e = HX_ERR_BAD_GATEWAY;
        snprintf(msg, msglen, "provider %s rejected the gateway's credentials (upstream %d): check its api_key",
                 p->prov->name, s);
        return true;
    }
    if (s == 429) {
        *e = HX_ERR_RATE_LIMITED;
        snprintf(msg, msglen, "provider %s is rate limiting: %s", p->prov->name, upmsg);
        return true;
    }
    if (s == 404 || s >= 500) {
        *e = HX_ERR_BAD_GATEWAY;
        snprintf(msg, msglen, "provider %s failed (upstream %d): %s", p->prov->name, s, upmsg);
        return true;
    }
    *e = HX_ERR_INVALID_REQUEST;
    snprintf(msg, msglen, "provider %s rejected the request (upstream %d): %s", p->prov->name, s, upmsg);
    return false;
}

static hx_err transport_err(hx_up_result res)
{
    switch (res) {
    case HX_UP_CONNECT_TIMEOUT:
    case HX_UP_FIRST_BYTE_TIMEOUT:
    case HX_UP_TIMEOUT: return HX_ERR_GATEWAY_TIMEOUT;
    default: return HX_ERR_BAD_GATEWAY;
    }
}

/* An OpenAI answer to an OpenAI client: checked, counted, sent as it is
 * (no parse into events and no re-rendering). */
static void succeed_raw(proxy *p)
{
    hx_req *r = p->req;
    if (!hx_json_valid(p->out.data, p->out.len) || memmem(p->out.data, p->out.len, "\"choices\"", 9) == NULL) {
        p->last_err = HX_ERR_BAD_GATEWAY;
        snprintf(p->last_msg, sizeof p->last_msg, "provider %s: upstream returned malformed JSON", p->prov->name);
        note_failure(p, "malformed response");
        after_failure(p, HX_RETRY_SERVER_ERROR);
        return;
    }
    int64_t pt = hx_json_find_int(p->out.data, p->out.len, "prompt_tokens");
    int64_t ct = hx_json_find_int(p->out.data, p->out.len, "completion_tokens");
    r->log_prompt_tokens = pt > 0 ? pt : 0;
    r->log_completion_tokens = ct > 0 ? ct : 0;
    record(p, true, NULL);
    set_provider_headers(p);
    hx_res_send(r, 200, "application/json", p->out.data, p->out.len);
    finish(p);
}

static void succeed(proxy *p)
{
    hx_req *r = p->req;
    const hx_adapter *ad = p->prov->ad;
    if (p->relay_raw) {
        succeed_raw(p);
        return;
    }
    bool ended_ok;
    if (p->relay_sse) {
        if (hx_sse_end(&p->sse, on_relay_event, p) != 0 && !p->relay_err[0])
            snprintf(p->relay_err, sizeof p->relay_err, "malformed event from upstream");
        if (!p->relay_err[0] && !p->sse_done)
            snprintf(p->relay_err, sizeof p->relay_err, "upstream stream ended early");
        ended_ok = !p->relay_err[0];
        if (ended_ok)
            hx_buf_append_str(&p->out, "data: [DONE]\n\n");
    } else {
        ended_ok = ad->parser_end(p->parser, on_event, p) == 0;
    }
    if (!ended_ok) {
        char m[300];
        snprintf(m, sizeof m, "provider %s: %s", p->prov->name,
                 p->relay_sse ? p->relay_err : ad->parser_error(p->parser));
        if (p->head_sent) {
            record(p, false, "malformed stream");
            p->render.vt->stream_error(&p->render, "api_error", m, &p->out);
            flush_out(p);
            hx_res_end(r);
            finish(p);
            return;
        }
        p->last_err = HX_ERR_BAD_GATEWAY;
        snprintf(p->last_msg, sizeof p->last_msg, "%s", m);
        note_failure(p, "malformed response");
        after_failure(p, HX_RETRY_SERVER_ERROR);
        return;
    }
    record(p, true, NULL);
    if (p->info.stream) {
        if (!p->relay_sse)
            p->render.vt->stream_end(&p->render, &p->out);
        flush_out(p);
        hx_res_end(r);
    } else {
        hx_buf body;
        hx_buf_init(&body, 0);
        if (p->render.vt->body(&p->render, &body) != 0) {
            hx_buf_free(&body);
            answer_error(p, HX_ERR_INTERNAL, NULL);
            return;
        }
        set_provider_headers(p);
        hx_res_send(r, 200, "application/json", body.data, body.len);
        hx_buf_free(&body);
    }
    finish(p);
}

static void on_up_done(void *ud, hx_up_result res, const char *detail)
{
    proxy *p = ud;
    p->call = NULL;
    if (p->finished)
        return;
    proxy_ref(p);
    bool ok_status = p->up_status >= 200 && p->up_status < 300;
    if (res == HX_UP_OK && ok_status) {
        succeed(p);
    } else if (p->head_sent) {
        /* The first byte has gone: no retry, end the stream visibly. */
        char m[300];
        snprintf(m, sizeof m, "provider %s failed mid-stream: %s", p->prov->name,
                 p->relay_sse && p->relay_err[0] ? p->relay_err
                 : p->parser && res == HX_UP_ABORTED ? p->prov->ad->parser_error(p->parser)
                                                     : hx_up_result_str(res));
        record(p, false, "failed mid-stream");
        HX_LOG_WARN("upstream failed mid-stream", HX_F_STR("request_id", p->req->request_id),
                    HX_F_STR("provider", p->prov->name), HX_F_STR("error", m));
        p->render.vt->stream_error(&p->render, "api_error", m, &p->out);
        flush_out(p);
        hx_res_end(p->req);
        finish(p);
    } else if (res == HX_UP_OK) {
        bool next = classify_status(p, &p->last_err, p->last_msg, sizeof p->last_msg);
        if (p->up_status == 429) {
            p->saw_429 = true;
            snprintf(p->rate_limited, sizeof p->rate_limited, "%s", p->retry_after);
        }
        char st[32];
        snprintf(st, sizeof st, "upstream %d", p->up_status);
        if (next) {
            note_failure(p, st); /* the provider's fault, not the request's */
            after_failure(p, p->up_status == 429 ? HX_RETRY_RATE_LIMIT
                             : p->up_status >= 500 ? HX_RETRY_SERVER_ERROR : HX_RETRY_NONE);
        } else {
            breaker_verdict(p, -1); /* the client's own error says nothing about the provider */
            note_state(p, p->prov->name, st);
            answer_error(p, p->last_err, p->last_msg);
        }
    } else {
        p->last_err = res == HX_UP_ABORTED ? HX_ERR_BAD_GATEWAY : transport_err(res);
        if (res != HX_UP_CONNECT_ERROR)
            p->any_answered = true; /* reached, then failed: not "nothing to ask" */
        const char *why = res == HX_UP_ABORTED && p->relay_sse && p->relay_err[0] ? p->relay_err
                          : res == HX_UP_ABORTED && p->parser ? p->prov->ad->parser_error(p->parser)
                                                              : detail;
        snprintf(p->last_msg, sizeof p->last_msg, "provider %s: %s (%s)", p->prov->name, hx_up_result_str(res),
                 why ? why : "");
        note_failure(p, hx_up_result_str(res));
        after_failure(p, res == HX_UP_CONNECT_TIMEOUT || res == HX_UP_FIRST_BYTE_TIMEOUT || res == HX_UP_TIMEOUT
                             ? HX_RETRY_TIMEOUT
                         : res == HX_UP_ABORTED ? HX_RETRY_SERVER_ERROR : HX_RETRY_CONNECTION);
    }
    proxy_unref(p);
}

static const hx_up_callbacks up_cb = {on_up_head, on_up_data, on_up_done};

/* Passive health evidence from real traffic. */
static void record(proxy *p, bool ok, const char *why)
{
    breaker_verdict(p, ok ? 1 : 0);
    uint64_t ns = hx_now_ns() - p->attempt_ns;
    int64_t ms = (int64_t)(ns / 1000000);
    /* Passive health counts requests, not attempts: one request retrying a
     * provider five times is one piece of evidence, so health's
     * failure_threshold means "N requests or probes in a row" (the breaker
     * still sees every attempt). */
    uint64_t bit = p->prov->index < 64 ? 1ull << p->prov->index : 0;
    if (ok || !(p->health_noted & bit)) {
        if (!ok)
            p->health_noted |= bit;
        hx_gateway_record(p->g, (size_t)p->prov->index, ok, why, ok ? ms : -1, false);
    }
    const hx_gw_provider_metrics *m = &p->g->pm[p->prov->index];
    hx_metrics_inc(HX_M_PROVIDER_REQUESTS, ok ? m->ok : m->fail, 1);
    hx_metrics_observe(HX_M_PROVIDER_LATENCY, m->latency, (double)ns / 1e9);
    if (!ok)
        hx_metrics_inc(HX_M_PROVIDER_FAILURES, m->failures[hx_gw_fail_class_of(p->up_status, why)], 1);
}

/* ---- chain ---------------------------------------------------------------------- */

static void reset_attempt(proxy *p)
{
    if (p->parser)
        p->parser_ad->parser_free(p->parser);
    p->parser = NULL;
    p->up_status = 0;
    p->retry_after[0] = '\0';
    hx_buf_reset(&p->errbody);
    hx_buf_reset(&p->out);
    hx_render_free(&p->render);
}

static void give_up(proxy *p)
{
    if (!p->any_answered) {
        /* Nothing could even be asked: say what to set or start, and when
         * breakers are open, when to come back. */
        if (p->open_wait_ms)
            snprintf(p->retry_after, sizeof p->retry_after, "%llu",
                     (unsigned long long)((p->open_wait_ms + 999) / 1000));
        char msg[1024];
        snprintf(msg, sizeof msg, "no provider can serve this request: %s",
                 p->states.len ? p->states.data : "none configured");
        answer_error(p, HX_ERR_UNAVAILABLE, msg);
        return;
    }
    if (p->saw_429) {
        /* Someone asked us to slow down: the client should too. */
        snprintf(p->retry_after, sizeof p->retry_after, "%s", p->rate_limited[0] ? p->rate_limited : "1");
        char msg[512];
        snprintf(msg, sizeof msg, "every provider failed and at least one is rate limiting: %s",
                 p->states.len ? p->states.data : "");
        answer_error(p, HX_ERR_RATE_LIMITED, msg);
        return;
    }
    answer_error(p, p->last_err, p->last_msg);
}

/* The client spoke this provider's wire format and named its model, and
 * nothing needs adding (streams get stream_options): send its body as is. */
static bool passthrough_ok(const proxy *p, const hx_provider *pv)
{
    const hx_buf *b = &p->req->body;
    if (p->info.stream || !pv->ad->build_passthrough || p->info.render != &hx_render_openai_chat ||
        pv->ad != &hx_adapter_openai || strcmp(p->info.model, pv->model) != 0 || b->len == 0)
        return false;
    /* A duplicated "model" key could route on one value and reach an
     * upstream that reads the other: such bodies are rebuilt. */
    const char *first = memmem(b->data, b->len, "\"model\"", 7);
    return first && memmem(first + 7, b->len - (size_t)(first + 7 - b->data), "\"model\"", 7) == NULL;
}

/* Builds and starts one attempt on p->prov. Returns 0 when the call is
 * running; -1 when this provider cannot take the request (noted). */
static int start_attempt(proxy *p)
{
    hx_req *r = p->req;
    const hx_cfg_llm *l = &r->cfg->llm;
    const hx_provider *pv = p->prov;
    reset_attempt(p);
    hx_up_request ur;
    hx_up_request_init(&ur);
    char err[256];
    int built = -1;
    if (passthrough_ok(p, pv))
        built = pv->ad->build_passthrough(pv, r->body.data, r->body.len, &ur);
    if (built != 0) {
        hx_up_request_free(&ur);
        hx_up_request_init(&ur);
        built = pv->ad->build_chat(pv, p->canon, p->info.stream, &ur, err, sizeof err);
    }
    if (built != 0) {
        note_state(p, pv->name, err);
        p->last_err = HX_ERR_INVALID_REQUEST;
        snprintf(p->last_msg, sizeof p->last_msg, "%s: %s", pv->name, err);
        p->any_answered = true; /* the request itself is the problem */
        hx_up_request_free(&ur);
        return -1;
    }
    /* The provider's logs can be joined with ours. */
    if ((r->mw & HX_MW_REQUEST_ID) && hx_headers_add(&ur.headers, "X-Request-ID", r->request_id) != 0) {
        hx_up_request_free(&ur);
        note_state(p, pv->name, "out of memory");
        p->last_err = HX_ERR_INTERNAL;
        return -1;
    }
    uint64_t now = hx_now_ns();
    int64_t left_ms = r->deadline_ns > now ? (int64_t)((r->deadline_ns - now) / 1000000) : 0;
    if (left_ms <= 0) {
        hx_up_request_free(&ur);
        p->any_answered = true;
        p->last_err = HX_ERR_GATEWAY_TIMEOUT;
        snprintf(p->last_msg, sizeof p->last_msg, "the request deadline passed before a provider answered");
        p->pos = p->nchain; /* nothing else can be tried either */
        return -1;
    }
    hx_up_opts o = {l->connect_timeout, l->first_byte_timeout, left_ms};
    p->attempt_ns = now;
    if (p->tries++ > 0)
        hx_metrics_inc(HX_M_RETRIES, p->g->pm[pv->index].retries, 1);
    hx_render_init(&p->render, p->info.render, p->info.stream, p->info.include_usage, pv->model);
    p->relay_raw = !p->info.stream && p->info.render == &hx_render_openai_chat && pv->ad == &hx_adapter_openai;
    p->relay_sse = p->info.stream && p->info.render == &hx_render_openai_chat && pv->ad == &hx_adapter_openai;
    p->out.max = p->relay_raw ? HX_RELAY_BODY_MAX : 0;
    snprintf(r->log_provider, sizeof r->log_provider, "%s", pv->name);
    snprintf(r->log_model, sizeof r->log_model, "%s", pv->model);
    r->log_attempts++;
    p->call = hx_upstream_start(p->gw->up, ur.method, ur.url, &ur.headers, ur.body.data, ur.body.len, &o,
                                &up_cb, p);
    hx_up_request_free(&ur);
    if (p->call)
        return 0;
    breaker_verdict(p, -1);
    note_state(p, pv->name, "could not start the upstream call");
    p->last_err = HX_ERR_INTERNAL;
    return -1;
}

/* May provider pv take an attempt now? Takes a breaker admission if so. */
static bool admit(proxy *p, const hx_provider *pv)
{
    hx_gateway *g = p->g;
    if (!pv->usable) {
        note_state(p, pv->name, pv->reason);
        return false;
    }
    if (g->cfg->llm.health_check.enabled && !hx_health_ok(g->health[pv->index])) {
        hx_health_snap hs;
        hx_health_snapshot(g->health[pv->index], &hs);
        char why[200];
        snprintf(why, sizeof why, "unhealthy (%s)", hs.last_error);
        note_state(p, pv->name, why);
        return false;
    }
    uint64_t now = hx_gateway_now_ms();
    if (!hx_breaker_allow_gen(g->breakers[pv->index], now, &p->breaker_gen)) {
        uint64_t wait = hx_breaker_retry_after_ms(g->breakers[pv->index], now);
        if (p->open_wait_ms == 0 || (wait > 0 && wait < p->open_wait_ms))
            p->open_wait_ms = wait ? wait : 1000;
        note_state(p, pv->name, "circuit breaker open");
        return false;
    }
    p->breaker_held = true;
    return true;
}

static void next_attempt(proxy *p)
{
    /* A provider that was tried and failed hands over: a failover. */
    const hx_provider *from = p->prov && p->tries > 0 ? p->prov : NULL;
    while (p->pos < p->nchain) {
        p->prov = &p->g->providers.items[p->chain[p->pos++]];
        p->tries = 0;
        if (admit(p, p->prov) && start_attempt(p) == 0) {
            if (from)
                hx_metrics_inc(HX_M_FAILOVERS, p->g->pm[from->index].failovers, 1);
            return;
        }
    }
    give_up(p);
}

static void on_retry_timer(uv_timer_t *t)
{
    proxy *p = t->data;
    if (p == NULL || p->finished)
        return;
    wait_unlink(p);
    proxy_ref(p);
    if (!(admit(p, p->prov) && start_attempt(p) == 0))
        next_attempt(p);
    proxy_unref(p);
}

/* Shutdown: requests waiting to retry stop waiting and move on to the next
 * provider at once (or answer with the last error); no new waits start. */
void hx_proxy_drain(hx_gw_worker *w)
{
    w->draining = true;
    while (w->waiting) {
        proxy *p = w->waiting;
        wait_unlink(p);
        uv_timer_stop(p->retry_timer);
        proxy_ref(p);
        next_attempt(p);
        proxy_unref(p);
    }
}

/* After a provider failed before the client saw a byte: retry it (llm.retry,
 * within the retry budget and the request's deadline, honouring its
 * Retry-After) or move on to the next provider. */
static void after_failure(proxy *p, hx_retry_class cls)
{
    hx_gateway *g = p->g;
    const hx_cfg_retry *rc = &p->req->cfg->llm.retry;
    uint64_t now = hx_now_ns();
    uint64_t left = p->req->deadline_ns > now ? (p->req->deadline_ns - now) / 1000000 : 0;
    if (cls == HX_RETRY_NONE || p->tries > rc->max_retries || !hx_retry_allowed(g->retry_classes, cls) ||
        p->gw->draining) {
        next_attempt(p);
        return;
    }
    uint64_t rnd;
    hx_random_bytes(&rnd, sizeof rnd);
    uint64_t delay = hx_retry_delay_ms(rc, p->tries, rnd);
    if (cls == HX_RETRY_RATE_LIMIT) {
        uint64_t ra = hx_retry_after_ms(p->retry_after, (uint64_t)time(NULL));
        if (ra > delay)
            delay = ra;
    }
    /* The wait must leave time for the attempt itself. */
    if (delay >= left || !hx_retry_budget_withdraw(g->budget, hx_gateway_now_ms())) {
        next_attempt(p);
        return;
    }
    if (p->retry_timer == NULL) {
        p->retry_timer = hx_malloc(sizeof *p->retry_timer);
        if (p->retry_timer == NULL) {
            next_attempt(p);
            return;
        }
        uv_timer_init(p->req->loop, p->retry_timer);
        p->retry_timer->data = p;
    }
    uv_timer_start(p->retry_timer, on_retry_timer, delay, 0);
    p->wait_next = p->gw->waiting;
    if (p->wait_next)
        p->wait_next->wait_prev = p;
    p->gw->waiting = p;
}

static bool listed(const hx_strlist *l, const char *s)
{
    for (size_t i = 0; s && i < l->n; i++)
        if (strcmp(l->items[i], s) == 0)
            return true;
    return false;
}

/* Drops from the chain the providers a model-restricted key may not use: a
 * provider is allowed when its model, its name or one of its aliases is in
 * the key's `models`. Returns what is left. */
static size_t keep_allowed(proxy *p, const hx_cfg_auth_key *k)
{
    size_t out = 0;
    for (size_t i = 0; i < p->nchain; i++) {
        const hx_provider *pv = &p->g->providers.items[p->chain[i]];
        bool ok = listed(&k->models, pv->model) || listed(&k->models, pv->name);
        for (size_t j = 0; !ok && pv->aliases && j < pv->aliases->n; j++)
            ok = listed(&k->models, pv->aliases->items[j]);
        if (ok)
            p->chain[out++] = p->chain[i];
    }
    p->nchain = out;
    return out;
}

void hx_proxy_start(hx_req *r, json_object *canon, const hx_in_info *info)
{
    hx_gw_worker *gw = r->app;
    proxy *p = gw ? hx_calloc(1, sizeof *p) : NULL;
    if (p == NULL) {
        json_object_put(canon);
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    p->refs = 1;
    p->req = hx_req_ref(r);
    p->gw = gw;
    hx_gw_worker_sync(gw);
    p->g = hx_gateway_ref(gw->gw);
    p->canon = canon;
    p->info = *info;
    hx_buf_init(&p->out, 0);
    hx_buf_init(&p->errbody, 0);
    hx_buf_init(&p->states, 4096);
    hx_sse_init(&p->sse);
    hx_render_init(&p->render, info->render, info->stream, info->include_usage, "");
    size_t np = p->g->providers.n;
    p->chain = hx_calloc(np ? np : 1, sizeof *p->chain);
    if (p->chain == NULL) {
        answer_error(p, HX_ERR_INTERNAL, NULL);
        return;
    }
    p->nchain = hx_providers_chain(&p->g->providers, info->model, p->chain, np);
    if (p->nchain > 0 && r->auth_key && r->auth_key->models.n > 0 && keep_allowed(p, r->auth_key) == 0) {
        /* Failover must not reach a model the client key may not use. */
        hx_auth_deny_model(r, info->model[0] ? info->model : r->cfg->llm.model);
        finish(p);
        return;
    }
    if (p->nchain == 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "The model '%s' is not served by this gateway: GET /v1/models lists the models",
                 info->model);
        answer_error(p, HX_ERR_MODEL_NOT_FOUND, msg);
        return;
    }
    r->on_abort = on_client_abort;
    r->on_drain = on_client_drain;
    r->cb_ud = p;
    hx_retry_budget_deposit(p->g->budget, hx_gateway_now_ms());
    next_attempt(p);
}
