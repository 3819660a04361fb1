/* Inbound renderers: turn canonical events (provider/event.h) into the
 * client's API format, streamed (SSE) or as one JSON body.
 *
 * A renderer never writes to the client itself: it appends bytes to `out`
 * and the caller sends them. Non-streamed answers are collected with
 * hx_render_collect and rendered once by `body`. */
#ifndef HX_GATEWAY_RENDER_H
#define HX_GATEWAY_RENDER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "provider/event.h"
#include "util/buf.h"

#define HX_RENDER_MAX_TOOLS 64
/* The collected text of an answer, and the arguments of one tool call:
 * never more than the upstream body that carried them (the adapters'
 * body caps are 64 MiB). */
#define HX_RENDER_TEXT_MAX ((size_t)64 << 20)
/* One rendered stream event: an SSE event from upstream (at most
 * HX_STREAM_EVENT_MAX, 4 MiB) escaped (at most 6 bytes per byte) plus its
 * framing. A larger one (an Ollama line of control bytes) fails the
 * stream as if memory ran out. */
#define HX_RENDER_FRAME_MAX ((size_t)32 << 20)

typedef struct hx_render hx_render;

typedef struct {
    const char *stream_content_type;  /* "text/event-stream" */
    /* Streaming: one event → bytes (may append nothing). 0 or -1 (no memory). */
    int (*stream_event)(hx_render *r, const hx_event *ev, hx_buf *out);
    /* Streaming: normal end (e.g. "data: [DONE]"). */
    int (*stream_end)(hx_render *r, hx_buf *out);
    /* Streaming: the upstream failed mid-stream; an error event in the
     * client's format that its SDK raises (type/message as in the JSON
     * error envelope), followed by whatever ends the stream. */
    int (*stream_error)(hx_render *r, const char *type, const char *message, hx_buf *out);
    /* Non-streaming: the whole JSON body from the collected events. */
    int (*body)(hx_render *r, hx_buf *out);
    /* Optional: collects a non-streamed event (NULL = hx_render_collect),
     * for a format that keeps more than hx_render_collect does. */
    int (*collect)(hx_render *r, const hx_event *ev);
} hx_render_vt;

typedef struct {
    char *id;
    char *name;
    hx_buf args;
} hx_tool_acc;

struct hx_render {
    const hx_render_vt *vt;
    bool stream;
    bool include_usage;        /* client asked for usage in the stream */
    char id[96];               /* response id shown to the client */
    char model[256];           /* model name shown to the client */
    int64_t created;           /* unix seconds */
    /* collected answer (non-stream; usage and finish also for streams) */
    hx_buf text;
    hx_tool_acc tools[HX_RENDER_MAX_TOOLS];
    int ntools;
    char finish[32];
    hx_buf stop_seq;           /* the stop sequence that ended it (FINISH text) */
    bool has_stop_seq;
    hx_buf reasoning;          /* every THINKING text (OpenAI reasoning_content) */
    size_t think_mark;         /* where the open thinking block starts in reasoning */
    json_object *thinking;     /* closed thinking / redacted_thinking blocks, in
                                  order (Anthropic body); NULL until the first */
    hx_buf refusal;            /* REFUSAL text */
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t cache_read_tokens;
    int64_t cache_write_tokens;
    int64_t reasoning_tokens;
    bool has_usage;
    /* the upstream's input count known up front (META, Anthropic) */
    int64_t meta_prompt_tokens;
    int64_t meta_cache_read_tokens;
    int64_t meta_cache_write_tokens;
    bool has_meta_usage;
    /* per-format streaming state */
    int state;
    int block_index;
    int block_kind;
    bool started;
    bool sent_finish;
    /* The inbound API's own context (hx_in_info.ctx, borrowed; set by the
     * caller after hx_render_init), and a renderer's own state, released
     * by hx_render_free through ext_free. */
    void *ctx;
    void *ext;
    void (*ext_free)(void *ext);
};

/* model: the model name to report (the provider's model). */
void hx_render_init(hx_render *r, const hx_render_vt *vt, bool stream, bool include_usage, const char *model);
/* Records an event into the collected answer (id/model from META, text,
 * thinking, refusal, tools, finish, usage). 0 or -1 (no memory / too many
 * tool calls). */
int hx_render_collect(hx_render *r, const hx_event *ev);
/* Closes the open thinking block (text since think_mark) into r->thinking
 * with its signature (NULL: none was sent, "" is written). 0 or -1. */
int hx_render_close_thinking(hx_render *r, const char *sig, size_t siglen);
void hx_render_free(hx_render *r);

/* SSE framing helpers: "event: NAME\ndata: JSON\n\n" (name may be NULL). */
int hx_sse_frame(hx_buf *out, const char *event, const char *json, size_t len);

extern const hx_render_vt hx_render_openai_chat;   /* chat.completion / chunks */
extern const hx_render_vt hx_render_openai_legacy; /* text_completion (prompt form) */
extern const hx_render_vt hx_render_hapax;         /* {"content": "..."} */
extern const hx_render_vt hx_render_anthropic;     /* Messages API */

#endif
