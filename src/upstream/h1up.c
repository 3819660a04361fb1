/* Plain HTTP/1.1 upstream calls without libcurl: for http:// URLs to an IP
 * literal when no proxy variable is set (local models, sidecars, the
 * mock); everything else (TLS, names, proxies, HTTP/2) goes through
 * libcurl. libcurl 7.88 costs two poll() calls on every reuse of a kept
 * connection and about a fifth of a worker's CPU per request; here a
 * request is one write and its answer one read.
 *
 * A connection belongs to one call while busy and sits in its host's idle
 * list (most recent first) between calls. An idle connection is still
 * read: the upstream closing it is seen when it happens, not when the next
 * call tries it, so a call rarely meets a dead connection. Never billed
 * twice: a request is written once; a connection that breaks after any
 * byte of it left ends the call as HX_UP_RESET_AFTER_SEND.
 *
 * The answer is parsed by http_parser. Its callbacks call the caller
 * (on_head, on_data) as libcurl's did, under up->in_curl so a cancel from
 * inside waits for the reap; the call ends after the parser returned. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upstream/upstream_int.h"
#include "util/alloc.h"

#define H1UP_IDLE_MAX 256          /* kept connections per host */
#define H1UP_IDLE_MS 60000         /* an idle connection closes after */
#define H1UP_CONNECT_MS 300000     /* libcurl's default connect timeout */
#define H1UP_READ_BUF 65536
#define H1UP_HEADER_VALUE_MAX 8192 /* of a kept header (Retry-After, ...) */

typedef struct h1up_host {
    struct h1up_host *next;
    struct sockaddr_storage addr;
    struct sockaddr_storage alt; /* localhost: ::1 beside 127.0.0.1 */
    bool has_alt;
    bool use_alt;                /* the last connect that worked used alt */
    h1up_conn *idle; /* most recently used first */
    int nidle;
    char key[64];    /* "ip:port" as in the URL */
} h1up_host;

struct h1up {
    hx_upstream *up;
    h1up_host *hosts;
    bool proxied;    /* a proxy variable is set: libcurl takes every call */
    bool off;        /* hx_upstream_own_client(up, false) */
    char buf[H1UP_READ_BUF];
};

typedef enum { HC_CONNECTING, HC_BUSY, HC_IDLE, HC_CLOSING } hc_state;

struct h1up_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;  /* connect deadline, the call's total deadline, idle expiry */
    uv_connect_t creq;
    uv_write_t wreq;
    h1up *h;
    h1up_host *host;
    h1up_conn *prev, *next; /* host's idle list */
    hx_up_call *call;
    http_parser parser;
    hc_state state;
    int handles;
    bool writing;
    bool connected;
    bool retried;      /* localhost: this is the connect to the other address */
    bool reading;      /* the socket is read (stopped while the caller pauses) */
    /* the kept header being parsed */
    char hname[32];
    size_t hname_len;
    bool in_value;
    hx_buf hval;
    /* input not parsed while the caller pauses */
    char *held;
    size_t held_len;
};

static const http_parser_settings parser_settings;
static h1up_conn *conn_new(h1up *h, h1up_host *host, hx_up_call *c);

static bool proxy_set(void)
{
    static const char *const vars[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return true;
    }
    return false;
}

h1up *hx_h1up_new(hx_upstream *up)
{
    h1up *h = hx_calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->up = up;
    h->proxied = proxy_set();
    return h;
}

/* ---- connections -------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *hd)
{
    h1up_conn *k = hd->data;
    if (--k->handles > 0)
        return;
    hx_upstream *up = k->h->up;
    hx_buf_free(&k->hval);
    hx_free(k->held);
    hx_free(k);
    hx_up_handle_closed(up);
}

static void idle_unlink(h1up_conn *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        k->host->idle = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
    k->host->nidle--;
}

static void conn_close(h1up_conn *k)
{
    if (k->state == HC_CLOSING)
        return;
    if (k->state == HC_IDLE)
        idle_unlink(k);
    k->state = HC_CLOSING;
    k->call = NULL;
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&k->timer, on_conn_closed);
}

static void on_idle_expired(uv_timer_t *t)
{
    conn_close(t->data);
}

/* ---- parsing ---------------------------------------------------------------- */

static void header_flush(h1up_conn *k)
{
    hx_up_call *c = k->call;
    if (k->in_value && k->hname_len && k->hname_len <= sizeof k->hname &&
        hx_up_kept_header(k->hname, k->hname_len)) {
        const char *v = k->hval.data ? k->hval.data : "";
        size_t vl = k->hval.len;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        if (hx_headers_addn(&c->resp_headers, k->hname, k->hname_len, v, vl) != 0)
            c->forced = HX_UP_NOMEM;
    }
    k->hname_len = 0;
    k->in_value = false;
    hx_buf_reset(&k->hval);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    h1up_conn *k = p->data;
    if (k->in_value)
        header_flush(k);
    if (k->hname_len + n > sizeof k->hname) {
        k->hname_len = sizeof k->hname + 1; /* longer than any kept name */
        return 0;
    }
    memcpy(k->hname + k->hname_len, at, n);
    k->hname_len += n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    h1up_conn *k = p->data;
    k->in_value = true;
    if (k->hname_len > sizeof k->hname || !hx_up_kept_header(k->hname, k->hname_len))
        return 0;
    if (k->hval.len + n > H1UP_HEADER_VALUE_MAX)
        return -1; /* a protocol error: no caller needs a longer one */
    return hx_buf_append(&k->hval, at, n) == 0 ? 0 : -1;
}

static int on_headers_complete(http_parser *p)
{
    h1up_conn *k = p->data;
    hx_up_call *c = k->call;
    header_flush(k);
    /* 1 tells http_parser "no body": an interim 1xx head (another head
     * follows), 204 and 304 (RFC 9110), whatever framing they claim. */
    if (p->status_code < 200)
        return 1;
    c->status = p->status_code;
    c->head_done = true;
    hx_up_idle_arm(c);
    if (c->cb.on_head)
        c->cb.on_head(c->ud, c->status, &c->resp_headers);
    if (c->cancelled || c->forced != HX_UP_OK)
        http_parser_pause(p, 1);
    return c->status == 204 || c->status == 304 ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    h1up_conn *k = p->data;
    hx_up_call *c = k->call;
    c->last_data_ms = uv_now(c->up->loop);
    int rc = c->cb.on_data ? c->cb.on_data(c->ud, at, n) : HX_UP_CONTINUE;
    if (c->cancelled) {
        http_parser_pause(p, 1);
    } else if (rc == HX_UP_PAUSE) {
        c->paused = true;
        uv_timer_stop(&c->fb_timer); /* a slow client is not an idle upstream */
        http_parser_pause(p, 1);
    } else if (rc == HX_UP_STOP) {
        c->forced = HX_UP_ABORTED;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    h1up_conn *k = p->data;
    hx_up_call *c = k->call;
    if (p->status_code < 200) { /* an interim answer: its headers are not the answer's */
        hx_headers_free(&c->resp_headers);
        return 0;
    }
    c->native_done = true;
    http_parser_pause(p, 1); /* anything after the answer is not for this call */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* What a broken connection means for the call: before the head, a request
 * any byte of which left may be generating upstream (billed): not a plain
 * reset that may go again. */
static hx_up_result broken(const hx_up_call *c)
{
    if (c->head_done)
        return HX_UP_RESET;
    return c->sent > 0 ? HX_UP_RESET_AFTER_SEND : HX_UP_RESET;
}

/* Parses n bytes of the call's answer (n == 0: the upstream's end of
 * stream), then ends, holds or goes on, on a clean stack. */
static void feed(h1up_conn *k, const char *data, size_t n)
{
    hx_up_call *c = k->call;
    hx_upstream *up = k->h->up;
    up->in_curl++;
    size_t used = http_parser_execute(&k->parser, &parser_settings, data, n);
    up->in_curl--;
    enum http_errno e = HTTP_PARSER_ERRNO(&k->parser);
    if (c->native_done) {
        /* Kept only when the answer ended exactly at the bytes read. */
        if (used != n || n == 0 || !http_should_keep_alive(&k->parser))
            conn_close(k);
        hx_up_finish(c, HX_UP_OK, NULL);
        return;
    }
    if (c->cancelled || c->forced != HX_UP_OK) {
        hx_up_finish(c, c->forced != HX_UP_OK ? c->forced : HX_UP_ABORTED, "cancelled");
        return;
    }
    if (e == HPE_PAUSED) { /* the caller pauses: keep the rest for the resume */
        if (used < n) {
            char *rest = hx_malloc(n - used);
            if (rest == NULL) {
                hx_up_finish(c, HX_UP_NOMEM, "no memory to hold the answer while paused");
                return;
            }
            memcpy(rest, data + used, n - used);
            k->held = rest;
            k->held_len = n - used;
        }
        uv_read_stop((uv_stream_t *)&k->tcp);
        k->reading = false;
        return;
    }
    if (e != HPE_OK) {
        hx_up_finish(c, HX_UP_PROTOCOL_ERROR, http_errno_description(e));
        return;
    }
    if (n == 0)
        hx_up_finish(c, broken(c), "the upstream closed the connection before the answer ended");
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
    (void)hint;
    h1up_conn *k = hd->data;
    /* One buffer per loop: each read is parsed before the next one. */
    *b = uv_buf_init(k->h->buf, sizeof k->h->buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    h1up_conn *k = s->data;
    if (n == 0 || k->state == HC_CLOSING)
        return;
    if (k->state == HC_IDLE || k->call == NULL) {
        conn_close(k); /* closed, or bytes nobody asked for: never reused */
        return;
    }
    hx_up_call *c = k->call;
    if (n == UV_EOF) {
        feed(k, NULL, 0);
        return;
    }
    if (n < 0) {
        /* A reset can come with the answer's last bytes already parsed:
         * those were delivered; the call ends as broken. */
        hx_up_finish(c, broken(c), uv_strerror((int)n));
        return;
    }
    feed(k, b->base, (size_t)n);
}

/* Reads the socket (again); false when libuv refuses. */
static bool read_on(h1up_conn *k)
{
    if (k->reading)
        return true;
    k->reading = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read) == 0;
    return k->reading;
}

/* ---- sending ------------------------------------------------------------------ */

static void on_written(uv_write_t *w, int status)
{
    h1up_conn *k = w->data;
    k->writing = false;
    hx_up_call *c = k->call;
    if (c == NULL || k->state == HC_CLOSING)
        return;
    if (status < 0) {
        c->sent = c->sent ? c->sent : 1; /* part of it may have left: assume so */
        hx_up_finish(c, broken(c), uv_strerror(status));
        return;
    }
    c->sent = c->req.len;
}

/* Writes the call's request: straight when the socket takes it all (the
 * usual case), the rest through a write request. 0 written or queued; -1
 * nothing left (a dead connection: the request may go on another); -2 the
 * connection broke after part of it may have left. */
static int send_request(h1up_conn *k)
{
    hx_up_call *c = k->call;
    uv_buf_t b = uv_buf_init(c->req.data, (unsigned)c->req.len);
    int n = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN)
        return -1;
    if (n < 0)
        n = 0;
    c->sent = (size_t)n;
    if ((size_t)n == c->req.len)
        return 0;
    b = uv_buf_init(c->req.data + n, (unsigned)(c->req.len - (size_t)n));
    k->wreq.data = k;
    if (uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_written) < 0)
        return n > 0 ? -2 : -1;
    k->writing = true;
    return 0;
}

static void on_deadline(uv_timer_t *t)
{
    h1up_conn *k = t->data;
    hx_up_call *c = k->call;
    if (c == NULL)
        return;
    if (!k->connected) {
        c->forced = HX_UP_CONNECT_TIMEOUT;
        hx_up_finish(c, HX_UP_CONNECT_TIMEOUT, "could not connect within connect_timeout");
        return;
    }
    c->forced = HX_UP_TIMEOUT;
    hx_up_finish(c, HX_UP_TIMEOUT, "the upstream did not answer within the request timeout");
}

/* The call's total deadline on the connection's timer, once connected. */
static void arm_deadline(h1up_conn *k)
{
    hx_up_call *c = k->call;
    if (c->deadline_ms == 0) {
        uv_timer_stop(&k->timer);
        return;
    }
    uint64_t now = uv_now(k->h->up->loop);
    uv_timer_start(&k->timer, on_deadline, c->deadline_ms > now ? c->deadline_ms - now : 0, 0);
}

/* The connection takes its call's answer from now on. */
static void prepare(h1up_conn *k)
{
    http_parser_init(&k->parser, HTTP_RESPONSE);
    k->parser.data = k;
    k->hname_len = 0;
    k->in_value = false;
    hx_buf_reset(&k->hval);
    k->state = HC_BUSY;
    arm_deadline(k);
}

static void on_connect(uv_connect_t *r, int status)
{
    h1up_conn *k = r->data;
    if (k->state == HC_CLOSING)
        return;
    hx_up_call *c = k->call;
    if (status == UV_ECONNREFUSED && k->host->has_alt && !k->retried) {
        /* localhost: the server may listen on the other loopback address
         * only (as libcurl tries both). */
        h1up *h = k->h;
        h1up_host *host = k->host;
        c->conn = NULL;
        conn_close(k);
        host->use_alt = !host->use_alt;
        h1up_conn *k2 = conn_new(h, host, c);
        if (k2 != NULL) {
            k2->retried = true;
            return;
        }
        host->use_alt = !host->use_alt;
        hx_up_finish(c, HX_UP_CONNECT_ERROR, "failed to connect to localhost: no memory to try ::1");
        return;
    }
    if (status < 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "failed to connect to %s: %s", k->host->key, uv_strerror(status));
        hx_up_finish(c, status == UV_ETIMEDOUT ? HX_UP_CONNECT_TIMEOUT : HX_UP_CONNECT_ERROR, msg);
        return;
    }
    k->connected = true;
    uv_tcp_nodelay(&k->tcp, 1);
    if (!read_on(k)) {
        hx_up_finish(c, HX_UP_CONNECT_ERROR, "could not read from the upstream connection");
        return;
    }
    prepare(k);
    int rc = send_request(k);
    if (rc < 0)
        hx_up_finish(c, rc == -1 ? HX_UP_RESET : broken(c), "the upstream connection broke while sending");
}

static h1up_conn *conn_new(h1up *h, h1up_host *host, hx_up_call *c)
{
    h1up_conn *k = hx_calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    hx_upstream *up = h->up;
    k->h = h;
    k->host = host;
    if (uv_tcp_init(up->loop, &k->tcp) != 0) {
        hx_free(k);
        return NULL;
    }
    uv_timer_init(up->loop, &k->timer);
    k->tcp.data = k->timer.data = k->creq.data = k;
    k->handles = 2;
    up->open_handles++;
    k->state = HC_CONNECTING;
    k->call = c;
    c->conn = k;
    const struct sockaddr_storage *to = host->use_alt ? &host->alt : &host->addr;
    int rc = uv_tcp_connect(&k->creq, &k->tcp, (const struct sockaddr *)to, on_connect);
    if (rc != 0) {
        c->conn = NULL;
        conn_close(k);
        return NULL;
    }
    uint64_t now = uv_now(up->loop), until = now + c->connect_ms;
    if (c->deadline_ms && c->deadline_ms < until)
        until = c->deadline_ms;
    uv_timer_start(&k->timer, on_deadline, until - now, 0);
    return k;
}

/* ---- calls ---------------------------------------------------------------------- */

/* "http://IP[:port]/path?query" (or localhost) to an address and a host
 * key; false for anything libcurl should handle (other names, userinfo,
 * other schemes). *local is set for localhost. */
static bool parse_url(const char *url, struct sockaddr_storage *addr, char *key, size_t keymax, const char **path,
                      bool *local)
{
    if (strncmp(url, "http://", 7) != 0)
        return false;
    const char *hp = url + 7, *end = hp + strcspn(hp, "/?#");
    size_t hl = (size_t)(end - hp);
    if (hl == 0 || hl >= keymax || memchr(hp, '@', hl) || *end == '#')
        return false;
    char host[64];
    const char *colon;
    int port = 80;
    if (*hp == '[') {
        const char *rb = memchr(hp, ']', hl);
        if (rb == NULL || (size_t)(rb - hp - 1) >= sizeof host)
            return false;
        memcpy(host, hp + 1, (size_t)(rb - hp - 1));
        host[rb - hp - 1] = '\0';
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if (colon == NULL && rb + 1 != end)
            return false;
    } else {
        colon = memchr(hp, ':', hl);
        size_t n = colon ? (size_t)(colon - hp) : hl;
        if (n >= sizeof host)
            return false;
        memcpy(host, hp, n);
        host[n] = '\0';
    }
    if (colon) {
        port = 0;
        if (colon + 1 == end || end - colon > 6)
            return false;
        for (const char *d = colon + 1; d < end; d++) {
            if (*d < '0' || *d > '9')
                return false;
            port = port * 10 + (*d - '0');
        }
        if (port < 1 || port > 65535)
            return false;
    }
    memset(addr, 0, sizeof *addr);
    *local = strcasecmp(host, "localhost") == 0;
    if (*local)
        snprintf(host, sizeof host, "127.0.0.1");
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)addr) != 0)
        return false;
    memcpy(key, hp, hl);
    key[hl] = '\0';
    *path = end;
    return true;
}

static bool skipped_header(const char *name)
{
    static const char *const skip[] = {"host", "content-length", "transfer-encoding", "connection", "expect"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcasecmp(name, skip[i]) == 0)
            return true;
    return false;
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* The request's bytes: head (ours and the caller's headers) and body. */
static int build_request(hx_buf *out, const char *method, const char *key, const char *path,
                         const hx_headers *headers, const char *body, size_t len)
{
    bool ua = false;
    int rc = hx_buf_append_str(out, method);
    rc |= hx_buf_append(out, " ", 1);
    rc |= *path == '/' ? hx_buf_append_str(out, path) : hx_buf_append(out, "/", 1);
    if (*path == '?')
        rc |= hx_buf_append_str(out, path);
    rc |= hx_buf_append_str(out, " HTTP/1.1\r\nHost: ");
    rc |= hx_buf_append_str(out, key);
    rc |= hx_buf_append(out, "\r\n", 2);
    for (size_t i = 0; headers && i < headers->n; i++) {
        const char *nm = headers->items[i].name, *val = headers->items[i].value;
        if (skipped_header(nm))
            continue;
        if (has_crlf(nm) || has_crlf(val))
            return -1; /* never split a request in two */
        ua = ua || strcasecmp(nm, "user-agent") == 0;
        rc |= hx_buf_append_str(out, nm);
        rc |= hx_buf_append(out, ": ", 2);
        rc |= hx_buf_append_str(out, val);
        rc |= hx_buf_append(out, "\r\n", 2);
    }
    if (!ua) /* a User-Agent of the request's own headers wins, as with libcurl */
        rc |= hx_buf_append_str(out, "User-Agent: hapax/" HX_VERSION "\r\n");
    if (strcmp(method, "GET") != 0 || len > 0) {
        rc |= hx_buf_append_str(out, "Content-Length: ");
        rc |= hx_buf_append_int(out, (int64_t)len);
        rc |= hx_buf_append(out, "\r\n", 2);
    }
    rc |= hx_buf_append(out, "\r\n", 2);
    if (len)
        rc |= hx_buf_append(out, body, len);
    return rc ? -1 : 0;
}

static h1up_host *host_get(h1up *h, const char *key, const struct sockaddr_storage *addr, bool local)
{
    for (h1up_host *o = h->hosts; o; o = o->next)
        if (strcmp(o->key, key) == 0)
            return o;
    h1up_host *o = hx_calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    snprintf(o->key, sizeof o->key, "%s", key); /* parse_url bounds it below 64 */
    o->addr = *addr;
    if (local) {
        o->has_alt = true;
        uv_ip6_addr("::1", ntohs(((const struct sockaddr_in *)addr)->sin_port), (struct sockaddr_in6 *)&o->alt);
    }
    o->next = h->hosts;
    h->hosts = o;
    return o;
}

int hx_h1up_start(h1up *h, hx_up_call *c, const char *method, const char *url, const hx_headers *headers,
                  const hx_up_opts *o)
{
    struct sockaddr_storage addr;
    char key[64];
    const char *path;
    bool local;
    if (h == NULL || h->proxied || h->off || !parse_url(url, &addr, key, sizeof key, &path, &local))
        return 0;
    h1up_host *host = host_get(h, key, &addr, local);
    if (host == NULL || build_request(&c->req, method, key, path, headers, c->body, c->body_len) != 0)
        return -1;
    hx_free(c->body); /* the request holds it now */
    c->body = NULL;
    c->native = true;
    uint64_t now = uv_now(h->up->loop);
    c->deadline_ms = o && o->total_timeout_ms > 0 ? now + (uint64_t)o->total_timeout_ms : 0;
    c->connect_ms = o && o->connect_timeout_ms > 0 ? (uint64_t)o->connect_timeout_ms : H1UP_CONNECT_MS;
    h1up_conn *k;
    while ((k = host->idle) != NULL) {
        idle_unlink(k);
        k->call = c;
        c->conn = k;
        prepare(k);
        int rc = send_request(k);
        if (rc == 0)
            return 1;
        c->conn = NULL; /* dead */
        conn_close(k);
        if (rc == -2) { /* on_done may not run before this returns: the reap ends it */
            c->forced = HX_UP_RESET_AFTER_SEND;
            c->forced_why = "the upstream connection broke while sending";
            hx_up_schedule_reap(h->up);
            return 1;
        }
        /* Nothing of it left: another kept connection or a new one. */
    }
    return conn_new(h, host, c) ? 1 : -1;
}

void hx_h1up_detach(hx_up_call *c)
{
    h1up_conn *k = c->conn;
    if (k == NULL)
        return;
    c->conn = NULL;
    k->call = NULL;
    if (k->state == HC_CLOSING)
        return;
    bool keep = c->native_done && k->state == HC_BUSY && !k->writing && k->held == NULL &&
                k->host->nidle < H1UP_IDLE_MAX && !k->h->up->closing;
    /* A kept connection is read while idle (a pause may have stopped the
     * reads just before the answer's end). */
    if (!keep || !read_on(k)) {
        conn_close(k);
        return;
    }
    k->state = HC_IDLE;
    k->next = k->host->idle;
    if (k->next)
        k->next->prev = k;
    k->prev = NULL;
    k->host->idle = k;
    k->host->nidle++;
    uv_timer_start(&k->timer, on_idle_expired, H1UP_IDLE_MS, 0);
}

void hx_h1up_resume(hx_up_call *c)
{
    h1up_conn *k = c->conn;
    if (k == NULL || k->state != HC_BUSY)
        return;
    http_parser_pause(&k->parser, 0);
    char *held = k->held;
    size_t n = k->held_len;
    k->held = NULL;
    k->held_len = 0;
    if (held) {
        feed(k, held, n); /* may pause again (holding the rest anew) or end the call */
        hx_free(held);
        if (c->finished || c->paused)
            return;
    }
    if (!read_on(k))
        hx_up_finish(c, broken(c), "could not read from the upstream connection");
}

void hx_h1up_enable(h1up *h, bool on)
{
    h->off = !on;
}

void hx_h1up_close(h1up *h)
{
    if (h == NULL)
        return;
    for (h1up_host *o = h->hosts, *next; o; o = next) {
        next = o->next;
        while (o->idle)
            conn_close(o->idle);
        hx_free(o);
    }
    h->hosts = NULL;
}
