/* The Anthropic error dialect: what /v1/messages (and count_tokens)
 * clients get for any error, so the Anthropic SDKs raise their own error
 * classes with a readable message. */
#ifndef HX_GATEWAY_ANTHROPIC_ERR_H
#define HX_GATEWAY_ANTHROPIC_ERR_H

#include "http/error.h"

/* {"type":"error","error":{"type":T,"message":M},"request_id":ID} and a
 * newline, T one of Anthropic's error types for e's status. An
 * hx_err_render_fn (same contract as hx_err_render). */
int hx_err_render_anthropic(hx_buf *out, hx_err e, const char *message, const char *request_id);

/* Anthropic's error type for an HTTP status ("invalid_request_error"...). */
const char *hx_anth_error_type(int status);

#endif
