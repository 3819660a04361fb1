/* The client's address for rate limits and logs. */
#ifndef HX_MIDDLEWARE_CLIENTIP_H
#define HX_MIDDLEWARE_CLIENTIP_H

#include <stddef.h>

#include "http/request.h"

/* Sets the client's address (hx_client_ip, middleware/ctx.h): r->peer_ip, unless the peer is one of
 * rate_limit.trusted_proxies (IPs or CIDRs, v4 and v6): then the
 * right-most X-Forwarded-For entry that is not itself a trusted proxy. A
 * malformed entry stops the walk at the last trusted hop. Canonical form;
 * IPv4-mapped IPv6 becomes IPv4. */
void hx_client_ip_resolve(hx_req *r);

/* The rate-limit bucket id of an address, "ip:<addr>" (IPv6: per /64,
 * "ip:<net>/64", since one host usually holds a whole /64). */
void hx_client_ip_bucket(const char *ip, char *id, size_t size);

#endif
