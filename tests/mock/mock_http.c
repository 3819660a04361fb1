/* HTTP/1.1 connection layer of the mock provider (see mock_http.h). */
#include "mock_http.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_BODY ((size_t)64 << 20)
#define HIGH_WATER ((size_t)1 << 20)
#define FLUSH_AT ((size_t)64 << 10)
#define MAX_PENDING_IN ((size_t)1 << 20)

enum { T_STREAM = 1, T_FULL, T_RESET };

typedef struct {
    uv_write_t req;
    mock_conn *c;
    char *data;
} wreq;

struct mock_counters mock_count;
static http_parser_settings settings;
static char rbuf[65536];

static void conn_process(mock_conn *c);
static void stream_pump(mock_conn *c);
static void on_timer(uv_timer_t *t);
static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Overloaded";
    default: return status < 500 ? "Client Error" : "Server Error";
    }
}

const char *mock_header(const mock_conn *c, const char *name)
{
    const char *p = c->hdrs.data, *end = p + c->hdrs.len;
    while (p && p < end) {
        const char *v = p + strlen(p) + 1;
        if (v >= end)
            break;
        if (strcmp(p, name) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* ---- connection lifecycle and output --------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    mock_conn *c = h->data;
    if (--c->handles > 0)
        return;
    mbuf *bufs[] = { &c->in, &c->url, &c->hdrs, &c->body, &c->out, &c->ev };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        mbuf_free(bufs[i]);
    mf_reply_free(&c->reply);
    free(c);
    mock_count.conns--;
}

void mock_conn_close(mock_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->active) {
        c->active = 0;
        mock_count.active--;
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    (void)status;
    mock_conn_close(r->handle->data);
}

/* Graceful end: FIN after all queued output, then close. */
static void conn_end(mock_conn *c)
{
    if (c->closing || c->shutting)
        return;
    c->shutting = 1;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        mock_conn_close(c);
}

static void timer_start(mock_conn *c, int action, uint64_t ms)
{
    c->timer_action = action;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void start_reset(mock_conn *c)
{
    c->busy = 1;
    c->reset_pending = 1;
    if (c->nwrites == 0)
        timer_start(c, T_RESET, 10);
}

static void on_write(uv_write_t *r, int status)
{
    wreq *w = (wreq *)r;
    mock_conn *c = w->c;
    free(w->data);
    free(w);
    c->nwrites--;
    if (c->closing)
        return;
    if (status < 0) {
        mock_conn_close(c);
        return;
    }
    if (c->reset_pending && c->nwrites == 0) {
        timer_start(c, T_RESET, 10);
    } else if (c->waiting_drain &&
               uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < HIGH_WATER / 2) {
        c->waiting_drain = 0;
        stream_pump(c);
    }
}

/* Sends c->out: tries a direct write first, queues the rest. */
static void conn_flush(mock_conn *c)
{
    size_t off = 0;
    if (c->out.len == 0)
        return;
    if (c->closing) {
        c->out.len = 0;
        return;
    }
    if (c->nwrites == 0) {
        uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n >= 0 && (size_t)n == c->out.len) {
            c->out.len = 0;
            return;
        }
        if (n >= 0) {
            off = (size_t)n;
        } else if (n != UV_EAGAIN) {
            c->out.len = 0;
            mock_conn_close(c);
            return;
        }
    }
    wreq *w = malloc(sizeof *w);
    if (!w)
        abort();
    w->c = c;
    w->data = c->out.data;
    uv_buf_t b = uv_buf_init(c->out.data + off, (unsigned)(c->out.len - off));
    c->out = (mbuf){ 0 };
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(w->data);
        free(w);
        mock_conn_close(c);
        return;
    }
    c->nwrites++;
}

static void request_done(mock_conn *c)
{
    c->busy = 0;
    c->reset_pending = 0;
    c->waiting_drain = 0;
    if (c->active) {
        c->active = 0;
        mock_count.active--;
    }
    if (c->has_reply) {
        mf_reply_free(&c->reply);
        c->has_reply = 0;
    }
    if (c->ev.cap > HIGH_WATER)
        mbuf_free(&c->ev);
    if (c->closing)
        return;
    if (!c->keep_alive)
        conn_end(c);
    else if (!c->in_process)
        conn_process(c);
}

static void put_head(mock_conn *c, int status, const char *ctype, long long clen, const char *extra)
{
    mbuf_fmt(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, reason(status), ctype);
    if (clen >= 0)
        mbuf_fmt(&c->out, "Content-Length: %lld\r\n", clen);
    else
        mbuf_str(&c->out, c->chunked ? "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
                                     : "Cache-Control: no-cache\r\n");
    if (extra)
        mbuf_str(&c->out, extra);
    if (!c->keep_alive)
        mbuf_str(&c->out, "Connection: close\r\n");
    else if (c->http_minor == 0)
        mbuf_str(&c->out, "Connection: keep-alive\r\n");
    mbuf_str(&c->out, "\r\n");
}

/* Sends c->ev as a whole response. */
void mock_send(mock_conn *c, int status, const char *ctype, const char *extra,
               uint64_t delay_ms, int reset)
{
    put_head(c, status, ctype, (long long)c->ev.len, extra);
    size_t head = c->out.len;
    mbuf_add(&c->out, c->ev.data, c->ev.len);
    c->ev.len = 0;
    if (reset) {
        c->out.len = head + (c->out.len - head) / 2;
        conn_flush(c);
        if (c->stall)
            c->busy = 1; /* half an answer, then silence */
        else
            start_reset(c);
    } else if (delay_ms > 0) {
        c->busy = 1;
        timer_start(c, T_FULL, delay_ms);
    } else {
        conn_flush(c);
        request_done(c);
    }
}

void mock_send_error(mock_conn *c, mf_family fam, int status, const char *msg, const char *extra)
{
    c->ev.len = 0;
    mf_render_error(fam, status, msg, &c->ev);
    mock_send(c, status, "application/json", extra, 0, 0);
}

void mock_send_split(mock_conn *c, int status, const char *ctype, const char *a, size_t an,
                     const char *b, size_t bn, uint64_t delay_ms)
{
    put_head(c, status, ctype, (long long)(an + bn), NULL);
    mbuf_add(&c->out, a, an);
    conn_flush(c);
    mbuf_add(&c->out, b, bn);
    c->busy = 1;
    timer_start(c, T_FULL, delay_ms ? delay_ms : 1);
}

void mock_hang(mock_conn *c)
{
    c->busy = 1;
}

static void on_timer(uv_timer_t *t)
{
    mock_conn *c = t->data;
    if (c->closing)
        return;
    if (c->timer_action == T_STREAM) {
        c->delay_passed = 1;
        stream_pump(c);
    } else if (c->timer_action == T_FULL) {
        conn_flush(c);
        request_done(c);
    } else if (c->timer_action == T_RESET) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
            struct linger l = { 1, 0 };
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        mock_conn_close(c);
    }
}

/* ---- streaming ------------------------------------------------------- */

static void stream_pump(mock_conn *c)
{
    while (!c->closing) {
        int at = mf_stream_at_content(&c->reply);
        size_t sent = mf_stream_content_sent(&c->reply);
        /* reset after N content events, or after all of them if fewer */
        if (c->reset_after >= 0 && (at ? sent >= (size_t)c->reset_after : sent > 0)) {
            conn_flush(c);
            if (!c->stall)
                start_reset(c);
            return;
        }
        if (at && c->delay_ms > 0 && !c->delay_passed) {
            conn_flush(c);
            timer_start(c, T_STREAM, (uint64_t)c->delay_ms);
            return;
        }
        if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > HIGH_WATER) {
            c->waiting_drain = 1;
            return;
        }
        c->ev.len = 0;
        if (!mf_stream_next(&c->reply, &c->ev)) {
            if (c->chunked)
                mbuf_str(&c->out, "0\r\n\r\n");
            conn_flush(c);
            if (!c->closing)
                request_done(c);
            return;
        }
        c->delay_passed = 0;
        if (c->chunked)
            mbuf_fmt(&c->out, "%zx\r\n", c->ev.len);
        mbuf_add(&c->out, c->ev.data, c->ev.len);
        if (c->chunked)
            mbuf_str(&c->out, "\r\n");
        if (c->out.len >= FLUSH_AT)
            conn_flush(c);
    }
}

void mock_start_stream(mock_conn *c, long delay_ms, long reset_after, int malformed)
{
    c->chunked = !(c->http_major == 1 && c->http_minor == 0);
    if (!c->chunked)
        c->keep_alive = 0;
    put_head(c, 200, mf_stream_ctype(c->reply.ep), -1, NULL);
    c->delay_ms = delay_ms;
    c->reset_after = reset_after;
    c->reply.malformed = malformed;
    c->delay_passed = 0;
    c->busy = 1;
    stream_pump(c);
}

/* ---- HTTP parsing ---------------------------------------------------- */

static int cb_begin(http_parser *p)
{
    mock_conn *c = p->data;
    c->url.len = c->hdrs.len = c->body.len = 0;
    if (c->body.cap > HIGH_WATER)
        mbuf_free(&c->body);
    c->hdr_state = 0;
    c->reject = 0;
    c->stall = 0;
    return 0;
}

static int cb_url(http_parser *p, const char *at, size_t n)
{
    mbuf_add(&((mock_conn *)p->data)->url, at, n);
    return 0;
}

static int cb_field(http_parser *p, const char *at, size_t n)
{
    mock_conn *c = p->data;
    if (c->hdr_state == 2)
        mbuf_add(&c->hdrs, "", 1);
    c->hdr_state = 1;
    mbuf_reserve(&c->hdrs, n);
    for (size_t i = 0; i < n; i++)
        c->hdrs.data[c->hdrs.len++] = (char)tolower((unsigned char)at[i]);
    return 0;
}

static int cb_value(http_parser *p, const char *at, size_t n)
{
    mock_conn *c = p->data;
    if (c->hdr_state == 1)
        mbuf_add(&c->hdrs, "", 1);
    c->hdr_state = 2;
    mbuf_add(&c->hdrs, at, n);
    return 0;
}

static int cb_headers(http_parser *p)
{
    mock_conn *c = p->data;
    if (c->hdr_state == 1)
        mbuf_add(&c->hdrs, "", 1);
    if (c->hdr_state)
        mbuf_add(&c->hdrs, "", 1);
    c->hdr_state = 3;
    c->method = p->method;
    c->http_major = p->http_major;
    c->http_minor = p->http_minor;
    c->keep_alive = http_should_keep_alive(p);
    if (p->content_length != ULLONG_MAX && p->content_length > MAX_BODY) {
        c->reject = 413;
        http_parser_pause(p, 1);
        return 0;
    }
    const char *e = mock_header(c, "expect");
    if (e && strcasecmp(e, "100-continue") == 0 && !c->busy) {
        mbuf_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        conn_flush(c);
    }
    return 0;
}

static int cb_body(http_parser *p, const char *at, size_t n)
{
    mock_conn *c = p->data;
    if (c->body.len + n > MAX_BODY) {
        c->reject = 413;
        http_parser_pause(p, 1);
        return 0;
    }
    mbuf_add(&c->body, at, n);
    return 0;
}

static int cb_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static void fail_request(mock_conn *c, int status, const char *msg)
{
    mbuf_cstr(&c->url);
    mf_family fam = strncmp(c->url.data, "/api/", 5) == 0        ? FAM_OLLAMA
                    : strncmp(c->url.data, "/v1/messages", 12) == 0 ? FAM_ANTHROPIC
                                                                    : FAM_OPENAI;
    c->keep_alive = 0;
    mock_send_error(c, fam, status, msg, NULL);
}

static void conn_reading(mock_conn *c)
{
    int want = !c->closing && !c->shutting && c->in.len - c->in_off < MAX_PENDING_IN;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    } else if (!want && c->reading && !c->closing) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void conn_process(mock_conn *c)
{
    c->in_process = 1;
    while (!c->busy && !c->closing && !c->shutting && c->in_off < c->in.len) {
        size_t n = http_parser_execute(&c->parser, &settings, c->in.data + c->in_off,
                                       c->in.len - c->in_off);
        c->in_off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            if (c->reject)
                fail_request(c, 413, "Request body too large");
            else
                mock_dispatch(c);
        } else if (e != HPE_OK) {
            fail_request(c, 400, http_errno_description(e));
        } else if (n == 0) {
            break;
        }
    }
    c->in_process = 0;
    if (c->in_off >= c->in.len) {
        c->in.len = c->in_off = 0;
        if (c->in.cap > 256 * 1024)
            mbuf_free(&c->in);
    } else if (c->in_off > 0) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    conn_reading(c);
}

/* ---- I/O callbacks --------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
    (void)h;
    (void)size;
    *b = uv_buf_init(rbuf, sizeof rbuf); /* single thread: copied in on_read */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    mock_conn *c = s->data;
    if (n < 0) {
        c->reading = 0;
        if (n == UV_EOF && !c->busy)
            conn_end(c);
        else
            mock_conn_close(c);
        return;
    }
    if (n == 0 || c->closing || c->shutting)
        return;
    mbuf_add(&c->in, b->base, (size_t)n);
    if (c->busy)
        conn_reading(c);
    else
        conn_process(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    mock_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    mock_count.conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        mock_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->keep_alive = 1;
    conn_reading(c);
}

static void init_settings(void)
{
    http_parser_settings_init(&settings);
    settings.on_message_begin = cb_begin;
    settings.on_url = cb_url;
    settings.on_header_field = cb_field;
    settings.on_header_value = cb_value;
    settings.on_headers_complete = cb_headers;
    settings.on_body = cb_body;
    settings.on_message_complete = cb_complete;
}

int mock_listen(uv_loop_t *loop, uv_tcp_t *server, const char *host, long port)
{
    struct sockaddr_storage ss;
    int rc;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0) {
        fprintf(stderr, "mock-provider: invalid --host '%s'\n", host);
        return -1;
    }
    init_settings();
    uv_tcp_init(loop, server);
    server->data = NULL;
    if ((rc = uv_tcp_bind(server, (struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)server, 4096, on_connection)) != 0) {
        fprintf(stderr, "mock-provider: cannot listen on %s:%ld: %s\n", host, port,
                uv_strerror(rc));
        return -1;
    }
    int len = sizeof ss;
    uv_tcp_getsockname(server, (struct sockaddr *)&ss, &len);
    int bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    printf("listening on %d\n", bound);
    fflush(stdout);
    return 0;
}

