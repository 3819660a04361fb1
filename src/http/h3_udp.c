/* HTTP/3 adapter, datagram side: the worker's UDP socket of the HTTP/3
 * port (one per worker in a SO_REUSEPORT group, steered by connection ID:
 * quic_steer.c), its connection-ID table, and the packets no connection
 * sends: Version Negotiation, Retry (address validation), stateless
 * reset, and the refusal past server.max_connections. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/h3_int.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "util/alloc.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

h3_global hx_h3_g;

uint64_t hx_h3_now(void)
{
    return hx_now_ns();
}

/* Tokens outlive a process's monotonic clock: they carry the wall time. */
static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void count_event(const char *kind)
{
    hx_metrics_inc(HX_M_HTTP3_EVENTS, hx_metrics_series(HX_M_HTTP3_EVENTS, kind), 1);
}

/* ---- connection IDs --------------------------------------------------------- */

/* FNV-1a keyed with the process secret: a client cannot aim IDs at one
 * chain of the table. */
static size_t cid_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < 8; i++)
        h = (h ^ hx_h3_g.secret[i]) * 0x100000001b3ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return (size_t)h;
}

static h3_cid_slot *cid_slot(h3_worker *hw, const uint8_t *id, size_t len, bool for_insert)
{
    if (hw->cid_cap == 0)
        return NULL;
    size_t mask = hw->cid_cap - 1, i = cid_hash(id, len) & mask;
    h3_cid_slot *tomb = NULL;
    for (size_t n = 0; n < hw->cid_cap; n++, i = (i + 1) & mask) {
        h3_cid_slot *s = &hw->cids[i];
        if (s->len == 0 && !s->tomb)
            return for_insert ? (tomb ? tomb : s) : NULL;
        if (s->tomb) {
            if (tomb == NULL)
                tomb = s;
            continue;
        }
        if (s->len == len && memcmp(s->id, id, len) == 0)
            return s;
    }
    return for_insert ? tomb : NULL;
}

static h3_conn *cid_lookup(h3_worker *hw, const uint8_t *id, size_t len)
{
    h3_cid_slot *s = cid_slot(hw, id, len, false);
    return s ? s->c : NULL;
}

/* Keeps the table at most half full (tombstones count). The new size
 * follows the live IDs, not the old size: under connection churn the
 * table is mostly tombstones, and doubling every time grew it with every
 * ID ever issued. */
static int cid_grow(h3_worker *hw)
{
    size_t live = 0;
    for (size_t i = 0; i < hw->cid_cap; i++)
        live += hw->cids[i].len && !hw->cids[i].tomb;
    size_t cap = 256;
    while ((live + 1) * 4 > cap)
        cap *= 2;
    h3_cid_slot *old = hw->cids, *neu = hx_calloc(cap, sizeof *neu);
    size_t oldcap = hw->cid_cap;
    if (neu == NULL)
        return -1;
    hw->cids = neu;
    hw->cid_cap = cap;
    hw->cid_used = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].len && !old[i].tomb) {
            h3_cid_slot *s = cid_slot(hw, old[i].id, old[i].len, true);
            *s = old[i];
            hw->cid_used++;
        }
    hx_free(old);
    return 0;
}

int hx_h3_cid_add(h3_worker *hw, const ngtcp2_cid *cid, h3_conn *c)
{
    if (cid->datalen == 0 || cid->datalen > NGTCP2_MAX_CIDLEN || c->ncids >= HX_H3_MAX_CIDS)
        return -1;
    if ((hw->cid_used + 1) * 2 > hw->cid_cap && cid_grow(hw) != 0)
        return -1;
    h3_cid_slot *s = cid_slot(hw, cid->data, cid->datalen, true);
    if (s == NULL || (s->len && !s->tomb))
        return -1; /* already someone's: never steal an ID */
    s->len = (uint8_t)cid->datalen;
    s->tomb = false;
    memcpy(s->id, cid->data, cid->datalen);
    s->c = c;
    hw->cid_used++;
    c->cids[c->ncids++] = *cid;
    return 0;
}

void hx_h3_cid_del(h3_worker *hw, const ngtcp2_cid *cid)
{
    h3_cid_slot *s = cid_slot(hw, cid->data, cid->datalen, false);
    if (s == NULL)
        return;
    h3_conn *c = s->c;
    s->len = 0;
    s->tomb = true;
    s->c = NULL;
    for (int i = 0; i < c->ncids; i++)
        if (ngtcp2_cid_eq(&c->cids[i], cid)) {
            c->cids[i] = c->cids[--c->ncids];
            break;
        }
}

void hx_h3_make_cid(h3_worker *hw, ngtcp2_cid *cid)
{
    uint8_t rnd[HX_H3_SCID_LEN];
    gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
    cid->datalen = HX_H3_SCID_LEN;
    hx_quic_cid_make(cid->data, HX_H3_SCID_LEN, (unsigned)hw->w->id, rnd);
}

/* ---- sending ---------------------------------------------------------------- */

/* The source address goes in IP_PKTINFO: on a wildcard socket the answer
 * must leave from the address the client wrote to. */
static size_t put_pktinfo(struct msghdr *m, uint8_t *ctl, const ngtcp2_addr *local)
{
    struct cmsghdr *cm = (struct cmsghdr *)ctl;
    if (local->addr->sa_family == AF_INET) {
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
        struct in_pktinfo pi = {0};
        pi.ipi_spec_dst = ((const struct sockaddr_in *)(const void *)local->addr)->sin_addr;
        memcpy(CMSG_DATA(cm), &pi, sizeof pi);
        (void)m;
        return CMSG_SPACE(sizeof pi);
    }
    cm->cmsg_level = IPPROTO_IPV6;
    cm->cmsg_type = IPV6_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
    struct in6_pktinfo pi = {0};
    pi.ipi6_addr = ((const struct sockaddr_in6 *)(const void *)local->addr)->sin6_addr;
    memcpy(CMSG_DATA(cm), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
}

static void want_write(h3_worker *hw)
{
    if (hw->want_write || !hw->poll_open)
        return;
    hw->want_write = true;
    uv_poll_start(&hw->poll, UV_READABLE | UV_WRITABLE, NULL); /* callback kept by the first start */
}

int hx_h3_send(h3_worker *hw, const ngtcp2_path *path, const uint8_t *data, size_t len, size_t seg)
{
    while (len > 0) {
        uint8_t ctl[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
        memset(ctl, 0, sizeof ctl);
        struct iovec iov = {(void *)(uintptr_t)data, len};
        struct msghdr m = {.msg_name = path->remote.addr, .msg_namelen = path->remote.addrlen,
                           .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl};
        size_t cl = put_pktinfo(&m, ctl, &path->local);
        size_t n = len;
        if (len > seg && hw->gso) {
            struct cmsghdr *cm = (struct cmsghdr *)(ctl + cl);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t s16 = (uint16_t)seg;
            memcpy(CMSG_DATA(cm), &s16, sizeof s16);
            cl += CMSG_SPACE(sizeof(uint16_t));
        } else if (len > seg) {
            n = seg;
            iov.iov_len = n;
        }
        m.msg_controllen = cl;
        ssize_t w;
        do
            w = sendmsg(hw->fd, &m, MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                want_write(hw);
                return 1;
            }
            if (len > seg && hw->gso && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) {
                hw->gso = false; /* no GSO here (e.g. a checksum offload missing): one by one */
                continue;
            }
            return -1;
        }
        data += n;
        len -= n;
    }
    return 0;
}

static int send_plain(h3_worker *hw, const ngtcp2_path *path, const uint8_t *data, size_t len)
{
    return hx_h3_send(hw, path, data, len, len);
}

/* ---- the write list: connections with output, written once per turn ---------- */

static void write_all(h3_worker *hw)
{
    h3_conn *c = hw->write_head;
    hw->write_head = NULL;
    while (c) {
        h3_conn *next = c->wnext;
        c->wnext = NULL;
        c->write_due = false;
        hx_h3_conn_write(c); /* may close and free c */
        c = next;
    }
    if (hw->write_head == NULL)
        uv_idle_stop(&hw->write_idle);
}

static void on_write_check(uv_check_t *h)
{
    write_all(h->data);
}

static void on_write_idle(uv_idle_t *h)
{
    (void)h; /* keeps the loop from blocking while writes wait for the check phase */
}

void hx_h3_write_soon(h3_conn *c)
{
    if (c->write_due || c->state == H3C_CLOSED)
        return;
    c->write_due = true;
    c->wnext = c->hw->write_head;
    c->hw->write_head = c;
    uv_idle_start(&c->hw->write_idle, on_write_idle);
}

/* ---- packets no connection sends --------------------------------------------- */

/* RFC 9000 6: the versions we speak, and one reserved version so clients
 * do not come to rely on the list being exactly ours. */
static void send_version_negotiation(h3_worker *hw, const ngtcp2_path *path, const ngtcp2_version_cid *vc)
{
    uint32_t sv[2] = {0x1a2a3a4au, NGTCP2_PROTO_VER_V1};
    uint8_t buf[256], r;
    gnutls_rnd(GNUTLS_RND_NONCE, &r, 1);
    ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(buf, sizeof buf, r, vc->scid, vc->scidlen, vc->dcid,
                                                          vc->dcidlen, sv, 2);
    if (n > 0 && send_plain(hw, path, buf, (size_t)n) == 0)
        count_event("version_negotiation");
}

static void send_retry(h3_worker *hw, const ngtcp2_path *path, const ngtcp2_pkt_hd *hd, size_t pktlen)
{
    ngtcp2_cid scid;
    hx_h3_make_cid(hw, &scid);
    uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
    ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token(token, hx_h3_g.secret, sizeof hx_h3_g.secret, hd->version,
                                                          path->remote.addr, path->remote.addrlen, &scid,
                                                          &hd->dcid, wall_ns());
    if (tl < 0)
        return;
    uint8_t buf[HX_H3_MAX_UDP];
    /* Never more than 3 times what the client sent (anti-amplification). */
    size_t cap = pktlen * 3 < sizeof buf ? pktlen * 3 : sizeof buf;
    ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, cap, hd->version, &hd->scid, &scid, &hd->dcid, token,
                                               (size_t)tl);
    if (n > 0 && send_plain(hw, path, buf, (size_t)n) == 0)
        count_event("retry");
}

static void send_refusal(h3_worker *hw, const ngtcp2_path *path, const ngtcp2_pkt_hd *hd, uint64_t code,
                         const char *kind)
{
    uint8_t buf[HX_H3_MAX_UDP];
    ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(buf, sizeof buf, hd->version, &hd->scid, &hd->dcid,
                                                          code, NULL, 0);
    if (n > 0 && send_plain(hw, path, buf, (size_t)n) == 0)
        count_event(kind);
}

/* RFC 9000 10.3: a short-header packet for a connection we do not know
 * (ours before a restart, or lost) gets a stateless reset, which ends it
 * on the client at once instead of after its idle timeout. Smaller than
 * what triggered it (no loops between two endpoints), and at most one
 * per millisecond per worker. */
static void send_stateless_reset(h3_worker *hw, const ngtcp2_path *path, const ngtcp2_version_cid *vc,
                                 size_t pktlen)
{
    static _Thread_local uint64_t last_ns;
    uint64_t now = hx_h3_now();
    if (vc->dcidlen != HX_H3_SCID_LEN || pktlen < 1 + HX_H3_SCID_LEN + 22 || now - last_ns < 1000000ull)
        return;
    last_ns = now;
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, vc->dcid, vc->dcidlen);
    uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], rnd[64], buf[128];
    if (ngtcp2_crypto_generate_stateless_reset_token(token, hx_h3_g.secret, sizeof hx_h3_g.secret, &cid) != 0)
        return;
    size_t out = pktlen - 1 < 43 ? pktlen - 1 : 43;
    size_t randlen = out - NGTCP2_STATELESS_RESET_TOKENLEN;
    gnutls_rnd(GNUTLS_RND_NONCE, rnd, randlen);
    ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, sizeof buf, token, rnd, randlen);
    if (n > 0 && send_plain(hw, path, buf, (size_t)n) == 0)
        count_event("stateless_reset");
}

/* ---- new connections ----------------------------------------------------------- */

/* RFC 9000 8.1: whether a client must prove its address first. */
static bool must_validate(const h3_worker *hw)
{
    return hx_h3_g.validation == 1 || (hx_h3_g.validation == 0 && hw->handshaking >= HX_H3_RETRY_HANDSHAKES);
}

static void accept_new(h3_worker *hw, const ngtcp2_path *path, const ngtcp2_pkt_info *pi, const uint8_t *pkt,
                       size_t len)
{
    ngtcp2_pkt_hd hd;
    if (hw->w->draining || ngtcp2_accept(&hd, pkt, len) != 0)
        return; /* not a client's first Initial: dropped */
    long max = hw->w->cfg->server.max_connections;
    if (max > 0 && atomic_load(&hw->w->srv->conns) >= max) {
        send_refusal(hw, path, &hd, NGTCP2_CONNECTION_REFUSED, "refused");
        return;
    }
    ngtcp2_cid ocid, *pocid = NULL;
    const uint8_t *token = NULL;
    size_t tokenlen = 0;
    if (hd.token.len == 0 && must_validate(hw)) {
        send_retry(hw, path, &hd, len);
        return;
    }
    if (hd.token.len > 0 && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
        if (ngtcp2_crypto_verify_retry_token(&ocid, hd.token.base, hd.token.len, hx_h3_g.secret,
                                             sizeof hx_h3_g.secret, hd.version, path->remote.addr,
                                             path->remote.addrlen, &hd.dcid, HX_H3_RETRY_TOKEN_NS, wall_ns()) != 0) {
            send_refusal(hw, path, &hd, NGTCP2_INVALID_TOKEN, "invalid_token");
            return;
        }
        pocid = &ocid;
        token = hd.token.base;
        tokenlen = hd.token.len;
    } else if (hd.token.len > 0) {
        /* A NEW_TOKEN from an earlier connection: valid, the address is
         * proven; otherwise it counts as no token. */
        if (hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_REGULAR &&
            ngtcp2_crypto_verify_regular_token(hd.token.base, hd.token.len, hx_h3_g.secret, sizeof hx_h3_g.secret,
                                               path->remote.addr, path->remote.addrlen, HX_H3_REGULAR_TOKEN_NS,
                                               wall_ns()) == 0) {
            token = hd.token.base;
            tokenlen = hd.token.len;
        } else if (must_validate(hw)) {
            send_retry(hw, path, &hd, len);
            return;
        }
    }
    h3_conn *c = hx_h3_conn_new(hw, path, &hd, pocid, token, tokenlen);
    if (c == NULL)
        return;
    if (hx_h3_conn_read(c, path, pi, pkt, len) == 0)
        hx_h3_write_soon(c);
}

/* ---- receiving ------------------------------------------------------------------- */

static void on_datagram(h3_worker *hw, const ngtcp2_path *path, const ngtcp2_pkt_info *pi, const uint8_t *pkt,
                        size_t len)
{
    ngtcp2_version_cid vc;
    int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, HX_H3_SCID_LEN);
    if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
        send_version_negotiation(hw, path, &vc);
        return;
    }
    if (rv != 0)
        return;
    h3_conn *c = cid_lookup(hw, vc.dcid, vc.dcidlen);
    if (c) {
        if (hx_h3_conn_read(c, path, pi, pkt, len) == 0)
            hx_h3_write_soon(c);
        return;
    }
    if (!(pkt[0] & 0x80))
        send_stateless_reset(hw, path, &vc, len);
    else
        accept_new(hw, path, pi, pkt, len);
}

/* The local address (IP_PKTINFO) and the GRO segment size of a read. */
static size_t read_cmsgs(h3_worker *hw, struct msghdr *m, struct sockaddr_storage *local)
{
    size_t seg = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof pi);
            struct sockaddr_in *a = (struct sockaddr_in *)local;
            a->sin_family = AF_INET;
            a->sin_addr = pi.ipi_addr;
            a->sin_port = htons(hw->port);
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof pi);
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)local;
            a->sin6_family = AF_INET6;
            a->sin6_addr = pi.ipi6_addr;
            a->sin6_port = htons(hw->port);
        } else if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
            int s;
            memcpy(&s, CMSG_DATA(cm), sizeof s);
            seg = s > 0 ? (size_t)s : 0;
        }
    }
    return seg;
}

static void read_batch(h3_worker *hw)
{
    for (int i = 0; i < HX_H3_READ_BATCH; i++) {
        struct sockaddr_storage remote, local;
        memset(&local, 0, sizeof local);
        uint8_t ctl[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int)) + 64];
        struct iovec iov = {hw->rx, HX_H3_RX_BUF};
        struct msghdr m = {.msg_name = &remote, .msg_namelen = sizeof remote, .msg_iov = &iov, .msg_iovlen = 1,
                           .msg_control = ctl, .msg_controllen = sizeof ctl};
        ssize_t n = recvmsg(hw->fd, &m, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        size_t seg = read_cmsgs(hw, &m, &local);
        if (local.ss_family == 0)
            continue;
        ngtcp2_path path = {
            .local = {(ngtcp2_sockaddr *)&local,
                      local.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)},
            .remote = {(ngtcp2_sockaddr *)&remote, m.msg_namelen},
        };
        ngtcp2_pkt_info pi = {0};
        size_t total = (size_t)n, step = seg ? seg : total;
        for (size_t off = 0; off < total; off += step)
            on_datagram(hw, &path, &pi, hw->rx + off, total - off < step ? total - off : step);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    h3_worker *hw = p->data;
    if (status < 0)
        return;
    if (events & UV_WRITABLE) {
        hw->want_write = false;
        uv_poll_start(&hw->poll, UV_READABLE, on_poll);
        for (h3_conn *c = hw->conns; c; c = c->next)
            hx_h3_write_soon(c);
    }
    if (events & UV_READABLE)
        read_batch(hw);
}

static void on_sweep(uv_timer_t *t)
{
    hx_h3_sweep(t->data);
}

/* ---- the worker's socket ---------------------------------------------------------- */

static void socket_options(int fd, int family)
{
    int one = 1;
    if (family == AF_INET)
        setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    else
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    /* Path MTU probing is QUIC's own (RFC 9000 14.3): never fragment. */
    int pmtu = IP_PMTUDISC_DO;
    if (family == AF_INET)
        setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    else
        setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof pmtu);
    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one); /* where the kernel has it */
}

int hx_h3_worker_open(hx_worker *w)
{
    h3_worker *hw = hx_calloc(1, sizeof *hw);
    if (hw == NULL)
        return -1;
    hw->w = w;
    hw->fd = w->h3_fd;
    hw->rx = hx_malloc(HX_H3_RX_BUF);
    hw->tx = hx_malloc(HX_H3_GSO_MAX * HX_H3_MAX_UDP);
    if (hw->rx == NULL || hw->tx == NULL)
        goto fail;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss); /* the analyzer does not model getsockname() */
    socklen_t sl = sizeof ss;
    if (getsockname(hw->fd, (struct sockaddr *)&ss, &sl) != 0)
        goto fail;
    hw->family = ss.ss_family;
    hw->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    socket_options(hw->fd, hw->family);
    hw->gso = true;
    if (uv_poll_init(&w->loop, &hw->poll, hw->fd) != 0)
        goto fail;
    hw->poll_open = true;
    hw->poll.data = hw;
    uv_check_init(&w->loop, &hw->write_check);
    uv_idle_init(&w->loop, &hw->write_idle);
    hw->write_check.data = hw;
    uv_check_start(&hw->write_check, on_write_check);
    uv_timer_init(&w->loop, &hw->sweep);
    hw->sweep.data = hw;
    uv_timer_start(&hw->sweep, on_sweep, 1000, 1000);
    uv_unref((uv_handle_t *)&hw->sweep);
    uv_poll_start(&hw->poll, UV_READABLE, on_poll);
    w->h3 = hw;
    return 0;
fail:
    hx_free(hw->rx);
    hx_free(hw->tx);
    hx_free(hw);
    return -1;
}

/* Shutdown: no new connections (accept_new checks w->draining); each
 * connection says GOAWAY and closes once its streams are done. */
void hx_h3_worker_drain(hx_worker *w)
{
    if (w->h3 == NULL)
        return;
    for (h3_conn *c = w->h3->conns, *next; c; c = next) {
        next = c->next;
        hx_h3_conn_drain(c);
    }
}

void hx_h3_worker_close_all(hx_worker *w)
{
    if (w->h3 == NULL)
        return;
    for (h3_conn *c = w->h3->conns, *next; c; c = next) {
        next = c->next;
        hx_h3_conn_close(c, "shutdown");
    }
}

/* After the loop stopped: the handles close on its last run. */
void hx_h3_worker_close(hx_worker *w)
{
    h3_worker *hw = w->h3;
    if (hw == NULL)
        return;
    hx_h3_worker_close_all(w);
    write_all(hw); /* frees the closed connections still on the write list */
    uv_close((uv_handle_t *)&hw->write_check, NULL);
    uv_close((uv_handle_t *)&hw->sweep, NULL);
    uv_close((uv_handle_t *)&hw->write_idle, NULL);
    if (hw->poll_open)
        uv_close((uv_handle_t *)&hw->poll, NULL);
}

/* After the last loop run: the memory. */
void hx_h3_worker_free(hx_worker *w)
{
    h3_worker *hw = w->h3;
    if (hw == NULL)
        return;
    if (hw->fd >= 0)
        close(hw->fd);
    w->h3_fd = -1;
    hx_free(hw->cids);
    hx_free(hw->rx);
    hx_free(hw->tx);
    hx_free(hw);
    w->h3 = NULL;
}
