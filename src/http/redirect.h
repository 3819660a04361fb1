/* server.tls.redirect_http and the Alt-Svc hook (redirect.c), for every
 * adapter: protocol-neutral, on hx_req. */
#ifndef HX_HTTP_REDIRECT_H
#define HX_HTTP_REDIRECT_H

#include <stdbool.h>

#include "http/request.h"

/* "https://<host of Host>[:port]<path>[?query]" in *out (hx_free it);
 * the path (decoded) and the query (raw) percent-encoded where a Location
 * may not carry a byte as is. -1: Host missing or not a host[:port]
 * (*out NULL); -2: no memory. */
int hx_https_location(const char *host, const char *path, const char *query, int port, char **out);
/* A request on the plain port while redirect_http is on: answers 308 to
 * the HTTPS port (400 without a valid Host) and returns true; false for
 * /health and /metrics, which stay plain. */
bool hx_redirect_https(hx_req *r, int tls_port);

/* Alt-Svc: a value every TCP response carries ("h3=\":443\""), set once
 * at start before any worker serves (the HTTP/3 listener fills it);
 * NULL = none, the default. */
void hx_res_set_alt_svc(const char *value);
const char *hx_res_alt_svc(void);

#endif
