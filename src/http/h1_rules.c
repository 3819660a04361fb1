/* Request-head rules of the HTTP/1.1 adapter: what RFC 9112 asks and the
 * lenient http-parser build lets through, and the request target. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/server_int.h"
#include "util/alloc.h"

bool hx_h1_is_token(const char *at, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)at[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  (ch != '\0' && strchr(extra, ch) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

hx_err hx_h1_framing_error(int major, int minor, bool chunked, const hx_headers *h)
{
    if (major != 1 || minor > 1)
        return HX_ERR_HTTP_VERSION;
    size_t hosts = 0;
    bool te = chunked;
    for (size_t i = 0; i < h->n; i++) {
        hosts += strcasecmp(h->items[i].name, "host") == 0;
        te = te || strcasecmp(h->items[i].name, "transfer-encoding") == 0;
    }
    /* RFC 9112 3.2: exactly one Host on 1.1, never two. */
    if (hosts > 1 || (hosts == 0 && minor == 1))
        return HX_ERR_BAD_REQUEST;
    /* 6.1: a 1.0 message cannot be framed by Transfer-Encoding. */
    if (minor == 0 && te)
        return HX_ERR_BAD_REQUEST;
    return HX_ERR__COUNT;
}

/* Splits the request target into path and query. Absolute-form targets
 * ("http://host/p") keep only their path. */
int hx_h1_set_target(hx_req *r, const char *url, size_t len)
{
    const char *s = url;
    const char *end = url + len;
    if (len > 7 && (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0)) {
        s = memchr(s + 8 > end ? end : s + 8, '/', (size_t)(end - (s + 8 > end ? end : s + 8)));
        if (s == NULL)
            s = end;
    }
    const char *q = memchr(s, '?', (size_t)(end - s));
    const char *pend = q ? q : end;
    /* Called again by send_error when the path failed: the query of the
     * first call must not leak (found by the allocation torture). */
    hx_free(r->path);
    hx_free(r->query);
    r->query = NULL;
    r->path = pend > s ? hx_strndup(s, (size_t)(pend - s)) : hx_strdup("/");
    if (q)
        r->query = hx_strndup(q + 1, (size_t)(end - q - 1));
    return r->path && (!q || r->query) ? 0 : -1;
}

const char *hx_method_name(const uint8_t *v, size_t n)
{
    for (int m = 0; m < 64; m++) {
        const char *s = http_method_str((enum http_method)m);
        if (strcmp(s, "<unknown>") == 0)
            break;
        if (strlen(s) == n && memcmp(s, v, n) == 0)
            return s;
    }
    return NULL;
}

hx_err hx_stream_head_verdict(hx_req *r, bool too_large, int64_t max_body)
{
    if (too_large)
        return HX_ERR_HEADERS_TOO_LARGE;
    if (r->method == NULL || r->path == NULL)
        return HX_ERR_BAD_REQUEST;
    r->head_only = strcmp(r->method, "HEAD") == 0;
    hx_req_assign_id(r, (r->mw & HX_MW_REQUEST_ID) != 0);
    const char *cl = hx_headers_get(&r->headers, "content-length");
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)max_body)
        return HX_ERR_BODY_TOO_LARGE;
    return HX_ERR__COUNT;
}

void hx_stream_error_prep(hx_req *r)
{
    if (r->path == NULL)
        hx_h1_set_target(r, "/", 1);
    if (r->request_id[0] == '\0')
        hx_req_assign_id(r, false);
}

bool hx_header_hop_by_hop(const char *name)
{
    static const char *const drop[] = {"connection", "transfer-encoding", "keep-alive", "proxy-connection",
                                       "upgrade", "te"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strcasecmp(name, drop[i]) == 0)
            return true;
    return false;
}
