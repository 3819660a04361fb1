/* Maps upstream failures (src/gateway/proxy_err.c): which error the
 * client sees, whether the same provider may be asked again, and the
 * Retry-After it may be told. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway/proxy_int.h"
#include "util/json.h"

/* Retry-After goes back to the client only as integer seconds within
 * 1..3600, never as the upstream wrote it: an invalid value ("abc", "-1",
 * "1e9", a past date) is dropped, a huge one clamped. */
void px_take_retry_after(proxy *p, const char *v)
{
    uint64_t ms = hx_retry_after_ms(v, (uint64_t)time(NULL)); /* 0: absent or invalid */
    p->retry_after_ms = ms;
    p->retry_after[0] = '\0';
    if (ms > 0)
        snprintf(p->retry_after, sizeof p->retry_after, "%llu",
                 (unsigned long long)((ms + 999) / 1000 > 3600 ? 3600 : (ms + 999) / 1000));
}

/* What the provider's error body says it is, beyond its status: quota,
 * context length, content policy (OpenAI's codes and types; Anthropic's
 * "prompt is too long"). HX_ERR__COUNT when nothing specific. */
static hx_err provider_meaning(const proxy *p)
{
    hx_err e = HX_ERR__COUNT;
    json_object *root = p->errbody.len ? hx_json_parse(p->errbody.data, p->errbody.len) : NULL;
    json_object *err = NULL, *v;
    if (root == NULL || !json_object_object_get_ex(root, "error", &err) || !json_object_is_type(err, json_type_object)) {
        json_object_put(root);
        return e;
    }
    static const struct {
        const char *key, *value;
        hx_err e;
    } known[] = {
        {"code", "insufficient_quota", HX_ERR_INSUFFICIENT_QUOTA},
        {"type", "insufficient_quota", HX_ERR_INSUFFICIENT_QUOTA},
        {"code", "context_length_exceeded", HX_ERR_CONTEXT_LENGTH},
        {"code", "content_policy_violation", HX_ERR_CONTENT_POLICY},
        {"message", "prompt is too long", HX_ERR_CONTEXT_LENGTH},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0] && e == HX_ERR__COUNT; i++) {
        if (!json_object_object_get_ex(err, known[i].key, &v) || !json_object_is_type(v, json_type_string))
            continue;
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v), kl = strlen(known[i].value);
        /* codes match whole; a message by its prefix */
        if (strcmp(known[i].key, "message") == 0 ? n >= kl && strncmp(s, known[i].value, kl) == 0
                                                 : n == kl && memcmp(s, known[i].value, kl) == 0)
            e = known[i].e;
    }
    json_object_put(root);
    return e;
}

/* Maps a failed upstream answer; returns true when the next provider may
 * be tried (nothing the client did wrong). *cls is the failure class (its
 * retry class says whether the same provider may be asked again). */
bool px_classify_status(proxy *p, hx_err *e, char *msg, size_t msglen, hx_fail_class *cls)
{
    char upmsg[256];
    p->prov->ad->error_message(p->errbody.data ? p->errbody.data : "", p->errbody.len, upmsg, sizeof upmsg);
    int s = p->up_status;
    hx_err meant = provider_meaning(p);
    *cls = HX_FAIL_CLIENT;
    if (s == 401 || s == 403) {
        *cls = HX_FAIL_AUTH;
        *e = HX_ERR_BAD_GATEWAY;
        snprintf(msg, msglen, "provider %s rejected the gateway's credentials (upstream %d): check its api_key",
                 p->prov->name, s);
        return true;
    }
    if (meant == HX_ERR_INSUFFICIENT_QUOTA || meant == HX_ERR_CONTEXT_LENGTH) {
        /* Billing, or this model's window: asking again cannot help, a
         * different provider may. */
        *e = meant;
        *cls = meant == HX_ERR_INSUFFICIENT_QUOTA ? HX_FAIL_QUOTA : HX_FAIL_CONTEXT_LENGTH;
        snprintf(msg, msglen, "provider %s: %s", p->prov->name, upmsg);
        return true;
    }
    if (s == 429) {
        *e = HX_ERR_RATE_LIMITED;
        *cls = HX_FAIL_RATE_LIMIT;
        snprintf(msg, msglen, "provider %s is rate limiting: %s", p->prov->name, upmsg);
        return true;
    }
    if (s >= 300 && s < 400) {
        /* Redirects are never followed (an API key must not travel to
         * another host): a misconfigured endpoint, not the client's error. */
        *e = HX_ERR_BAD_GATEWAY;
        *cls = HX_FAIL_REDIRECT;
        snprintf(msg, msglen, "provider %s answered with a redirect (upstream %d), not followed: check its endpoint",
                 p->prov->name, s);
        return true;
    }
    if (s == 404 || s >= 500) {
        *e = HX_ERR_BAD_GATEWAY;
        *cls = s >= 500 ? HX_FAIL_SERVER_ERROR : HX_FAIL_CLIENT;
        snprintf(msg, msglen, "provider %s failed (upstream %d): %s", p->prov->name, s, upmsg);
        return true;
    }
    *e = meant == HX_ERR_CONTENT_POLICY ? HX_ERR_CONTENT_POLICY : HX_ERR_INVALID_REQUEST;
    snprintf(msg, msglen, "provider %s rejected the request (upstream %d): %s", p->prov->name, s, upmsg);
    return false;
}

/* A failed transport, by what had come before it: no head, an error
 * head, or a 2xx head. Only a request that provably was not sent may go
 * to the same provider again (connection, timeout: refused, DNS, TLS,
 * reset or timeout before the send completed); once the whole request
 * went out, or a 2xx head came, the provider may be generating: the
 * unanswered classes (dropped, broken, unanswered). */
enum { HEAD_NONE, HEAD_ERROR, HEAD_2XX, HEAD__COUNT };
static const hx_fail_class transport_fails[][HEAD__COUNT] = {
    [HX_UP_OK] = {HX_FAIL_NONE, HX_FAIL_NONE, HX_FAIL_NONE},
    [HX_UP_CONNECT_TIMEOUT] = {HX_FAIL_TIMEOUT, HX_FAIL_TIMEOUT, HX_FAIL_UNANSWERED},
    [HX_UP_FIRST_BYTE_TIMEOUT] = {HX_FAIL_UNANSWERED, HX_FAIL_UNANSWERED, HX_FAIL_UNANSWERED},
    [HX_UP_TIMEOUT] = {HX_FAIL_UNANSWERED, HX_FAIL_UNANSWERED, HX_FAIL_UNANSWERED},
    [HX_UP_CONNECT_ERROR] = {HX_FAIL_CONNECTION, HX_FAIL_CONNECTION, HX_FAIL_BROKEN},
    /* an error head, then a reset: a server error, asked again like one */
    [HX_UP_RESET] = {HX_FAIL_RESET, HX_FAIL_SERVER_ERROR, HX_FAIL_BROKEN},
    [HX_UP_TLS_ERROR] = {HX_FAIL_CONNECTION, HX_FAIL_CONNECTION, HX_FAIL_BROKEN},
    [HX_UP_PROTOCOL_ERROR] = {HX_FAIL_DROPPED, HX_FAIL_DROPPED, HX_FAIL_BROKEN},
    [HX_UP_ABORTED] = {HX_FAIL_DROPPED, HX_FAIL_DROPPED, HX_FAIL_BROKEN},
    [HX_UP_NOMEM] = {HX_FAIL_DROPPED, HX_FAIL_DROPPED, HX_FAIL_BROKEN},
    [HX_UP_OTHER] = {HX_FAIL_DROPPED, HX_FAIL_DROPPED, HX_FAIL_BROKEN},
    [HX_UP_IDLE_TIMEOUT] = {HX_FAIL_UNANSWERED, HX_FAIL_UNANSWERED, HX_FAIL_UNANSWERED},
    [HX_UP_RESET_AFTER_SEND] = {HX_FAIL_DROPPED, HX_FAIL_DROPPED, HX_FAIL_BROKEN},
};

hx_fail_class hx_gw_transport_fail(hx_up_result res, int status)
{
    if ((unsigned)res >= sizeof transport_fails / sizeof transport_fails[0])
        return HX_FAIL_OTHER;
    if (res == HX_UP_OK) /* a complete answer with a failed status (a probe) */
        return status >= 200 && status < 300 ? HX_FAIL_NONE
               : status == 429                ? HX_FAIL_RATE_LIMIT
               : status >= 500                ? HX_FAIL_SERVER_ERROR
                                              : HX_FAIL_CLIENT;
    return transport_fails[res][status == 0 ? HEAD_NONE : status >= 200 && status < 300 ? HEAD_2XX : HEAD_ERROR];
}

hx_err px_transport_err(hx_up_result res)
{
    switch (res) {
    case HX_UP_CONNECT_TIMEOUT:
    case HX_UP_FIRST_BYTE_TIMEOUT:
    case HX_UP_IDLE_TIMEOUT:
    case HX_UP_TIMEOUT: return HX_ERR_GATEWAY_TIMEOUT;
    default: return HX_ERR_BAD_GATEWAY;
    }
}
