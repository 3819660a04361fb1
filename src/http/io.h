/* The connection I/O layer under the protocol adapters: one client
 * connection's byte stream, plain TCP or TLS over TCP, as the adapter
 * sees it (read start/stop into its own buffer, send with completion,
 * shutdown, close).
 *
 * Plain TCP costs nothing: the inline calls below are libuv's own calls
 * behind one predictable branch (io->tls == NULL), and a send goes
 * straight to the socket when it takes it all, over TLS as well (the
 * records of a send are written directly). TLS (io_tls.c) decrypts
 * ciphertext reads into the adapter's read callback and encrypts its
 * sends; the adapter never
 * sees a TLS type (request.h stays TLS-free: the facts a request needs are
 * copied into hx_req by the adapter). */
#ifndef HX_HTTP_IO_H
#define HX_HTTP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "util/buf.h"

typedef struct hx_io hx_io;
typedef struct hx_io_tls hx_io_tls;

/* `len` bytes queued by hx_io_send are written (status 0) or failed. */
typedef void (*hx_io_write_cb)(hx_io *io, size_t len, int status);
/* The TLS handshake finished: the adapter may check ALPN and start. */
typedef void (*hx_io_ready_cb)(hx_io *io);

struct hx_io {
    uv_tcp_t tcp;         /* first member; data = the adapter's connection */
    hx_io_tls *tls;       /* NULL: plain TCP */
};

/* What a finished TLS handshake tells the adapter (copied, bounded). */
typedef struct {
    const char *alpn;        /* "" when the client offered none */
    const char *peer_sha256; /* "" without a verified client certificate */
    const char *peer_subject;
} hx_io_tls_facts;

int hx_io_init(uv_loop_t *loop, hx_io *io, void *owner);
static inline uv_stream_t *hx_io_stream(hx_io *io)
{
    return (uv_stream_t *)&io->tcp;
}
static inline bool hx_io_is_tls(const hx_io *io)
{
    return io->tls != NULL;
}

/* Internal to the I/O layer: writes `data` (n bytes, taken: freed here
 * whatever happens, may be NULL when n is 0) in one libuv write whose
 * completion reports `len` to cb, when there is one (io_plain.c). */
int hx_io_write_owned(hx_io *io, char *data, size_t n, size_t len, hx_io_write_cb cb);

/* TLS only (io_tls.c): begin the server handshake with the published
 * context (hx_tls_ctx_current). -1 when there is none or no memory. */
int hx_io_tls_start(hx_io *io, hx_io_ready_cb ready);
int hx_io_tls_read_start(hx_io *io, uv_alloc_cb alloc, uv_read_cb read);
ssize_t hx_io_tls_send(hx_io *io, hx_buf *out, hx_io_write_cb cb);
int hx_io_tls_shutdown(hx_io *io, uv_shutdown_t *req, uv_shutdown_cb cb);
void hx_io_tls_release(hx_io *io);
hx_io_tls_facts hx_io_tls_get_facts(const hx_io *io);

/* Reads arrive as plaintext through `read` (the adapter's buffer from
 * `alloc`); nread < 0 is EOF or an error (a TLS failure is UV_EPROTO). */
static inline int hx_io_read_start(hx_io *io, uv_alloc_cb alloc, uv_read_cb read)
{
    if (io->tls == NULL)
        return uv_read_start((uv_stream_t *)&io->tcp, alloc, read);
    return hx_io_tls_read_start(io, alloc, read);
}

static inline void hx_io_read_stop(hx_io *io)
{
    uv_read_stop((uv_stream_t *)&io->tcp);
}

/* Sends what `out` holds: what the socket takes now leaves at once (no
 * write request, no extra loop turn), the rest goes to a queued write that
 * takes out's memory. `out` is empty afterwards either way. Returns the
 * bytes that left at once (0..len; cb never reports those) and cb(rest)
 * follows for the others; < 0 on an error (no cb follows). TLS encrypts
 * everything at once, so it answers either all or 0. Bytes queued before
 * keep their order (a direct write is refused while writes queue). */
ssize_t hx_io_send(hx_io *io, hx_buf *out, hx_io_write_cb cb);

/* After queued output: TLS close_notify, then FIN. */
int hx_io_shutdown(hx_io *io, uv_shutdown_t *req, uv_shutdown_cb cb);
/* Closes the socket (a TLS connection first tries to send close_notify). */
void hx_io_close(hx_io *io, uv_close_cb cb);
/* The peer's address and port (IPv4 or IPv6) into ip[iplen] and *port.
 * Returns 0, or -1 (no peer, or another family: ip "" and port 0). */
int hx_io_peer_name(hx_io *io, char *ip, size_t iplen, int *port);
/* A request on a TLS connection: marks r secure and copies the verified
 * client certificate's identity into it (io_tls.c). Nothing over plain
 * TCP. */
struct hx_req;
void hx_io_req_facts(hx_io *io, struct hx_req *r);

#endif
