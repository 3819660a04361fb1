/* The protocol adapter interface: how the protocol-neutral worker
 * (server.c: threads, loops, listeners, reload hand-off, drain, shedding)
 * drives one wire protocol without knowing it.
 *
 * A listener names its adapter; the worker calls the adapter for each
 * connection the listener takes and at each step of its life (drain,
 * force, shed). The adapter turns bytes into hx_req + hx_transport and
 * hands each request to the worker's router (hx_router_dispatch), which
 * the application built. HTTP/1.1 (h1.c, hx_h1_proto in h1_proto.c) is the only adapter
 * today; docs/internals/README.md says how HTTP/2 and HTTP/3 plug in. */
#ifndef HX_HTTP_PROTO_H
#define HX_HTTP_PROTO_H

#include <stdbool.h>
#include <uv.h>

#include "config/config.h"

typedef struct hx_worker hx_worker;

struct hx_listener;

typedef struct hx_proto {
    const char *name; /* "http/1.1": logged at start */
    /* Process-wide setup, once from hx_server_new (NULL = none). */
    void (*server_init)(const hx_config *cfg);
    /* Its per-worker handles, on the worker's loop before it runs, and
     * their close after the worker stopped (the loop then runs once more). */
    void (*worker_init)(hx_worker *w);
    void (*worker_close)(hx_worker *w);
    /* Stream listeners (TCP, later TLS over TCP): accept.c asks for a
     * connection for the listener's next client (NULL: no memory, the
     * client waits in the backlog), accepts into its stream, then starts
     * it, or discards it when the accept failed. Past max_conns
     * connections (all workers, all adapters) start refuses politely. */
    void *(*conn_new)(hx_worker *w, const struct hx_listener *l);
    uv_stream_t *(*conn_stream)(void *conn);
    void (*conn_discard)(void *conn);
    void (*conn_start)(void *conn, long max_conns);
    /* Out of descriptors: close one connection that is closing anyway or
     * idle. false when there is none. */
    bool (*shed_one)(hx_worker *w);
    /* Shutdown: close idle connections, let busy ones finish and close. */
    void (*drain)(hx_worker *w);
    /* Shutdown deadline (or a failed worker start): close all now. */
    void (*close_all)(hx_worker *w);
} hx_proto;

/* What a listener is bound to. Only TCP today; a UDP kind (HTTP/3 over
 * QUIC) would hand its socket to the adapter instead of accepting. */
typedef enum {
    HX_LISTEN_TCP,
    HX_LISTEN_TLS, /* TLS over TCP: the handshake's ALPN picks the adapter (hx_alpn_proto) */
} hx_listen_kind;

typedef struct hx_listener {
    uv_tcp_t tcp;           /* data = the worker */
    hx_listen_kind kind;
    const hx_proto *proto;  /* the adapter of every connection it takes */
    int fd;                 /* bound before the worker starts; -1 when none */
    bool open;              /* tcp owns fd (closing it closes the fd) */
    bool paused;            /* accept.c: a connection waits in its backlog */
} hx_listener;

/* io_tls.c: the adapter of an ALPN protocol name ("" = none offered:
 * HTTP/1.1); NULL when no adapter serves it. Only "http/1.1" is
 * registered until the HTTP/2 adapter can adopt a TLS connection. */
const hx_proto *hx_alpn_proto(const char *name);

/* h1_proto.c: the HTTP/1.1 adapter (h1.c, h1_out.c). With
 * server.http2.h2c it hands a connection that opens with the HTTP/2
 * preface to h2 and forwards the worker's calls to hx_h2_proto too. */
extern const hx_proto hx_h1_proto;
/* h2_proto.c: the HTTP/2 adapter (h2*.c, nghttp2). */
extern const hx_proto hx_h2_proto;

#endif
