/* The protocol-neutral request/response interface.
 *
 * An HTTP adapter (HTTP/1.1 today; HTTP/2 and HTTP/3 later) fills an
 * hx_req from the wire and implements hx_transport for the response. The
 * gateway sees only hx_req: it never knows which protocol carries it.
 *
 * Lifetime: the adapter creates the request with one reference. A handler
 * that finishes later (after a timer, an upstream reply) takes its own
 * reference with hx_req_ref and drops it with hx_req_unref when done. If the
 * client goes away first, the adapter marks the request aborted, calls the
 * abort callback once, and detaches: writes then fail with HX_RES_EGONE.
 *
 * Completion rule: response functions never call back synchronously. The
 * drain callback runs on a later loop turn once the client side has room. */
#ifndef HX_HTTP_REQUEST_H
#define HX_HTTP_REQUEST_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/error.h"
#include "util/buf.h"

/* The config is opaque here (config/config.h has it): a request holds a
 * reference and the HTTP layer reads its limits in request.c. */
typedef struct hx_config hx_config;
typedef struct hx_kv hx_kv;

#define HX_REQUEST_ID_MAX 128
/* hx_req.peer_cert_*: a verified client certificate's identity. */
#define HX_REQ_PEER_SHA256_HEX 64
#define HX_REQ_PEER_SUBJECT_MAX 255
/* Largest JSON error envelope hx_res_error sends; a longer message is
 * replaced by the error's default one. */
#define HX_RES_ERROR_MAX (16 * 1024)

typedef struct {
    char *name;
    char *value;
} hx_header;

typedef struct {
    hx_header *items;
    size_t n;
    size_t cap;
} hx_headers;

/* Returns the first value of `name` (case-insensitive), or NULL. */
const char *hx_headers_get(const hx_headers *h, const char *name);
/* Adds a header (copies both strings). Returns 0 or -1. */
int hx_headers_add(hx_headers *h, const char *name, const char *value);
int hx_headers_addn(hx_headers *h, const char *name, size_t nlen, const char *value, size_t vlen);
/* Replaces every value of `name` with one value (adds it when missing). */
int hx_headers_set(hx_headers *h, const char *name, const char *value);
void hx_headers_free(hx_headers *h);

typedef enum {
    HX_RES_OK = 0,
    HX_RES_BUSY = 1,      /* accepted, but the client side is full: wait for drain */
    HX_RES_EGONE = -1,    /* the client went away / the request was aborted */
    HX_RES_ESTATE = -2,   /* called in the wrong order (e.g. write after end) */
    HX_RES_ENOMEM = -3,
} hx_res_rc;

typedef struct hx_req hx_req;

/* Per-module context slots, as nginx's ngx_http_get_module_ctx: a module
 * (auth, the queue, the gateway...) keeps what it knows about a request
 * in its own slot, and the HTTP layer never sees those fields. The ids
 * belong to the application (src/middleware/ctx.h lists them); slot
 * HX_REQ_CTX_APP carries the worker's application context, which the
 * adapter copies from its worker.
 *
 * Storage costs nothing per request: hx_req_ctx_alloc carves a module's
 * struct from an area inside hx_req itself, which the per-thread request
 * pool already reuses and zeroes as it hands a request out. So no
 * malloc, no free, and a pooled request never shows the previous
 * request's context. A slot has no destructor: a module that must undo
 * something registers hx_req_on_finish. */
#define HX_REQ_CTX_SLOTS 5 /* at most 8: ctx_carved is a byte */
#define HX_REQ_CTX_BYTES 880
#define HX_REQ_CTX_APP 0

/* A middleware step or a handler. A step either answers the request
 * (hx_res_*) or calls hx_req_next exactly once, at once or later (after a
 * queue admission, a timer...). It never does both. */
typedef void (*hx_step_fn)(hx_req *r);
#define HX_REQ_MAX_STEPS 8

/* Runs when the request is finished (its last reference dropped), before
 * the done hook (hx_req_set_done_hook: the access-log line). */
typedef void (*hx_req_fin_fn)(hx_req *r, void *ud);
#define HX_REQ_MAX_FINS 4

/* What an adapter implements. `head` is called once with the status and the
 * final header list; content_length < 0 means the body is streamed. */
typedef void (*hx_req_cb)(hx_req *r, void *ud);

typedef struct {
    int (*head)(hx_req *r, int status, const hx_headers *h, int64_t content_length);
    int (*body)(hx_req *r, const void *data, size_t len);
    int (*end)(hx_req *r);
    void (*abort)(hx_req *r);
    /* Optional, for adapters that take TLS early data (0-RTT): calls cb
     * once the connection's handshake completed (the request can no longer
     * be a replay), or never when the connection ends first (the request
     * is then aborted). 0 held; -1 it cannot wait (the router answers 425). */
    int (*when_confirmed)(hx_req *r, hx_req_cb cb, void *ud);
} hx_transport;

struct hx_req {
    int refs;
    /* request, filled by the adapter */
    const char *method;          /* "GET", "POST", ... (static string) */
    char *path;                  /* decoded path, without query */
    char *query;                 /* raw query or NULL */
    hx_headers headers;
    hx_buf body;
    char peer_ip[48];
    int peer_port;
    /* A client certificate the transport verified (TLS with client_auth),
     * protocol-neutral: lower-case hex SHA-256 of its DER and its subject
     * DN; "" when none (or, for the subject, when longer than the bound:
     * never truncated, so it cannot match a shorter name). */
    char peer_cert_sha256[HX_REQ_PEER_SHA256_HEX + 1];
    char peer_cert_subject[HX_REQ_PEER_SUBJECT_MAX + 1];
    bool secure;                 /* arrived over TLS: the scheme is https */
    bool early_data;             /* arrived, in part at least, in TLS early data (0-RTT): it
                                  * may be a replay (RFC 8470; hx_router_dispatch decides) */
    int http_minor;              /* 0 or 1 for HTTP/1.x; adapters of other protocols set 1 */
    char request_id[HX_REQUEST_ID_MAX + 1];
    uint64_t start_ns;           /* monotonic */
    uint64_t head_ns;            /* when the response headers went out */
    uint64_t deadline_ns;        /* start + llm.request_timeout */
    hx_config *cfg;              /* reference held for the request's lifetime */
    void *loop;                  /* the uv_loop_t this request lives on */
    unsigned mw;                 /* the route's response-side options (HX_MW_*, http/router.h) */

    /* response state */
    hx_headers res_headers;
    int status;
    bool head_only;              /* HEAD: headers, no body */
    bool head_sent;
    bool ended;
    bool aborted;
    uint64_t bytes_in;
    uint64_t bytes_out;
    const char *error_code;      /* for the access log: code of the error sent */
    hx_err_render_fn err_render; /* the route's error dialect (NULL = OpenAI's envelope) */
    /* middleware chain (set by the router) */
    hx_step_fn steps[HX_REQ_MAX_STEPS];
    uint8_t nsteps;
    uint8_t step_pos;
    hx_step_fn handler;
    bool method_ok;              /* false: the route answers 405 after the chain */
    const char *route_label;     /* the route's configured path (bounded label) */
    const char *route_param;     /* the "{name}" segment of the path, or NULL */
    const char *allow;           /* Allow header of the route */
    const hx_kv *required;       /* the route's `headers`: each must be present with this value */
    size_t nrequired;
    struct {
        hx_req_fin_fn fn;
        void *ud;
    } fins[HX_REQ_MAX_FINS];
    uint8_t nfins;
    /* per-module context (hx_req_ctx): slot pointers and the inline area
     * hx_req_ctx_alloc carves them from */
    void *ctx[HX_REQ_CTX_SLOTS];
    uint16_t ctx_used;           /* bytes of ctx_mem carved */
    uint8_t ctx_carved;          /* slots (bit = id) pointing into ctx_mem */
    _Alignas(max_align_t) unsigned char ctx_mem[HX_REQ_CTX_BYTES];

    /* callbacks set by the handler */
    hx_req_cb on_abort;
    hx_req_cb on_drain;
    void *cb_ud;

    /* adapter */
    const hx_transport *tp;
    void *tp_ctx;
};

/* Creates a request (refs = 1). Returns NULL on allocation failure. */
hx_req *hx_req_new(const hx_transport *tp, void *tp_ctx, hx_config *cfg);
hx_req *hx_req_ref(hx_req *r);
/* Frees this thread's pool of finished requests (call as a thread ends). */
void hx_req_pool_drain(void);
void hx_req_unref(hx_req *r);

/* Runs the next middleware step of the request, or its handler once every
 * step has run (or the 405 answer when the route does not take the
 * method). */
void hx_req_next(hx_req *r);

/* Registers fn to run once when the request is finished. Returns 0, or -1
 * when HX_REQ_MAX_FINS are already registered. */
int hx_req_on_finish(hx_req *r, hx_req_fin_fn fn, void *ud);

/* The slot `id` (< HX_REQ_CTX_SLOTS), or NULL when nothing set it for
 * this request. */
static inline void *hx_req_ctx(const hx_req *r, unsigned id)
{
    return id < HX_REQ_CTX_SLOTS ? r->ctx[id] : NULL;
}
/* Points slot `id` at p (storage the caller owns, e.g. the worker's
 * application context). */
void hx_req_set_ctx(hx_req *r, unsigned id, void *p);
/* The slot's storage: `size` zeroed bytes from the request's inline area,
 * carved the first time and returned as is afterwards. NULL when id is
 * out of range, the slot was set with hx_req_set_ctx, or the area is full
 * (middleware/ctx.h gives each module a share that fits, checked at
 * compile time). */
void *hx_req_ctx_alloc(hx_req *r, unsigned id, size_t size);

/* The application's hook for every finished request, after its finish
 * callbacks and metrics: it writes the access-log line (the HTTP layer
 * knows no gateway field). Set once at start, before any worker serves;
 * NULL (the default) writes nothing. */
typedef void (*hx_req_done_fn)(hx_req *r);
void hx_req_set_done_hook(hx_req_done_fn fn);

/* Called by the adapter when the client is gone: marks the request
 * aborted, detaches the transport and runs on_abort once. */
void hx_req_abort(hx_req *r);

/* Sets the request id: keeps a valid incoming X-Request-ID (1..128 chars of
 * [A-Za-z0-9._:-]) when `trust_incoming`, else makes a UUIDv4. */
void hx_req_assign_id(hx_req *r, bool trust_incoming);

/* Response side. Headers set before hx_res_start/hx_res_send are sent. */
int hx_res_header(hx_req *r, const char *name, const char *value);
/* Starts a streamed response (chunked on HTTP/1.1). */
int hx_res_start(hx_req *r, int status);
/* Writes a body chunk; HX_RES_BUSY means "stop producing until on_drain". */
int hx_res_write(hx_req *r, const void *data, size_t len);
int hx_res_end(hx_req *r);
/* A complete response with a known body. */
int hx_res_send(hx_req *r, int status, const char *content_type, const void *body, size_t len);
/* The JSON error envelope for `e` (message NULL = default). */
int hx_res_error(hx_req *r, hx_err e, const char *message);

/* Monotonic clock in nanoseconds. */
uint64_t hx_now_ns(void);

#endif
