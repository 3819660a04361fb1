/* HTTP/1.1 target: bytes in, answers out, through the real connection code
 * (src/http/h1.c: accept, http-parser, pipelining, chunked bodies, limits,
 * keep-alive), the router with the default routes, and the middleware
 * (CORS, rate limits, client keys and the queue switched on), on a private
 * uv loop. The client end is an abstract Unix socket (no TIME_WAIT, so
 * millions of connections are fine); every handler echoes the request,
 * streamed (chunked) for POST, whole otherwise.
 *
 * Per input: connect, send everything, half-close, read until the server
 * closes. Invariants: the server always closes (never hangs), every answer
 * starts with a status line, and no connection outlives its input.
 * HX_FUZZ_HTTP_DUMP=1 prints what the server sent (to look at a seed). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <fcntl.h>
#include <http_parser.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "fuzz_net.h"
#include "http/request.h"
#include "http/server_int.h"
#include "middleware/middleware.h"
#include "util/alloc.h"

static hx_fuzz_net net;
static hx_worker *wk;

static void echo(hx_req *r)
{
    hx_buf b;
    hx_buf_init(&b, 0);
    int rc = hx_buf_printf(&b, "%s %s?%s %zu\n", r->method, r->path ? r->path : "",
                           r->query ? r->query : "", r->headers.n);
    if (rc != 0) {
        hx_buf_free(&b);
        hx_res_error(r, HX_ERR_INTERNAL, NULL);
        return;
    }
    if (strcmp(r->method, "POST") == 0) {
        /* streamed: chunked framing on the way out */
        if (hx_res_header(r, "Content-Type", "text/plain") == 0 && hx_res_start(r, 200) == 0 &&
            hx_res_write(r, b.data, b.len) == 0)
            hx_res_write(r, r->body.data, r->body.len);
        hx_res_end(r);
    } else {
        hx_res_send(r, 200, "text/plain", b.data, b.len);
    }
    hx_buf_free(&b);
}

/* Every handler echoes, with the flags of its name. */
static const hx_handler_def *lookup(const char *name)
{
    return hx_fuzz_handler_def(echo, name);
}

static void setup(void)
{
    hx_config *cfg = hx_fuzz_mw_config();
    char err[256];
    hx_router *rt = cfg ? hx_router_build(cfg, lookup, hx_middleware_lookup, err, sizeof err) : NULL;
    hx_fuzz_net_init(&net, "http", cfg, rt);
    wk = net.wk;
    http_parser_set_max_header_size((uint32_t)cfg->server.max_header_bytes + 4096);
    hx_h1_worker_init(wk);
    hx_middleware_worker_init(&wk->loop);
    hx_fuzz_net_listen(&net);
}

/* Length of the header block at p (through the blank line), 0 if none. */
static size_t head_len(const char *p, size_t n)
{
    const char *e = memmem(p, n, "\r\n\r\n", 4);
    return e ? (size_t)(e - p) + 4 : 0;
}

/* Value of header `name` (lower-case) in a header block, or NULL. */
static const char *head_get(const char *h, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    for (const char *p = memchr(h, '\n', n); p && p + 1 < h + n; p = memchr(p + 1, '\n', (size_t)(h + n - p - 1))) {
        const char *line = p + 1;
        if ((size_t)(h + n - line) > nl + 1 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1, *e = memchr(v, '\r', (size_t)(h + n - v));
            while (v < e && *v == ' ')
                v++;
            *vlen = e ? (size_t)(e - v) : 0;
            return v;
        }
    }
    return NULL;
}

/* Walks the responses one by one: status line, well-formed header lines
 * (no bare CR or LF: nothing a client sent may split a header), and a
 * body framed by Content-Length or chunked encoding. The output may end
 * early only where it was cut at the cap. */
static void check_output(const hx_buf *got)
{
    if (got->len == 0)
        return;
    const char *p = got->data, *end = got->data + got->len;
    bool capped = got->len >= 65536;
    while (p && p < end) {
        size_t left = (size_t)(end - p);
        FUZZ_CHECK(left >= 12 && memcmp(p, "HTTP/1.", 7) == 0);
        if (left < 12 || memcmp(p, "HTTP/1.", 7) != 0)
            return;
        size_t hl = head_len(p, left);
        FUZZ_CHECK(hl > 0 || capped);
        if (hl == 0)
            return;
        for (size_t i = 0; i + 4 < hl; i++) {
            if (p[i] == '\r')
                FUZZ_CHECK(p[i + 1] == '\n');
            if (p[i] == '\n')
                FUZZ_CHECK(i > 0 && p[i - 1] == '\r');
        }
        int status = atoi(p + 9);
        const char *body = p + hl;
        size_t vl;
        const char *cl = head_get(p, hl, "content-length", &vl);
        const char *te = head_get(p, hl, "transfer-encoding", &vl);
        if (status < 200 || status == 204 || status == 304) {
            p = body;
        } else if (te) {
            /* chunks: hex size CRLF data CRLF ... 0 CRLF CRLF */
            const char *q = body;
            for (;;) {
                const char *crlf = memmem(q, (size_t)(end - q), "\r\n", 2);
                FUZZ_CHECK(crlf != NULL || capped);
                if (crlf == NULL)
                    return;
                size_t n = strtoul(q, NULL, 16);
                q = crlf + 2;
                if ((size_t)(end - q) < n + 2) {
                    FUZZ_CHECK(capped);
                    return;
                }
                FUZZ_CHECK(q[n] == '\r' && q[n + 1] == '\n');
                q += n + 2;
                if (n == 0)
                    break;
            }
            p = q;
        } else if (cl) {
            size_t n = strtoul(cl, NULL, 10);
            /* a HEAD answer has the length and no body: the next response
             * starts right away */
            bool head = body == end || ((size_t)(end - body) >= 7 && memcmp(body, "HTTP/1.", 7) == 0 &&
                        ((size_t)(end - body) < n + 7 || memcmp(body + n, "HTTP/1.", 7) != 0));
            if (head) {
                p = body;
            } else if ((size_t)(end - body) < n) {
                FUZZ_CHECK(capped);
                p = NULL;
            } else {
                p = body + n;
            }
        } else {
            p = NULL; /* body until close */
        }
    }
}

int hx_fuzz_http(const uint8_t *data, size_t size)
{
    if (wk == NULL)
        setup();
    /* Accepted before anything may fail (see hx_fuzz_arm). */
    int fd = hx_fuzz_net_connect(&net);
    hx_fuzz_arm();
    hx_buf got;
    hx_buf_init(&got, 0);
    size_t off = 0;
    int eof = 0;
    double start = hx_fuzz_now();
    double limit = hx_fuzz_torture ? 2 : 10;
    /* Send everything (the server may answer and close before the end).
     * For half the inputs (by a hash of the bytes), in small pieces with
     * the loop run in between, so requests also straddle reads. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size && i < 64; i++)
        h = (h ^ data[i]) * 16777619u;
    bool pieces = (h & 1) != 0;
    while (off < size && !eof) {
        size_t want = size - off;
        if (pieces) {
            h = h * 1103515245u + 12345u;
            size_t k = 1 + (h >> 16) % 61;
            want = k < want ? k : want;
        }
        ssize_t n = write(fd, data + off, want);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            break; /* the server closed: what is left is never read */
        uv_run(&wk->loop, UV_RUN_NOWAIT);
        if (pieces)
            uv_run(&wk->loop, UV_RUN_NOWAIT); /* the write callbacks too */
        eof = hx_fuzz_net_drain(fd, &got);
    }
    hx_fuzz_net_finish(&net, fd, &got, eof, start, limit);
    check_output(&got);
    if (getenv("HX_FUZZ_HTTP_DUMP"))
        fwrite(got.data ? got.data : "", 1, got.len, stderr);
    hx_buf_free(&got);
    return 0;
}
