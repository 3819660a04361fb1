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
 * be tried (nothing the client did wrong). *cls is the retry class: may
 * the same provider be asked again? */
bool px_classify_status(proxy *p, hx_err *e, char *msg, size_t msglen, hx_retry_class *cls)
{
    char upmsg[256];
    p->prov->ad->error_message(p->errbody.data ? p->errbody.data : "", p->errbody.len, upmsg, sizeof upmsg);
    int s = p->up_status;
    hx_err meant = provider_meaning(p);
    *cls = HX_RETRY_NONE;
    if (s == 401 || s == 403) {
        *e = HX_ERR_BAD_GATEWAY;
        snprintf(msg, msglen, "provider %s rejected the gateway's credentials (upstream %d): check its api_key",
                 p->prov->name, s);
        return true;
    }
    if (meant == HX_ERR_INSUFFICIENT_QUOTA || meant == HX_ERR_CONTEXT_LENGTH) {
        /* Billing, or this model's window: asking again cannot help, a
         * different provider may. */
        *e = meant;
        snprintf(msg, msglen, "provider %s: %s", p->prov->name, upmsg);
        return true;
    }
    if (s == 429) {
        *e = HX_ERR_RATE_LIMITED;
        *cls = HX_RETRY_RATE_LIMIT;
        snprintf(msg, msglen, "provider %s is rate limiting: %s", p->prov->name, upmsg);
        return true;
    }
    if (s >= 300 && s < 400) {
        /* Redirects are never followed (an API key must not travel to
         * another host): a misconfigured endpoint, not the client's error. */
        *e = HX_ERR_BAD_GATEWAY;
        snprintf(msg, msglen, "provider %s answered with a redirect (upstream %d), not followed: check its endpoint",
                 p->prov->name, s);
        return true;
    }
    if (s == 404 || s >= 500) {
        *e = HX_ERR_BAD_GATEWAY;
        *cls = s >= 500 ? HX_RETRY_SERVER_ERROR : HX_RETRY_NONE;
        snprintf(msg, msglen, "provider %s failed (upstream %d): %s", p->prov->name, s, upmsg);
        return true;
    }
    *e = meant == HX_ERR_CONTENT_POLICY ? HX_ERR_CONTENT_POLICY : HX_ERR_INVALID_REQUEST;
    snprintf(msg, msglen, "provider %s rejected the request (upstream %d): %s", p->prov->name, s, upmsg);
    return false;
}

/* May a failed transport be sent again to the same provider? Only when it
 * provably was not billed: nothing sent (refused, DNS, TLS, reset or
 * timeout before the send completed). Once the whole request went out, or
 * a 2xx head came, the provider may be generating: "unanswered". */
hx_retry_class px_transport_class(const proxy *p, hx_up_result res)
{
    if (p->up_status >= 200 && p->up_status < 300)
        return HX_RETRY_UNANSWERED;
    switch (res) {
    case HX_UP_CONNECT_ERROR:
    case HX_UP_TLS_ERROR: return HX_RETRY_CONNECTION;
    case HX_UP_RESET: return p->up_status ? HX_RETRY_SERVER_ERROR : HX_RETRY_CONNECTION;
    case HX_UP_CONNECT_TIMEOUT: return HX_RETRY_TIMEOUT;
    default: return HX_RETRY_UNANSWERED;
    }
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
