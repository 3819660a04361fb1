/* HTTP/2 adapter internals (nghttp2), shared by h2.c (session, streams,
 * hx_transport), h2_guard.c (defences, connection life), h2_state.c (the
 * checked state tables) and h2_io.c (every socket call). Not for use
 * outside src/http/ (and its unit tests). h2_out.c holds the stream's
 * hx_transport.
 *
 * Layout: one nghttp2 server session per connection, one hx_req per
 * stream. h2_io.c owns the descriptor behind five calls (open, write,
 * pause/resume, close) and calls back hx_h2_on_input / hx_h2_on_eof /
 * hx_h2_on_output: the next round puts the same calls over TLS. */
#ifndef HX_HTTP_H2_INT_H
#define HX_HTTP_H2_INT_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/io.h"
#include "http/server_int.h"

/* Output handed to the socket and not yet written: past HIGH nghttp2
 * produces no more frames (and writers hear HX_RES_BUSY) until it is
 * back under LOW. */
#define HX_H2_CONN_HIGH (256 * 1024)
#define HX_H2_CONN_LOW (64 * 1024)
/* Response body a stream holds that nghttp2 has not framed yet. */
#define HX_H2_STREAM_HIGH (256 * 1024)
#define HX_H2_STREAM_LOW (64 * 1024)
/* Bounds (DESIGN 7): a stream's buffer holds one whole answer at most
 * (the gateway relays bodies of up to 64 MiB in one piece, as on h1); a
 * turn's output is the high-water mark plus one frame of the largest
 * frame size. A response head is small. */
#define HX_H2_STREAM_OUT_MAX HX_H1_OBUF_MAX
#define HX_H2_OBUF_MAX (HX_H2_CONN_HIGH + 16 * 1024 * 1024 + 64 * 1024)
#define HX_H2_HEAD_MAX (64 * 1024)
/* Request bodies one connection's streams may hold at once: an HTTP/1.1
 * connection holds one body (server.max_body_bytes), an HTTP/2 one would
 * otherwise hold max_concurrent_streams of them. Past it the stream whose
 * DATA crosses it is refused (RST_STREAM REFUSED_STREAM: safe to retry). */
#define HX_H2_BODY_BUDGET(max_body) ((max_body) * 4 > (1 << 20) ? (max_body) * 4 : (1 << 20))
/* After the last GOAWAY: FIN, then keep reading (and dropping) this long
 * so unread input does not turn into a reset that destroys the GOAWAY on
 * the client's side (as h1's linger). */
#define HX_H2_LINGER_MS 1000

/* Connection life; changed only by hx_h2_set_conn_state (h2_state.c). */
enum h2_conn_state {
    H2C_OPEN,     /* serving streams */
    H2C_DRAINING, /* GOAWAY sent at shutdown: open streams finish */
    H2C_CLOSING,  /* the last frames (GOAWAY) flush, then close */
    H2C_CLOSED,   /* handles closing; callbacks return early */
    H2C__COUNT
};

/* A stream's life; changed only by hx_h2_set_stream_state. */
enum h2_stream_state {
    H2S_HEADERS,   /* the request head arrives */
    H2S_BODY,      /* the request body arrives */
    H2S_HANDLING,  /* dispatched; no answer yet */
    H2S_ANSWERING, /* the answer's head is submitted; body flows */
    H2S_DONE,      /* the answer ended or was cut; waiting for nghttp2's close */
    H2S_CLOSED,    /* nghttp2 closed it (or the connection went) */
    H2S__COUNT
};

typedef struct h2_conn h2_conn;

typedef struct h2_stream {
    h2_conn *c;
    int32_t id;
    enum h2_stream_state state;
    hx_req *req;          /* one reference, dropped when the stream closes */
    hx_buf out;           /* answer body not yet framed, from out_off */
    size_t out_off;
    size_t header_bytes;  /* names + values, against the header limit */
    size_t body_counted;  /* its request body, in the connection's h2_conn.body_bytes */
    bool too_large;       /* past the header limit: 431 at the end of the head */
    bool has_host;
    bool eof;             /* the answer ended: the last DATA carries END_STREAM */
    bool deferred;        /* the data source said DEFERRED: resume on write */
    bool busy;            /* the writer heard HX_RES_BUSY: on_drain owed */
    struct h2_stream *prev, *next;
} h2_stream;

/* A token bucket: `rate` per second, burst `rate`. */
typedef struct {
    double tokens;
    uint64_t last_ms;
    bool started;
} h2_bucket;

struct h2_conn {
    /* I/O (h2_io.c only) */
    hx_io *io;            /* plain or TLS (io.h); its own allocation, freed with c */
    uv_shutdown_t shutdown_req;
    hx_buf obuf;          /* frames of this turn, written in one go */
    size_t out_pending;   /* in obuf + handed to libuv, not yet written */
    bool flush_queued;
    bool read_stopped;
    h2_conn *flush_next;
    /* protocol */
    uv_timer_t idle_t;    /* no stream open for http2.idle_timeout */
    uv_timer_t slow_t;    /* output waits and nothing leaves */
    hx_worker *w;
    h2_conn *prev, *next;
    nghttp2_session *sess;
    enum h2_conn_state state;
    h2_stream *streams;
    size_t nstreams;
    size_t body_bytes;    /* request bodies its streams hold (HX_H2_BODY_BUDGET) */
    bool in_recv;         /* nghttp2_session_mem_recv is on the stack */
    bool close_due;       /* close once in_recv unwinds */
    bool counted;         /* holds a slot of server.max_connections */
    bool abusive;         /* the SIEM event went out; GOAWAY(ENHANCE_YOUR_CALM) */
    bool goaway_due;      /* found abusive inside mem_recv: GOAWAY once it returns */
    bool sess_dead;       /* nghttp2 failed fatally: no more session calls */
    bool lingering;       /* GOAWAY out and FIN sent: reads discarded until the linger ends */
    h2_bucket resets, settings, pings, priority, wupdates, empty_data;
    char peer_ip[48];
    int peer_port;
    int open_handles;
};

/* h2_state.c: a move not in the table aborts in debug builds
 * (HX_DEBUG_CHECKS), is refused and logged in release. */
bool hx_h2_set_conn_state(h2_conn *c, enum h2_conn_state to, const char *why);
bool hx_h2_set_stream_state(h2_stream *s, enum h2_stream_state to, const char *why);
bool hx_h2_conn_state_allowed(enum h2_conn_state from, enum h2_conn_state to);
bool hx_h2_stream_state_allowed(enum h2_stream_state from, enum h2_stream_state to);
const char *hx_h2_conn_state_name(enum h2_conn_state s);
const char *hx_h2_stream_state_name(enum h2_stream_state s);
/* Tests only: sees every move (`stream` false: a connection's). */
typedef void (*hx_h2_state_hook_fn)(bool stream, int from, int to, const char *why);
extern hx_h2_state_hook_fn hx_h2_state_hook;

/* h2_io.c: every socket call of the adapter. */
/* Prepares the handles on the worker's loop (the listener accepts into
 * hx_h2_io_stream, or hx_h2_io_open adopts a descriptor). */
int hx_h2_io_init(h2_conn *c);
uv_stream_t *hx_h2_io_stream(h2_conn *c);
/* Adopts a connected descriptor (h2c hand-off from h1); closes it on
 * failure. */
int hx_h2_io_open(h2_conn *c, int fd);
/* Adopts h1's hx_io after a TLS handshake chose h2 (ALPN): c's own
 * unused one is closed, `io` (reading) becomes c's. */
void hx_h2_io_take(h2_conn *c, hx_io *io);
/* Fills peer_ip / peer_port from the socket (accepted connections). */
void hx_h2_io_peer(h2_conn *c);
/* Starts reading; hx_h2_on_input / hx_h2_on_eof follow. */
int hx_h2_io_start(h2_conn *c);
/* Queues frames for this turn's write. Returns 0, or -1 past the bound. */
int hx_h2_io_write(h2_conn *c, const uint8_t *data, size_t len);
/* Runs hx_h2_on_output and writes in the check phase of this turn. */
void hx_h2_io_flush_soon(h2_conn *c);
/* Output done: FIN after the queued writes (reads go on, discarded). */
int hx_h2_io_finish(h2_conn *c);
void hx_h2_io_pause(h2_conn *c);
void hx_h2_io_resume(h2_conn *c);
/* Closes the handles (and the timers); hx_h2_conn_freed runs after. */
void hx_h2_io_close(h2_conn *c);
void hx_h2_io_worker_init(hx_worker *w);
void hx_h2_io_worker_close(hx_worker *w);

/* h2.c: what h2_io.c calls back. */
void hx_h2_on_input(h2_conn *c, const uint8_t *data, size_t len);
void hx_h2_on_eof(h2_conn *c);
/* Before a write: let nghttp2 frame what it can. */
void hx_h2_on_output(h2_conn *c);
/* `len` bytes left for the socket. */
void hx_h2_on_written(h2_conn *c, size_t len);
void hx_h2_conn_freed(h2_conn *c);

/* h2_out.c: a stream's transport (answer head, body, end, cut). */
extern const hx_transport hx_h2_transport;

static inline size_t hx_h2_stream_buffered(const h2_stream *s)
{
    return s->out.len - s->out_off;
}

/* h2.c */
h2_conn *hx_h2_conn_new(hx_worker *w);
int hx_h2_conn_begin(h2_conn *c, long max_conns, const uint8_t *data, size_t len);
void hx_h2_conn_close(h2_conn *c, const char *why);
/* Shutdown: GOAWAY with the last stream id; streams finish, then close. */
void hx_h2_drain(hx_worker *w);
void hx_h2_close_all(hx_worker *w);
bool hx_h2_shed_one(hx_worker *w);

/* h2_guard.c: the defences. Each returns false once the connection was
 * found abusive (GOAWAY(ENHANCE_YOUR_CALM) queued, SIEM event logged). */
void hx_h2_guard_init(h2_conn *c);
bool hx_h2_guard_frame(h2_conn *c, const nghttp2_frame *frame);
bool hx_h2_guard_reset_sent(h2_conn *c);
/* A DATA frame left: the WINDOW_UPDATEs it earns (stream and connection)
 * are not counted against the flood limit. */
void hx_h2_guard_data_sent(h2_conn *c);
/* Marks c abusive: one SIEM event, a metric, GOAWAY(ENHANCE_YOUR_CALM),
 * close after the flush. `reason` is a literal. Inside mem_recv the
 * GOAWAY waits for hx_h2_abuse_finish (the callback must then fail). */
void hx_h2_abuse(h2_conn *c, const char *reason);
void hx_h2_abuse_finish(h2_conn *c);
/* A GOAWAY left (nghttp2's own ENHANCE_YOUR_CALM counts as abuse). */
void hx_h2_goaway_sent(h2_conn *c, uint32_t code);
/* Plain GOAWAY reasons (idle, shutdown) for the metric. */
void hx_h2_count_goaway(const char *reason);
/* Output waits: arm (progress: restart) or stop the slow-read clock;
 * progress is a DATA frame leaving. The idle clock. */
void hx_h2_guard_output(h2_conn *c, bool progress);
void hx_h2_guard_idle(h2_conn *c);
/* nghttp2 options from the config (the library's own limits sit above
 * ours so ours answer first). */
nghttp2_option *hx_h2_guard_options(const hx_config *cfg);

#endif
