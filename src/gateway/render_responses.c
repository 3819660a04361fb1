/* The Responses API renderer: canonical events → a Response object, or
 * its stream of events (response.created ... response.completed), each
 * with its sequence_number. Output items: a reasoning item (the model's
 * thinking, as summary text), one assistant message (output_text and
 * refusal parts), one function_call item per tool call. A finished
 * response is handed to the store (hx_resp_save). */
#include <stdio.h>
#include <string.h>

#include "gateway/responses.h"
#include "provider/adapter.h"
#include "util/alloc.h"
#include "util/json.h"

/* A Response object: the answer (bounded by the render bounds) and the
 * echoed request members (bounded by the request body). */
#define RR_OBJECT_MAX ((size_t)4 << 30)

enum { IT_REASONING = -2, IT_MESSAGE = -1 }; /* item kinds; >= 0: tool call index */

typedef struct {
    int64_t seq;                  /* next sequence_number */
    bool created;                 /* response.created sent */
    bool closed;                  /* every item's done events sent */
    int order[HX_RENDER_MAX_TOOLS + 2]; /* item kinds by output_index */
    int nitems;
    int text_part, refusal_part, nparts; /* content indexes in the message (-1 = none) */
    hx_buf thinking, refusal;
    int64_t cached_tokens, reasoning_tokens;
} rr_state;

static void rr_free(void *p)
{
    rr_state *s = p;
    hx_buf_free(&s->thinking);
    hx_buf_free(&s->refusal);
    hx_free(s);
}

static rr_state *state(hx_render *r)
{
    if (r->ext == NULL) {
        rr_state *s = hx_calloc(1, sizeof *s);
        if (s == NULL)
            return NULL;
        s->text_part = s->refusal_part = -1;
        hx_buf_init(&s->thinking, HX_RENDER_TEXT_MAX);
        hx_buf_init(&s->refusal, HX_RENDER_TEXT_MAX);
        r->ext = s;
        r->ext_free = rr_free;
    }
    return r->ext;
}

static const hx_resp_ctx *ctx_of(hx_render *r)
{
    return r->ctx;
}

static const char *resp_id(hx_render *r)
{
    const hx_resp_ctx *rx = ctx_of(r);
    if (rx)
        return rx->id;
    if (!r->id[0])
        snprintf(r->id, sizeof r->id, "resp_%lld", (long long)r->created);
    return r->id;
}

/* Item ids derive from the response id: msg_X, rs_X, fc_X_N. */
static int item_id(hx_render *r, hx_buf *out, int kind)
{
    const char *id = resp_id(r);
    id += strncmp(id, "resp_", 5) == 0 ? 5 : 0;
    if (kind == IT_MESSAGE)
        return hx_buf_printf(out, "\"msg_%s\"", id);
    if (kind == IT_REASONING)
        return hx_buf_printf(out, "\"rs_%s\"", id);
    return hx_buf_printf(out, "\"fc_%s_%d\"", id, kind);
}

static int index_of(const rr_state *s, int kind)
{
    for (int i = 0; i < s->nitems; i++)
        if (s->order[i] == kind)
            return i;
    return -1;
}

/* The finish reason as the Response's status and incomplete_details. */
static bool incomplete(const hx_render *r, const char **reason)
{
    if (strcmp(r->finish, "length") == 0)
        *reason = "max_output_tokens";
    else if (strcmp(r->finish, "content_filter") == 0)
        *reason = "content_filter";
    else
        return false;
    return true;
}

/* ---- items as JSON ------------------------------------------------------------ */

static int text_part_json(hx_buf *out, const char *t, size_t n)
{
    return hx_buf_append_str(out, "{\"type\":\"output_text\",\"text\":") || hx_json_str(out, t ? t : "", n) ||
           hx_buf_append_str(out, ",\"annotations\":[]}");
}

static int refusal_part_json(hx_buf *out, const char *t, size_t n)
{
    return hx_buf_append_str(out, "{\"type\":\"refusal\",\"refusal\":") || hx_json_str(out, t ? t : "", n) ||
           hx_buf_append(out, "}", 1);
}

static int item_json(hx_render *r, rr_state *s, hx_buf *out, int kind, const char *status)
{
    if (hx_buf_append_str(out, "{\"id\":") || item_id(r, out, kind))
        return -1;
    if (kind == IT_REASONING) {
        if (hx_buf_append_str(out, ",\"type\":\"reasoning\",\"summary\":["))
            return -1;
        if (s->thinking.len && (hx_buf_append_str(out, "{\"type\":\"summary_text\",\"text\":") ||
                                hx_json_str(out, s->thinking.data, s->thinking.len) || hx_buf_append(out, "}", 1)))
            return -1;
        return hx_buf_append_str(out, "]}");
    }
    if (kind == IT_MESSAGE) {
        if (hx_buf_printf(out, ",\"type\":\"message\",\"status\":\"%s\",\"role\":\"assistant\",\"content\":[", status))
            return -1;
        for (int part = 0; part < s->nparts; part++) {
            if (part && hx_buf_append(out, ",", 1))
                return -1;
            if (part == s->text_part ? text_part_json(out, r->text.data, r->text.len)
                                     : refusal_part_json(out, s->refusal.data, s->refusal.len))
                return -1;
        }
        return hx_buf_append_str(out, "]}");
    }
    hx_tool_acc *t = &r->tools[kind];
    return hx_buf_printf(out, ",\"type\":\"function_call\",\"status\":\"%s\",\"call_id\":", status) ||
           hx_json_cstr(out, t->id ? t->id : "") || hx_buf_append_str(out, ",\"name\":") ||
           hx_json_cstr(out, t->name ? t->name : "") || hx_buf_append_str(out, ",\"arguments\":") ||
           hx_json_str(out, t->args.data ? t->args.data : "", t->args.len) || hx_buf_append(out, "}", 1);
}

/* A non-streamed answer's items: reasoning, the message, the tool calls. */
static void default_order(hx_render *r, rr_state *s)
{
    s->nitems = s->nparts = 0;
    s->text_part = s->refusal_part = -1;
    if (s->thinking.len)
        s->order[s->nitems++] = IT_REASONING;
    if (r->text.len || s->refusal.len || r->ntools == 0) {
        s->order[s->nitems++] = IT_MESSAGE;
        if (r->text.len || !s->refusal.len)
            s->text_part = s->nparts++;
        if (s->refusal.len)
            s->refusal_part = s->nparts++;
    }
    for (int i = 0; i < r->ntools; i++)
        s->order[s->nitems++] = i;
}

static int usage_json(hx_render *r, rr_state *s, hx_buf *out)
{
    return hx_buf_printf(out,
                         "{\"input_tokens\":%lld,\"input_tokens_details\":{\"cached_tokens\":%lld},"
                         "\"output_tokens\":%lld,\"output_tokens_details\":{\"reasoning_tokens\":%lld},"
                         "\"total_tokens\":%lld}",
                         (long long)r->prompt_tokens, (long long)s->cached_tokens, (long long)r->completion_tokens,
                         (long long)s->reasoning_tokens,
                         (long long)hx_tokens_add(r->prompt_tokens, r->completion_tokens));
}

/* The Response object. status "in_progress" (no output yet), "completed",
 * "incomplete" (from the finish reason) or "failed" (error set). */
static int response_json(hx_render *r, rr_state *s, hx_buf *out, const char *status, const char *error)
{
    const hx_resp_ctx *rx = ctx_of(r);
    const char *why = NULL;
    bool done = strcmp(status, "in_progress") != 0 && error == NULL;
    if (done && incomplete(r, &why))
        status = "incomplete";
    if (hx_buf_append_str(out, "{\"id\":") || hx_json_cstr(out, resp_id(r)) ||
        hx_buf_printf(out, ",\"object\":\"response\",\"created_at\":%lld,\"status\":\"%s\",\"error\":",
                      (long long)(rx ? rx->created_at : r->created), status))
        return -1;
    if (error ? hx_buf_append_str(out, "{\"code\":\"server_error\",\"message\":") || hx_json_cstr(out, error) ||
                    hx_buf_append(out, "}", 1)
              : hx_buf_append_str(out, "null"))
        return -1;
    if (hx_buf_append_str(out, ",\"incomplete_details\":") ||
        (why ? hx_buf_printf(out, "{\"reason\":\"%s\"}", why) : hx_buf_append_str(out, "null")) ||
        hx_buf_append_str(out, ",\"model\":") || hx_json_cstr(out, r->model) ||
        hx_buf_append_str(out, ",\"output\":["))
        return -1;
    for (int i = 0; i < s->nitems && strcmp(status, "in_progress") != 0; i++)
        if ((i && hx_buf_append(out, ",", 1)) ||
            item_json(r, s, out, s->order[i], why || error ? "incomplete" : "completed"))
            return -1;
    if (hx_buf_append_str(out, "],\"usage\":") ||
        (done && r->has_usage ? usage_json(r, s, out) : hx_buf_append_str(out, "null")))
        return -1;
    if (rx && rx->echo.len && (hx_buf_append(out, ",", 1) || hx_buf_append(out, rx->echo.data, rx->echo.len)))
        return -1;
    return hx_buf_append(out, "}", 1);
}

/* The assistant's turn as a canonical message, for the stored conversation. */
static int canon_message(hx_render *r, rr_state *s, hx_buf *out)
{
    if (hx_buf_append_str(out, "{\"role\":\"assistant\",\"content\":") ||
        (r->text.len || r->ntools == 0 ? hx_json_str(out, r->text.data ? r->text.data : "", r->text.len)
                                        : hx_buf_append_str(out, "null")))
        return -1;
    if (s->refusal.len &&
        (hx_buf_append_str(out, ",\"refusal\":") || hx_json_str(out, s->refusal.data, s->refusal.len)))
        return -1;
    if (r->ntools) {
        if (hx_buf_append_str(out, ",\"tool_calls\":["))
            return -1;
        for (int i = 0; i < r->ntools; i++) {
            hx_tool_acc *t = &r->tools[i];
            if ((i && hx_buf_append(out, ",", 1)) || hx_buf_append_str(out, "{\"id\":") ||
                hx_json_cstr(out, t->id ? t->id : "") ||
                hx_buf_append_str(out, ",\"type\":\"function\",\"function\":{\"name\":") ||
                hx_json_cstr(out, t->name ? t->name : "") || hx_buf_append_str(out, ",\"arguments\":") ||
                hx_json_str(out, t->args.data ? t->args.data : "", t->args.len) || hx_buf_append_str(out, "}}"))
                return -1;
        }
        if (hx_buf_append(out, "]", 1))
            return -1;
    }
    return hx_buf_append(out, "}", 1);
}

static void save(hx_render *r, rr_state *s, const hx_buf *resp)
{
    hx_resp_ctx *rx = r->ctx;
    if (rx == NULL || !rx->store || rx->st == NULL)
        return;
    hx_buf msg;
    hx_buf_init(&msg, RR_OBJECT_MAX);
    if (canon_message(r, s, &msg) == 0)
        hx_resp_save(rx, resp->data, resp->len, msg.data, msg.len);
    hx_buf_free(&msg);
}

/* Collects what hx_render_collect does not: thinking, refusal, the
 * cached and reasoning token counts. */
static int collect(hx_render *r, rr_state *s, const hx_event *ev)
{
    if (hx_render_collect(r, ev) != 0)
        return -1;
    if (ev->type == HX_EV_THINKING)
        return hx_buf_append(&s->thinking, ev->text, ev->len);
    if (ev->type == HX_EV_REFUSAL)
        return hx_buf_append(&s->refusal, ev->text, ev->len);
    if (ev->type == HX_EV_USAGE) {
        s->cached_tokens = hx_tokens_add(ev->cache_read_tokens, 0);
        s->reasoning_tokens = hx_tokens_add(ev->reasoning_tokens, 0);
    }
    return 0;
}

static int body(hx_render *r, hx_buf *out)
{
    rr_state *s = state(r);
    if (s == NULL)
        return -1;
    default_order(r, s);
    if (response_json(r, s, out, "completed", NULL))
        return -1;
    save(r, s, out);
    return hx_buf_append(out, "\n", 1);
}

/* Non-streamed answers are collected through this (the proxy calls
 * hx_render_collect): thinking and refusal need our own collection. */
static int rr_collect(hx_render *r, const hx_event *ev)
{
    rr_state *s = state(r);
    return s ? collect(r, s, ev) : -1;
}

/* ---- streaming ------------------------------------------------------------------ */

/* "event: NAME\ndata: {"type":"NAME","sequence_number":N" ... ev_end. */
static int ev_begin(rr_state *s, hx_buf *out, const char *name)
{
    return hx_buf_printf(out, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%lld", name, name,
                         (long long)s->seq++);
}

static int ev_end(hx_buf *out)
{
    return hx_buf_append_str(out, "}\n\n");
}

/* ,"item_id":..,"output_index":N */
static int ev_item(hx_render *r, rr_state *s, hx_buf *out, int kind)
{
    return hx_buf_append_str(out, ",\"item_id\":") || item_id(r, out, kind) ||
           hx_buf_printf(out, ",\"output_index\":%d", index_of(s, kind));
}

static int ev_response(hx_render *r, rr_state *s, hx_buf *out, const char *name, const char *status,
                       const char *error)
{
    return ev_begin(s, out, name) || hx_buf_append_str(out, ",\"response\":") ||
           response_json(r, s, out, status, error) || ev_end(out);
}

static int ensure_created(hx_render *r, rr_state *s, hx_buf *out)
{
    if (s->created)
        return 0;
    s->created = true;
    return ev_response(r, s, out, "response.created", "in_progress", NULL) ||
           ev_response(r, s, out, "response.in_progress", "in_progress", NULL);
}

static int item_added(hx_render *r, rr_state *s, hx_buf *out, int kind)
{
    if (s->nitems >= HX_RENDER_MAX_TOOLS + 2)
        return -1;
    s->order[s->nitems] = kind;
    int rc = ev_begin(s, out, "response.output_item.added") ||
             hx_buf_printf(out, ",\"output_index\":%d,\"item\":", s->nitems++) ||
             item_json(r, s, out, kind, "in_progress") || ev_end(out);
    return rc;
}

/* Opens the message item, and its text or refusal part. */
static int ensure_part(hx_render *r, rr_state *s, hx_buf *out, bool refusal)
{
    if (index_of(s, IT_MESSAGE) < 0 && item_added(r, s, out, IT_MESSAGE))
        return -1;
    int *part = refusal ? &s->refusal_part : &s->text_part;
    if (*part >= 0)
        return 0;
    *part = s->nparts++;
    return ev_begin(s, out, "response.content_part.added") || ev_item(r, s, out, IT_MESSAGE) ||
           hx_buf_printf(out, ",\"content_index\":%d,\"part\":", *part) ||
           (refusal ? refusal_part_json(out, "", 0) : text_part_json(out, "", 0)) || ev_end(out);
}

static int ensure_reasoning(hx_render *r, rr_state *s, hx_buf *out)
{
    if (index_of(s, IT_REASONING) >= 0)
        return 0;
    return item_added(r, s, out, IT_REASONING) || ev_begin(s, out, "response.reasoning_summary_part.added") ||
           ev_item(r, s, out, IT_REASONING) ||
           hx_buf_append_str(out, ",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}") ||
           ev_end(out);
}

static int ensure_tool(hx_render *r, rr_state *s, hx_buf *out, int i)
{
    if (i < 0 || i >= r->ntools)
        return -1;
    return index_of(s, i) >= 0 ? 0 : item_added(r, s, out, i);
}

static int delta(hx_buf *out, const hx_event *ev)
{
    return hx_buf_append_str(out, ",\"delta\":") || hx_json_str(out, ev->text, ev->len) || ev_end(out) ? -1 : 0;
}

/* The done events of every item, in output order. */
static int close_items(hx_render *r, rr_state *s, hx_buf *out)
{
    if (s->closed)
        return 0;
    if (s->nitems == 0 && ensure_part(r, s, out, false)) /* an empty answer is an empty message */
        return -1;
    s->closed = true;
    const char *why = NULL;
    const char *status = incomplete(r, &why) ? "incomplete" : "completed";
    for (int i = 0; i < s->nitems; i++) {
        int k = s->order[i];
        if (k == IT_REASONING &&
            (ev_begin(s, out, "response.reasoning_summary_text.done") || ev_item(r, s, out, k) ||
             hx_buf_append_str(out, ",\"summary_index\":0,\"text\":") ||
             hx_json_str(out, s->thinking.data ? s->thinking.data : "", s->thinking.len) || ev_end(out) ||
             ev_begin(s, out, "response.reasoning_summary_part.done") || ev_item(r, s, out, k) ||
             hx_buf_append_str(out, ",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":") ||
             hx_json_str(out, s->thinking.data ? s->thinking.data : "", s->thinking.len) ||
             hx_buf_append(out, "}", 1) || ev_end(out)))
            return -1;
        for (int part = 0; k == IT_MESSAGE && part < s->nparts; part++) {
            bool text = part == s->text_part;
            if (ev_begin(s, out, text ? "response.output_text.done" : "response.refusal.done") ||
                ev_item(r, s, out, k) || hx_buf_printf(out, ",\"content_index\":%d,\"%s\":", part,
                                                        text ? "text" : "refusal") ||
                (text ? hx_json_str(out, r->text.data ? r->text.data : "", r->text.len)
                      : hx_json_str(out, s->refusal.data ? s->refusal.data : "", s->refusal.len)) ||
                ev_end(out) || ev_begin(s, out, "response.content_part.done") || ev_item(r, s, out, k) ||
                hx_buf_printf(out, ",\"content_index\":%d,\"part\":", part) ||
                (text ? text_part_json(out, r->text.data, r->text.len)
                      : refusal_part_json(out, s->refusal.data, s->refusal.len)) ||
                ev_end(out))
                return -1;
        }
        if (k >= 0) {
            hx_tool_acc *t = &r->tools[k];
            if (ev_begin(s, out, "response.function_call_arguments.done") || ev_item(r, s, out, k) ||
                hx_buf_append_str(out, ",\"arguments\":") ||
                hx_json_str(out, t->args.data ? t->args.data : "", t->args.len) || ev_end(out))
                return -1;
        }
        if (ev_begin(s, out, "response.output_item.done") || hx_buf_printf(out, ",\"output_index\":%d,\"item\":", i) ||
            item_json(r, s, out, k, status) || ev_end(out))
            return -1;
    }
    return 0;
}

static int stream_event(hx_render *r, const hx_event *ev, hx_buf *out)
{
    rr_state *s = state(r);
    if (s == NULL || collect(r, s, ev) != 0)
        return -1;
    if (ev->type == HX_EV_META || ev->type == HX_EV_ERROR || ev->type == HX_EV_USAGE ||
        ev->type == HX_EV_THINKING_SIGNATURE || ev->type == HX_EV_REDACTED_THINKING)
        return 0;
    if (ensure_created(r, s, out))
        return -1;
    switch (ev->type) {
    case HX_EV_TEXT:
        return ensure_part(r, s, out, false) || ev_begin(s, out, "response.output_text.delta") ||
               ev_item(r, s, out, IT_MESSAGE) || hx_buf_printf(out, ",\"content_index\":%d", s->text_part) ||
               delta(out, ev);
    case HX_EV_REFUSAL:
        return ensure_part(r, s, out, true) || ev_begin(s, out, "response.refusal.delta") ||
               ev_item(r, s, out, IT_MESSAGE) || hx_buf_printf(out, ",\"content_index\":%d", s->refusal_part) ||
               delta(out, ev);
    case HX_EV_THINKING:
        return ensure_reasoning(r, s, out) || ev_begin(s, out, "response.reasoning_summary_text.delta") ||
               ev_item(r, s, out, IT_REASONING) || hx_buf_append_str(out, ",\"summary_index\":0") ||
               delta(out, ev);
    case HX_EV_TOOL_CALL:
        return ensure_tool(r, s, out, ev->index);
    case HX_EV_TOOL_ARGS:
        return ensure_tool(r, s, out, ev->index) || ev_begin(s, out, "response.function_call_arguments.delta") ||
               ev_item(r, s, out, ev->index) || delta(out, ev);
    case HX_EV_FINISH:
        return close_items(r, s, out);
    default:
        return 0;
    }
}

static int stream_end(hx_render *r, hx_buf *out)
{
    rr_state *s = state(r);
    if (s == NULL || ensure_created(r, s, out))
        return -1;
    if (close_items(r, s, out))
        return -1;
    const char *why;
    bool inc = incomplete(r, &why);
    hx_buf resp;
    hx_buf_init(&resp, RR_OBJECT_MAX);
    int rc = response_json(r, s, &resp, "completed", NULL);
    if (rc == 0) {
        const char *name = inc ? "response.incomplete" : "response.completed";
        rc = ev_begin(s, out, name) || hx_buf_append_str(out, ",\"response\":") ||
             hx_buf_append(out, resp.data, resp.len) || ev_end(out);
    }
    if (rc == 0)
        save(r, s, &resp);
    hx_buf_free(&resp);
    return rc;
}

/* A mid-stream failure: the `error` event the SDKs raise, then
 * response.failed for clients that follow the response's status. A
 * stream relayed from a native provider (this renderer made none of it)
 * gets the `error` event only: its response is the provider's. */
static int stream_error(hx_render *r, const char *type, const char *message, hx_buf *out)
{
    (void)type;
    rr_state *s = state(r);
    if (s == NULL)
        return -1;
    if (ev_begin(s, out, "error") || hx_buf_append_str(out, ",\"code\":\"server_error\",\"message\":") ||
        hx_json_cstr(out, message) || hx_buf_append_str(out, ",\"param\":null") || ev_end(out))
        return -1;
    return s->created ? ev_response(r, s, out, "response.failed", "failed", message) : 0;
}

const hx_render_vt hx_render_responses = {
    .stream_content_type = "text/event-stream",
    .stream_event = stream_event,
    .stream_end = stream_end,
    .stream_error = stream_error,
    .body = body,
    .collect = rr_collect,
};
