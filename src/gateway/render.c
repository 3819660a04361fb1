#include "gateway/render.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/json.h"

void hx_render_init(hx_render *r, const hx_render_vt *vt, bool stream, bool include_usage, const char *model)
{
    memset(r, 0, sizeof *r);
    r->vt = vt;
    r->stream = stream;
    r->include_usage = include_usage;
    snprintf(r->model, sizeof r->model, "%s", model ? model : "");
    r->created = (int64_t)time(NULL);
    hx_buf_init(&r->text, HX_RENDER_TEXT_MAX);
    hx_buf_init(&r->stop_seq, HX_RENDER_TEXT_MAX);
    hx_buf_init(&r->reasoning, HX_RENDER_TEXT_MAX);
    hx_buf_init(&r->refusal, HX_RENDER_TEXT_MAX);
}

void hx_render_free(hx_render *r)
{
    hx_buf_free(&r->text);
    hx_buf_free(&r->stop_seq);
    hx_buf_free(&r->reasoning);
    hx_buf_free(&r->refusal);
    json_object_put(r->thinking);
    r->thinking = NULL;
    r->think_mark = 0;
    for (int i = 0; i < r->ntools; i++) {
        hx_free(r->tools[i].id);
        hx_free(r->tools[i].name);
        hx_buf_free(&r->tools[i].args);
    }
    r->ntools = 0;
    if (r->ext && r->ext_free)
        r->ext_free(r->ext);
    r->ext = NULL;
}

static hx_tool_acc *tool_at(hx_render *r, int index)
{
    if (index < 0 || index >= HX_RENDER_MAX_TOOLS)
        return NULL;
    while (r->ntools <= index) {
        hx_tool_acc *t = &r->tools[r->ntools++];
        memset(t, 0, sizeof *t);
        hx_buf_init(&t->args, HX_RENDER_TEXT_MAX);
    }
    return &r->tools[index];
}

/* Appends {"type":type, key:s[0..len)} (and the signature) to r->thinking. */
static int push_thinking(hx_render *r, const char *type, const char *key, const char *s, size_t len, const char *sig,
                         size_t siglen)
{
    if (r->thinking == NULL && (r->thinking = json_object_new_array()) == NULL)
        return -1;
    json_object *b = json_object_new_object();
    if (b == NULL || json_object_array_add(r->thinking, b) != 0) {
        json_object_put(b);
        return -1;
    }
    if (hx_json_set(b, "type", json_object_new_string(type)) != 0 ||
        hx_json_set(b, key, json_object_new_string_len(s ? s : "", (int)(s ? len : 0))) != 0)
        return -1;
    if (sig && hx_json_set(b, "signature", json_object_new_string_len(sig, (int)siglen)) != 0)
        return -1;
    return 0;
}

int hx_render_close_thinking(hx_render *r, const char *sig, size_t siglen)
{
    size_t n = r->reasoning.len - r->think_mark;
    const char *s = r->reasoning.data ? r->reasoning.data + r->think_mark : "";
    if (n == 0 && sig == NULL)
        return 0;
    r->think_mark = r->reasoning.len;
    /* Without a signature (a non-Anthropic upstream) the block still needs
     * the member the SDKs read: an empty one (docs/providers.md). */
    return push_thinking(r, "thinking", "thinking", s, n, sig ? sig : "", sig ? siglen : 0);
}

static int collect_reasoning(hx_render *r, const hx_event *ev)
{
    switch (ev->type) {
    case HX_EV_THINKING:
        return hx_buf_append(&r->reasoning, ev->text, ev->len);
    case HX_EV_THINKING_SIGNATURE:
        return hx_render_close_thinking(r, ev->text ? ev->text : "", ev->text ? ev->len : 0);
    case HX_EV_REDACTED_THINKING:
        if (hx_render_close_thinking(r, NULL, 0) != 0)
            return -1;
        return push_thinking(r, "redacted_thinking", "data", ev->text, ev->len, NULL, 0);
    case HX_EV_REFUSAL:
        return hx_buf_append(&r->refusal, ev->text, ev->len);
    default:
        return 0;
    }
}

static int collect_event(hx_render *r, const hx_event *ev)
{
    hx_tool_acc *t;
    switch (ev->type) {
    case HX_EV_TOOL_CALL:
        if ((t = tool_at(r, ev->index)) == NULL)
            return -1;
        if (ev->id && t->id == NULL && (t->id = hx_strdup(ev->id)) == NULL)
            return -1;
        if (ev->name && t->name == NULL && (t->name = hx_strdup(ev->name)) == NULL)
            return -1;
        return 0;
    case HX_EV_TOOL_ARGS:
        if ((t = tool_at(r, ev->index)) == NULL)
            return -1;
        return hx_buf_append(&t->args, ev->text, ev->len);
    case HX_EV_FINISH:
        snprintf(r->finish, sizeof r->finish, "%s", ev->finish ? ev->finish : "stop");
        hx_buf_reset(&r->stop_seq);
        if (ev->text && hx_buf_append(&r->stop_seq, ev->text, ev->len) != 0)
            return -1;
        r->has_stop_seq = ev->text != NULL;
        return 0;
    case HX_EV_USAGE:
        /* Clamped again: renderers print these and their sum. */
        r->prompt_tokens = hx_tokens_add(ev->prompt_tokens, 0);
        r->completion_tokens = hx_tokens_add(ev->completion_tokens, 0);
        r->cache_read_tokens = hx_tokens_add(ev->cache_read_tokens, 0);
        r->cache_write_tokens = hx_tokens_add(ev->cache_write_tokens, 0);
        r->reasoning_tokens = hx_tokens_add(ev->reasoning_tokens, 0);
        r->has_usage = true;
        return 0;
    default:
        return 0;
    }
}

int hx_render_collect(hx_render *r, const hx_event *ev)
{
    switch (ev->type) {
    case HX_EV_META:
        if (ev->id && ev->id[0] && r->id[0] == '\0')
            snprintf(r->id, sizeof r->id, "%s", ev->id);
        if (ev->name && ev->name[0])
            snprintf(r->model, sizeof r->model, "%s", ev->name);
        if (ev->prompt_tokens > 0 || ev->cache_read_tokens > 0 || ev->cache_write_tokens > 0) {
            r->meta_prompt_tokens = hx_tokens_add(ev->prompt_tokens, 0);
            r->meta_cache_read_tokens = hx_tokens_add(ev->cache_read_tokens, 0);
            r->meta_cache_write_tokens = hx_tokens_add(ev->cache_write_tokens, 0);
            r->has_meta_usage = true;
        }
        return 0;
    case HX_EV_TEXT:
        return hx_buf_append(&r->text, ev->text, ev->len);
    case HX_EV_THINKING:
    case HX_EV_THINKING_SIGNATURE:
    case HX_EV_REDACTED_THINKING:
    case HX_EV_REFUSAL:
        /* Only a body needs them gathered (streams render each event):
         * a stream's count of blocks is not bounded by a body's size. */
        return r->stream ? 0 : collect_reasoning(r, ev);
    default:
        return collect_event(r, ev);
    }
}

int hx_sse_frame(hx_buf *out, const char *event, const char *json, size_t len)
{
    if (event && (hx_buf_append_str(out, "event: ") || hx_buf_append_str(out, event) || hx_buf_append(out, "\n", 1)))
        return -1;
    if (hx_buf_append(out, "data: ", 6) || hx_buf_append(out, json, len) || hx_buf_append(out, "\n\n", 2))
        return -1;
    return 0;
}
