/* The Anthropic Messages API renderer: canonical events → SSE exactly as
 * the official API streams it (message_start, content_block_start / delta /
 * stop, message_delta, message_stop), or one message JSON. */
#include <stdio.h>
#include <string.h>

#include "gateway/render.h"
#include "provider/adapter.h"
#include "provider/anthropic_int.h"
#include "util/json.h"
#include "util/uuid.h"

/* BK_SIGNED: a thinking block whose signature went out; more thinking
 * starts a new block. */
enum { BK_NONE, BK_TEXT, BK_TOOL, BK_THINKING, BK_SIGNED };

static void ensure_id(hx_render *r)
{
    if (r->id[0] == '\0')
        hx_random_id(r->id, sizeof r->id, "msg_");
}

static const char *stop_reason(const hx_render *r)
{
    const char *finish = r->finish;
    if (strcmp(finish, "stop") == 0 && r->has_stop_seq)
        return "stop_sequence";
    if (strcmp(finish, "length") == 0)
        return "max_tokens";
    if (strcmp(finish, "tool_calls") == 0)
        return "tool_use";
    if (strcmp(finish, "content_filter") == 0)
        return "refusal";
    return "end_turn";
}

/* Appends s[0..len) as a JSON string literal (NULL → ""). */
static int put_str(hx_buf *b, const char *s, size_t len)
{
    return hx_json_str(b, s ? s : "", s ? len : 0);
}

/* One SSE frame from the JSON in d; d is reset. */
static int flush_frame(hx_buf *out, const char *event, hx_buf *d, int rc)
{
    if (rc == 0)
        rc = hx_sse_frame(out, event, d->data, d->len);
    hx_buf_free(d);
    return rc;
}

/* Anthropic's usage members from canonical counts: its input_tokens
 * excludes what was read from or written to the prompt cache. */
static int usage_members(hx_buf *d, int64_t prompt, int64_t cache_read, int64_t cache_write)
{
    int64_t in = prompt - cache_read - cache_write;
    if (hx_buf_printf(d, "\"input_tokens\":%lld", (long long)(in > 0 ? in : 0)))
        return -1;
    if (cache_write > 0 && hx_buf_printf(d, ",\"cache_creation_input_tokens\":%lld", (long long)cache_write))
        return -1;
    if (cache_read > 0 && hx_buf_printf(d, ",\"cache_read_input_tokens\":%lld", (long long)cache_read))
        return -1;
    return 0;
}

static int message_start(hx_render *r, hx_buf *out)
{
    hx_buf d;
    hx_buf_init(&d, HX_RENDER_FRAME_MAX);
    ensure_id(r);
    r->started = true;
    /* The input count when the upstream said it up front (Anthropic's
     * message_start); else 0 here and the real one in message_delta. */
    int rc = hx_buf_append_str(&d, "{\"type\":\"message_start\",\"message\":{\"id\":") ||
             put_str(&d, r->id, strlen(r->id)) ||
             hx_buf_append_str(&d, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":") ||
             put_str(&d, r->model, strlen(r->model)) ||
             hx_buf_append_str(&d, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{") ||
             usage_members(&d, r->meta_prompt_tokens, r->meta_cache_read_tokens, r->meta_cache_write_tokens) ||
             hx_buf_append_str(&d, ",\"output_tokens\":0}}}");
    return flush_frame(out, "message_start", &d, rc ? -1 : 0);
}

static int block_stop(hx_render *r, hx_buf *out)
{
    if (r->block_kind == BK_NONE)
        return 0;
    hx_buf d;
    hx_buf_init(&d, HX_RENDER_FRAME_MAX);
    r->block_kind = BK_NONE;
    int rc = hx_buf_printf(&d, "{\"type\":\"content_block_stop\",\"index\":%d}", r->block_index - 1);
    return flush_frame(out, "content_block_stop", &d, rc);
}

static int block_start(hx_render *r, hx_buf *out, const hx_event *ev)
{
    hx_buf d;
    hx_buf_init(&d, HX_RENDER_FRAME_MAX);
    if (block_stop(r, out) != 0)
        return -1;
    int rc = hx_buf_printf(&d, "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":", r->block_index);
    if (ev->type == HX_EV_TEXT || ev->type == HX_EV_REFUSAL) {
        r->block_kind = BK_TEXT;
        rc = rc || hx_buf_append_str(&d, "{\"type\":\"text\",\"text\":\"\"}}");
    } else if (ev->type == HX_EV_THINKING || ev->type == HX_EV_THINKING_SIGNATURE) {
        r->block_kind = BK_THINKING;
        rc = rc || hx_buf_append_str(&d, "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}");
    } else if (ev->type == HX_EV_REDACTED_THINKING) {
        r->block_kind = BK_SIGNED; /* complete as it starts: closed by the next block */
        rc = rc || hx_buf_append_str(&d, "{\"type\":\"redacted_thinking\",\"data\":") ||
             put_str(&d, ev->text, ev->len) || hx_buf_append_str(&d, "}}");
    } else {
        char gen[40];
        const char *id = ev->id;
        if (id == NULL || id[0] == '\0') {
            hx_random_id(gen, sizeof gen, "toolu_");
            id = gen;
        }
        r->block_kind = BK_TOOL;
        r->state = ev->index;
        rc = rc || hx_buf_append_str(&d, "{\"type\":\"tool_use\",\"id\":") || put_str(&d, id, strlen(id)) ||
             hx_buf_append_str(&d, ",\"name\":") || put_str(&d, ev->name, ev->name ? strlen(ev->name) : 0) ||
             hx_buf_append_str(&d, ",\"input\":{}}}");
    }
    r->block_index++;
    return flush_frame(out, "content_block_start", &d, rc ? -1 : 0);
}

static int block_delta(hx_render *r, hx_buf *out, const hx_event *ev)
{
    hx_buf d;
    hx_buf_init(&d, HX_RENDER_FRAME_MAX);
    const char *type = "input_json_delta", *key = "partial_json";
    if (ev->type == HX_EV_TEXT || ev->type == HX_EV_REFUSAL)
        type = "text_delta", key = "text";
    else if (ev->type == HX_EV_THINKING)
        type = "thinking_delta", key = "thinking";
    else if (ev->type == HX_EV_THINKING_SIGNATURE)
        type = "signature_delta", key = "signature";
    int rc = hx_buf_printf(&d, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"%s\",\"%s\":",
                           r->block_index - 1, type, key) ||
             put_str(&d, ev->text, ev->len) || hx_buf_append_str(&d, "}}");
    return flush_frame(out, "content_block_delta", &d, rc ? -1 : 0);
}

static int anth_stream_event(hx_render *r, const hx_event *ev, hx_buf *out)
{
    if (ev->type == HX_EV_ERROR)
        return 0;
    if (ev->type == HX_EV_META || ev->type == HX_EV_FINISH || ev->type == HX_EV_USAGE) {
        if (hx_render_collect(r, ev) != 0)
            return -1;
    }
    if (!r->started && message_start(r, out) != 0)
        return -1;
    switch (ev->type) {
    case HX_EV_TEXT:
    case HX_EV_REFUSAL: /* Anthropic has no refusal text: it is text (docs/providers.md) */
        if (ev->len == 0)
            return 0;
        if (r->block_kind != BK_TEXT && block_start(r, out, ev) != 0)
            return -1;
        return block_delta(r, out, ev);
    case HX_EV_THINKING:
        if (ev->len == 0)
            return 0;
        if (r->block_kind != BK_THINKING && block_start(r, out, ev) != 0)
            return -1;
        return block_delta(r, out, ev);
    case HX_EV_THINKING_SIGNATURE:
        if (r->block_kind != BK_THINKING && block_start(r, out, ev) != 0)
            return -1;
        r->block_kind = BK_SIGNED;
        return block_delta(r, out, ev);
    case HX_EV_REDACTED_THINKING:
        return block_start(r, out, ev);
    case HX_EV_TOOL_CALL:
        if (r->block_kind == BK_TOOL && r->state == ev->index)
            return 0;
        return block_start(r, out, ev);
    case HX_EV_TOOL_ARGS:
        /* Arguments of a tool whose block is already closed cannot be sent
         * any more (the canonical producers send each call's arguments in
         * one run); they are dropped. */
        if (ev->len == 0 || r->block_kind != BK_TOOL || r->state != ev->index)
            return 0;
        return block_delta(r, out, ev);
    default:
        return 0;
    }
}

static int anth_stream_end(hx_render *r, hx_buf *out)
{
    if (!r->started && message_start(r, out) != 0)
        return -1;
    if (block_stop(r, out) != 0)
        return -1;
    hx_buf d;
    hx_buf_init(&d, HX_RENDER_FRAME_MAX);
    int rc = hx_buf_printf(&d, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":",
                           stop_reason(r));
    if (rc == 0)
        rc = r->has_stop_seq ? put_str(&d, r->stop_seq.data, r->stop_seq.len) : hx_buf_append_str(&d, "null");
    if (rc == 0)
        rc = hx_buf_append_str(&d, "},\"usage\":{");
    /* The input count also here: an OpenAI or Ollama upstream tells it
     * only at the end. */
    if (rc == 0 && r->has_usage)
        rc = usage_members(&d, r->prompt_tokens, r->cache_read_tokens, r->cache_write_tokens) ||
             hx_buf_append(&d, ",", 1);
    if (rc == 0)
        rc = hx_buf_printf(&d, "\"output_tokens\":%lld}}", (long long)(r->has_usage ? r->completion_tokens : 0));
    if (flush_frame(out, "message_delta", &d, rc) != 0)
        return -1;
    r->sent_finish = true;
    static const char stop[] = "{\"type\":\"message_stop\"}";
    return hx_sse_frame(out, "message_stop", stop, sizeof stop - 1);
}

static int anth_stream_error(hx_render *r, const char *type, const char *message, hx_buf *out)
{
    (void)r;
    hx_buf d;
    hx_buf_init(&d, HX_RENDER_FRAME_MAX);
    const char *t = type ? type : "api_error", *m = message ? message : "upstream error";
    int rc = hx_buf_append_str(&d, "{\"type\":\"error\",\"error\":{\"type\":") || put_str(&d, t, strlen(t)) ||
             hx_buf_append_str(&d, ",\"message\":") || put_str(&d, m, strlen(m)) || hx_buf_append_str(&d, "}}");
    return flush_frame(out, "error", &d, rc ? -1 : 0);
}

/* A tool_use block from a collected tool call. */
static json_object *tool_block(const hx_tool_acc *t)
{
    json_object *b = json_object_new_object(), *input = NULL;
    char gen[40];
    const char *id = t->id;
    if (id == NULL || id[0] == '\0') {
        hx_random_id(gen, sizeof gen, "toolu_");
        id = gen;
    }
    if (t->args.len)
        input = hx_anth_parse_json(t->args.data, t->args.len);
    if (input && !json_object_is_type(input, json_type_object)) {
        json_object_put(input);
        input = NULL;
    }
    if (input == NULL)
        input = json_object_new_object();
    if (b == NULL || hx_json_set(b, "type", json_object_new_string("tool_use")) != 0 ||
        hx_json_set(b, "id", json_object_new_string(id)) != 0 ||
        hx_json_set(b, "name", json_object_new_string(t->name ? t->name : "")) != 0 || hx_json_set(b, "input", input) != 0) {
        if (b == NULL)
            json_object_put(input);
        json_object_put(b);
        return NULL;
    }
    return b;
}

/* Thinking blocks first, as Anthropic orders them; the refusal text
 * (an OpenAI upstream's) follows the answer text. */
static json_object *body_content(hx_render *r)
{
    if (hx_render_close_thinking(r, NULL, 0) != 0)
        return NULL;
    json_object *content = json_object_new_array();
    if (content == NULL)
        return NULL;
    size_t nth = r->thinking ? json_object_array_length(r->thinking) : 0;
    for (size_t i = 0; i < nth; i++)
        if (hx_json_push(content, json_object_get(json_object_array_get_idx(r->thinking, i))) != 0) {
            json_object_put(content);
            return NULL;
        }
    if (r->refusal.len && hx_buf_append(&r->text, r->refusal.data, r->refusal.len) != 0) {
        json_object_put(content);
        return NULL;
    }
    if (r->text.len) {
        json_object *b = json_object_new_object();
        if (b == NULL || hx_json_push(content, b) != 0 || hx_json_set(b, "type", json_object_new_string("text")) != 0 ||
            hx_json_set(b, "text", json_object_new_string_len(r->text.data, (int)r->text.len)) != 0) {
            json_object_put(content);
            return NULL;
        }
    }
    for (int i = 0; i < r->ntools; i++) {
        const hx_tool_acc *t = &r->tools[i];
        if (t->name == NULL && t->id == NULL && t->args.len == 0)
            continue; /* a gap in the indexes */
        if (hx_json_push(content, tool_block(t)) != 0) {
            json_object_put(content);
            return NULL;
        }
    }
    return content;
}

static int anth_body(hx_render *r, hx_buf *out)
{
    ensure_id(r);
    json_object *o = json_object_new_object(), *usage = json_object_new_object();
    if (o == NULL || usage == NULL) {
        json_object_put(o);
        json_object_put(usage);
        return -1;
    }
    int64_t in = r->prompt_tokens - r->cache_read_tokens - r->cache_write_tokens;
    int rc = hx_json_set(o, "id", json_object_new_string(r->id)) || hx_json_set(o, "type", json_object_new_string("message")) ||
             hx_json_set(o, "role", json_object_new_string("assistant")) ||
             hx_json_set(o, "model", json_object_new_string(r->model)) || hx_json_set(o, "content", body_content(r)) ||
             hx_json_set(o, "stop_reason", json_object_new_string(stop_reason(r))) ||
             (r->has_stop_seq ? hx_json_set(o, "stop_sequence", json_object_new_string_len(r->stop_seq.data ? r->stop_seq.data : "",
                                                                                     (int)r->stop_seq.len))
                              : json_object_object_add(o, "stop_sequence", NULL)) ||
             hx_json_set(usage, "input_tokens", json_object_new_int64(in > 0 ? in : 0)) ||
             (r->cache_write_tokens > 0 &&
              hx_json_set(usage, "cache_creation_input_tokens", json_object_new_int64(r->cache_write_tokens))) ||
             (r->cache_read_tokens > 0 &&
              hx_json_set(usage, "cache_read_input_tokens", json_object_new_int64(r->cache_read_tokens))) ||
             hx_json_set(usage, "output_tokens", json_object_new_int64(r->completion_tokens));
    if (rc == 0)
        rc = hx_json_set(o, "usage", usage);
    else
        json_object_put(usage);
    if (rc == 0)
        rc = hx_json_append(out, o);
    json_object_put(o);
    return rc ? -1 : 0;
}

const hx_render_vt hx_render_anthropic = {
    .stream_content_type = "text/event-stream",
    .stream_event = anth_stream_event,
    .stream_end = anth_stream_end,
    .stream_error = anth_stream_error,
    .body = anth_body,
};
