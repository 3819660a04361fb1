/* The canonical response stream.
 *
 * Every upstream answer (OpenAI JSON or SSE, Anthropic JSON or SSE, Ollama
 * JSON or NDJSON) is translated into this sequence of events, and every
 * inbound API (OpenAI chat, Hapax completions, Anthropic messages) renders
 * the same sequence back in its own format: N + M translators, not N x M.
 *
 * Order: META once (may be skipped), then any mix of TEXT / THINKING /
 * THINKING_SIGNATURE / REDACTED_THINKING / REFUSAL / TOOL_CALL / TOOL_ARGS,
 * then FINISH, then USAGE (optional), then nothing. ERROR may come at any
 * point and ends the stream. Strings are borrowed: valid only during the
 * sink call; a sink that keeps them copies them.
 *
 * Token counts follow OpenAI's meaning: prompt_tokens is every input token
 * (cached or not); cache_read_tokens and cache_write_tokens are the parts
 * of it read from / written to the provider's prompt cache (Anthropic's
 * input_tokens = prompt - cache_read - cache_write); reasoning_tokens is
 * the part of completion_tokens spent thinking. 0 = not reported. */
#ifndef HX_PROVIDER_EVENT_H
#define HX_PROVIDER_EVENT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    HX_EV_META,      /* id (may be NULL), name = model (may be NULL); the
                        token fields when the upstream reports its input up
                        front (Anthropic message_start), else 0 */
    HX_EV_TEXT,      /* text/len: assistant text delta */
    HX_EV_THINKING,  /* text/len: reasoning text delta (Anthropic thinking,
                        OpenAI-compatible reasoning_content, Ollama thinking) */
    HX_EV_THINKING_SIGNATURE, /* text/len: the signature of the thinking block */
    HX_EV_REDACTED_THINKING,  /* text/len: an opaque redacted_thinking block's data */
    HX_EV_REFUSAL,   /* text/len: refusal text delta (OpenAI message.refusal) */
    HX_EV_TOOL_CALL, /* index: tool call index; id; name: function name */
    HX_EV_TOOL_ARGS, /* index; text/len: a fragment of the arguments JSON */
    HX_EV_FINISH,    /* finish: "stop" | "length" | "tool_calls" | "content_filter";
                        text/len: the stop sequence that ended it (NULL = none) */
    HX_EV_USAGE,     /* the token fields below */
    HX_EV_ERROR,     /* text/len: message (the upstream broke the stream) */
} hx_ev_type;

typedef struct {
    hx_ev_type type;
    int index;
    const char *text;
    size_t len;
    const char *id;
    const char *name;
    const char *finish;
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t cache_read_tokens;
    int64_t cache_write_tokens;
    int64_t reasoning_tokens;
} hx_event;

/* Receives events; returns 0, or -1 to stop the producer (out of memory,
 * client gone). */
typedef int (*hx_event_sink)(void *ud, const hx_event *ev);

#endif
