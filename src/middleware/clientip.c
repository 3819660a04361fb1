/* Who the client is: the peer address, or the X-Forwarded-For address a
 * trusted proxy vouches for (rate_limit.trusted_proxies), and the bucket
 * an address falls in. */
#include "middleware/clientip.h"
#include "middleware/ctx.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    int af;
    unsigned char a[16];
} ip_addr;

/* Parses an address; `loose` also accepts "[v6]:port" and "v4:port" as
 * some proxies write them in X-Forwarded-For. IPv4-mapped IPv6 becomes
 * IPv4 so one client has one bucket either way. */
static bool addr_parse(const char *s, size_t n, bool loose, ip_addr *out)
{
    char buf[64];
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *p = buf;
    if (loose && buf[0] == '[') {
        char *end = strchr(buf, ']');
        if (end == NULL)
            return false;
        *end = '\0';
        p = buf + 1;
    } else if (loose) {
        char *c = strchr(buf, ':');
        if (c && c == strrchr(buf, ':'))
            *c = '\0';
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, p, out->a) == 1) {
        out->af = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, p, out->a) != 1)
        return false;
    out->af = AF_INET6;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(out->a, mapped, sizeof mapped) == 0) {
        memmove(out->a, out->a + 12, 4);
        memset(out->a + 4, 0, 12);
        out->af = AF_INET;
    }
    return true;
}

/* Whether `a` is inside the IP or CIDR `spec` (malformed specs match
 * nothing). */
static bool net_contains(const char *spec, const ip_addr *a)
{
    const char *slash = strchr(spec, '/');
    size_t n = slash ? (size_t)(slash - spec) : strlen(spec);
    ip_addr net;
    if (!addr_parse(spec, n, false, &net) || net.af != a->af)
        return false;
    int max = a->af == AF_INET ? 32 : 128;
    int bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end != '\0' || b < 0 || b > max)
            return false;
        bits = (int)b;
    }
    int full = bits / 8, rest = bits % 8;
    if (memcmp(net.a, a->a, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (net.a[full] & mask) == (a->a[full] & mask);
}

static bool is_trusted(const hx_config *cfg, const ip_addr *a)
{
    const hx_strlist *l = &cfg->rate_limit.trusted_proxies;
    for (size_t i = 0; i < l->n; i++)
        if (net_contains(l->items[i], a))
            return true;
    return false;
}

/* Walks X-Forwarded-For right to left (last header first) from a trusted
 * peer. Stops at the first untrusted entry; on a malformed entry, the last
 * trusted hop stays the client (it cannot vouch for what is left of it). */
static void xff_walk(const hx_req *r, ip_addr *best)
{
    const hx_headers *h = &r->headers;
    for (size_t i = h->n; i-- > 0;) {
        if (strcasecmp(h->items[i].name, "x-forwarded-for") != 0)
            continue;
        const char *v = h->items[i].value;
        size_t end = strlen(v);
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            ip_addr a;
            if (!addr_parse(v + start, end - start, true, &a))
                return;
            *best = a;
            if (!is_trusted(r->cfg, &a))
                return;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
}

/* This module's slot (HX_CTX_CLIENTIP): the resolved address. */
typedef struct {
    char ip[sizeof ((hx_req *)0)->peer_ip];
} clientip_ctx;
_Static_assert(sizeof(clientip_ctx) <= HX_CTX_CLIENTIP_BYTES, "clientip_ctx outgrew its share");

const char *hx_client_ip(const hx_req *r)
{
    const clientip_ctx *c = hx_req_ctx(r, HX_CTX_CLIENTIP);
    return c ? c->ip : r->peer_ip;
}

void hx_client_ip_resolve(hx_req *r)
{
    clientip_ctx *c = hx_req_ctx_alloc(r, HX_CTX_CLIENTIP, sizeof *c);
    if (c == NULL)
        return; /* no room: the peer's address stands */
    ip_addr peer;
    if (!addr_parse(r->peer_ip, strlen(r->peer_ip), false, &peer)) {
        snprintf(c->ip, sizeof c->ip, "%s", r->peer_ip);
        return;
    }
    ip_addr best = peer;
    if (is_trusted(r->cfg, &peer))
        xff_walk(r, &best);
    if (inet_ntop(best.af, best.a, c->ip, sizeof c->ip) == NULL)
        snprintf(c->ip, sizeof c->ip, "%s", r->peer_ip);
}

/* An IPv6 client is limited per /64: one host usually holds a whole /64
 * and could otherwise take a fresh bucket per address. */
void hx_client_ip_bucket(const char *ip, char *id, size_t size)
{
    unsigned char a[16];
    char net[INET6_ADDRSTRLEN];
    if (strchr(ip, ':') && inet_pton(AF_INET6, ip, a) == 1) {
        memset(a + 8, 0, 8);
        if (inet_ntop(AF_INET6, a, net, sizeof net)) {
            snprintf(id, size, "ip:%s/64", net);
            return;
        }
    }
    snprintf(id, size, "ip:%s", ip);
}

