/* Internals shared by the two ways an upstream call goes: libcurl
 * (upstream.c) and the plain HTTP/1.1 client (h1up.c). Not for other
 * modules: they use upstream/upstream.h. */
#ifndef HX_UPSTREAM_UPSTREAM_INT_H
#define HX_UPSTREAM_UPSTREAM_INT_H

#include <curl/curl.h>
#include <stdbool.h>

#include "upstream/upstream.h"
#include "util/buf.h"

/* Easy handles kept for reuse: as many as a burst needed (a new one costs
 * libcurl's handle and buffers, tens of KiB of malloc and free), given back
 * down to HX_UP_POOL_KEEP once a trim period passed without using them. */
#define HX_UP_POOL_MAX 1024
#define HX_UP_POOL_KEEP 64
#define HX_UP_TRIM_MS 10000
/* libcurl walks every connection of its multi handle when a transfer ends
 * and its host's connections when one starts (7.88): with a thousand
 * upstream connections in one multi that walk was a tenth of the CPU. Calls
 * spread over up to HX_UP_SHARDS multi handles (each its own connection
 * cache), a new one opened only when every open one holds
 * HX_UP_SHARD_CALLS calls, so light traffic keeps reusing one cache. */
#define HX_UP_SHARDS 16
#define HX_UP_SHARD_CALLS 32
#define HX_UP_SHARD_CONNS 256L

typedef struct sock_ctx sock_ctx;
/* h1up.c: the plain HTTP/1.1 client's state of one loop. */
typedef struct h1up h1up;
typedef struct h1up_conn h1up_conn;

typedef struct up_shard {
    hx_upstream *up;
    CURLM *multi;
    uv_timer_t timer;        /* libcurl's timeout for this multi */
    int calls;               /* calls in it now */
} up_shard;

struct hx_upstream {
    uv_loop_t *loop;
    up_shard shards[HX_UP_SHARDS];
    int nshards;
    uv_timer_t reap;         /* finishes cancelled calls on a clean stack */
    uv_timer_t trim;         /* gives back pooled easy handles a period did not use */
    CURL **pool;
    int npool, pool_cap;
    int pool_low;            /* fewest pooled handles since the last trim */
    hx_up_call *calls;
    int in_curl;             /* > 0 while inside a libcurl call */
    sock_ctx **socks;        /* by fd */
    size_t nsocks;
    int open_handles;
    bool closing;
    h1up *h1;                /* calls to plain http:// upstreams (h1up.c) */
};

/* One per upstream socket. The poll handle outlives curl's interest in the
 * socket: when a transfer ends, its connection idles in curl's cache and
 * the next request on it reuses the handle without touching epoll. The
 * handle goes away only when curl closes the socket (closesocket callback). */
struct sock_ctx {
    uv_poll_t poll;
    hx_upstream *up;
    up_shard *sh;    /* the multi handle that owns the socket now */
    curl_socket_t fd;
    int events;      /* what the poll handle watches now */
    bool idle;       /* curl does not watch this socket at the moment */
};

struct hx_up_call {
    hx_upstream *up;
    up_shard *sh;
    hx_up_call *prev, *next;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;                /* libcurl sends it from here (POSTFIELDS) */
    size_t body_len;
    int attempts;              /* libcurl's connect-and-send rounds (on_prereq) */
    bool retry_refused;        /* on_prereq stopped libcurl's silent re-send */
    hx_up_callbacks cb;
    void *ud;
    uv_timer_t fb_timer;       /* first byte, then idle between body bytes */
    uint64_t idle_ms;          /* stream_idle_timeout (0 = none) */
    uint64_t last_data_ms;     /* loop time of the last body bytes */
    hx_headers resp_headers;
    int status;
    size_t consumed;           /* bytes at the front of libcurl's next delivery that
                                * the caller already has (see on_write) */
    bool head_done;
    bool paused;
    bool cancelled;
    bool finished;
    bool in_multi;
    hx_up_result forced;
    const char *forced_why;    /* on_reap's detail for a forced result (static text) */
    char errbuf[CURL_ERROR_SIZE];
    /* The plain HTTP/1.1 client's calls (easy == NULL): */
    bool native;
    bool native_done;          /* the parser saw the answer's end */
    h1up_conn *conn;           /* NULL before one is attached and after */
    hx_buf req;                /* head and body, kept until written */
    size_t sent;               /* request bytes the socket took */
    uint64_t deadline_ms;      /* loop time of total_timeout (0 = none) */
    uint64_t connect_ms;       /* connect_timeout */
};

/* upstream.c, for h1up.c: end a call (clean stack only), arm the idle
 * timer after the head, the response headers callers keep. */
void hx_up_finish(hx_up_call *c, hx_up_result res, const char *detail);
/* Ends calls that are cancelled or have a forced result on the next loop
 * turn (for a failure met where on_done must not run yet). */
void hx_up_schedule_reap(hx_upstream *up);
/* One of up's handles (timer, poll, connection) closed. */
void hx_up_handle_closed(hx_upstream *up);
void hx_up_idle_arm(hx_up_call *c);
bool hx_up_kept_header(const char *name, size_t n);

/* upstream.c, for curl_multi.c: ends the calls libcurl finished. */
void hx_up_check_done(up_shard *sh);

/* curl_multi.c: libcurl on the loop. */
int hx_up_on_close_socket(void *userp, curl_socket_t fd);
void hx_up_poll_closed(uv_handle_t *h);
/* Opens the next multi handle (NULL: none left or no memory); picks the
 * one with the fewest calls, opening another when all are full. */
up_shard *hx_up_shard_open(hx_upstream *up);
up_shard *hx_up_shard_pick(hx_upstream *up);
void hx_up_shard_timer_closed(uv_handle_t *h);
/* Easy handles: from the pool (or new), back to it (reset) or freed. */
CURL *hx_up_take_easy(hx_upstream *up);
void hx_up_release_easy(hx_upstream *up, CURL *e);
void hx_up_on_trim(uv_timer_t *t);

/* h1up.c */
h1up *hx_h1up_new(hx_upstream *up);
/* Closes its idle connections (calls are finished first); its handles
 * count in up->open_handles until closed. */
void hx_h1up_close(h1up *h);
/* Takes the call when its URL is plain http:// to an IP literal and no
 * proxy variable is set: 1 taken (sending or connecting), 0 not for
 * this client (libcurl takes it), -1 failed (no memory). */
int hx_h1up_start(h1up *h, hx_up_call *c, const char *method, const char *url, const hx_headers *headers,
                  const hx_up_opts *o);
/* From hx_up_finish: lets go of the call's connection (kept for the next
 * call when the answer ended cleanly, closed otherwise). */
void hx_h1up_detach(hx_up_call *c);
void hx_h1up_resume(hx_up_call *c);
void hx_h1up_enable(h1up *h, bool on);

#endif
