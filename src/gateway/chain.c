/* Which provider a request tries next: the chain of its model (filtered
 * for a model-restricted client key), admission (usable, healthy, breaker),
 * retries of the same provider with backoff, Retry-After and the retry
 * budget within the request's deadline, then failover; giving up with the
 * most useful error. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway/proxy_int.h"
#include "http/router.h"
#include "middleware/auth.h"
#include "middleware/ratelimit.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/uuid.h"

/* ---- chain ---------------------------------------------------------------------- */

void px_reset_attempt(proxy *p)
{
    if (p->parser)
        p->parser_ad->parser_free(p->parser);
    p->parser = NULL;
    hx_free(p->answer_tool);
    p->answer_tool = NULL;
    p->tool_opened = false;
    p->up_status = 0;
    p->retry_after[0] = '\0';
    hx_buf_reset(&p->errbody);
    hx_buf_reset(&p->out);
    hx_scrub_stream_reset(&p->scrub);
    px_budget_release(p);
    hx_render_free(&p->render);
}

static void answer_unserved(proxy *p);

static void give_up(proxy *p)
{
    if (p->unserved == p->nchain) {
        answer_unserved(p);
        return;
    }
    if (!p->any_answered) {
        /* Nothing could even be asked: say what to set or start, and when
         * breakers are open, when to come back. */
        if (p->open_wait_ms)
            snprintf(p->retry_after, sizeof p->retry_after, "%llu",
                     (unsigned long long)((p->open_wait_ms + 999) / 1000));
        char msg[1024];
        snprintf(msg, sizeof msg, "no provider can serve this request: %s",
                 p->states.len ? p->states.data : "none configured");
        px_answer_error(p, HX_ERR_UNAVAILABLE, msg);
        return;
    }
    if (p->has_kept && !p->saw_429) {
        /* A provider error with its own meaning (quota, context length):
         * the client gets it, not a generic failure its SDK would retry. */
        px_answer_error(p, p->kept_err, p->kept_msg);
        return;
    }
    if (p->saw_429) {
        /* Someone asked us to slow down: the client should too. */
        snprintf(p->retry_after, sizeof p->retry_after, "%s", p->rate_limited[0] ? p->rate_limited : "1");
        char msg[512];
        snprintf(msg, sizeof msg, "every provider failed and at least one is rate limiting: %s",
                 p->states.len ? p->states.data : "");
        px_answer_error(p, HX_ERR_RATE_LIMITED, msg);
        return;
    }
    px_answer_error(p, p->last_err, p->last_msg);
}

/* A plain OpenAI chat body arrives unparsed (the handler's scan): build
 * the canonical object the first time a provider needs one. */
static int ensure_canon(proxy *p, char *err, size_t errlen)
{
    if (p->canon)
        return 0;
    json_object *body = hx_json_parse(p->req->body.data, p->req->body.len);
    hx_in_info info;
    if (body == NULL || hx_in_openai_chat(body, &p->canon, &info, err, errlen) != 0) {
        if (body == NULL)
            snprintf(err, errlen, "out of memory reading the request");
        json_object_put(body);
        return -1;
    }
    json_object_put(body);
    return 0;
}

/* Does the API have the canonical (Chat Completions) form? */
static bool api_has_canon(hx_api api)
{
    return api == HX_API_CHAT || api == HX_API_COMPLETIONS || api == HX_API_MESSAGES || api == HX_API_RESPONSES;
}

/* The upstream request for pv: the client's own body when pv speaks the
 * client's API natively and the body may go as it is (the answer is then
 * relayed as it is), else built from the canonical request. 0, or -1 with
 * the reason in err. */
static int build_request(proxy *p, const hx_provider *pv, hx_up_request *ur, char *err, size_t errlen)
{
    const hx_native *nv = pv->ad->native[p->info.api];
    /* The Responses API natively only where the provider has it
     * (responses_api), and never for a conversation of the gateway's store. */
    if (p->info.native_off || (p->info.api == HX_API_RESPONSES && !pv->responses_native))
        nv = NULL;
    p->native = nv;
    p->translated = NULL;
    if (nv && nv->build && nv->build(pv, pv->model, p->req, p->info.stream, ur, err, errlen) == 0)
        return 0;
    hx_up_request_free(ur);
    hx_up_request_init(ur);
    const hx_translated *tr = pv->ad->translated[p->info.api];
    if (tr && tr->build && !api_has_canon(p->info.api)) {
        p->native = NULL;
        p->translated = tr;
        return tr->build(pv, p->canon, ur, err, errlen);
    }
    if (p->info.api == HX_API_RESPONSES)
        p->native = NULL; /* a chat answer is no Response: rendered, not relayed */
    if (p->info.no_canon[0]) {
        /* Only the client's API natively could serve (inbound.h: no_canon). */
        if (p->info.api == HX_API_RESPONSES)
            snprintf(err, errlen, "%s", p->info.no_canon);
        else
            snprintf(err, errlen, "%.127s is not supported by provider %s (%s): it has no equivalent outside the %s API",
                     p->info.no_canon, pv->name, pv->ad->name, hx_api_name(p->info.api));
        return -1;
    }
    if (!api_has_canon(p->info.api)) {
        snprintf(err, errlen, "this provider (%s) does not serve the %s API", pv->ad->name,
                 hx_api_name(p->info.api));
        return -1;
    }
    if (ensure_canon(p, err, errlen) != 0)
        return -1;
    return pv->ad->build_chat(pv, p->canon, p->info.stream, ur, err, errlen);
}

/* Builds and starts one attempt on p->prov. Returns 0 when the call is
 * running; -1 when this provider cannot take the request (noted). */
static int start_attempt_as(proxy *p, const hx_provider *pv)
{
    hx_req *r = p->req;
    const hx_cfg_llm *l = &r->cfg->llm;
    px_reset_attempt(p);
    hx_up_request ur;
    hx_up_request_init(&ur);
    char err[256];
    int built = build_request(p, pv, &ur, err, sizeof err);
    if (built != 0) {
        px_note_state(p, pv->name, err);
        p->last_err = HX_ERR_INVALID_REQUEST;
        /* A refusal already names the provider (hx_canon_refuse): not twice. */
        char named[160];
        snprintf(named, sizeof named, "provider %s (", pv->name);
        if (strstr(err, named))
            snprintf(p->last_msg, sizeof p->last_msg, "%s", err);
        else
            snprintf(p->last_msg, sizeof p->last_msg, "%s: %s", pv->name, err);
        p->any_answered = true; /* the request itself is the problem */
        hx_up_request_free(&ur);
        return -1;
    }
    /* The provider's logs can be joined with ours. */
    if ((r->mw & HX_MW_REQUEST_ID) && hx_headers_add(&ur.headers, "X-Request-ID", r->request_id) != 0) {
        hx_up_request_free(&ur);
        px_note_state(p, pv->name, "out of memory");
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
    p->answer_tool = ur.answer_as_tool;
    ur.answer_as_tool = NULL;
    hx_up_opts o = {l->connect_timeout, l->first_byte_timeout, left_ms, l->stream_idle_timeout};
    /* RFC 8470: forwarded before the client's handshake completed (the
     * operator allowed 0-RTT replays), the upstream is told it may be one. */
    if (r->early_data && hx_headers_add(&ur.headers, "Early-Data", "1") != 0) {
        hx_up_request_free(&ur);
        p->last_err = HX_ERR_INTERNAL;
        return -1;
    }
    p->attempt_ns = now;
    if (p->tries++ > 0) {
        hx_metrics_inc(HX_M_RETRIES, p->g->pm[pv->index].retries, 1);
        hx_metrics_inc(HX_M_RETRIES_BY_CLASS, p->g->pm[pv->index].retries_by[hx_fail_leave_label(p->fail)], 1);
    }
    hx_render_init(&p->render, p->info.render, p->info.stream, p->info.include_usage, pv->model);
    p->render.ctx = p->info.ctx;
    p->relay_raw = (p->native || p->translated) && !p->info.stream;
    p->relay_sse = p->native && p->info.stream;
    hx_gw_reqlog *lg = hx_gw_log(r);
    snprintf(lg->provider, sizeof lg->provider, "%s", pv->name);
    snprintf(lg->model, sizeof lg->model, "%s", pv->model);
    lg->attempts++;
    p->call = hx_upstream_start(p->gw->up, ur.method, ur.url, &ur.headers, ur.body.data, ur.body.len, &o,
                                &px_up_cb, p);
    hx_up_request_free(&ur);
    if (p->call) {
        px_set_state(p, PX_SENDING);
        return 0;
    }
    px_breaker_verdict(p, -1);
    px_note_state(p, pv->name, "could not start the upstream call");
    p->last_err = HX_ERR_INTERNAL;
    return -1;
}

/* The builders ask for pv->model: a view of the provider with the model
 * this chain entry sends (a wildcard route sends the client's name). The
 * chain's name is const (config or client body) and hx_provider's is not:
 * the view owns a copy rather than casting the const away. */
static int start_attempt(proxy *p)
{
    hx_provider view = *p->prov;
    view.model = hx_strdup(p->prov_model);
    if (view.model == NULL) {
        px_note_state(p, view.name, "out of memory");
        p->last_err = HX_ERR_INTERNAL;
        return -1;
    }
    int rc = start_attempt_as(p, &view);
    hx_free(view.model);
    return rc;
}

/* A provider skipped as down (unhealthy or breaker open): remember the
 * least bad one, which the panic rule may still try. Lower is better: a
 * breaker closer to its trial, then fewer consecutive failures. */
static void panic_candidate(proxy *p, const hx_provider *pv, uint64_t open_ms)
{
    hx_health_snap hs;
    hx_health_snapshot(p->g->health[pv->index], &hs);
    uint64_t fails = hs.consecutive_failures > 0 ? (uint64_t)hs.consecutive_failures : 0;
    uint64_t wait = open_ms > UINT64_MAX / 1024 ? UINT64_MAX / 1024 : open_ms;
    uint64_t bad = wait * 1024 + (fails < 1023 ? fails : 1023);
    if (p->panic_pos < 0 || bad < p->panic_badness) {
        p->panic_pos = (int)p->pos - 1; /* px_next_attempt has moved past it */
        p->panic_badness = bad;
    }
}

/* May provider pv take an attempt now? Takes a breaker admission if so;
 * retries of the same request keep the one they hold (one verdict per
 * request). */
static bool admit(proxy *p, const hx_provider *pv)
{
    hx_gateway *g = p->g;
    if (!pv->usable) {
        px_note_state(p, pv->name, pv->reason);
        return false;
    }
    if (p->panicked)
        return true; /* its retries go where the panic sent it */
    if (g->cfg->llm.health_check.enabled && !hx_health_ok(g->health[pv->index])) {
        hx_health_snap hs;
        hx_health_snapshot(g->health[pv->index], &hs);
        char why[640], where[400] = "";
        if (hx_fail_unreachable(hs.last_fail)) /* not reached at all: name the address */
            hx_gateway_describe_unreachable(pv, where, sizeof where);
        snprintf(why, sizeof why, "unhealthy (%s%s%s)", hs.last_error, *where ? "; " : "", where);
        px_note_state(p, pv->name, why);
        panic_candidate(p, pv, hx_breaker_retry_after_ms(g->breakers[pv->index], hx_gateway_now_ms()));
        return false;
    }
    if (p->breaker_held)
        return true;
    uint64_t now = hx_gateway_now_ms();
    if (!hx_breaker_allow_gen(g->breakers[pv->index], now, &p->breaker_gen)) {
        uint64_t wait = hx_breaker_retry_after_ms(g->breakers[pv->index], now);
        if (p->open_wait_ms == 0 || (wait > 0 && wait < p->open_wait_ms))
            p->open_wait_ms = wait ? wait : 1000;
        px_note_state(p, pv->name, "circuit breaker open");
        panic_candidate(p, pv, wait ? wait : 1);
        return false;
    }
    p->breaker_held = true;
    p->breaker_pending = -1;
    return true;
}

/* Every provider of the chain was skipped as down before any was tried:
 * rather than fail fast on evidence that may be stale, send the request to
 * the least bad one (Envoy's panic threshold). No breaker admission: the
 * breaker keeps its own schedule; health still learns from the outcome.
 * Returns true when an attempt started. */
static bool try_panic(proxy *p)
{
    if (!p->g->cfg->llm.panic || p->panic_pos < 0 || p->panicked || hx_gw_log_peek(p->req)->attempts > 0)
        return false;
    p->panicked = true;
    p->prov_model = p->chain_model[p->panic_pos];
    p->prov = &p->g->providers.items[p->chain[p->panic_pos]];
    p->tries = 0;
    if (!atomic_exchange(&p->g->panic, true))
        HX_LOG_WARN("every provider of a request's chain is down: trying the least bad one anyway",
                    HX_F_STR("event", "panic"), HX_F_STR("provider", p->prov->name));
    hx_metrics_inc(HX_M_PANIC, p->g->pm[p->prov->index].panics, 1);
    px_note_state(p, p->prov->name, "panic: every provider is down, tried anyway");
    return start_attempt(p) == 0;
}

/* Can pv's wire format serve the client's API at all (natively, through
 * the canonical request, or by translation)? */
static bool serves(const proxy *p, const hx_provider *pv)
{
    hx_api api = p->info.api;
    return pv->ad->native[api] || pv->ad->translated[api] || api_has_canon(api);
}

/* A provider that answers locally (a token estimate) goes after every one
 * that can give the real answer, whatever the chain order: stable, in
 * place. */
static void local_answers_last(proxy *p)
{
    /* In place, whatever the chain's length: each real provider moves in
     * front of the local ones met so far (they shift one place, in order).
     * Chains are a few providers long; no allocation per request. */
    size_t n = 0;
    for (size_t i = 0; i < p->nchain; i++) {
        const hx_adapter *ad = p->g->providers.items[p->chain[i]].ad;
        const hx_translated *tr = ad->translated[p->info.api];
        if (tr && tr->local && !ad->native[p->info.api])
            continue;
        int c = p->chain[i];
        const char *m = p->chain_model[i];
        memmove(p->chain + n + 1, p->chain + n, (i - n) * sizeof *p->chain);
        memmove(p->chain_model + n + 1, p->chain_model + n, (i - n) * sizeof *p->chain_model);
        p->chain[n] = c;
        p->chain_model[n++] = m;
    }
}

/* No provider of the chain has the API: 400 naming each one and why. */
static void answer_unserved(proxy *p)
{
    char msg[1024];
    size_t n = (size_t)snprintf(msg, sizeof msg, "no configured provider serves %s:", hx_api_name(p->info.api));
    for (size_t i = 0; i < p->nchain && n < sizeof msg; i++) {
        const hx_provider *pv = &p->g->providers.items[p->chain[i]];
        n += (size_t)snprintf(msg + n, sizeof msg - n, "%s %s (%s) has no %s API", i ? ";" : "", pv->name,
                              pv->ad->name, hx_api_name(p->info.api));
    }
    px_answer_error(p, HX_ERR_INVALID_REQUEST, msg);
}

void px_next_attempt(proxy *p)
{
    /* A provider that was tried and failed hands over: a failover. */
    const hx_provider *from = p->prov && p->tries > 0 ? p->prov : NULL;
    px_set_state(p, PX_CHOOSING);
    px_breaker_verdict(p, -1); /* the request is done with it: one verdict */
    while (p->pos < p->nchain) {
        p->prov_model = p->chain_model[p->pos];
        p->prov = &p->g->providers.items[p->chain[p->pos++]];
        p->tries = 0;
        if (!serves(p, p->prov)) {
            char why[96];
            snprintf(why, sizeof why, "has no %s API (%s)", hx_api_name(p->info.api), p->prov->ad->name);
            px_note_state(p, p->prov->name, why);
            p->unserved++;
            continue;
        }
        const hx_translated *tr = p->prov->ad->translated[p->info.api];
        if (tr && tr->local && !p->prov->ad->native[p->info.api]) {
            px_answer_local(p, tr); /* needs no upstream: neither health nor breaker apply */
            return;
        }
        if (admit(p, p->prov) && start_attempt(p) == 0) {
            if (from) {
                hx_metrics_inc(HX_M_FAILOVERS, p->g->pm[from->index].failovers, 1);
                hx_metrics_inc(HX_M_FAILOVERS_BY_CLASS,
                               p->g->pm[from->index].failovers_by[hx_fail_leave_label(p->fail)], 1);
            }
            if (!p->panicked && atomic_load(&p->g->panic) && atomic_exchange(&p->g->panic, false))
                HX_LOG_INFO("a provider is up again: panic over", HX_F_STR("event", "panic_over"),
                            HX_F_STR("provider", p->prov->name));
            return;
        }
    }
    if (try_panic(p))
        return;
    give_up(p);
}

static void on_retry_timer(uv_timer_t *t)
{
    proxy *p = t->data;
    if (p == NULL || p->state == PX_DONE)
        return;
    px_wait_unlink(p);
    px_proxy_ref(p);
    if (!(admit(p, p->prov) && start_attempt(p) == 0))
        px_next_attempt(p);
    px_proxy_unref(p);
}

/* Shutdown: requests waiting to retry stop waiting and move on to the next
 * provider at once (or answer with the last error); no new waits start. */
void hx_proxy_drain(hx_gw_worker *w)
{
    w->draining = true;
    while (w->waiting) {
        proxy *p = w->waiting;
        px_wait_unlink(p);
        uv_timer_stop(p->retry_timer);
        px_proxy_ref(p);
        px_next_attempt(p);
        px_proxy_unref(p);
    }
}

/* After a provider failed before the client saw a byte: retry it (llm.retry,
 * within the retry budget and the request's deadline, honouring its
 * Retry-After) or move on to the next provider. */
void px_after_failure(proxy *p, hx_fail_class cls)
{
    hx_gateway *g = p->g;
    const hx_cfg_retry *rc = &p->req->cfg->llm.retry;
    uint64_t now = hx_now_ns();
    uint64_t left = p->req->deadline_ns > now ? (p->req->deadline_ns - now) / 1000000 : 0;
    hx_fail_class rcls = hx_fail_retry_class(cls); /* the class retryable_errors names */
    bool allowed = hx_retry_allowed(g->retry_classes, cls);
    if (!allowed || p->tries > rc->max_retries || p->gw->draining) {
        /* The access log says why the provider was not asked again. */
        hx_buf_printf(&p->states, " (not retried: %s)",
                      rcls == HX_FAIL_UNANSWERED && !allowed ? "sent, may be billed"
                      : !allowed                             ? "not retryable"
                      : p->gw->draining                      ? "shutting down"
                                                             : "max_retries");
        px_next_attempt(p);
        return;
    }
    uint64_t rnd;
    hx_random_bytes(&rnd, sizeof rnd);
    uint64_t delay = hx_retry_delay_ms(rc, p->tries, rnd);
    /* A Retry-After is honoured only within max_delay and the deadline;
     * a longer one moves on at once rather than keep the client waiting. */
    if (p->retry_after_ms > 0 && (rcls == HX_FAIL_RATE_LIMIT || rcls == HX_FAIL_SERVER_ERROR)) {
        if (p->retry_after_ms > (uint64_t)(rc->max_delay > 0 ? rc->max_delay : 0) || p->retry_after_ms >= left) {
            hx_buf_printf(&p->states, " (not retried: Retry-After %s s beyond max_delay or deadline)",
                          p->retry_after);
            px_next_attempt(p);
            return;
        }
        if (p->retry_after_ms > delay)
            delay = p->retry_after_ms;
    }
    /* The wait must leave time for the attempt itself. */
    if (delay >= left || !hx_retry_budget_withdraw(g->budget, hx_gateway_now_ms())) {
        hx_buf_printf(&p->states, " (not retried: %s)", delay >= left ? "deadline" : "retry budget");
        px_next_attempt(p);
        return;
    }
    if (p->retry_timer == NULL) {
        p->retry_timer = hx_malloc(sizeof *p->retry_timer);
        if (p->retry_timer == NULL) {
            px_next_attempt(p);
            return;
        }
        uv_timer_init(p->req->loop, p->retry_timer);
        p->retry_timer->data = p;
    }
    hx_buf_printf(&p->states, " (retried in %llu ms)", (unsigned long long)delay);
    px_set_state(p, PX_BACKOFF);
    uv_timer_start(p->retry_timer, on_retry_timer, delay, 0);
    p->wait_next = p->gw->waiting;
    if (p->wait_next)
        p->wait_next->wait_prev = p;
    p->gw->waiting = p;
}

/* Drops from the chain the providers a model-restricted key may not use.
 * A model the client named and the key allows is served by every entry of
 * its chain (the operator routed that name there: alias, model map,
 * wildcard); otherwise (the default chain) a provider is allowed when the
 * model it would be asked for, its name or one of its aliases is in the
 * key's `models`. Returns what is left. */
static size_t keep_allowed(proxy *p, const hx_cfg_auth_key *k)
{
    const char *asked = p->info.model;
    if (*asked && strcmp(asked, "default") != 0 && hx_auth_model_allowed(k, asked))
        return p->nchain;
    size_t out = 0;
    for (size_t i = 0; i < p->nchain; i++) {
        const hx_provider *pv = &p->g->providers.items[p->chain[i]];
        bool ok = hx_auth_model_allowed(k, p->chain_model[i]) || hx_auth_model_allowed(k, pv->name);
        for (size_t j = 0; !ok && pv->aliases && j < pv->aliases->n; j++)
            ok = hx_auth_model_allowed(k, pv->aliases->items[j]);
        if (ok) {
            p->chain_model[out] = p->chain_model[i];
            p->chain[out++] = p->chain[i];
        }
    }
    p->nchain = out;
    return out;
}

/* Tokens per minute are taken up front (the prompt guessed from the body
 * size, plus max_tokens or a default), so concurrent requests and clients
 * that leave early cannot spend past the limit; px_tpm_settle corrects it. */
static void tpm_reserve(proxy *p)
{
    const hx_buf *b = &p->req->body;
    p->prompt_estimate = (int64_t)(b->len / 4) + 1;
    int64_t mt = b->len ? hx_json_find_int(b->data, b->len, "max_tokens") : -1;
    if (mt <= 0 && b->len)
        mt = hx_json_find_int(b->data, b->len, "max_completion_tokens");
    if (mt <= 0 && b->len)
        mt = hx_json_find_int(b->data, b->len, "max_output_tokens"); /* Responses API */
    if (mt <= 0 || mt > INT32_MAX)
        mt = HX_TPM_DEFAULT_COMPLETION;
    p->tpm_reserved = hx_ratelimit_reserve_tokens(p->req, p->prompt_estimate + mt);
}

void hx_proxy_start(hx_req *r, json_object *canon, const hx_in_info *info)
{
    hx_proxy_start_fill(r, canon, info, NULL);
}

void hx_proxy_start_fill(hx_req *r, json_object *canon, const hx_in_info *info, hx_gw_cache_fill *fill)
{
    hx_gw_worker *gw = hx_req_ctx(r, HX_CTX_APP);
    proxy *p = gw ? hx_calloc(1, sizeof *p) : NULL;
    if (p == NULL) {
        hx_gw_cache_fill_free(fill);
        json_object_put(canon);
        if (info->ctx_free)
            info->ctx_free(info->ctx);
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    p->refs = 1;
    p->fill = fill;
    p->breaker_pending = -1;
    p->panic_pos = -1;
    p->req = hx_req_ref(r);
    p->gw = gw;
    px_live_link(p);
    hx_gw_worker_sync(gw);
    p->g = hx_gateway_ref(gw->gw);
    p->canon = canon;
    p->info = *info;
    hx_buf_init(&p->out, HX_RELAY_BODY_MAX); /* a relayed body, or what one chunk renders */
    hx_buf_init(&p->errbody, HX_ERRBODY_MAX);
    hx_buf_init(&p->states, HX_STATES_MAX);
    hx_sse_init(&p->sse);
    hx_scrub_stream_init(&p->scrub);
    hx_render_init(&p->render, info->render, info->stream, info->include_usage, "");
    p->render.ctx = info->ctx;
    size_t np = p->g->providers.n;
    p->chain = hx_calloc(np ? np : 1, sizeof *p->chain);
    p->chain_model = hx_calloc(np ? np : 1, sizeof *p->chain_model);
    if (p->chain == NULL || p->chain_model == NULL) {
        px_answer_error(p, HX_ERR_INTERNAL, NULL);
        return;
    }
    /* chain_model may point into p->info.model: p outlives every attempt. */
    p->nchain = hx_providers_chain(&p->g->providers, p->info.model, p->chain, p->chain_model, np);
    const hx_cfg_auth_key *key = hx_auth_key(r);
    if (p->nchain > 0 && key && key->models.n > 0 && keep_allowed(p, key) == 0) {
        /* Failover must not reach a model the client key may not use. */
        hx_auth_deny_model(r, info->model[0] ? info->model : r->cfg->llm.model);
        px_finish(p);
        return;
    }
    if (p->nchain == 0) {
        char msg[700], some[256];
        hx_providers_sample(&p->g->providers, some, sizeof some);
        snprintf(msg, sizeof msg, "The model '%s' is not served by this gateway; it serves %s (GET /v1/models lists "
                 "them all)", info->model, some);
        px_answer_error(p, HX_ERR_MODEL_NOT_FOUND, msg);
        return;
    }
    local_answers_last(p);
    r->on_abort = px_on_client_abort;
    r->on_drain = px_on_client_drain;
    r->cb_ud = p;
    hx_retry_budget_deposit(p->g->budget, hx_gateway_now_ms());
    tpm_reserve(p);
    px_next_attempt(p);
}
