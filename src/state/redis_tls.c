#include "state/redis_tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/buf.h"

struct hx_redis_tls {
    uv_loop_t *loop;
    uv_pipe_t listener;
    gnutls_certificate_credentials_t cred;
    char dir[64];
    char path[96];
    char host[256];
    char server_name[256];
    int port;
    int live;          /* connections not yet freed */
    bool closing;
};

/* One relayed connection: hiredis's plain side and the TLS side. */
typedef struct {
    hx_redis_tls *t;
    uv_pipe_t local;
    uv_tcp_t remote;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    gnutls_session_t s;
    bool session;      /* s is initialised */
    bool handshaken;
    bool dead;
    int open;          /* handles not yet closed */
    hx_buf in;         /* ciphertext read, not yet taken by GnuTLS */
    hx_buf pending;    /* plain from hiredis before the handshake ended */
} relay;

typedef struct {
    uv_write_t w;
    size_t len;
    char data[];
} wreq;

static void relay_free(relay *c)
{
    if (c->session)
        gnutls_deinit(c->s);
    hx_buf_free(&c->in);
    hx_buf_free(&c->pending);
    hx_redis_tls *t = c->t;
    hx_free(c);
    if (--t->live == 0 && t->closing) {
        gnutls_certificate_free_credentials(t->cred);
        hx_free(t);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    relay *c = h->data;
    if (--c->open == 0)
        relay_free(c);
}

/* Ends both sides; hiredis sees the local side close (a disconnect). */
static void relay_end(relay *c)
{
    if (c->dead)
        return;
    c->dead = true;
    uv_close((uv_handle_t *)&c->local, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&c->remote))
        uv_close((uv_handle_t *)&c->remote, on_handle_closed);
}

static void on_written(uv_write_t *w, int status)
{
    relay *c = w->data;
    hx_free(w);
    if (status != 0)
        relay_end(c);
}

/* Queues a copy of data on stream; false (and the relay ends) past the
 * queue bound or out of memory. */
static bool put(relay *c, uv_stream_t *to, const void *data, size_t len)
{
    if (c->dead)
        return false;
    if (uv_stream_get_write_queue_size(to) + len > HX_REDIS_TLS_QUEUE_MAX) {
        relay_end(c);
        return false;
    }
    wreq *w = hx_malloc(sizeof *w + len);
    if (w == NULL) {
        relay_end(c);
        return false;
    }
    memcpy(w->data, data, len);
    w->len = len;
    w->w.data = c;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->w, to, &b, 1, on_written) != 0) {
        hx_free(w);
        relay_end(c);
        return false;
    }
    return true;
}

static ssize_t tls_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
    relay *c = p;
    if (!put(c, (uv_stream_t *)&c->remote, data, len)) {
        gnutls_transport_set_errno(c->s, EIO);
        return -1;
    }
    return (ssize_t)len;
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
    relay *c = p;
    if (c->in.len == 0) {
        gnutls_transport_set_errno(c->s, EAGAIN);
        return -1;
    }
    size_t n = c->in.len < len ? c->in.len : len;
    memcpy(data, c->in.data, n);
    hx_buf_consume(&c->in, n);
    return (ssize_t)n;
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    static _Thread_local char buf[65536];
    *b = uv_buf_init(buf, sizeof buf);
}

/* All of data as TLS records: GnuTLS sends at most one record (16 KiB) per
 * call, and hiredis hands over whatever it queued at once. */
static int send_all(relay *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = gnutls_record_send(c->s, data, len);
        if (n <= 0)
            return -1; /* the push never blocks: AGAIN cannot come back here */
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Everything GnuTLS can decrypt now goes to hiredis. */
static void drain_tls(relay *c)
{
    if (!c->handshaken) {
        int rc = gnutls_handshake(c->s);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
            return;
        if (rc < 0) { /* certificate, name, protocol: the store sees a disconnect */
            relay_end(c);
            return;
        }
        c->handshaken = true;
        if (c->pending.len && send_all(c, c->pending.data, c->pending.len) != 0) {
            relay_end(c);
            return;
        }
        hx_buf_reset(&c->pending);
    }
    char out[16384];
    for (;;) {
        size_t before = c->in.len;
        ssize_t n = gnutls_record_recv(c->s, out, sizeof out);
        /* AGAIN also comes after a record that carried no application data
         * (TLS 1.3 session tickets): go on while it took bytes and some
         * are left, else the rest would wait for a read that never comes. */
        if ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) && c->in.len > 0 && c->in.len < before)
            continue;
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            return;
        if (n <= 0 || !put(c, (uv_stream_t *)&c->local, out, (size_t)n)) {
            relay_end(c);
            return;
        }
    }
}

static void on_remote_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    relay *c = st->data;
    if (n < 0 || c->dead) {
        relay_end(c);
        return;
    }
    if (n > 0 && hx_buf_append(&c->in, b->base, (size_t)n) != 0) {
        relay_end(c);
        return;
    }
    drain_tls(c);
}

static void on_local_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    relay *c = st->data;
    if (n < 0 || c->dead) {
        relay_end(c);
        return;
    }
    if (n == 0)
        return;
    if (!c->handshaken) {
        if (hx_buf_append(&c->pending, b->base, (size_t)n) != 0)
            relay_end(c);
        return;
    }
    if (send_all(c, b->base, (size_t)n) != 0)
        relay_end(c);
}

static void on_remote_connected(uv_connect_t *req, int status)
{
    relay *c = req->data;
    if (status != 0 || c->dead) {
        relay_end(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->remote, alloc_cb, on_remote_read) != 0) {
        relay_end(c);
        return;
    }
    drain_tls(c); /* sends the ClientHello */
}

static int session_new(relay *c)
{
    hx_redis_tls *t = c->t;
    if (gnutls_init(&c->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK) != 0)
        return -1;
    c->session = true;
    const char *name = *t->server_name ? t->server_name : t->host;
    if (gnutls_set_default_priority(c->s) != 0 ||
        gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, t->cred) != 0 ||
        gnutls_server_name_set(c->s, GNUTLS_NAME_DNS, name, strlen(name)) != 0)
        return -1;
    gnutls_session_set_verify_cert(c->s, name, 0);
    gnutls_transport_set_ptr(c->s, c);
    gnutls_transport_set_push_function(c->s, tls_push);
    gnutls_transport_set_pull_function(c->s, tls_pull);
    return 0;
}

static void connect_to(relay *c, const struct sockaddr *sa)
{
    if (uv_tcp_connect(&c->creq, &c->remote, sa, on_remote_connected) != 0)
        relay_end(c);
}

/* A name, not an address: resolved off the loop (hiredis would block on it). */
static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    relay *c = req->data;
    if (status == 0 && res && !c->dead)
        connect_to(c, res->ai_addr);
    else
        relay_end(c);
    uv_freeaddrinfo(res);
    if (--c->open == 0) /* the resolution held the relay too */
        relay_free(c);
}

static void on_local_connection(uv_stream_t *server, int status)
{
    hx_redis_tls *t = server->data;
    relay *c = status == 0 ? hx_calloc(1, sizeof *c) : NULL;
    if (c == NULL)
        return;
    c->t = t;
    t->live++;
    hx_buf_init(&c->in, HX_REDIS_TLS_QUEUE_MAX);
    hx_buf_init(&c->pending, HX_REDIS_TLS_QUEUE_MAX);
    uv_pipe_init(t->loop, &c->local, 0);
    uv_tcp_init(t->loop, &c->remote);
    c->local.data = c->remote.data = c->creq.data = c;
    c->open = 2;
    c->gai.data = c;
    struct sockaddr_storage sa;
    if (uv_accept(server, (uv_stream_t *)&c->local) != 0 || session_new(c) != 0 ||
        uv_read_start((uv_stream_t *)&c->local, alloc_cb, on_local_read) != 0) {
        relay_end(c);
        return;
    }
    if (uv_ip4_addr(t->host, t->port, (struct sockaddr_in *)&sa) == 0 ||
        uv_ip6_addr(t->host, t->port, (struct sockaddr_in6 *)&sa) == 0) {
        connect_to(c, (struct sockaddr *)&sa);
        return;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", t->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->open++;
    if (uv_getaddrinfo(t->loop, &c->gai, on_resolved, t->host, port, &hints) != 0) {
        c->open--;
        relay_end(c);
    }
}

static void on_listener_closed(uv_handle_t *h);

static int load_cred(hx_redis_tls *t, const hx_redis_tls_opts *o, char *err, size_t errlen)
{
    if (gnutls_certificate_allocate_credentials(&t->cred) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = *o->ca_file ? gnutls_certificate_set_x509_trust_file(t->cred, o->ca_file, GNUTLS_X509_FMT_PEM)
                         : gnutls_certificate_set_x509_system_trust(t->cred);
    if (rc <= 0) {
        snprintf(err, errlen, "no CA certificate loaded from %s", *o->ca_file ? o->ca_file : "the system trust store");
        gnutls_certificate_free_credentials(t->cred);
        return -1;
    }
    if (*o->cert_file &&
        gnutls_certificate_set_x509_key_file(t->cred, o->cert_file, o->key_file, GNUTLS_X509_FMT_PEM) != 0) {
        snprintf(err, errlen, "cannot load the client certificate %s with its key", o->cert_file);
        gnutls_certificate_free_credentials(t->cred);
        return -1;
    }
    return 0;
}

hx_redis_tls *hx_redis_tls_new(uv_loop_t *loop, const hx_redis_tls_opts *o, char *err, size_t errlen)
{
    hx_redis_tls *t = hx_calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->loop = loop;
    snprintf(t->server_name, sizeof t->server_name, "%s", o->server_name);
    if (load_cred(t, o, err, errlen) != 0) {
        hx_free(t);
        return NULL;
    }
    /* A private directory: the plain side is for this user only. */
    const char *tmp = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/hapax-redis-XXXXXX", tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (mkdtemp(t->dir) == NULL) {
        snprintf(err, errlen, "cannot make a private directory for the TLS relay");
        gnutls_certificate_free_credentials(t->cred);
        hx_free(t);
        return NULL;
    }
    snprintf(t->path, sizeof t->path, "%s/r.sock", t->dir);
    uv_pipe_init(loop, &t->listener, 0);
    t->listener.data = t;
    if (uv_pipe_bind(&t->listener, t->path) != 0 ||
        uv_listen((uv_stream_t *)&t->listener, 16, on_local_connection) != 0) {
        snprintf(err, errlen, "cannot listen on %s", t->path);
        hx_redis_tls_free(t); /* freed once the listener has closed */
        return NULL;
    }
    return t;
}

void hx_redis_tls_set_target(hx_redis_tls *t, const char *host, int port)
{
    snprintf(t->host, sizeof t->host, "%s", host);
    t->port = port;
}

const char *hx_redis_tls_path(const hx_redis_tls *t)
{
    return t->path;
}

static void on_listener_closed(uv_handle_t *h)
{
    hx_redis_tls *t = h->data;
    if (--t->live == 0) {
        gnutls_certificate_free_credentials(t->cred);
        hx_free(t);
    }
}

void hx_redis_tls_free(hx_redis_tls *t)
{
    if (t == NULL)
        return;
    t->closing = true;
    unlink(t->path);
    rmdir(t->dir);
    t->live++; /* the listener, until its close callback */
    uv_close((uv_handle_t *)&t->listener, on_listener_closed);
}
