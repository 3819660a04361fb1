/* Errors in the Anthropic dialect (see anthropic_err.h). */
#include "gateway/anthropic_err.h"

#include "util/json.h"

/* The types Anthropic documents, by status; 502 is the gateway's own (an
 * upstream failure), which Anthropic's clients know as api_error. */
const char *hx_anth_error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413:
    case 431: return "request_too_large";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

int hx_err_render_anthropic(hx_buf *out, hx_err e, const char *message, const char *request_id)
{
    const hx_err_info *info = hx_err_get(e);
    const char *type = hx_anth_error_type(info->status);
    /* The gateway's own overload answers (queue, load shedding, connection
     * limit) are what Anthropic calls overloaded: the SDKs retry them. */
    if (e == HX_ERR_OVERLOADED || e == HX_ERR_QUEUE_FULL || e == HX_ERR_QUEUE_TIMEOUT ||
        e == HX_ERR_TOO_MANY_CONNECTIONS)
        type = "overloaded_error";
    const char *m = message ? message : info->message;
    const char *id = request_id ? request_id : "";
    if (hx_buf_append_str(out, "{\"type\":\"error\",\"error\":{\"type\":") || hx_json_cstr(out, type) ||
        hx_buf_append_str(out, ",\"message\":") || hx_json_cstr(out, m) ||
        hx_buf_append_str(out, "},\"request_id\":") || hx_json_cstr(out, id) ||
        hx_buf_append_str(out, "}\n"))
        return -1;
    return 0;
}
