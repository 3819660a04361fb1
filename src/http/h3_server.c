/* HTTP/3 adapter, process side: what server.http3 sets up once (the TLS
 * context of its certificate with ALPN h3, the secret behind tokens and
 * stateless resets, the 0-RTT single-use register, Alt-Svc) and the UDP
 * sockets of the workers, bound in worker order into one SO_REUSEPORT
 * group steered by connection ID (quic_steer.c). */
#include <errno.h>
#include <gnutls/crypto.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/h3_int.h"
#include "http/quic_steer.h"
#include "http/redirect.h"
#include "obs/log.h"
#include "util/alloc.h"

/* QUIC is TLS 1.3 only and has no middlebox compatibility mode (RFC 9001
 * 8.4); AES-128-GCM must be there for Initial packets. */
#define H3_PRIORITY                                                                                          \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"       \
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1"

static char alt_svc[64];

/* The register behind GnuTLS's anti-replay: the application's (the state
 * store), whose answer also becomes the replay metric and SIEM event. */
static hx_replay_add_fn app_add;
static hx_replay_shared_fn app_shared;
static void *app_add_ud;

/* The shared register's answer for one connection (which may be gone by
 * then: c NULL). */
typedef struct h3_verdict {
    h3_conn *c;
    bool in_call; /* answered before app_shared returned: replay_add finishes */
    bool answered;
} h3_verdict;

static void on_shared_verdict(void *arg, hx_replay_rc rc)
{
    h3_verdict *v = arg;
    h3_conn *c = v->c;
    v->answered = true;
    if (c) {
        c->verdict = NULL;
        c->shared_pending = false;
        if (rc != HX_REPLAY_NEW) {
            c->shared_refused = true;
            hx_h3_count_early(rc == HX_REPLAY_SEEN ? "replay" : "register_error", c);
        }
        if (!v->in_call)
            hx_h3_streams_ungate(c);
    }
    if (!v->in_call)
        hx_free(v);
}

/* Early requests of c wait for the shared register (another instance may
 * have seen this first flight); the local register answered NEW. */
static void ask_shared(h3_conn *c, const char *key, int64_t ttl_ms)
{
    h3_verdict *v = hx_calloc(1, sizeof *v);
    if (v == NULL) {
        c->shared_refused = true; /* no early data rather than unchecked */
        return;
    }
    v->c = c;
    v->in_call = true;
    c->verdict = v;
    c->shared_pending = true;
    if (app_shared(app_add_ud, key, ttl_ms, on_shared_verdict, v) != 0) {
        c->verdict = NULL;
        c->shared_pending = false;
    }
    v->in_call = false;
    if (c->verdict == NULL)
        hx_free(v); /* answered already, or never will be */
}

void hx_h3_verdict_detach(h3_conn *c)
{
    if (c->verdict)
        c->verdict->c = NULL;
    c->verdict = NULL;
}

static hx_replay_rc replay_add(void *ud, const char *key, int64_t ttl_ms)
{
    (void)ud;
    hx_replay_rc rc = app_add(app_add_ud, key, ttl_ms);
    h3_conn *c = hx_h3_reading;
    if (rc == HX_REPLAY_NEW && c && app_shared)
        ask_shared(c, key, ttl_ms);
    if (rc == HX_REPLAY_SEEN) {
        if (c)
            c->replay_seen = true;
        hx_h3_count_early("replay", c);
    } else if (rc == HX_REPLAY_ERROR) {
        if (c)
            c->replay_seen = true;
        hx_h3_count_early("register_error", c);
    }
    return rc;
}

static hx_replay_rc replay_allow_all(void *ud, const char *key, int64_t ttl_ms)
{
    (void)ud, (void)key, (void)ttl_ms;
    return HX_REPLAY_NEW;
}

/* Tokens and stateless resets must verify on every worker and, with
 * server.tls.ticket_key_file, on every instance and after a restart (a
 * restarted server resets its old clients' connections at once): the
 * secret is derived from that file's key; otherwise it is random. */
static int make_secret(const hx_config *cfg)
{
    const hx_cfg_tls *t = &cfg->server.tls;
    if (t->session_tickets && *t->ticket_key_file) {
        uint8_t key[HX_TLS_TICKET_KEY_LEN];
        FILE *f = fopen(t->ticket_key_file, "rb");
        size_t n = f ? fread(key, 1, sizeof key, f) : 0;
        if (f)
            fclose(f);
        static const char label[] = "hapax quic secret v1";
        int rc = n == sizeof key ? gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, sizeof key, label, sizeof label - 1,
                                                    hx_h3_g.secret)
                                 : -1;
        gnutls_memset(key, 0, sizeof key);
        return rc == 0 ? 0 : -1;
    }
    return gnutls_rnd(GNUTLS_RND_KEY, hx_h3_g.secret, sizeof hx_h3_g.secret) == 0 ? 0 : -1;
}

/* The TLS context of server.http3: its certificate, ALPN h3 only, TLS 1.3
 * only; the same client-certificate rule as the TCP listener (HTTP/3 is
 * no way around server.tls.client_auth) and its ticket key. */
static hx_tls_ctx *make_tls(const hx_config *cfg, char *err, size_t errlen)
{
    const hx_cfg_http3 *h = &cfg->server.http3;
    const hx_cfg_tls *tcp = &cfg->server.tls;
    static char *alpn_h3[] = {"h3"};
    hx_cfg_tls t = {
        .enabled = true,
        .port = h->port,
        .cert_file = h->tls_cert_file,
        .key_file = h->tls_key_file,
        .min_version = "1.3",
        .priority = H3_PRIORITY,
        .alpn = {alpn_h3, 1},
        .client_ca_file = tcp->enabled ? tcp->client_ca_file : "",
        .client_auth = tcp->enabled ? tcp->client_auth : "none",
        .session_tickets = true,
        .ticket_key_file = tcp->session_tickets ? tcp->ticket_key_file : "",
        .handshake_timeout = tcp->handshake_timeout,
    };
    return hx_tls_ctx_new(&t, err, errlen);
}

/* New connections take the current context; a renewed certificate swaps
 * it (connections keep the one they started with). */
static pthread_mutex_t tls_mu = PTHREAD_MUTEX_INITIALIZER;

hx_tls_ctx *hx_h3_tls_current(void)
{
    pthread_mutex_lock(&tls_mu);
    hx_tls_ctx *c = hx_tls_ctx_ref(hx_h3_g.tls);
    pthread_mutex_unlock(&tls_mu);
    return c;
}

hx_tls_ctx *hx_h3_tls_build(const hx_config *cfg, char *err, size_t errlen)
{
    return make_tls(cfg, err, errlen);
}

void hx_h3_tls_install(hx_tls_ctx *neu)
{
    pthread_mutex_lock(&tls_mu);
    hx_tls_ctx *old = hx_h3_g.tls;
    hx_h3_g.tls = neu;
    pthread_mutex_unlock(&tls_mu);
    hx_tls_ctx_unref(old);
}

bool hx_h3_tls_files_changed(void)
{
    hx_tls_ctx *c = hx_h3_tls_current();
    bool changed = c && hx_tls_ctx_files_changed(c);
    hx_tls_ctx_unref(c);
    return changed;
}

int hx_h3_server_init(const hx_config *cfg, hx_replay_add_fn add, hx_replay_shared_fn shared, void *add_ud, char *err,
                      size_t errlen)
{
    const hx_cfg_http3 *h = &cfg->server.http3;
    hx_h3_g.tls = make_tls(cfg, err, errlen);
    if (hx_h3_g.tls == NULL)
        return -1;
    hx_h3_g.debug = getenv("HX_H3_DEBUG") != NULL; /* read once, not per connection */
    if (make_secret(cfg) != 0) {
        snprintf(err, errlen, "server.http3: cannot make the token secret");
        return -1;
    }
    hx_h3_g.validation = strcmp(h->address_validation, "always") == 0 ? 1
                         : strcmp(h->address_validation, "never") == 0 ? 2
                                                                         : 0;
    if (h->enable_0rtt && !h->allow_0rtt_replay) {
        if (add == NULL) {
            snprintf(err, errlen, "server.http3.enable_0rtt needs a single-use register (none was given)");
            return -1;
        }
        app_add = add;
        app_shared = shared;
        app_add_ud = add_ud;
        /* Ticket ages may be off by this much (GnuTLS's window). */
        hx_h3_g.replay = hx_antireplay_new(10000, replay_add, NULL);
        if (hx_h3_g.replay == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    } else if (h->enable_0rtt) {
        /* GnuTLS takes early data only with an anti-replay object: one
         * whose register lets everything through, as the operator asked. */
        hx_h3_g.replay = hx_antireplay_new(10000, replay_allow_all, NULL);
        if (hx_h3_g.replay == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        HX_LOG_WARN("server.http3.allow_0rtt_replay is true: a captured 0-RTT request can be replayed to the "
                    "gateway and reach the provider again (billed again)",
                    HX_F_STR("event", "security"), HX_F_STR("kind", "0rtt_replay_allowed"));
    }
    snprintf(alt_svc, sizeof alt_svc, "h3=\":%d\"; ma=86400", (int)h->port);
    hx_res_set_alt_svc(alt_svc);
    return 0;
}

void hx_h3_server_free(void)
{
    hx_res_set_alt_svc(NULL);
    hx_antireplay_free(hx_h3_g.replay);
    hx_tls_ctx_unref(hx_h3_g.tls);
    gnutls_memset(hx_h3_g.secret, 0, sizeof hx_h3_g.secret);
    memset(&hx_h3_g, 0, sizeof hx_h3_g);
}

/* ---- sockets ---------------------------------------------------------------- */

static int udp_socket(const struct addrinfo *ai, bool reuseport)
{
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* server.http3.udp_receive_buffer_size: the kernel may cap it
 * (net.core.rmem_max); the worker that binds first says what it got. */
static void set_rcvbuf(int fd, int64_t want, bool report)
{
    int v = want > INT32_MAX / 2 ? INT32_MAX / 2 : (int)want;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    int got = 0;
    socklen_t gl = sizeof got;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
    got /= 2; /* Linux reports twice what it grants for data (its bookkeeping) */
    if (!report)
        return;
    if (got < v)
        HX_LOG_WARN("server.http3.udp_receive_buffer_size is capped by the kernel (raise net.core.rmem_max)",
                    HX_F_INT("requested_bytes", v), HX_F_INT("effective_bytes", got));
    else
        HX_LOG_INFO("HTTP/3 UDP receive buffer", HX_F_INT("effective_bytes", got));
}

/* One socket per worker, in worker order (the group's index is the
 * steering program's answer). The port is first bound alone: that bind
 * fails if anything holds it (another hapax), so a second gateway
 * never silently joins this group. */
int hx_h3_bind(hx_server *s, char *err, size_t errlen)
{
    const hx_config *cfg = s->cfg;
    int port = (int)cfg->server.http3.port;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[16];
    const char *host = cfg->server.host;
    snprintf(ps, sizeof ps, "%d", port);
    int gai = getaddrinfo(*host ? host : NULL, ps, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve HTTP/3 listen address '%s': %s", host, gai_strerror(gai));
        return -1;
    }
    /* The config refuses port 0 (Alt-Svc announces the port). */
    int probe = udp_socket(res, false);
    if (probe < 0)
        goto fail;
    close(probe);
    for (int i = 0; i < s->nworkers; i++) {
        hx_worker *w = &s->workers[i];
        w->h3_fd = udp_socket(res, true);
        if (w->h3_fd < 0)
            goto fail;
        set_rcvbuf(w->h3_fd, cfg->server.http3.udp_receive_buffer_size, i == 0);
    }
    int rc = hx_quic_steer_attach(s->workers[0].h3_fd, (unsigned)s->nworkers);
    if (rc != 0) {
        snprintf(err, errlen, "HTTP/3: cannot attach the steering program: %s", strerror(-rc));
        freeaddrinfo(res);
        return -1;
    }
    s->h3_port = port;
    freeaddrinfo(res);
    return 0;
fail:
    snprintf(err, errlen, "cannot listen on UDP %s:%d for HTTP/3: %s%s", *host ? host : "*", port, strerror(errno),
             errno == EADDRINUSE ? " (another hapax or another program uses it)" : "");
    freeaddrinfo(res);
    return -1;
}
