/* HTTP/1.1 adapter internals shared by h1.c (parsing, requests, connection
 * life) and h1_out.c (output): the connection and the calls between them. */
#ifndef HX_HTTP_H1_INT_H
#define HX_HTTP_H1_INT_H

#include <http_parser.h>
#include <stdbool.h>

#include "http/io.h"
#include "http/server_int.h"

/* The connection's life. Every change goes through hx_h1_set_state(),
 * which checks it against the table in h1_state.c (written out in
 * docs/internals/state-machines.md). What is not state (keep-alive wanted,
 * parsing held, output bookkeeping) lives in the flags below. */
enum h1_state {
    H1_IDLE,     /* between requests (keep-alive); nothing being parsed */
    H1_READING,  /* a request head or body is being parsed; RT_READ armed */
    H1_HANDLING, /* the request is complete and dispatched; input waits */
    H1_DISCARD,  /* the last answer (often an error) goes out; input dropped */
    H1_LINGER,   /* output done, FIN sent; reads discarded until RT_LINGER */
    H1_CLOSED,   /* handles closing; every callback returns early */
    H1__COUNT
};
enum rt_mode { RT_NONE, RT_HANDSHAKE, RT_READ, RT_IDLE, RT_LINGER };

struct h1_conn {
    hx_io *io;            /* the byte stream: plain TCP or TLS (io.h); its own
                           * allocation, NULL once handed to h2 (ALPN h2) */
    uv_timer_t rt;
    uv_timer_t wt;
    uv_shutdown_t shutdown_req;
    hx_worker *w;
    h1_conn *prev, *next;
    http_parser parser;
    hx_buf in;            /* received, not yet parsed */
    hx_req *req;          /* being parsed or handled */
    enum h1_state state;  /* written only by hx_h1_set_state */
    enum rt_mode rt_mode;
    /* Orthogonal to the state: */
    bool keep_alive;      /* the client's request allows another one */
    bool close_after;     /* close once the current answer is out */
    bool read_stopped;    /* uv_read_stop in force: enough input is queued */
    bool parse_held;      /* the client reads no answers: take no new request */
    bool in_parse;        /* parse_input is on the stack (no re-entry) */
    bool counted;         /* holds a slot of server.max_connections */
    bool h2c_probe;       /* server.http2.h2c: first bytes may be the HTTP/2 preface */
    bool tls;             /* from a TLS listener: handshake before requests */
    /* Parser scratch for the current request head: */
    hx_buf url, hname, hval;
    bool in_value;
    bool in_trailers;     /* header callbacks now carry chunked trailers */
    size_t header_bytes;
    hx_err err;           /* error found by a parser callback; HX_ERR__COUNT = none */
    /* Output (h1_out.c): */
    bool chunked_out;     /* this answer's body is chunk-framed */
    bool busy;            /* the writer was told HX_RES_BUSY */
    bool overflow;        /* output passed its bound: close at the next flush */
    bool flush_queued;
    size_t out_pending;   /* in obuf + handed to libuv, not yet written */
    hx_buf obuf;          /* output of this loop turn, flushed in one write */
    h1_conn *flush_next;
    char peer_ip[48];
    int peer_port;
    int open_handles;
};

/* h1_state.c */
/* Moves c to `to` if the table allows it from c's state; `why` (a string
 * literal) is logged at debug level. An illegal move aborts in debug
 * builds (HX_DEBUG_CHECKS) and is refused and logged in release. Returns
 * whether the move was made. */
bool hx_h1_set_state(h1_conn *c, enum h1_state to, const char *why);
/* The table itself: may a connection go from `from` to `to`? */
bool hx_h1_state_allowed(enum h1_state from, enum h1_state to);
const char *hx_h1_state_name(enum h1_state s);
/* Tests only: sees every transition made (NULL in production). */
typedef void (*hx_h1_state_hook_fn)(const h1_conn *c, enum h1_state from, enum h1_state to, const char *why);
extern hx_h1_state_hook_fn hx_h1_state_hook;

/* h1.c */
/* Closes from any state; `why` (a literal) goes to the debug log. */
void hx_h1_conn_close(h1_conn *c, const char *why);
/* Output is flushed: shut the write side, then close after a linger. */
void hx_h1_begin_linger(h1_conn *c);
/* Reading and parsing go on (after a pause for backpressure). */
void hx_h1_resume_input(h1_conn *c);

/* h1_out.c */
/* Refreshes the worker's cached Date header (once a second). */
void hx_h1_update_date(hx_worker *w);
/* Queues up to three pieces of output. Returns HX_RES_*. */
int hx_h1_queue_write(h1_conn *c, const char *a, size_t alen, const char *b, size_t blen, const char *d,
                      size_t dlen);

#endif
