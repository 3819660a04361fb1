/* Inbound APIs: each parses its request body into the canonical request
 * (OpenAI Chat Completions shape, see provider/adapter.h) and says how the
 * answer must be rendered. */
#ifndef HX_GATEWAY_INBOUND_H
#define HX_GATEWAY_INBOUND_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "gateway/render.h"
#include "provider/adapter.h"

/* A string an inbound parser builds from parts of the body (joined text
 * blocks, an image data URL, tool input as JSON text): never much longer
 * than the body, which server.max_body_bytes caps at 1 GiB (json-c may
 * escape '/' as "\/", hence twice that). */
#define HX_IN_FIELD_MAX ((size_t)2 << 30)

typedef struct {
    hx_api api;           /* the API the client called (set by the handler) */
    bool stream;          /* the client asked for a streamed answer */
    bool include_usage;   /* usage in the stream (OpenAI stream_options) */
    char model[256];      /* model the client named ("" = default chain) */
    const hx_render_vt *render;
    /* Why this request has no canonical form ("" = it has one): only a
     * provider speaking the client's API natively can serve it, any other
     * refuses it (chain.c:build_request). The Anthropic parser names the
     * first member with no canonical meaning (a server tool, a container...;
     * the refusal adds the provider); the Responses API writes the whole
     * reason (an id the store does not know...). */
    char no_canon[256];
    /* The inbound API's own state for its renderer (the Responses API's
     * hx_resp_ctx), owned: freed with ctx_free when the request ends. */
    void *ctx;
    void (*ctx_free)(void *ctx);
    bool native_off;      /* never relay the body natively (it refers to gateway state) */
} hx_in_info;

/* The model the client named, into info->model, under one rule for every
 * API: absent or null is "" (the default chain) unless required; anything
 * but a string, a name that does not fit info->model and a name holding NUL
 * are refused (-1, the reason naming `model` in err); so is "" when required. */
int hx_in_read_model(json_object *body, bool required, hx_in_info *info, char *err, size_t errlen);

/* Each returns 0 and a new canonical object in *canon (caller puts it), or
 * -1 with a client-facing message in err (→ 400 invalid_request_error).
 * `body` is borrowed. */
int hx_in_openai_chat(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen);
/* The common case of an OpenAI chat body, read from its text without
 * building objects: returns 1 with *info filled when the body is a plain,
 * valid chat request (what hx_in_openai_chat would accept), 0 when the full
 * parse must decide (anything unusual: escapes in the members read, odd
 * types, invalid requests). The canonical object can be built later from
 * the same text. */
int hx_in_openai_chat_scan(const char *body, size_t len, hx_in_info *info);
int hx_in_completions(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen);
int hx_in_anthropic(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen);
/* A canonical text part {"type":"text","text":TEXT} (a new object holding
 * a reference to text), or NULL (no memory). */
json_object *hx_in_text_part(json_object *text);

/* APIs without a canonical form (embeddings_in.c): the body is checked
 * and *canon is the body itself (a new reference), which translating
 * adapters build from. */
/* Inputs of one embeddings request (OpenAI's own limit). */
#define HX_EMBED_INPUTS_MAX 2048
int hx_in_embeddings(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen);
int hx_in_count_tokens(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen);

#endif
