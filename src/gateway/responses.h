/* The OpenAI Responses API (POST /v1/responses, GET and DELETE
 * /v1/responses/{id}) over every provider: the request becomes the
 * canonical chat request (responses_in.c), the canonical answer becomes a
 * Response object or its stream events (render_responses.c), and completed
 * responses are kept for previous_response_id (state/responses_store.h). */
#ifndef HX_GATEWAY_RESPONSES_H
#define HX_GATEWAY_RESPONSES_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "gateway/inbound.h"
#include "http/request.h"
#include "state/responses_store.h"
#include "util/buf.h"

/* Bounds: the members of a Response that echo the request (instructions,
 * tools, metadata...) and the stored conversation are never much larger
 * than the request body or the stored entries (llm.responses.max_bytes). */
#define HX_RESP_ECHO_MAX ((size_t)2 << 30)
#define HX_RESP_CONV_MAX ((size_t)2 << 30)

/* item_reference items naming an assistant message of the store (clients
 * that store, like the Vercel AI SDK, send those instead of the text). */
#define HX_RESP_MAX_REFS 64

typedef struct {
    char id[64];               /* msg_<hex> of a stored response resp_<hex> */
    size_t item;               /* its position in `input` (for messages) */
    size_t index;              /* the placeholder's position among the input's canonical messages */
} hx_resp_ref;

/* One Responses request, from its parse to its stored answer: owned by
 * the request (hx_in_info.ctx, freed by hx_resp_ctx_free). */
typedef struct hx_resp_ctx {
    char id[64];               /* resp_<hex>, also the stored id */
    int64_t created_at;        /* unix seconds */
    bool store;                /* `store` (default true) */
    char *owner;               /* the client key's name ("" with auth off) */
    char *prev_id;             /* previous_response_id (NULL = none) */
    bool instructions;         /* the canonical messages begin with the instructions */
    hx_buf echo;               /* `"instructions":...,"tools":...` members of every Response object */
    hx_buf input;              /* this request's input as canonical messages, a JSON array text */
    hx_buf prefix;             /* the stored conversation of prev_id (JSON array text, "" = none) */
    hx_resp_store *st;         /* where a completed response goes (NULL = nowhere) */
    char canon_err[256];       /* why the canonical form failed ("" = it did not) */
    hx_resp_ref refs[HX_RESP_MAX_REFS];
    int nrefs;
    size_t ninput;             /* canonical messages made from `input` */
} hx_resp_ctx;

void hx_resp_ctx_free(void *ctx);

/* The inbound parser (inbound_fn shape): canonical request in *canon and
 * info->ctx = a new hx_resp_ctx. Every member of the request is carried or
 * refused by name. Returns -1 (err) when the body is no Responses request
 * at all (model, stream, store, previous_response_id); 0 with *canon NULL
 * and the reason in ctx->canon_err when only the canonical form cannot
 * carry it (a built-in tool): a native provider may still take the body. */
int hx_in_responses(json_object *body, json_object **canon, hx_in_info *info, char *err, size_t errlen);

/* Prepends the stored conversation (a JSON array of canonical messages)
 * to canon's messages, after its instructions. 0 or -1 (malformed, no
 * memory). */
int hx_resp_splice(json_object *canon, hx_resp_ctx *rx, const char *conv, size_t len);

/* Fills the placeholder of ref with the text of the stored response's
 * message item (response: a stored Response object), then, once every
 * reference is filled, hx_resp_input_refresh rewrites rx->input. 0, 1 (no
 * such message in that response) or -1 (malformed, no memory). */
int hx_resp_fill_ref(json_object *canon, const hx_resp_ctx *rx, const hx_resp_ref *ref, const char *response,
                     size_t len);
int hx_resp_input_refresh(json_object *canon, hx_resp_ctx *rx);

/* A completed response: stores it (when rx->store) with the conversation
 * it ends. `response` is the Response object text; out_msg the assistant's
 * canonical message text ({"role":"assistant",...}). Best effort. */
void hx_resp_save(hx_resp_ctx *rx, const char *response, size_t rlen, const char *out_msg, size_t mlen);

/* The process's responses store (llm.responses limits of cfg, applied on
 * each call so a reload takes effect). NULL when it cannot be made. */
struct hx_config;
hx_resp_store *hx_responses_store(const struct hx_config *cfg);

/* After the parse (handlers.c): looks up previous_response_id, then sends
 * the request along the chain. Takes canon and info->ctx. */
void hx_responses_start(hx_req *r, json_object *canon, hx_in_info *info);
/* GET / DELETE /v1/responses/{id}. */
void hx_responses_by_id(hx_req *r);
/* Whether a provider of the request's chain speaks the Responses API
 * natively (the client's body may go to it as it is): 1 yes, 0 no, -1 out
 * of memory. */
int hx_responses_native_chain(hx_req *r, const hx_in_info *info);

/* The Responses API's error body: OpenAI's envelope with `param` (the
 * member the message begins with, or null). hx_err_render's contract. */
int hx_resp_err_render(hx_buf *out, hx_err e, const char *message, const char *request_id);

/* The store's gauges for /metrics (a hx_metrics_collect_fn). */
struct hx_metrics_writer;
void hx_responses_collect(struct hx_metrics_writer *w, void *ud);

extern const hx_render_vt hx_render_responses;

#endif
