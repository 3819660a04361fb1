#include "http/error.h"

#include <json-c/json.h>

static const hx_err_info table[HX_ERR__COUNT] = {
    [HX_ERR_BAD_REQUEST] = {400, "invalid_request_error", "malformed_request", "The request is not valid HTTP."},
    [HX_ERR_INVALID_REQUEST] = {400, "invalid_request_error", "invalid_request", "The request is invalid."},
    [HX_ERR_UNAUTHORIZED] = {401, "authentication_error", "invalid_api_key", "A valid API key is required."},
    [HX_ERR_FORBIDDEN] = {403, "permission_error", "forbidden", "This key may not use this resource."},
    [HX_ERR_NOT_FOUND] = {404, "invalid_request_error", "not_found", "No route matches this path."},
    [HX_ERR_MODEL_NOT_FOUND] = {404, "invalid_request_error", "model_not_found", "The model is not served by this gateway."},
    [HX_ERR_METHOD_NOT_ALLOWED] = {405, "invalid_request_error", "method_not_allowed", "This method is not allowed on this path."},
    [HX_ERR_REQUEST_TIMEOUT] = {408, "invalid_request_error", "request_timeout", "The request was not received within the read timeout."},
    [HX_ERR_BODY_TOO_LARGE] = {413, "invalid_request_error", "body_too_large", "The request body is larger than the server accepts."},
    [HX_ERR_UNSUPPORTED_MEDIA] = {415, "invalid_request_error", "unsupported_media_type", "The request body must be JSON."},
    [HX_ERR_RATE_LIMITED] = {429, "rate_limit_error", "rate_limit_exceeded", "Rate limit exceeded."},
    [HX_ERR_HEADERS_TOO_LARGE] = {431, "invalid_request_error", "headers_too_large", "The request headers are larger than the server accepts."},
    [HX_ERR_INTERNAL] = {500, "api_error", "internal_error", "An internal error occurred."},
    [HX_ERR_NOT_IMPLEMENTED] = {501, "api_error", "not_implemented", "This handler is not available in this build."},
    [HX_ERR_BAD_GATEWAY] = {502, "api_error", "bad_gateway", "The upstream provider could not be reached."},
    [HX_ERR_UNAVAILABLE] = {503, "api_error", "service_unavailable", "The service is unavailable."},
    [HX_ERR_TOO_MANY_CONNECTIONS] = {503, "api_error", "too_many_connections", "The server is at its connection limit."},
    [HX_ERR_SHUTTING_DOWN] = {503, "api_error", "shutting_down", "The server is shutting down."},
    [HX_ERR_QUEUE_FULL] = {503, "api_error", "queue_full", "The server is at capacity and its request queue is full."},
    [HX_ERR_QUEUE_TIMEOUT] = {503, "api_error", "queue_timeout", "The request waited too long in the queue."},
    [HX_ERR_OVERLOADED] = {503, "api_error", "overloaded", "The server is overloaded; retry later."},
    [HX_ERR_GATEWAY_TIMEOUT] = {504, "timeout_error", "gateway_timeout", "The upstream provider did not answer in time."},
    [HX_ERR_HTTP_VERSION] = {505, "invalid_request_error", "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are served on this port."},
    [HX_ERR_INSUFFICIENT_QUOTA] = {429, "insufficient_quota", "insufficient_quota", "The provider's quota is exhausted."},
    [HX_ERR_CONTEXT_LENGTH] = {400, "invalid_request_error", "context_length_exceeded", "The request exceeds the model's context length."},
    [HX_ERR_CONTENT_POLICY] = {400, "invalid_request_error", "content_policy_violation", "The provider refused the request under its content policy."},
    [HX_ERR_TOO_EARLY] = {425, "invalid_request_error", "too_early", "The request arrived in TLS early data (0-RTT) and could be a replay; send it again once the connection is established."},
};

const hx_err_info *hx_err_get(hx_err e)
{
    if ((int)e < 0 || e >= HX_ERR__COUNT)
        e = HX_ERR_INTERNAL;
    return &table[e];
}

int hx_err_render(hx_buf *out, hx_err e, const char *message, const char *request_id)
{
    const hx_err_info *info = hx_err_get(e);
    int rc = -1;
    json_object *root = json_object_new_object();
    json_object *err = json_object_new_object();
    if (root == NULL || err == NULL) {
        json_object_put(err);
        goto done;
    }
    json_object_object_add(root, "error", err);
    if (json_object_object_add(err, "message", json_object_new_string(message ? message : info->message)) ||
        json_object_object_add(err, "type", json_object_new_string(info->type)) ||
        json_object_object_add(err, "code", json_object_new_string(info->code)) ||
        json_object_object_add(err, "request_id", json_object_new_string(request_id ? request_id : "")))
        goto done;
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (s == NULL || hx_buf_append_str(out, s) != 0 || hx_buf_append(out, "\n", 1) != 0)
        goto done;
    rc = 0;
done:
    json_object_put(root);
    return rc;
}

const char *hx_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}
