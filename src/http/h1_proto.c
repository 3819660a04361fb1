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

const hx_proto hx_h1_proto = {
    .name = "http/1.1",
    .server_init = h1_server_init,
    .worker_init = hx_h1_worker_init,
    .worker_close = hx_h1_worker_close,
    .conn_new = h1_conn_new,
    .conn_stream = h1_conn_stream,
    .conn_discard = h1_conn_discard,
    .conn_start = h1_conn_start,
    .shed_one = hx_h1_shed_one,
    .drain = hx_h1_drain,
    .close_all = hx_h1_close_all,
};
