/* The Anthropic Messages API spoken natively: an Anthropic client's body
 * goes up as it is (only `model` replaced: cache_control, thinking, server
 * tools, documents, container, mcp_servers... all kept), with the client's
 * anthropic-version and anthropic-beta headers and the provider's own key;
 * the answer comes back as it is, stream events with their names. The
 * hooks here only check the answer and read its usage. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "provider/anthropic_int.h"
#include "provider/provider.h"
#include "util/alloc.h"
#include "util/json.h"

/* A forwarded header value longer than this is not forwarded as it is: the
 * request is rebuilt (the canonical path sends the default version). */
#define ANTH_FWD_HEADER_MAX 1024

/* The client headers this API forwards. A value with a control byte could
 * not have come through the HTTP parser; checked again because it is
 * written into another request. */
static bool header_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > ANTH_FWD_HEADER_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return false;
    return true;
}

/* anthropic-beta may come once per feature: every value is forwarded. */
static int forward_betas(const hx_req *r, hx_headers *out)
{
    for (size_t i = 0; i < r->headers.n; i++) {
        const hx_header *h = &r->headers.items[i];
        if (strcasecmp(h->name, "anthropic-beta") != 0)
            continue;
        if (!header_ok(h->value))
            return -1;
        if (hx_headers_add(out, "anthropic-beta", h->value) != 0)
            return -1;
    }
    return 0;
}

int hx_anth_native_headers(const hx_provider *p, const hx_req *r, hx_headers *out)
{
    const char *ver = hx_headers_get(&r->headers, "anthropic-version");
    if (ver && !header_ok(ver))
        return -1;
    if ((p->api_key && p->api_key[0] && hx_headers_add(out, "x-api-key", p->api_key) != 0) ||
        hx_headers_add(out, "anthropic-version", ver ? ver : HX_ANTH_VERSION) != 0 || forward_betas(r, out) != 0)
        return -1;
    return 0;
}

static int msg_build(const hx_provider *p, const char *model, const hx_req *r, bool stream, hx_up_request *out,
                     char *err, size_t errlen)
{
    (void)stream; /* the client's body says it: it goes as it is */
    hx_up_request_init(out);
    snprintf(err, errlen, "the body is rebuilt");
    out->method = "POST";
    out->url = hx_url_join(p->base_url ? p->base_url : "", "messages");
    if (out->url == NULL || hx_native_body(r, model, &out->body) != 0 ||
        hx_headers_add(&out->headers, "Content-Type", "application/json") != 0 ||
        hx_anth_native_headers(p, r, &out->headers) != 0) {
        hx_up_request_free(out);
        hx_up_request_init(out);
        return -1;
    }
    return 0;
}

/* Anthropic's input_tokens excludes the cached part: the canonical prompt
 * count is input + cache reads + cache writes (sums saturate). */
static void read_usage(hx_relay *rl, json_object *u)
{
    if (u == NULL || !json_object_is_type(u, json_type_object))
        return;
    json_object *in = aj_get(u, "input_tokens"), *cr = aj_get(u, "cache_read_input_tokens"),
                *cw = aj_get(u, "cache_creation_input_tokens"), *out = aj_get(u, "output_tokens");
    if (in || cr || cw)
        rl->prompt_tokens = hx_tokens_add(hx_tokens_add(hx_json_tokens(in), hx_json_tokens(cr)), hx_json_tokens(cw));
    if (out)
        rl->completion_tokens = hx_json_tokens(out);
    if (in || cr || cw || out)
        rl->usage_seen = true;
}

/* The upstream's error object → rl->err (its type and message). */
static void read_error(hx_relay *rl, json_object *o)
{
    json_object *e = aj_get(o, "error");
    const char *type = aj_str(e, "type"), *msg = aj_str(e, "message");
    snprintf(rl->err, sizeof rl->err, "%s%s%s", type ? type : "error", msg ? ": " : "", msg ? msg : "");
}

static int msg_stream_event(hx_relay *rl, const char *event, const char *data, size_t len)
{
    if (rl->done)
        return 1; /* nothing follows message_stop */
    json_object *o = len >= 2 && data[0] == '{' ? hx_anth_parse_json(data, len) : NULL;
    const char *type = aj_str(o, "type");
    if (type == NULL && event && *event)
        type = event;
    if (o == NULL || !json_object_is_type(o, json_type_object) || type == NULL) {
        json_object_put(o);
        snprintf(rl->err, sizeof rl->err, "malformed event from upstream");
        return -1;
    }
    int rc = 0;
    if (strcmp(type, "error") == 0) {
        read_error(rl, o);
        rc = -1;
    } else if (strcmp(type, "message_start") == 0) {
        read_usage(rl, aj_get(aj_get(o, "message"), "usage"));
    } else if (strcmp(type, "message_delta") == 0) {
        read_usage(rl, aj_get(o, "usage"));
    } else if (strcmp(type, "message_stop") == 0) {
        rl->done = true;
    }
    json_object_put(o);
    return rc;
}

static int msg_body(hx_relay *rl, const char *data, size_t len)
{
    json_object *o = hx_anth_parse_json(data, len);
    const char *type = aj_str(o, "type");
    int rc = 0;
    if (o == NULL || !json_object_is_type(o, json_type_object) || type == NULL || strcmp(type, "message") != 0 ||
        !json_object_is_type(aj_get(o, "content"), json_type_array)) {
        if (type && strcmp(type, "error") == 0)
            read_error(rl, o);
        else
            snprintf(rl->err, sizeof rl->err, "upstream returned malformed JSON");
        rc = -1;
    } else {
        read_usage(rl, aj_get(o, "usage"));
    }
    json_object_put(o);
    return rc;
}

/* An Anthropic error body ({"type":"error","error":{"type","message"}})
 * for an Anthropic client: its type and message kept, the request id the
 * gateway's (the client's request-id header names it too). */
static int msg_error_body(const char *data, size_t len, const char *request_id, hx_buf *out)
{
    json_object *o = hx_anth_parse_json(data, len), *e = aj_get(o, "error");
    const char *type = aj_str(o, "type"), *et = aj_str(e, "type"), *m = aj_str(e, "message");
    int rc = -1;
    /* Types and messages meet C strings: one with a NUL is not relayed. */
    if (type && strcmp(type, "error") == 0 && et && m && et[0] &&
        strlen(et) == (size_t)json_object_get_string_len(aj_get(e, "type")) &&
        strlen(m) == (size_t)json_object_get_string_len(aj_get(e, "message")))
        rc = hx_buf_append_str(out, "{\"type\":\"error\",\"error\":{\"type\":") || hx_json_cstr(out, et) ||
                     hx_buf_append_str(out, ",\"message\":") || hx_json_cstr(out, m) ||
                     hx_buf_append_str(out, "},\"request_id\":") || hx_json_cstr(out, request_id ? request_id : "") ||
                     hx_buf_append_str(out, "}\n")
                 ? -1
                 : 0;
    json_object_put(o);
    return rc;
}

const hx_native hx_anth_native_messages = {
    .path = "messages",
    .build = msg_build,
    .stream_event = msg_stream_event,
    .stream_end = NULL, /* message_stop is relayed */
    .body = msg_body,
    .error_body = msg_error_body,
};
