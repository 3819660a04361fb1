/* Provider adapters: one per upstream wire format (openai, anthropic,
 * ollama), one interface.
 *
 * The canonical request is a json-c object in the OpenAI Chat Completions
 * shape (model, messages[{role, content (string or parts), name,
 * tool_calls, tool_call_id}], stream, stream_options, max_tokens /
 * max_completion_tokens, temperature, top_p, stop, tools, tool_choice, n,
 * seed, presence_penalty, frequency_penalty, user, response_format, ...).
 * An adapter builds its upstream request from it and turns the upstream's
 * answer into canonical events (provider/event.h), one chunk at a time. */
#ifndef HX_PROVIDER_ADAPTER_H
#define HX_PROVIDER_ADAPTER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"
#include "provider/event.h"
#include "util/buf.h"

typedef struct hx_provider hx_provider;

/* The client APIs hapax serves. Chat, completions, messages and responses
 * have a canonical form (the Chat Completions shape); embeddings and
 * count_tokens go only to providers that serve them. */
typedef enum {
    HX_API_CHAT = 0,      /* OpenAI Chat Completions */
    HX_API_COMPLETIONS,   /* OpenAI legacy completions / the Hapax shape */
    HX_API_MESSAGES,      /* Anthropic Messages */
    HX_API_RESPONSES,     /* OpenAI Responses */
    HX_API_EMBEDDINGS,    /* OpenAI embeddings */
    HX_API_COUNT_TOKENS,  /* Anthropic messages/count_tokens */
    HX_API__COUNT
} hx_api;

/* "chat", "messages"... for messages and logs. */
const char *hx_api_name(hx_api api);

/* What a relayed answer (same wire format both sides) told the gateway. */
typedef struct {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    bool usage_seen;
    bool done;       /* the stream's final event was seen */
    bool want_usage; /* chat: the client asked for the usage chunk */
    char err[160];   /* why the answer is malformed, or the upstream's stream error */
} hx_relay;

/* An upstream HTTP request, owned by whoever filled it
 * (hx_up_request_free releases it). */
typedef struct {
    char *url;
    const char *method; /* static string: "POST", "GET" */
    hx_headers headers;
    hx_buf body;
} hx_up_request;

void hx_up_request_init(hx_up_request *r);
void hx_up_request_free(hx_up_request *r);

/* How an adapter speaks one client API natively: the client's body goes
 * up with only its model replaced, and the answer comes back as it is. */
typedef struct {
    const char *path; /* appended to the provider's base URL: "chat/completions" */
    /* The upstream request from the client's own body (r->body), `model`
     * replacing its "model" at text level (numbers and unknown members
     * untouched), with the client headers this API forwards. Returns 0, or
     * -1 with a reason in err when the body may not go as it is (then the
     * canonical build is used, when the API has one). */
    int (*build)(const hx_provider *p, const char *model, const hx_req *r, bool stream, hx_up_request *out,
                 char *err, size_t errlen);
    /* One event of a relayed stream (event = its "event:" name, "" = none):
     * 0 pass it on as it is, 1 drop it, -1 fail (rl->err). Sets rl->done on
     * the final event and fills the usage. */
    int (*stream_event)(hx_relay *rl, const char *event, const char *data, size_t len);
    /* Written after a complete relayed stream ("data: [DONE]\n\n"), or NULL. */
    const char *stream_end;
    /* A whole non-streamed 2xx answer: 0 (usage filled) or -1 (rl->err). */
    int (*body)(hx_relay *rl, const char *data, size_t len);
} hx_native;

typedef struct hx_adapter {
    const char *name;             /* "openai" | "anthropic" | "ollama" */
    const char *default_endpoint; /* base URL used when `endpoint` is empty */
    bool key_required;            /* with the default endpoint */

    /* Builds the chat request for provider p (p->model is the model to ask
     * for; it replaces the canonical "model"). `stream` says whether the
     * client asked for a stream. Returns 0, or -1 with a message in err
     * (the canonical request cannot be expressed for this provider, or out
     * of memory). */
    int (*build_chat)(const hx_provider *p, json_object *canon, bool stream, hx_up_request *out,
                      char *err, size_t errlen);
    /* The client APIs this wire format serves natively (NULL = through
     * the canonical request, or not at all). */
    const hx_native *native[HX_API__COUNT];
    /* The cheapest request that proves the provider answers (model list;
     * Ollama /api/tags). Never spends tokens. */
    int (*build_probe)(const hx_provider *p, hx_up_request *out);

    /* Response parser for one upstream answer with a 2xx status. */
    void *(*parser_new)(bool stream);
    /* Feeds body bytes; emits events. Returns 0, or -1 when the body is
     * malformed (parser_error tells why) or the sink stopped. */
    int (*parser_feed)(void *ps, const char *data, size_t len, hx_event_sink sink, void *ud);
    /* End of body: a non-streamed answer is parsed here; a stream that ends
     * without its final event is an error (-1). */
    int (*parser_end)(void *ps, hx_event_sink sink, void *ud);
    const char *(*parser_error)(void *ps);
    void (*parser_free)(void *ps);

    /* Human-readable message from an upstream error body (any status >= 400),
     * written to out; falls back to a short excerpt. Never includes keys. */
    void (*error_message)(const char *body, size_t len, char *out, size_t outlen);
} hx_adapter;

extern const hx_adapter hx_adapter_openai;
extern const hx_adapter hx_adapter_anthropic;
extern const hx_adapter hx_adapter_ollama;

/* The adapter for a `provider:` name, or NULL. */
const hx_adapter *hx_adapter_find(const char *name);

/* Bound of an upstream's Authorization value built from an api_key. */
#define HX_PROVIDER_AUTH_MAX (16 * 1024)
/* Bound of text gathered from one message or answer (the request and the
 * answer bodies are bounded more tightly already). */
#define HX_PROVIDER_TEXT_MAX (64 * 1024 * 1024)
/* Bound of an upstream request body and of the client text it carries: the
 * client body is at most server.max_body_bytes (1 GB), and re-encoding it
 * (escapes, added members) stays well inside this. */
#define HX_UP_REQUEST_BODY_MAX ((size_t)4 << 30)

/* Helpers shared by adapters (adapter.c). */
/* Joins base URL and path with exactly one '/' between them. */
char *hx_url_join(const char *base, const char *path);
/* Text of a message "content" that may be a string or an array of parts
 * ({"type":"text","text":...}); other parts are skipped. Appends to out. */
int hx_content_text(json_object *content, hx_buf *out);
/* The client's body (r->body, a validated JSON object) with `model` as its
 * top-level "model", appended to out. 0, or -1 (see hx_json_replace_member:
 * the caller then rebuilds the body from the canonical request). */
int hx_native_body(const hx_req *r, const char *model, hx_buf *out);
/* Serialises compactly (no slash escaping) and appends to out. */
int hx_json_append(hx_buf *out, json_object *o);

#endif
