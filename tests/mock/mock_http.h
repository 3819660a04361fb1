/* HTTP/1.1 connection layer of the mock provider: keep-alive, pipelining,
 * chunked request bodies, bounded output (backpressure), paced streams.
 *
 * For each complete request the layer calls mock_dispatch() (mock_main.c)
 * with the parsed request in c->url / c->hdrs / c->body. The handler must
 * answer with exactly one of mock_send(), mock_send_error(),
 * mock_start_stream() (after filling c->reply), mock_hang() or
 * mock_conn_close(). Further pipelined requests wait until the answer is
 * done. */
#ifndef MOCK_HTTP_H
#define MOCK_HTTP_H

#include <stdint.h>

#include <http_parser.h>
#include <uv.h>

#include "mock_formats.h"

typedef struct mock_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t sreq;
    http_parser parser;
    mbuf in;      /* received, not yet parsed */
    size_t in_off;
    mbuf url, hdrs, body; /* current request; hdrs = "name\0value\0"..., names lower-case */
    mbuf out, ev;         /* pending output; scratch for one body/event */
    int hdr_state, method, http_major, http_minor, keep_alive, reject;
    int handles, closing, shutting, reading, in_process;
    int busy, active, has_reply, chunked, nwrites, waiting_drain;
    int reset_pending, delay_passed, timer_action;
    int stall;    /* where a reset would come, stop sending and keep the connection */
    long delay_ms, reset_after, req_chunks;
    mf_reply reply; /* stream source; freed when the answer is done */
} mock_conn;

/* Counters shared with the control endpoints. */
struct mock_counters {
    unsigned long requests; /* non-control requests since start/reset */
    long active;            /* non-control requests being answered */
    long conns;             /* open connections */
};
extern struct mock_counters mock_count;

/* Implemented by mock_main.c. */
void mock_dispatch(mock_conn *c);

/* Binds, listens and prints "listening on PORT". Returns 0 or -1. */
int mock_listen(uv_loop_t *loop, uv_tcp_t *server, const char *host, long port);

/* Value of a request header (name in lower case), or NULL. */
const char *mock_header(const mock_conn *c, const char *name);

/* Answers with c->ev as the body. delay_ms > 0 holds the whole answer that
 * long; reset sends the head and half the body, then resets the TCP
 * connection. */
void mock_send(mock_conn *c, int status, const char *ctype, const char *extra,
               uint64_t delay_ms, int reset);
void mock_send_error(mock_conn *c, mf_family fam, int status, const char *msg, const char *extra);

/* Streams c->reply (c->has_reply set): delay_ms before each content event,
 * reset after `reset_after` content events (-1: never), malformed: cut
 * with an invalid event after the first content event. */
void mock_start_stream(mock_conn *c, long delay_ms, long reset_after, int malformed);

/* A whole response sent in two writes `delay_ms` apart (Content-Length
 * covers both): a value split across two network reads of the client. */
void mock_send_split(mock_conn *c, int status, const char *ctype, const char *a, size_t an,
                     const char *b, size_t bn, uint64_t delay_ms);

/* Never answers; the connection stays open until the client closes it. */
void mock_hang(mock_conn *c);

/* Closes at once (FIN, or RST when SO_LINGER 0 was set). */
void mock_conn_close(mock_conn *c);

#endif
