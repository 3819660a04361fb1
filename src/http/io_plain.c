/* The connection I/O layer's plain TCP side (io.h): write requests,
 * shutdown, close. TLS connections branch off to io_tls.c. */
#include "http/io.h"
#include "util/alloc.h"

typedef struct {
    uv_write_t w;
    hx_io_write_cb cb;     /* NULL for TLS handshake answers and alerts */
    size_t len;            /* what cb reports: the plaintext length */
    char *data;
} owned_wreq;

int hx_io_init(uv_loop_t *loop, hx_io *io, void *owner)
{
    io->tls = NULL;
    int rc = uv_tcp_init(loop, &io->tcp);
    io->tcp.data = owner;
    return rc;
}

static void on_owned_written(uv_write_t *uw, int status)
{
    owned_wreq *wr = (owned_wreq *)uw;
    hx_io *io = (hx_io *)uw->handle;
    hx_io_write_cb cb = wr->cb;
    size_t len = wr->len;
    hx_free(wr->data);
    hx_free(wr);
    if (cb)
        cb(io, len, status);
}

int hx_io_write_owned(hx_io *io, char *data, size_t n, size_t len, hx_io_write_cb cb)
{
    owned_wreq *wr = hx_malloc(sizeof *wr);
    if (wr == NULL) {
        hx_free(data);
        return UV_ENOMEM;
    }
    wr->cb = cb;
    wr->len = len;
    wr->data = data;
    uv_buf_t buf = uv_buf_init(data ? data : (char *)"", (unsigned)n);
    int rc = uv_write(&wr->w, (uv_stream_t *)&io->tcp, &buf, 1, on_owned_written);
    if (rc != 0) {
        hx_free(data);
        hx_free(wr);
    }
    return rc;
}

ssize_t hx_io_send(hx_io *io, hx_buf *out, hx_io_write_cb cb)
{
    if (io->tls != NULL)
        return hx_io_tls_send(io, out, cb);
    size_t len = out->len;
    if (len == 0)
        return 0;
    uv_buf_t b = uv_buf_init(out->data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&io->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
        hx_buf_reset(out);
        return n;
    }
    size_t now = n > 0 ? (size_t)n : 0;
    if (now == len) {
        hx_buf_reset(out);
        return (ssize_t)now;
    }
    hx_buf_consume(out, now);
    size_t rest = 0;
    char *data = hx_buf_steal(out, &rest);
    int rc = hx_io_write_owned(io, data, rest, rest, cb);
    return rc < 0 ? rc : (ssize_t)now;
}

int hx_io_shutdown(hx_io *io, uv_shutdown_t *req, uv_shutdown_cb cb)
{
    if (io->tls != NULL)
        return hx_io_tls_shutdown(io, req, cb);
    return uv_shutdown(req, (uv_stream_t *)&io->tcp, cb);
}

void hx_io_close(hx_io *io, uv_close_cb cb)
{
    if (io->tls != NULL)
        hx_io_tls_release(io);
    uv_close((uv_handle_t *)&io->tcp, cb);
}

int hx_io_peer_name(hx_io *io, char *ip, size_t iplen, int *port)
{
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    *port = 0;
    if (iplen > 0)
        ip[0] = '\0';
    if (uv_tcp_getpeername(&io->tcp, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, iplen);
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else if (ss.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, iplen);
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else {
        return -1; /* a Unix socket (the fuzz harness): no address to show */
    }
    return 0;
}
