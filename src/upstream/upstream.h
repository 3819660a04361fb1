/* Upstream HTTP calls: libcurl's multi_socket interface driven by a worker's
 * uv loop. One hx_upstream per loop; easy handles are pooled; connections
 * are reused per host (HTTP/2 where the upstream offers it over TLS);
 * TLS is verified; the standard proxy variables (https_proxy, no_proxy, ...)
 * are honoured by libcurl.
 *
 * Callback rules:
 *  - on_head runs once, before any on_data, with the final status and the
 *    response headers callers use (Retry-After, Content-Type, X-Request-ID).
 *  - on_data may return HX_UP_PAUSE: no more data until hx_up_call_resume.
 *  - on_done runs exactly once unless the call was cancelled, on a clean
 *    stack (never inside a libcurl callback), so it may start a new call.
 *  - hx_up_call_cancel never calls back; the call is gone when it returns. */
#ifndef HX_UPSTREAM_UPSTREAM_H
#define HX_UPSTREAM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/request.h"

typedef struct hx_upstream hx_upstream;
typedef struct hx_up_call hx_up_call;

typedef enum {
    HX_UP_OK = 0,
    HX_UP_CONNECT_TIMEOUT,
    HX_UP_FIRST_BYTE_TIMEOUT, /* the whole request was sent, no answer came in time
                               * (before the send completed: HX_UP_CONNECT_TIMEOUT) */
    HX_UP_TIMEOUT,          /* whole request deadline */
    HX_UP_CONNECT_ERROR,    /* refused, unreachable, DNS */
    HX_UP_RESET,            /* connection broken before the request was fully sent,
                             * or after the answer's head */
    HX_UP_TLS_ERROR,
    HX_UP_PROTOCOL_ERROR,   /* malformed HTTP from the upstream */
    HX_UP_ABORTED,          /* on_data asked to stop */
    HX_UP_NOMEM,
    HX_UP_OTHER,
    HX_UP_IDLE_TIMEOUT,     /* nothing between body bytes for idle_timeout_ms */
    HX_UP_RESET_AFTER_SEND, /* the whole request was sent, then the connection broke
                             * (reset or closed) before any answer */
} hx_up_result;

enum { HX_UP_CONTINUE = 0, HX_UP_PAUSE = 1, HX_UP_STOP = -1 };

typedef struct {
    void (*on_head)(void *ud, int status, const hx_headers *headers);
    int (*on_data)(void *ud, const char *data, size_t len);
    void (*on_done)(void *ud, hx_up_result res, const char *detail);
} hx_up_callbacks;

typedef struct {
    int64_t connect_timeout_ms;    /* 0 = libcurl default */
    int64_t first_byte_timeout_ms; /* 0 = none */
    int64_t total_timeout_ms;      /* 0 = none */
    int64_t idle_timeout_ms;       /* after the head, the longest gap between
                                    * body bytes; not counted while paused
                                    * (0 = none) */
} hx_up_opts;

/* Creates the client for `loop`. NULL on failure. */
hx_upstream *hx_upstream_new(uv_loop_t *loop);
/* Cancels every call (no callbacks) and closes handles; the memory is
 * released once the loop has run the close callbacks. */
void hx_upstream_free(hx_upstream *up);

/* Starts a call. The method, URL, headers and body are copied. Returns NULL
 * (and never calls back) when it cannot start. */
hx_up_call *hx_upstream_start(hx_upstream *up, const char *method, const char *url,
                              const hx_headers *headers, const void *body, size_t len,
                              const hx_up_opts *opts, const hx_up_callbacks *cb, void *ud);
void hx_up_call_cancel(hx_up_call *c);
void hx_up_call_resume(hx_up_call *c);

const char *hx_up_result_str(hx_up_result r);

/* What a loop's client holds now: libcurl multi handles opened (calls
 * spread over them under load), easy handles pooled for reuse, calls
 * running. */
typedef struct {
    int multis;
    int pooled;
    int calls;
} hx_upstream_stats;
void hx_upstream_get_stats(const hx_upstream *up, hx_upstream_stats *st);
/* Gives back the pooled easy handles no call took since the previous trim,
 * down to a floor; a timer runs it every 10 s. */
void hx_upstream_trim(hx_upstream *up);
/* Whether plain http:// calls to an IP literal or localhost go through
 * hapax's own HTTP/1.1 client (the default) or libcurl; tests run both. */
void hx_upstream_own_client(hx_upstream *up, bool on);

/* Process-wide libcurl initialisation; call once before any thread starts. */
int hx_upstream_global_init(void);

#endif
