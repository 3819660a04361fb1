/* CORS: answers preflights and marks responses to allowed origins.
 *
 * Origins match exactly (scheme://host[:port], case-sensitive, as browsers
 * send them) or through "*". A request without Origin is not a CORS request
 * and passes untouched. An actual request from an origin that is not
 * allowed passes on without Access-Control-* headers: the browser then
 * withholds the response from the page, and non-browser clients are not
 * affected. A preflight from such an origin, or for a method that is not
 * allowed, gets 403.
 *
 * `allow_headers` entries are names (any case) or "prefix*" patterns such
 * as "X-Stainless-*" (the SDKs send a family of them). Browsers take no
 * patterns in Access-Control-Allow-Headers, so a preflight is answered
 * with the listed names plus the requested headers a pattern allows. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "middleware/middleware.h"
#include "util/buf.h"

/* The joined header lists are short; this only bounds a runaway config. */
#define CORS_LIST_MAX 8192

typedef enum {
    ORIGIN_DENIED,
    ORIGIN_EXACT,     /* listed as is */
    ORIGIN_WILDCARD,  /* allowed only through "*" */
} origin_match;

static origin_match match_origin(const hx_cfg_cors *c, const char *origin)
{
    bool wildcard = false;
    for (size_t i = 0; i < c->allow_origins.n; i++) {
        const char *o = c->allow_origins.items[i];
        if (strcmp(o, origin) == 0)
            return ORIGIN_EXACT;
        wildcard = wildcard || strcmp(o, "*") == 0;
    }
    return wildcard ? ORIGIN_WILDCARD : ORIGIN_DENIED;
}

static bool method_allowed(const hx_cfg_cors *c, const char *method)
{
    for (size_t i = 0; i < c->allow_methods.n; i++)
        if (strcasecmp(c->allow_methods.items[i], method) == 0)
            return true;
    return false;
}

/* Adds `name: a, b, c` when the list is not empty. Returns 0 or -1. */
static int header_list(hx_req *r, const char *name, const hx_strlist *l)
{
    if (l->n == 0)
        return 0;
    hx_buf b;
    hx_buf_init(&b, CORS_LIST_MAX);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        if (i > 0)
            rc = hx_buf_append_str(&b, ", ");
        if (rc == 0)
            rc = hx_buf_append_str(&b, l->items[i]);
    }
    if (rc == 0 && hx_res_header(r, name, b.data) != HX_RES_OK)
        rc = -1;
    hx_buf_free(&b);
    return rc;
}

static bool is_pattern(const char *entry)
{
    size_t n = strlen(entry);
    return n > 0 && entry[n - 1] == '*';
}

/* Does a pattern of the list (and no plain name: those are listed anyway)
 * allow the requested header name[0..len)? */
static bool pattern_allows(const hx_strlist *l, const char *name, size_t len)
{
    bool named = false, matched = false;
    for (size_t i = 0; i < l->n; i++) {
        const char *e = l->items[i];
        size_t n = strlen(e);
        if (!is_pattern(e))
            named = named || (n == len && strncasecmp(e, name, len) == 0);
        else
            matched = matched || (n - 1 <= len && strncasecmp(e, name, n - 1) == 0);
    }
    return matched && !named;
}

/* Access-Control-Allow-Headers of a preflight: the listed names, then each
 * requested header (Access-Control-Request-Headers) a pattern allows.
 * Returns 0, -1 (out of memory) or 1 (the answer would exceed its bound). */
static int allow_headers(hx_req *r, const hx_cfg_cors *c)
{
    hx_buf b;
    hx_buf_init(&b, CORS_LIST_MAX);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->allow_headers.n; i++)
        if (!is_pattern(c->allow_headers.items[i]))
            rc = (b.len && hx_buf_append_str(&b, ", ")) || hx_buf_append_str(&b, c->allow_headers.items[i])
                     ? -1 : 0;
    const char *q = hx_headers_get(&r->headers, "access-control-request-headers");
    while (rc == 0 && q && *q) {
        while (*q == ' ' || *q == '\t' || *q == ',')
            q++;
        size_t len = strcspn(q, ", \t");
        if (len && pattern_allows(&c->allow_headers, q, len))
            rc = b.len + 2 + len > CORS_LIST_MAX ? 1
               : (b.len && hx_buf_append_str(&b, ", ")) || hx_buf_append(&b, q, len) ? -1 : 0;
        q += len;
    }
    if (rc == 0 && b.len && hx_res_header(r, "Access-Control-Allow-Headers", b.data) != HX_RES_OK)
        rc = -1;
    hx_buf_free(&b);
    return rc;
}

/* The headers both kinds of answer carry. With credentials the origin must
 * be echoed (browsers refuse "*" then); an echoed origin makes the response
 * depend on Origin, hence Vary. */
static int common_headers(hx_req *r, const hx_cfg_cors *c, const char *origin, origin_match m)
{
    bool echo = m == ORIGIN_EXACT || c->allow_credentials;
    if (hx_res_header(r, "Access-Control-Allow-Origin", echo ? origin : "*") != HX_RES_OK)
        return -1;
    if (c->allow_credentials &&
        hx_res_header(r, "Access-Control-Allow-Credentials", "true") != HX_RES_OK)
        return -1;
    return 0;
}

static void preflight(hx_req *r, const hx_cfg_cors *c, const char *origin, origin_match m,
                      const char *want_method)
{
    if (!method_allowed(c, want_method)) {
        hx_res_error(r, HX_ERR_FORBIDDEN, "CORS preflight: the requested method is not allowed.");
        return;
    }
    int ah = allow_headers(r, c);
    if (ah == 1) {
        hx_res_error(r, HX_ERR_FORBIDDEN, "CORS preflight: the requested headers are too many.");
        return;
    }
    char age[32];
    snprintf(age, sizeof age, "%lld", (long long)(c->max_age / 1000));
    if (ah != 0 || common_headers(r, c, origin, m) != 0 ||
        header_list(r, "Access-Control-Allow-Methods", &c->allow_methods) != 0 ||
        (c->max_age >= 1000 && hx_res_header(r, "Access-Control-Max-Age", age) != HX_RES_OK) ||
        hx_res_header(r, "Vary", "Origin, Access-Control-Request-Method, "
                                 "Access-Control-Request-Headers") != HX_RES_OK) {
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    hx_res_send(r, 204, NULL, NULL, 0);
}

void hx_mw_cors(hx_req *r)
{
    const hx_cfg_cors *c = &r->cfg->cors;
    const char *origin = hx_headers_get(&r->headers, "origin");
    if (origin == NULL) {
        hx_req_next(r);
        return;
    }
    const char *want_method = strcmp(r->method, "OPTIONS") == 0
                                  ? hx_headers_get(&r->headers, "access-control-request-method")
                                  : NULL;
    origin_match m = match_origin(c, origin);
    if (m == ORIGIN_DENIED) {
        if (want_method) {
            hx_res_error(r, HX_ERR_FORBIDDEN, "CORS preflight: this origin is not allowed.");
            return;
        }
        /* The answer still depends on Origin, so shared caches must not
         * reuse it for an allowed origin. */
        if (hx_res_header(r, "Vary", "Origin") != HX_RES_OK) {
            hx_res_error(r, HX_ERR_INTERNAL, NULL);
            return;
        }
        hx_req_next(r);
        return;
    }
    if (want_method) {
        preflight(r, c, origin, m, want_method);
        return;
    }
    if (common_headers(r, c, origin, m) != 0 ||
        hx_res_header(r, "Vary", "Origin") != HX_RES_OK ||
        header_list(r, "Access-Control-Expose-Headers", &c->expose_headers) != 0) {
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    hx_req_next(r);
}
