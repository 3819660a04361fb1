/* HTTP/1.1 adapter internals shared by h1.c (parsing, requests, connection
 * life) and h1_out.c (output): the connection and the calls between them. */
#ifndef HX_HTTP_H1_INT_H
#define HX_HTTP_H1_INT_H

#include <http_parser.h>
#include <stdbool.h>

#include "http/server_int.h"

enum conn_state { ST_IDLE, ST_READING, ST_HANDLING, ST_DISCARD };
enum rt_mode { RT_NONE, RT_READ, RT_IDLE, RT_LINGER };

struct h1_conn {
    uv_tcp_t tcp;
    uv_timer_t rt;
    uv_timer_t wt;
    uv_shutdown_t shutdown_req;
    hx_worker *w;
    h1_conn *prev, *next;
    http_parser parser;
    hx_buf in;            /* received, not yet parsed */
    hx_req *req;          /* being parsed or handled */
    enum conn_state state;
    enum rt_mode rt_mode;
    hx_buf url, hname, hval;
    bool in_value;
    bool in_trailers;     /* header callbacks now carry chunked trailers */
    size_t header_bytes;
    hx_err err;           /* error found by a parser callback */
    bool err_set;
    bool keep_alive;
    bool close_after;     /* close once the current output is flushed */
    bool closing;
    bool shut;
    bool lingering;
    bool read_stopped;
    bool parse_held;      /* the client reads no answers: take no new request */
    bool overflow;        /* output passed its bound: close at the next flush */
    bool in_parse;
    bool chunked_out;
    bool busy;
    bool counted;
    size_t out_pending;   /* in obuf + handed to libuv, not yet written */
    hx_buf obuf;          /* output of this loop turn, flushed in one write */
    char peer_ip[48];
    int peer_port;
    h1_conn *flush_next;
    bool flush_queued;
    int open_handles;
};

/* h1.c */
void hx_h1_conn_close(h1_conn *c);
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
