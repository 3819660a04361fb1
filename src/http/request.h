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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "http/error.h"
#include "util/buf.h"

#define HX_REQUEST_ID_MAX 128
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

/* Which per-request middleware a route runs (server.middleware or the
 * route's own list). */
enum {
    HX_MW_REQUEST_ID = 1u << 0,
    HX_MW_REQUEST_TIMER = 1u << 1,
    HX_MW_PANIC_RECOVERY = 1u << 2,
    HX_MW_LOGGING = 1u << 3,
};

typedef struct hx_req hx_req;

/* A middleware step or a handler. A step either answers the request
 * (hx_res_*) or calls hx_req_next exactly once, at once or later (after a
 * queue admission, a timer...). It never does both. */
typedef void (*hx_step_fn)(hx_req *r);
#define HX_REQ_MAX_STEPS 8

/* Runs when the request is finished (its last reference dropped), before
 * the access log line is written. */
typedef void (*hx_req_fin_fn)(hx_req *r, void *ud);
#define HX_REQ_MAX_FINS 4

/* What an adapter implements. `head` is called once with the status and the
 * final header list; content_length < 0 means the body is streamed. */
typedef struct {
    int (*head)(hx_req *r, int status, const hx_headers *h, int64_t content_length);
    int (*body)(hx_req *r, const void *data, size_t len);
    int (*end)(hx_req *r);
    void (*abort)(hx_req *r);
} hx_transport;

typedef void (*hx_req_cb)(hx_req *r, void *ud);

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
    int http_minor;              /* 0 or 1 for HTTP/1.x; adapters of other protocols set 1 */
    char request_id[HX_REQUEST_ID_MAX + 1];
    uint64_t start_ns;           /* monotonic */
    uint64_t head_ns;            /* when the response headers went out */
    uint64_t deadline_ns;        /* start + llm.request_timeout */
    hx_config *cfg;              /* reference held for the request's lifetime */
    void *loop;                  /* the uv_loop_t this request lives on */
    unsigned mw;                 /* HX_MW_* of the matched route */

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
    /* set by the gateway for the access log */
    char log_provider[64];
    char log_model[128];
    int log_attempts;
    int64_t log_prompt_tokens;
    int64_t log_completion_tokens;
    char log_failures[512];      /* why earlier providers did not serve */
    void *app;                   /* the worker's application context */

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
    /* set by middleware */
    char client_ip[48];          /* peer, or X-Forwarded-For from a trusted proxy */
    const hx_cfg_auth_key *auth_key; /* the client key that authenticated (in r->cfg) */
    char key_name[64];           /* its name, for logs and metrics */
    uint64_t queue_wait_ns;      /* time spent waiting in the queue */
    bool queued;                 /* holds a queue slot */
    bool queue_admitted;         /* went through the queue (for the access log) */

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
