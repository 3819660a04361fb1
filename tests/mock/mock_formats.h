/* Wire formats of the mock LLM provider: OpenAI, Anthropic and Ollama.
 *
 * A request body is turned into an mf_reply (model, deterministic reply
 * text, usage numbers, optional tool call). The reply is then rendered
 * either whole (mf_render_full) or as a sequence of stream events
 * (mf_stream_next), one SSE event / NDJSON line per call, so the server can
 * pace, delay or cut the stream between events. */
#ifndef MOCK_FORMATS_H
#define MOCK_FORMATS_H

#include <stddef.h>

#include <json-c/json.h>

/* Growable byte buffer; aborts on out-of-memory (this is a test tool). */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} mbuf;

void mbuf_reserve(mbuf *b, size_t extra);
void mbuf_add(mbuf *b, const void *p, size_t n);
void mbuf_str(mbuf *b, const char *s);
void mbuf_fmt(mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted, escaped JSON string. */
void mbuf_jstr(mbuf *b, const char *s, size_t n);
/* Makes data a C string without counting the NUL in len. */
void mbuf_cstr(mbuf *b);
void mbuf_free(mbuf *b);

typedef enum { FAM_OPENAI, FAM_ANTHROPIC, FAM_OLLAMA } mf_family;

typedef enum {
    EP_OAI_CHAT,        /* POST /v1/chat/completions */
    EP_OAI_COMPLETIONS, /* POST /v1/completions */
    EP_ANTHROPIC,       /* POST /v1/messages */
    EP_OLLAMA_CHAT      /* POST /api/chat */
} mf_endpoint;

typedef struct {
    mf_endpoint ep;
    char *model;
    char *text;        /* full content text (reply words + padding) */
    size_t text_len;
    size_t nwords;     /* words in text */
    size_t nchunks;    /* content chunks of a text stream */
    int bytewise;      /* chunks cut by bytes (huge), not by words */
    char *tool;        /* name of the tool to call, or NULL */
    int include_usage; /* OpenAI stream_options.include_usage */
    long prompt_tokens;
    long completion_tokens;
    unsigned long id;
    long long created;    /* unix seconds */
    long long start_ns;   /* realtime ns at init (Ollama durations) */
    /* stream cursor */
    size_t step;  /* next event index */
    size_t chunk; /* next content chunk index */
    size_t pos;   /* byte offset of the next chunk in text */
    size_t word;  /* word index at pos */
    int malformed; /* 1: cut the stream with a bad event after chunk 1 */
} mf_reply;

mf_family mf_family_of(mf_endpoint ep);

/* Fills r from a parsed request body. nchunks >= 1; huge != 0 makes the
 * content 8 MiB. Returns 0, or -1 with *err set (the body is invalid). */
int mf_reply_init(mf_reply *r, mf_endpoint ep, json_object *body, size_t nchunks,
                  int huge, unsigned long id, const char **err);
void mf_reply_free(mf_reply *r);

/* Whether the request asks for a stream (Ollama: default true). */
int mf_wants_stream(mf_endpoint ep, json_object *body);

void mf_render_full(const mf_reply *r, mbuf *out);

const char *mf_stream_ctype(mf_endpoint ep);
/* Appends the next stream event; returns 0 when the stream is over (nothing
 * appended). */
int mf_stream_next(mf_reply *r, mbuf *out);
/* Whether the next event is a content event (text or tool-call delta). */
int mf_stream_at_content(const mf_reply *r);
/* Content events emitted so far. */
size_t mf_stream_content_sent(const mf_reply *r);

void mf_render_error(mf_family fam, int status, const char *msg, mbuf *out);
void mf_render_models(mf_family fam, mbuf *out);
void mf_render_tags(mbuf *out);

#define MF_MALFORMED_JSON "{\"id\": \"x\", \"choices\": [ {\"message\": "

#endif
