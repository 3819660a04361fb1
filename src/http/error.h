/* Errors as values: one enum, one table, one place that turns an error
 * into an HTTP status and the JSON envelope OpenAI SDKs understand:
 *   {"error":{"message":"...","type":"...","code":"...","request_id":"..."}} */
#ifndef HX_HTTP_ERROR_H
#define HX_HTTP_ERROR_H

#include <stddef.h>

#include "util/buf.h"

typedef enum {
    HX_ERR_BAD_REQUEST = 0,     /* 400 malformed_request */
    HX_ERR_INVALID_REQUEST,     /* 400 invalid_request (well-formed HTTP, bad content) */
    HX_ERR_UNAUTHORIZED,        /* 401 */
    HX_ERR_FORBIDDEN,           /* 403 */
    HX_ERR_NOT_FOUND,           /* 404 */
    HX_ERR_MODEL_NOT_FOUND,     /* 404 model_not_found */
    HX_ERR_METHOD_NOT_ALLOWED,  /* 405 */
    HX_ERR_REQUEST_TIMEOUT,     /* 408 */
    HX_ERR_BODY_TOO_LARGE,      /* 413 */
    HX_ERR_UNSUPPORTED_MEDIA,   /* 415 */
    HX_ERR_RATE_LIMITED,        /* 429 */
    HX_ERR_HEADERS_TOO_LARGE,   /* 431 */
    HX_ERR_INTERNAL,            /* 500 */
    HX_ERR_NOT_IMPLEMENTED,     /* 501 */
    HX_ERR_BAD_GATEWAY,         /* 502 */
    HX_ERR_UNAVAILABLE,         /* 503 */
    HX_ERR_TOO_MANY_CONNECTIONS,/* 503 */
    HX_ERR_SHUTTING_DOWN,       /* 503 */
    HX_ERR_QUEUE_FULL,          /* 503 queue_full: no room to wait */
    HX_ERR_QUEUE_TIMEOUT,       /* 503 queue_timeout: waited max_wait */
    HX_ERR_OVERLOADED,          /* 503 overloaded: load shedding (server.health_check) */
    HX_ERR_GATEWAY_TIMEOUT,     /* 504 */
    HX_ERR_HTTP_VERSION,        /* 505 */
    /* A provider's own errors, their meaning kept (type and code as the
     * provider's API names them): */
    HX_ERR_INSUFFICIENT_QUOTA,  /* 429 insufficient_quota: billing, not throttling */
    HX_ERR_CONTEXT_LENGTH,      /* 400 context_length_exceeded */
    HX_ERR_CONTENT_POLICY,      /* 400 content_policy_violation */
    HX_ERR_TOO_EARLY,           /* 425: arrived in TLS early data, not safe to replay (RFC 8470) */
    HX_ERR__COUNT
} hx_err;

typedef struct {
    int status;
    const char *type;    /* OpenAI-style error type */
    const char *code;    /* stable machine-readable code */
    const char *message; /* default message */
} hx_err_info;

const hx_err_info *hx_err_get(hx_err e);

/* Appends the JSON envelope (and a trailing newline) to out. `message`
 * NULL uses the default. Returns 0 or -1 (out of memory). */
int hx_err_render(hx_buf *out, hx_err e, const char *message, const char *request_id);

/* An error dialect: writes the error body a route's clients understand
 * (hx_err_render is OpenAI's; the application adds others, e.g.
 * Anthropic's). Same contract as hx_err_render. */
typedef int (*hx_err_render_fn)(hx_buf *out, hx_err e, const char *message, const char *request_id);

/* The reason phrase for a status code ("Not Found"). */
const char *hx_http_reason(int status);

#endif
