/* server.tls.redirect_http: the plain port answers 308 to the same path
 * on the HTTPS port, and the Alt-Svc hook every adapter adds to its
 * responses. Protocol-neutral: an adapter calls these for a request that
 * arrived without TLS.
 *
 * The Location names the request's own Host (validated as a host name or
 * an IP literal; its port replaced by the TLS port) and nothing else: no
 * client can make hapax redirect to another site. /health and /metrics
 * stay plain: load balancers and Prometheus probe them over HTTP. */
#include <stdio.h>
#include <string.h>

#include "http/redirect.h"
#include "util/alloc.h"
#include "util/buf.h"

#define HX_REDIRECT_HOST_MAX 255
/* Location: scheme, host, port, and the target percent-encoded (at most
 * three bytes per byte of max_header_bytes). */
#define HX_REDIRECT_LOCATION_MAX (3 * 1024 * 1024)

/* Bytes a Location may carry as they are (RFC 3986 pchar and "/?"). */
static bool keep_byte(unsigned char ch, bool query)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    if (strchr("-._~!$&'()*+,;=:@/", ch) != NULL && ch != '\0')
        return true;
    /* Path and query are the request's raw ones: their escapes stay. */
    return ch == '%' || (query && ch == '?');
}

static int append_encoded(hx_buf *b, const char *s, bool query)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        int rc = keep_byte(*p, query) ? hx_buf_append(b, p, 1) : hx_buf_append(b, e, 3);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* The host part of a Host header: a DNS name or IPv4 ("a.b-c.d"), or an
 * IPv6 literal in brackets, then an optional ":port". Its length or -1. */
static int host_part(const char *host)
{
    size_t n = 0;
    if (host[0] == '[') {
        n = 1 + strspn(host + 1, "0123456789abcdefABCDEF:.");
        if (host[n] != ']' || n < 3)
            return -1;
        n++;
    } else {
        n = strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
        if (n == 0 || host[0] == '.' || host[0] == '-')
            return -1;
    }
    if (n > HX_REDIRECT_HOST_MAX)
        return -1;
    if (host[n] == ':' && strspn(host + n + 1, "0123456789") == strlen(host + n + 1) && strlen(host + n + 1) <= 5)
        return (int)n;
    return host[n] == '\0' ? (int)n : -1;
}

int hx_https_location(const char *host, const char *path, const char *query, int port, char **out)
{
    *out = NULL;
    int hn = host ? host_part(host) : -1;
    if (hn < 0)
        return -1;
    hx_buf b;
    hx_buf_init(&b, HX_REDIRECT_LOCATION_MAX);
    char portstr[16] = "";
    if (port != 443)
        snprintf(portstr, sizeof portstr, ":%d", port);
    int rc = hx_buf_append_str(&b, "https://") == 0 && hx_buf_append(&b, host, (size_t)hn) == 0 &&
                     hx_buf_append_str(&b, portstr) == 0 && append_encoded(&b, path && *path ? path : "/", false) == 0 &&
                     (query == NULL || (hx_buf_append(&b, "?", 1) == 0 && append_encoded(&b, query, true) == 0))
                 ? 0
                 : -2;
    if (rc == 0) {
        size_t len = 0;
        *out = hx_buf_steal(&b, &len);
        rc = *out ? 0 : -2;
    }
    hx_buf_free(&b);
    return rc;
}

static bool stays_plain(const char *path)
{
    return path && (strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0);
}

bool hx_redirect_https(hx_req *r, int tls_port)
{
    if (stays_plain(r->path))
        return false;
    char *loc = NULL;
    int rc = hx_https_location(hx_headers_get(&r->headers, "host"), r->path, r->query, tls_port, &loc);
    if (rc == -1)
        hx_res_error(r, HX_ERR_BAD_REQUEST, "a valid Host header is needed for the redirect to HTTPS");
    else if (rc != 0)
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
    else if (hx_res_header(r, "Location", loc) != HX_RES_OK)
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
    else
        hx_res_send(r, 308, NULL, NULL, 0);
    hx_free(loc);
    return true;
}

/* ---- Alt-Svc ---------------------------------------------------------- */

static const char *alt_svc;

void hx_res_set_alt_svc(const char *value)
{
    alt_svc = value;
}

const char *hx_res_alt_svc(void)
{
    return alt_svc;
}
