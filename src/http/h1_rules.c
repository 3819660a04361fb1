/* RFC 9112 rules the lenient http-parser build lets through. */
#include <string.h>
#include <strings.h>

#include "http/server_int.h"

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
