/* Renderers for the OpenAI formats (chat.completion, its chunks, the
 * legacy text_completion) and for the original Hapax {"content": ...}. */
#include <stdio.h>
#include <string.h>

#include "gateway/render.h"
#include "util/json.h"
#include "util/uuid.h"

static void ensure_id(hx_render *r, const char *prefix)
{
    if (!r->id[0])
        hx_random_id(r->id, sizeof r->id, prefix);
}

/* {"id":..,"object":..,"created":..,"model":..,"choices":[ */
static int head(hx_render *r, hx_buf *out, const char *object)
{
    return hx_buf_append_str(out, "{\"id\":") || hx_json_cstr(out, r->id) ||
           hx_buf_printf(out, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object, (long long)r->created) ||
           hx_json_cstr(out, r->model) || hx_buf_append_str(out, ",\"choices\":[");
}

/* OpenAI's usage; the details only when the upstream reported them (a
 * cache write has no OpenAI field: it stays inside prompt_tokens). */
static int usage_obj(hx_render *r, hx_buf *out)
{
    if (hx_buf_printf(out, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld",
                      (long long)r->prompt_tokens, (long long)r->completion_tokens,
                      (long long)hx_tokens_add(r->prompt_tokens, r->completion_tokens)))
        return -1;
    if (r->cache_read_tokens > 0 &&
        hx_buf_printf(out, ",\"prompt_tokens_details\":{\"cached_tokens\":%lld}", (long long)r->cache_read_tokens))
        return -1;
    if (r->reasoning_tokens > 0 &&
        hx_buf_printf(out, ",\"completion_tokens_details\":{\"reasoning_tokens\":%lld}",
                      (long long)r->reasoning_tokens))
        return -1;
    return hx_buf_append(out, "}", 1);
}

/* ---- chat.completion.chunk ------------------------------------------------- */

static int chunk_begin(hx_render *r, hx_buf *out)
{
    return hx_buf_append_str(out, "data: ") || head(r, out, "chat.completion.chunk") ||
           hx_buf_append_str(out, "{\"index\":0,\"delta\":");
}

static int chunk_end(hx_buf *out, const char *finish)
{
    if (hx_buf_append_str(out, ",\"logprobs\":null,\"finish_reason\":") || hx_json_cstr(out, finish))
        return -1;
    return hx_buf_append_str(out, "}]}\n\n");
}

static int chat_stream_event(hx_render *r, const hx_event *ev, hx_buf *out)
{
    if (hx_render_collect(r, ev) != 0)
        return -1;
    if (ev->type == HX_EV_META || ev->type == HX_EV_ERROR)
        return 0;
    ensure_id(r, "chatcmpl-");
    if (!r->started) {
        r->started = true;
        if (chunk_begin(r, out) || hx_buf_append_str(out, "{\"role\":\"assistant\",\"content\":\"\"}") ||
            chunk_end(out, NULL))
            return -1;
    }
    switch (ev->type) {
    case HX_EV_TEXT:
        return chunk_begin(r, out) || hx_buf_append_str(out, "{\"content\":") || hx_json_str(out, ev->text, ev->len) ||
               hx_buf_append(out, "}", 1) || chunk_end(out, NULL);
    case HX_EV_THINKING:
        /* reasoning_content: the field of OpenAI-compatible servers
         * (DeepSeek, vLLM, llama.cpp); OpenAI itself shows no reasoning. */
        if (ev->len == 0)
            return 0;
        return chunk_begin(r, out) || hx_buf_append_str(out, "{\"reasoning_content\":") ||
               hx_json_str(out, ev->text, ev->len) || hx_buf_append(out, "}", 1) || chunk_end(out, NULL);
    case HX_EV_REFUSAL:
        if (ev->len == 0)
            return 0;
        return chunk_begin(r, out) || hx_buf_append_str(out, "{\"refusal\":") || hx_json_str(out, ev->text, ev->len) ||
               hx_buf_append(out, "}", 1) || chunk_end(out, NULL);
    case HX_EV_TOOL_CALL:
        return chunk_begin(r, out) ||
               hx_buf_printf(out, "{\"tool_calls\":[{\"index\":%d,\"id\":", ev->index) || hx_json_cstr(out, ev->id) ||
               hx_buf_append_str(out, ",\"type\":\"function\",\"function\":{\"name\":") ||
               hx_json_cstr(out, ev->name) || hx_buf_append_str(out, ",\"arguments\":\"\"}}]}") ||
               chunk_end(out, NULL);
    case HX_EV_TOOL_ARGS:
        return chunk_begin(r, out) ||
               hx_buf_printf(out, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", ev->index) ||
               hx_json_str(out, ev->text, ev->len) || hx_buf_append_str(out, "}}]}") || chunk_end(out, NULL);
    case HX_EV_FINISH:
        r->sent_finish = true;
        return chunk_begin(r, out) || hx_buf_append_str(out, "{}") || chunk_end(out, ev->finish ? ev->finish : "stop");
    case HX_EV_USAGE:
        if (!r->include_usage)
            return 0;
        return hx_buf_append_str(out, "data: ") || head(r, out, "chat.completion.chunk") ||
               hx_buf_append_str(out, "],\"usage\":") || usage_obj(r, out) || hx_buf_append_str(out, "}\n\n");
    default:
        return 0;
    }
}

static int stream_done(hx_render *r, hx_buf *out)
{
    (void)r;
    return hx_buf_append_str(out, "data: [DONE]\n\n");
}

/* The OpenAI SDKs raise an APIError when a data event carries "error". */
static int openai_stream_error(hx_render *r, const char *type, const char *message, hx_buf *out)
{
    (void)r;
    return hx_buf_append_str(out, "data: {\"error\":{\"message\":") || hx_json_cstr(out, message) ||
           hx_buf_append_str(out, ",\"type\":") || hx_json_cstr(out, type) ||
           hx_buf_append_str(out, ",\"code\":\"upstream_stream_error\"}}\n\n");
}

static int tool_calls_json(hx_render *r, hx_buf *out)
{
    if (hx_buf_append_str(out, ",\"tool_calls\":["))
        return -1;
    for (int i = 0; i < r->ntools; i++) {
        hx_tool_acc *t = &r->tools[i];
        if (hx_buf_append_str(out, i ? ",{\"id\":" : "{\"id\":") || hx_json_cstr(out, t->id ? t->id : "") ||
            hx_buf_append_str(out, ",\"type\":\"function\",\"function\":{\"name\":") ||
            hx_json_cstr(out, t->name ? t->name : "") || hx_buf_append_str(out, ",\"arguments\":") ||
            hx_json_str(out, t->args.data ? t->args.data : "", t->args.len) || hx_buf_append_str(out, "}}"))
            return -1;
    }
    return hx_buf_append(out, "]", 1);
}

static int chat_body(hx_render *r, hx_buf *out)
{
    ensure_id(r, "chatcmpl-");
    if (head(r, out, "chat.completion") || hx_buf_append_str(out, "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"))
        return -1;
    if (r->text.len || (r->ntools == 0 && r->refusal.len == 0)) {
        if (hx_json_str(out, r->text.data ? r->text.data : "", r->text.len))
            return -1;
    } else if (hx_buf_append_str(out, "null")) {
        return -1;
    }
    if (r->reasoning.len && (hx_buf_append_str(out, ",\"reasoning_content\":") ||
                             hx_json_str(out, r->reasoning.data, r->reasoning.len)))
        return -1;
    if (hx_buf_append_str(out, ",\"refusal\":") ||
        (r->refusal.len ? hx_json_str(out, r->refusal.data, r->refusal.len) : hx_buf_append_str(out, "null")))
        return -1;
    if (r->ntools && tool_calls_json(r, out))
        return -1;
    if (hx_buf_append_str(out, "},\"logprobs\":null,\"finish_reason\":") ||
        hx_json_cstr(out, r->finish[0] ? r->finish : "stop") || hx_buf_append_str(out, "}],\"usage\":") ||
        usage_obj(r, out) || hx_buf_append_str(out, "}\n"))
        return -1;
    return 0;
}

const hx_render_vt hx_render_openai_chat = {
    .stream_content_type = "text/event-stream",
    .stream_event = chat_stream_event,
    .stream_end = stream_done,
    .stream_error = openai_stream_error,
    .body = chat_body,
};

/* ---- text_completion (legacy prompt form) ------------------------------------ */

static int legacy_chunk(hx_render *r, hx_buf *out, const char *text, size_t len, const char *finish)
{
    return hx_buf_append_str(out, "data: ") || head(r, out, "text_completion") ||
           hx_buf_append_str(out, "{\"text\":") || hx_json_str(out, text, len) ||
           hx_buf_append_str(out, ",\"index\":0,\"logprobs\":null,\"finish_reason\":") || hx_json_cstr(out, finish) ||
           hx_buf_append_str(out, "}]}\n\n");
}

static int legacy_stream_event(hx_render *r, const hx_event *ev, hx_buf *out)
{
    if (hx_render_collect(r, ev) != 0)
        return -1;
    ensure_id(r, "cmpl-");
    /* A refusal is text in a format without a refusal field. */
    if (ev->type == HX_EV_TEXT || ev->type == HX_EV_REFUSAL)
        return legacy_chunk(r, out, ev->text, ev->len, NULL);
    if (ev->type == HX_EV_FINISH)
        return legacy_chunk(r, out, "", 0, ev->finish ? ev->finish : "stop");
    if (ev->type == HX_EV_USAGE && r->include_usage)
        return hx_buf_append_str(out, "data: ") || head(r, out, "text_completion") ||
               hx_buf_append_str(out, "],\"usage\":") || usage_obj(r, out) || hx_buf_append_str(out, "}\n\n");
    return 0;
}

/* A refusal is the answer's text where the format has no refusal field. */
static int refusal_as_text(hx_render *r)
{
    return r->refusal.len ? hx_buf_append(&r->text, r->refusal.data, r->refusal.len) : 0;
}

static int legacy_body(hx_render *r, hx_buf *out)
{
    ensure_id(r, "cmpl-");
    if (refusal_as_text(r) != 0)
        return -1;
    return head(r, out, "text_completion") || hx_buf_append_str(out, "{\"text\":") ||
           hx_json_str(out, r->text.data ? r->text.data : "", r->text.len) ||
           hx_buf_append_str(out, ",\"index\":0,\"logprobs\":null,\"finish_reason\":") ||
           hx_json_cstr(out, r->finish[0] ? r->finish : "stop") || hx_buf_append_str(out, "}],\"usage\":") ||
           usage_obj(r, out) || hx_buf_append_str(out, "}\n");
}

const hx_render_vt hx_render_openai_legacy = {
    .stream_content_type = "text/event-stream",
    .stream_event = legacy_stream_event,
    .stream_end = stream_done,
    .stream_error = openai_stream_error,
    .body = legacy_body,
};

/* ---- the original Hapax answer --------------------------------------------- */

static int hapax_body(hx_render *r, hx_buf *out)
{
    if (refusal_as_text(r) != 0)
        return -1;
    return hx_buf_append_str(out, "{\"content\":") || hx_json_str(out, r->text.data ? r->text.data : "", r->text.len) ||
           hx_buf_append_str(out, "}\n");
}

const hx_render_vt hx_render_hapax = {
    .stream_content_type = "text/event-stream",
    .stream_event = legacy_stream_event, /* never used: the inbound parser rejects stream */
    .stream_end = stream_done,
    .stream_error = openai_stream_error,
    .body = hapax_body,
};
