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
}

void hx_render_free(hx_render *r)
{
    hx_buf_free(&r->text);
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

int hx_render_collect(hx_render *r, const hx_event *ev)
{
    hx_tool_acc *t;
    switch (ev->type) {
    case HX_EV_META:
        if (ev->id && ev->id[0] && r->id[0] == '\0')
            snprintf(r->id, sizeof r->id, "%s", ev->id);
        if (ev->name && ev->name[0])
            snprintf(r->model, sizeof r->model, "%s", ev->name);
        return 0;
    case HX_EV_TEXT:
        return hx_buf_append(&r->text, ev->text, ev->len);
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
        return 0;
    case HX_EV_USAGE:
        /* Clamped again: renderers print these and their sum. */
        r->prompt_tokens = hx_tokens_add(ev->prompt_tokens, 0);
        r->completion_tokens = hx_tokens_add(ev->completion_tokens, 0);
        r->has_usage = true;
        return 0;
    case HX_EV_ERROR:
    case HX_EV_THINKING:
    case HX_EV_THINKING_SIGNATURE:
    case HX_EV_REDACTED_THINKING:
    case HX_EV_REFUSAL:
        return 0;
    }
    return 0;
}

int hx_sse_frame(hx_buf *out, const char *event, const char *json, size_t len)
{
    if (event && (hx_buf_append_str(out, "event: ") || hx_buf_append_str(out, event) || hx_buf_append(out, "\n", 1)))
        return -1;
    if (hx_buf_append(out, "data: ", 6) || hx_buf_append(out, json, len) || hx_buf_append(out, "\n\n", 2))
        return -1;
    return 0;
}
