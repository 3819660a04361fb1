/* One LLM request on its way through the provider chain.
 *
 * For each provider in the chain: build the upstream request with its
 * adapter, call it, translate its answer into canonical events and render
 * them for the client. A failure before anything has gone to the client
 * moves on to the next provider; once the first byte has gone out, a
 * failure ends the stream with an error event in the client's format. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway/proxy_int.h"
#include "middleware/auth.h"
#include "middleware/ratelimit.h"
#include "obs/metrics.h"
#include "obs/log.h"
#include "provider/sse.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/uuid.h"

/* Bytes of non-streamed upstream answers held by all requests of the
 * process (llm.upstream_buffer_budget). */
static atomic_size_t buffered_total;

proxy *px_proxy_ref(proxy *p)
{
    p->refs++;
    return p;
}

void px_wait_unlink(proxy *p)
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

void px_live_link(proxy *p)
{
    p->live_prev = NULL;
    p->live_next = p->gw->live;
    if (p->live_next)
        p->live_next->live_prev = p;
    p->gw->live = p;
    p->live = true;
}

static void live_unlink(proxy *p)
{
    if (!p->live)
        return;
    if (p->live_prev)
        p->live_prev->live_next = p->live_next;
    else
        p->gw->live = p->live_next;
    if (p->live_next)
        p->live_next->live_prev = p->live_prev;
    p->live_prev = p->live_next = NULL;
    p->live = false;
}

void px_proxy_unref(proxy *p)
{
    if (--p->refs > 0)
        return;
    if (p->parser)
        p->parser_ad->parser_free(p->parser);
    hx_free(p->answer_tool);
    hx_render_free(&p->render);
    hx_sse_free(&p->sse);
    hx_scrub_stream_free(&p->scrub);
    px_budget_release(p);
    hx_buf_free(&p->out);
    hx_buf_free(&p->errbody);
    hx_buf_free(&p->states);
    hx_free(p->chain);
    hx_free(p->chain_model);
    hx_free(p->health_noted_more);
    hx_gw_cache_fill_free(p->fill);
    px_wait_unlink(p);
    live_unlink(p);
    if (p->retry_timer) {
        p->retry_timer->data = NULL;
        uv_close((uv_handle_t *)p->retry_timer, (uv_close_cb)hx_free);
    }
    json_object_put(p->canon);
    if (p->info.ctx_free)
        p->info.ctx_free(p->info.ctx);
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

/* One verdict per request and provider: the breaker counts requests, so
 * retries of one request never open it on their own. */
void px_breaker_verdict(proxy *p, int v)
{
    if (!p->breaker_held || p->prov == NULL) /* held implies a provider */
        return;
    p->breaker_held = false;
    if (v >= 0)
        p->breaker_pending = v;
    if (p->breaker_pending < 0)
        hx_breaker_release_gen(breaker_of(p), p->breaker_gen);
    else {
        hx_breaker_record_gen(breaker_of(p), p->breaker_gen, p->breaker_pending == 1, hx_gateway_now_ms());
        hx_gateway_shared_verdict(p->g, p->prov->index, p->breaker_pending == 1);
    }
    p->breaker_pending = -1;
}

/* The request is answered (or the client is gone): stop everything. */
void px_finish(proxy *p)
{
    if (p->state == PX_DONE)
        return;
    px_set_state(p, PX_DONE);
    live_unlink(p);
    const hx_gw_reqlog *lg = hx_gw_log_peek(p->req);
    px_tpm_settle(p);
    if (p->prov && (lg->prompt_tokens > 0 || lg->completion_tokens > 0)) {
        const hx_gw_provider_metrics *m = &p->g->pm[p->prov->index];
        hx_metrics_inc(HX_M_TOKENS, m->tok_prompt, (uint64_t)lg->prompt_tokens);
        hx_metrics_inc(HX_M_TOKENS, m->tok_completion, (uint64_t)lg->completion_tokens);
    }
    px_log_failures(p);
    px_breaker_verdict(p, -1);
    if (p->retry_timer)
        uv_timer_stop(p->retry_timer);
    if (p->call) {
        hx_up_call_cancel(p->call);
        p->call = NULL;
    }
    px_proxy_unref(p);
}

/* Tokens per minute: the reservation taken at the start becomes the
 * reported usage (charged by the handler when the request ends), or, when
 * usage never came (client gone, stream cut), an estimate of what the
 * provider processed: the prompt and the text relayed so far. A request no
 * provider accepted costs nothing. */
void px_tpm_settle(proxy *p)
{
    int64_t charge = 0;
    if (!p->usage_seen && (p->billable || p->call))
        charge = p->prompt_estimate + (int64_t)((p->text_bytes + 3) / 4);
    hx_ratelimit_settle_tokens(p->req, p->tpm_reserved, charge);
    p->tpm_reserved = 0;
}

/* Why a provider did not serve, for the final message and the access log. */
void px_note_state(proxy *p, const char *name, const char *why)
{
    if (p->states.len)
        hx_buf_append_str(&p->states, "; ");
    hx_buf_printf(&p->states, "%s: %s", name, why);
}

/* The provider was tried and failed: also health and breaker evidence. */
void px_note_failure(proxy *p, hx_fail_class cls, const char *why)
{
    px_record(p, false, cls, why);
    px_note_state(p, p->prov->name, why);
}

void px_set_provider_headers(proxy *p)
{
    char n[16];
    snprintf(n, sizeof n, "%d", hx_gw_log_peek(p->req)->attempts);
    hx_res_header(p->req, "X-Hapax-Provider", p->prov ? p->prov->name : "none");
    hx_res_header(p->req, "X-Hapax-Attempts", n);
}

/* The access log names why earlier providers did not serve. */
void px_log_failures(proxy *p)
{
    if (p->states.len == 0 || hx_gw_log_peek(p->req)->failures[0] != '\0')
        return;
    hx_gw_reqlog *lg = hx_gw_log(p->req);
    snprintf(lg->failures, sizeof lg->failures, "%s", p->states.data);
}

void px_answer_error(proxy *p, hx_err e, const char *msg)
{
    hx_req *r = p->req;
    px_log_failures(p);
    if (p->retry_after[0] && e == HX_ERR_RATE_LIMITED)
        hx_res_header(r, "Retry-After", p->retry_after);
    if (e == HX_ERR_UNAVAILABLE)
        hx_res_header(r, "Retry-After", p->retry_after[0] ? p->retry_after : "5");
    if (hx_gw_log_peek(r)->attempts)
        px_set_provider_headers(p);
    hx_res_error(r, e, msg);
    px_finish(p);
}

void px_answer_local(proxy *p, const hx_translated *tr)
{
    hx_req *r = p->req;
    hx_buf body;
    hx_buf_init(&body, HX_RENDER_BODY_MAX);
    char err[256];
    hx_gw_reqlog *lg = hx_gw_log(r);
    snprintf(lg->provider, sizeof lg->provider, "%s", p->prov->name);
    snprintf(lg->model, sizeof lg->model, "%s", p->prov->model);
    if (tr->local(p->canon, &body, err, sizeof err) != 0) {
        hx_buf_free(&body);
        px_answer_error(p, HX_ERR_INTERNAL, err);
        return;
    }
    p->usage_seen = true; /* nothing was spent */
    px_log_failures(p);
    hx_res_header(r, tr->local_header, "true");
    px_set_provider_headers(p);
    hx_res_send(r, 200, "application/json", body.data, body.len);
    hx_buf_free(&body);
    px_finish(p);
}

/* ---- client side ------------------------------------------------------------- */

/* Sends what the renderer produced. Returns HX_UP_CONTINUE, HX_UP_PAUSE
 * (client full) or HX_UP_STOP (client gone): the one map from the client's
 * write result (hx_res_rc) to the upstream verdict (HX_UP_*). A client
 * that is gone is no provider failure and gets no failure class: its
 * abort callback ends the request (px_finish cancels the call). */
static int flush_out(proxy *p)
{
    hx_req *r = p->req;
    if (p->out.len == 0)
        return HX_UP_CONTINUE;
    if (!px_head_sent(p)) {
        px_set_state(p, PX_RELAYING);
        hx_res_header(r, "Content-Type", p->info.render->stream_content_type);
        hx_res_header(r, "Cache-Control", "no-cache");
        hx_res_header(r, "X-Accel-Buffering", "no");
        px_set_provider_headers(p);
        if (hx_res_start(r, 200) < 0)
            return HX_UP_STOP;
    }
    hx_gw_cache_fill_add(p->fill, p->out.data, p->out.len);
    int rc = hx_res_write(r, p->out.data, p->out.len);
    hx_buf_reset(&p->out);
    if (rc < 0)
        return HX_UP_STOP;
    if (rc == HX_RES_BUSY) {
        if (p->state != PX_PAUSED)
            px_set_state(p, PX_PAUSED);
        return HX_UP_PAUSE;
    }
    return HX_UP_CONTINUE;
}

void px_on_client_drain(hx_req *r, void *ud)
{
    (void)r;
    proxy *p = ud;
    if (p->state == PX_PAUSED && p->call) {
        px_set_state(p, PX_RELAYING);
        px_proxy_ref(p);
        hx_up_call_resume(p->call);
        px_proxy_unref(p);
    }
}

void px_on_client_abort(hx_req *r, void *ud)
{
    (void)r;
    px_finish(ud);
}

static int render_event(proxy *p, const hx_event *ev)
{
    if (!p->info.stream)
        return p->render.vt->collect ? p->render.vt->collect(&p->render, ev) : hx_render_collect(&p->render, ev);
    return p->render.vt->stream_event(&p->render, ev, &p->out);
}

/* The call of p->answer_tool, once, before its arguments. */
static int open_tool(proxy *p)
{
    if (p->tool_opened)
        return 0;
    p->tool_opened = true;
    char id[32];
    hx_random_id(id, sizeof id, "call_");
    hx_event call = {.type = HX_EV_TOOL_CALL, .index = 0, .id = id, .name = p->answer_tool};
    return render_event(p, &call);
}

/* A forced tool went up as a format (Ollama): the JSON text answered is
 * that tool's call. Text deltas become argument fragments (a stream stays
 * a stream); a plain stop becomes tool_calls. A stop sequence or the
 * length limit cut the arguments short: that finish stays as it is. */
static int as_tool_event(proxy *p, const hx_event *ev)
{
    hx_event out = *ev;
    if (ev->type == HX_EV_TEXT) {
        if (open_tool(p) != 0)
            return -1;
        out.type = HX_EV_TOOL_ARGS;
        out.index = 0;
    } else if (ev->type == HX_EV_FINISH) {
        if (open_tool(p) != 0)
            return -1;
        if (ev->finish && strcmp(ev->finish, "stop") == 0 && ev->text == NULL)
            out.finish = "tool_calls";
    }
    return render_event(p, &out);
}

static int on_event(void *ud, const hx_event *ev)
{
    proxy *p = ud;
    if (ev->type == HX_EV_USAGE) {
        hx_gw_reqlog *lg = hx_gw_log(p->req);
        lg->prompt_tokens = ev->prompt_tokens;
        lg->completion_tokens = ev->completion_tokens;
        p->usage_seen = true;
    } else if (ev->type == HX_EV_TEXT || ev->type == HX_EV_TOOL_ARGS) {
        p->text_bytes += ev->len;
    }
    if (p->answer_tool)
        return as_tool_event(p, ev);
    return render_event(p, ev);
}

/* ---- upstream side ----------------------------------------------------------- */

static void on_up_head(void *ud, int status, const hx_headers *h)
{
    proxy *p = ud;
    p->up_status = status;
    p->any_answered = true;
    px_take_retry_after(p, hx_headers_get(h, "retry-after"));
    if (status >= 200 && status < 300)
        p->billable = true;
    if (status >= 200 && status < 300 && p->relay_sse) {
        hx_sse_free(&p->sse);
        hx_sse_init(&p->sse);
        p->relay = (hx_relay){.want_usage = p->info.include_usage};
    } else if (status >= 200 && status < 300 && !p->relay_raw) {
        p->parser = p->prov->ad->parser_new(p->info.stream);
        p->parser_ad = p->prov->ad;
    }
}

/* Length of the JSON string values of `key` in an event (escapes count as
 * one byte each): the text a relayed chunk carries, for the token estimate
 * when the upstream's usage never comes. */
static size_t text_len(const char *d, size_t n, const char *key, size_t klen)
{
    size_t total = 0;
    const char *end = d + n, *q = d;
    while ((q = memmem(q, (size_t)(end - q), key, klen)) != NULL) {
        q += klen;
        while (q < end && *q != '"') {
            q += *q == '\\' ? 2 : 1;
            total++;
        }
    }
    return total;
}

/* The usage a relayed answer reported, for the access log and the limits. */
static void relay_usage(proxy *p)
{
    if (!p->relay.usage_seen)
        return;
    hx_gw_reqlog *lg = hx_gw_log(p->req);
    lg->prompt_tokens = hx_tokens_add(p->relay.prompt_tokens, 0);
    lg->completion_tokens = hx_tokens_add(p->relay.completion_tokens, 0);
    p->usage_seen = true;
}

/* One event of a stream in the client's own API: checked and counted by
 * the adapter's native hooks, passed on as it is (its event name kept; no
 * parse into events, no re-rendering). */
static int on_relay_event(void *ud, const char *event, const char *data, size_t len)
{
    proxy *p = ud;
    int rc = p->native->stream_event(&p->relay, event, data, len);
    relay_usage(p);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    p->text_bytes += text_len(data, len, "\"content\":\"", 11) + text_len(data, len, "\"arguments\":\"", 13) +
                     text_len(data, len, "\"text\":\"", 8) + text_len(data, len, "\"partial_json\":\"", 16) +
                     text_len(data, len, "\"delta\":\"", 9);
    if (event && *event && (hx_buf_append_str(&p->out, "event: ") || hx_buf_append_str(&p->out, event) ||
                  hx_buf_append(&p->out, "\n", 1)))
        return -1;
    /* Checked JSON: a multi-line data value goes out as one valid line. */
    return hx_sse_write_data(&p->out, data, len, 1);
}

void px_budget_release(proxy *p)
{
    if (p->buffered) {
        atomic_fetch_sub(&buffered_total, p->buffered);
        p->buffered = 0;
    }
}

/* A non-streamed answer is held whole before it is checked and rendered:
 * all of them together stay within llm.upstream_buffer_budget. */
static bool budget_take(proxy *p, size_t n)
{
    size_t limit = (size_t)p->req->cfg->llm.upstream_buffer_budget;
    size_t now = atomic_fetch_add(&buffered_total, n) + n;
    p->buffered += n;
    if (limit && now > limit) {
        p->over_budget = true;
        return false;
    }
    return true;
}

/* Body bytes after the secrets were taken out. */
static int up_data(proxy *p, const char *data, size_t len)
{
    if (p->up_status < 200 || p->up_status >= 300) {
        size_t room = HX_ERRBODY_MAX - p->errbody.len;
        hx_buf_append(&p->errbody, data, len < room ? len : room);
        return HX_UP_CONTINUE;
    }
    if (!p->info.stream && !budget_take(p, len))
        return HX_UP_STOP;
    if (p->relay_raw)
        return hx_buf_append(&p->out, data, len) == 0 ? HX_UP_CONTINUE : HX_UP_STOP;
    if (p->relay_sse) {
        if (hx_sse_feed(&p->sse, data, len, on_relay_event, p) != 0) {
            if (!p->relay.err[0])
                snprintf(p->relay.err, sizeof p->relay.err, "malformed event from upstream");
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

static int on_up_data(void *ud, const char *data, size_t len)
{
    proxy *p = ud;
    const char *d;
    size_t n;
    if (hx_scrub_feed(p->g->scrub, &p->scrub, data, len, &d, &n) != 0)
        return HX_UP_STOP;
    return n ? up_data(p, d, n) : HX_UP_CONTINUE;
}

/* The end of the body: a tail held back in case it began a secret goes on. */
static int up_data_end(proxy *p)
{
    const char *d;
    size_t n;
    if (p->scrub.held.len == 0)
        return 0;
    if (hx_scrub_flush(&p->scrub, &d, &n) != 0)
        return -1;
    return up_data(p, d, n) == HX_UP_STOP ? -1 : 0;
}

/* An answer in the client's own API: checked, counted, sent as it is (no
 * parse into events and no re-rendering). */
static void succeed_raw(proxy *p)
{
    hx_req *r = p->req;
    p->relay = (hx_relay){.want_usage = p->info.include_usage};
    hx_buf conv; /* a translated answer, in the client's format */
    hx_buf_init(&conv, HX_RENDER_BODY_MAX);
    const char *data = p->out.data ? p->out.data : "";
    int rc = p->translated ? p->translated->convert(p->prov, p->canon, data, p->out.len, &conv, &p->relay)
                           : p->native->body(&p->relay, data, p->out.len);
    if (p->translated) {
        hx_buf_free(&p->out);
        p->out = conv; /* same bound kind: released with the proxy */
    } else {
        hx_buf_free(&conv);
    }
    if (rc != 0) {
        p->last_err = HX_ERR_BAD_GATEWAY;
        snprintf(p->last_msg, sizeof p->last_msg, "provider %s: %s", p->prov->name,
                 p->relay.err[0] ? p->relay.err : "upstream returned malformed JSON");
        px_note_failure(p, HX_FAIL_MALFORMED, "malformed response");
        p->fail = HX_FAIL_MALFORMED;
        px_after_failure(p, HX_FAIL_MALFORMED); /* a 2xx: the provider generated (billed) */
        return;
    }
    relay_usage(p);
    px_record(p, true, HX_FAIL_NONE, NULL);
    px_set_provider_headers(p);
    hx_gw_cache_fill_commit(p->fill, r, "application/json", false, p->out.data ? p->out.data : "", p->out.len);
    hx_res_send(r, 200, "application/json", p->out.data, p->out.len);
    px_finish(p);
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
        if (hx_sse_end(&p->sse, on_relay_event, p) != 0 && !p->relay.err[0])
            snprintf(p->relay.err, sizeof p->relay.err, "malformed event from upstream");
        if (!p->relay.err[0] && !p->relay.done)
            snprintf(p->relay.err, sizeof p->relay.err, "upstream stream ended early");
        ended_ok = !p->relay.err[0];
        if (ended_ok && p->native->stream_end)
            hx_buf_append_str(&p->out, p->native->stream_end);
    } else {
        ended_ok = ad->parser_end(p->parser, on_event, p) == 0;
    }
    if (!ended_ok) {
        char m[300];
        snprintf(m, sizeof m, "provider %s: %s", p->prov->name,
                 p->relay_sse ? p->relay.err : ad->parser_error(p->parser));
        if (px_head_sent(p)) {
            px_record(p, false, HX_FAIL_MALFORMED, "malformed stream");
            p->render.vt->stream_error(&p->render, "api_error", m, &p->out);
            flush_out(p);
            hx_res_end(r);
            px_finish(p);
            return;
        }
        p->last_err = HX_ERR_BAD_GATEWAY;
        snprintf(p->last_msg, sizeof p->last_msg, "%s", m);
        px_note_failure(p, HX_FAIL_MALFORMED, "malformed response");
        p->fail = HX_FAIL_MALFORMED;
        px_after_failure(p, HX_FAIL_MALFORMED); /* a 2xx: the provider generated (billed) */
        return;
    }
    px_record(p, true, HX_FAIL_NONE, NULL);
    if (p->info.stream) {
        if (!p->relay_sse)
            p->render.vt->stream_end(&p->render, &p->out);
        /* Kept when the client took the whole stream; stored before the
         * end goes out, so the client's next request can find it. */
        if (flush_out(p) != HX_UP_STOP)
            hx_gw_cache_fill_commit(p->fill, r, p->info.render->stream_content_type, true, NULL, 0);
        hx_res_end(r);
    } else {
        hx_buf body;
        hx_buf_init(&body, HX_RENDER_BODY_MAX);
        if (p->render.vt->body(&p->render, &body) != 0) {
            hx_buf_free(&body);
            px_answer_error(p, HX_ERR_INTERNAL, NULL);
            return;
        }
        px_set_provider_headers(p);
        hx_gw_cache_fill_commit(p->fill, r, "application/json", false, body.data ? body.data : "", body.len);
        hx_res_send(r, 200, "application/json", body.data, body.len);
        hx_buf_free(&body);
    }
    px_finish(p);
}

/* The upstream refused a request in the client's own API: its error goes
 * to the client as the upstream wrote it (type, message, status), with the
 * gateway's request id. False when the adapter cannot (then the gateway's
 * own error is sent). */
static bool relay_error(proxy *p)
{
    if (p->native == NULL || p->native->error_body == NULL || p->up_status < 400 || p->up_status > 499)
        return false;
    hx_buf b;
    hx_buf_init(&b, HX_RELAY_ERROR_MAX);
    if (p->native->error_body(p->errbody.data ? p->errbody.data : "", p->errbody.len, p->req->request_id, &b) != 0) {
        hx_buf_free(&b);
        return false;
    }
    px_log_failures(p);
    px_set_provider_headers(p);
    p->req->error_code = hx_err_get(p->last_err)->code; /* access log and metrics */
    hx_res_send(p->req, p->up_status, "application/json", b.data, b.len);
    hx_buf_free(&b);
    px_finish(p);
    return true;
}

/* The upstream answered with an error status: retry, fail over, or
 * answer the client (its own error). */
static void up_failed_status(proxy *p)
{
    hx_fail_class cls;
    bool next = px_classify_status(p, &p->last_err, p->last_msg, sizeof p->last_msg, &cls);
    if (cls == HX_FAIL_RATE_LIMIT) {
        p->saw_429 = true;
        snprintf(p->rate_limited, sizeof p->rate_limited, "%s", p->retry_after);
    }
    if (p->last_err == HX_ERR_INSUFFICIENT_QUOTA || p->last_err == HX_ERR_CONTEXT_LENGTH) {
        p->has_kept = true;
        p->kept_err = p->last_err; /* the answer when no other provider serves */
        snprintf(p->kept_msg, sizeof p->kept_msg, "%s", p->last_msg);
    }
    /* a provider error with a meaning of its own is named in the log */
    const char *code = p->last_err >= HX_ERR_INSUFFICIENT_QUOTA ? hx_err_get(p->last_err)->code : NULL;
    char st[64];
    snprintf(st, sizeof st, "upstream %d%s%s", p->up_status, code ? " " : "", code ? code : "");
    p->fail = cls;
    if (next) {
        px_note_failure(p, cls, st); /* the provider's fault, not the request's */
        px_after_failure(p, cls);
    } else {
        px_breaker_verdict(p, -1); /* the client's own error says nothing about the provider */
        px_note_state(p, p->prov->name, st);
        if (!relay_error(p))
            px_answer_error(p, p->last_err, p->last_msg);
    }
}

/* The call failed without a complete answer (timeout, reset, abort). */
static void up_failed_transport(proxy *p, hx_up_result res, const char *detail)
{
    p->last_err = res == HX_UP_ABORTED ? HX_ERR_BAD_GATEWAY : px_transport_err(res);
    if (res != HX_UP_CONNECT_ERROR)
        p->any_answered = true; /* reached, then failed: not "nothing to ask" */
    const char *why = res == HX_UP_ABORTED && p->relay_sse && p->relay.err[0] ? p->relay.err
                      : res == HX_UP_ABORTED && p->parser ? p->prov->ad->parser_error(p->parser)
                                                          : detail;
    snprintf(p->last_msg, sizeof p->last_msg, "provider %s: %s (%s)", p->prov->name, hx_up_result_str(res),
             why ? why : "");
    hx_scrub_cstr(p->g->scrub, p->last_msg, sizeof p->last_msg); /* curl's detail may name the URL */
    hx_fail_class cls = hx_gw_transport_fail(res, p->up_status);
    p->fail = cls;
    if (res == HX_UP_CONNECT_ERROR || res == HX_UP_CONNECT_TIMEOUT) {
        /* Nothing answered: say where we tried and what to start or set. */
        char where[400], st[440];
        hx_gateway_describe_unreachable(p->prov, where, sizeof where);
        snprintf(st, sizeof st, "%s (%s)", hx_up_result_str(res), where);
        px_record(p, false, cls, hx_up_result_str(res));
        px_note_state(p, p->prov->name, st);
    } else {
        px_note_failure(p, cls, hx_up_result_str(res));
    }
    px_after_failure(p, cls);
}

static void on_up_done(void *ud, hx_up_result res, const char *detail)
{
    proxy *p = ud;
    p->call = NULL;
    if (p->state == PX_DONE)
        return;
    px_proxy_ref(p);
    bool ok_status = p->up_status >= 200 && p->up_status < 300;
    if (res == HX_UP_OK && up_data_end(p) != 0)
        res = HX_UP_ABORTED;
    if (p->over_budget) {
        /* Not the provider's fault, and another provider's answer would
         * not fit either: the gateway is full for now. */
        px_breaker_verdict(p, -1);
        px_note_state(p, p->prov->name, "upstream buffer budget exhausted");
        px_answer_error(p, HX_ERR_UNAVAILABLE,
                        "the gateway is holding too many upstream answers (llm.upstream_buffer_budget): retry shortly");
    } else if (res == HX_UP_OK && ok_status) {
        succeed(p);
    } else if (px_head_sent(p)) {
        /* The first byte has gone: no retry, end the stream visibly. */
        char m[300];
        snprintf(m, sizeof m, "provider %s failed mid-stream: %s", p->prov->name,
                 p->relay_sse && p->relay.err[0] ? p->relay.err
                 : p->parser && res == HX_UP_ABORTED ? p->prov->ad->parser_error(p->parser)
                                                     : hx_up_result_str(res));
        hx_scrub_cstr(p->g->scrub, m, sizeof m);
        px_record(p, false, HX_FAIL_MID_STREAM, "failed mid-stream");
        HX_LOG_WARN("upstream failed mid-stream", HX_F_STR("request_id", p->req->request_id),
                    HX_F_STR("provider", p->prov->name), HX_F_STR("error", m));
        p->render.vt->stream_error(&p->render, "api_error", m, &p->out);
        flush_out(p);
        hx_res_end(p->req);
        px_finish(p);
    } else if (res == HX_UP_OK) {
        up_failed_status(p);
    } else {
        up_failed_transport(p, res, detail);
    }
    px_proxy_unref(p);
}

const hx_up_callbacks px_up_cb = {on_up_head, on_up_data, on_up_done};

/* Passive health evidence from real traffic. */
/* Whether this request already reported provider idx unreachable; marks
 * it. Indexes past 63 use a byte array made on first need (a gateway with
 * that many providers is rare); without memory the report is repeated,
 * which only counts one request twice. */
static bool health_noted_once(proxy *p, size_t idx)
{
    if (idx < 64) {
        bool was = (p->health_noted >> idx) & 1;
        p->health_noted |= 1ull << idx;
        return was;
    }
    if (p->health_noted_more == NULL)
        p->health_noted_more = hx_calloc(p->g->providers.n, 1);
    if (p->health_noted_more == NULL || idx >= p->g->providers.n)
        return false;
    bool was = p->health_noted_more[idx];
    p->health_noted_more[idx] = 1;
    return was;
}

void px_record(proxy *p, bool ok, hx_fail_class cls, const char *why)
{
    if (p->breaker_held) /* given when the request leaves the provider */
        p->breaker_pending = ok ? 1 : 0;
    uint64_t ns = hx_now_ns() - p->attempt_ns;
    int64_t ms = (int64_t)(ns / 1000000);
    /* Passive health counts requests, not attempts, and only the failures
     * a probe would also see (the provider cannot be reached): an answer
     * that went wrong (5xx, timeout after sending, malformed) may be this
     * request's own doing and is the breaker's evidence, weighed by rate
     * over many requests. So failure_threshold means "N requests or probes
     * in a row could not reach it", and one bad request never takes a
     * provider out. */
    if (ok || (hx_fail_unreachable(cls) && !health_noted_once(p, (size_t)p->prov->index))) {
        hx_gateway_record(p->g, (size_t)p->prov->index, ok, why, cls, ok ? ms : -1, false);
    }
    const hx_gw_provider_metrics *m = &p->g->pm[p->prov->index];
    hx_metrics_inc(HX_M_PROVIDER_REQUESTS, ok ? m->ok : m->fail, 1);
    hx_metrics_observe(HX_M_PROVIDER_LATENCY, m->latency, (double)ns / 1e9);
    if (!ok)
        hx_metrics_inc(HX_M_PROVIDER_FAILURES, m->failures[hx_fail_label_of(cls, p->up_status)], 1);
}


/* ---- shutdown deadline ------------------------------------------------------ */

#define HX_SHUTDOWN_MSG "the gateway is shutting down (server.shutdown_timeout reached)"

void hx_proxy_force(hx_gw_worker *w)
{
    while (w->live) {
        proxy *p = w->live;
        live_unlink(p); /* progress even if the answer below fails */
        if (p->state == PX_DONE)
            continue;
        px_proxy_ref(p);
        if (px_head_sent(p)) {
            /* Mid-stream: the client learns why its stream ends here. */
            HX_LOG_WARN("stream ended by shutdown", HX_F_STR("request_id", p->req->request_id),
                        HX_F_STR("provider", p->prov ? p->prov->name : ""));
            p->render.vt->stream_error(&p->render, "api_error", HX_SHUTDOWN_MSG, &p->out);
            flush_out(p);
            hx_res_end(p->req);
            px_finish(p);
        } else {
            px_answer_error(p, HX_ERR_UNAVAILABLE, HX_SHUTDOWN_MSG);
        }
        px_proxy_unref(p);
    }
}
