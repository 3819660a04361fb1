/* The HTTP/1.1 adapter as the worker sees it (proto.h): h1.c's
 * connection calls behind the protocol-neutral interface. */
#include <http_parser.h>

#include "http/server_int.h"

/* http-parser's own limit sits above ours, so ours answers 431 first. */
static void h1_server_init(const hx_config *cfg)
{
    http_parser_set_max_header_size((uint32_t)cfg->server.max_header_bytes + 4096);
}

static void *h1_conn_new(hx_worker *w, const hx_listener *l)
{
    return hx_h1_conn_new(w, l->kind == HX_LISTEN_TLS);
}

static uv_stream_t *h1_conn_stream(void *c)
{
    return hx_h1_conn_stream(c);
}

static void h1_conn_discard(void *c)
{
    hx_h1_conn_discard(c);
}

static void h1_conn_start(void *c, long max_conns)
{
    hx_h1_conn_start(c, max_conns);
}

/* h2c connections begin on this listener (h1.c hands them over): the
 * worker's per-worker and shutdown calls reach them too. */
static void h1_worker_init(hx_worker *w)
{
    hx_h1_worker_init(w);
    hx_h2_proto.worker_init(w);
}

static void h1_worker_close(hx_worker *w)
{
    hx_h1_worker_close(w);
    hx_h2_proto.worker_close(w);
    hx_h3_worker_close(w);
}

static bool h1_shed_one(hx_worker *w)
{
    return hx_h1_shed_one(w) || hx_h2_proto.shed_one(w);
}

static void h1_drain(hx_worker *w)
{
    hx_h1_drain(w);
    hx_h2_proto.drain(w);
    hx_h3_worker_drain(w);
}

static void h1_close_all(hx_worker *w)
{
    hx_h1_close_all(w);
    hx_h2_proto.close_all(w);
    hx_h3_worker_close_all(w);
}

const hx_proto hx_h1_proto = {
    .name = "http/1.1",
    .server_init = h1_server_init,
    .worker_init = h1_worker_init,
    .worker_close = h1_worker_close,
    .conn_new = h1_conn_new,
    .conn_stream = h1_conn_stream,
    .conn_discard = h1_conn_discard,
    .conn_start = h1_conn_start,
    .shed_one = h1_shed_one,
    .drain = h1_drain,
    .close_all = h1_close_all,
};
