/* The HTTP/2 adapter as the worker sees it (proto.h). Today its
 * connections come from h1's h2c hand-off on the cleartext listener (the
 * h1 adapter forwards the worker's calls here too, h1_proto.c); a
 * listener may also name hx_h2_proto directly (prior knowledge only),
 * and the next round's TLS listener picks it by ALPN. */
#include "http/h2_int.h"

static void *h2_conn_new(hx_worker *w, const hx_listener *l)
{
    (void)l;
    return hx_h2_conn_new(w);
}

static uv_stream_t *h2_conn_stream(void *c)
{
    return hx_h2_io_stream(c);
}

static void h2_conn_discard(void *c)
{
    h2_conn *h = c;
    h->sess_dead = true;
    hx_h2_conn_close(h, "accept failed");
}

static void h2_conn_start(void *c, long max_conns)
{
    hx_h2_io_peer(c);
    hx_h2_conn_begin(c, max_conns, NULL, 0);
}

const hx_proto hx_h2_proto = {
    .name = "h2",
    .server_init = NULL,
    .worker_init = hx_h2_io_worker_init,
    .worker_close = hx_h2_io_worker_close,
    .conn_new = h2_conn_new,
    .conn_stream = h2_conn_stream,
    .conn_discard = h2_conn_discard,
    .conn_start = h2_conn_start,
    .shed_one = hx_h2_shed_one,
    .drain = hx_h2_drain,
    .close_all = hx_h2_close_all,
};
