/* HTTP/3 adapter internals (ngtcp2 0.12 + nghttp3 0.8 + GnuTLS), shared
 * by h3_udp.c (the worker's UDP socket: receive, send, connection IDs,
 * Version Negotiation, Retry, stateless reset), h3_conn.c (one QUIC
 * connection: TLS, packets in and out, timers, close) and h3_stream.c
 * (HTTP/3 requests: nghttp3 callbacks, hx_req, the stream's
 * hx_transport). Not for use outside src/http/ (and its unit tests).
 *
 * Layout: each worker owns one UDP socket of the HTTP/3 port's
 * SO_REUSEPORT group; the steering program (quic_steer.c) sends it the
 * datagrams of the connections whose IDs it issued, so a connection lives
 * on one loop from first packet to last with nothing shared between
 * threads. docs/internals/http3.md has the picture. */
#ifndef HX_HTTP_H3_INT_H
#define HX_HTTP_H3_INT_H

#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/quic_steer.h"
#include "http/server_int.h"
#include "tls/antireplay.h"
#include "tls/tls.h"

/* Server connection IDs: the first byte names the worker (quic_steer.h). */
#define HX_H3_SCID_LEN 18
/* IDs a connection may have in the worker's table at once: the client's
 * first DCID, ours, and active_connection_id_limit more. */
#define HX_H3_ACTIVE_CIDS 8
#define HX_H3_MAX_CIDS (HX_H3_ACTIVE_CIDS + 4)
/* One datagram; GSO sends up to this many of them in one call. */
#define HX_H3_MAX_UDP 1452
#define HX_H3_GSO_MAX 10
/* Batches one connection writes per loop turn before the others' turn. */
#define HX_H3_BATCHES_PER_TURN 16
#define HX_H3_RX_BUF (64 * 1024)
/* Datagrams read per readiness event before other handles get a turn. */
#define HX_H3_READ_BATCH 64
/* server.http3.address_validation "auto": past this many connections in
 * their handshake on a worker, new clients prove their address first. */
#define HX_H3_RETRY_HANDSHAKES 64
/* Lifetimes of the address-validation tokens. */
#define HX_H3_RETRY_TOKEN_NS (10ull * NGTCP2_SECONDS)
#define HX_H3_REGULAR_TOKEN_NS (3600ull * NGTCP2_SECONDS)
/* Answer bytes a stream keeps until the client acknowledges them. */
#define HX_H3_STREAM_HIGH (256 * 1024)
#define HX_H3_STREAM_LOW (64 * 1024)
#define HX_H3_CHUNK (16 * 1024)
/* As HTTP/2 (h2_int.h): a response head is small; one connection's
 * request bodies stay within a budget (REQUEST_REJECTED past it). */
#define HX_H3_HEAD_MAX (64 * 1024)
#define HX_H3_BODY_BUDGET(max_body) ((max_body) * 4 > (1 << 20) ? (max_body) * 4 : (1 << 20))
/* The process's secret for tokens and stateless resets. */
#define HX_H3_SECRET_LEN 32

typedef struct h3_conn h3_conn;
typedef struct h3_worker h3_worker;

/* A stream's life. */
enum h3_stream_state {
    H3S_HEADERS,   /* the request head arrives */
    H3S_BODY,      /* the request body arrives */
    H3S_HANDLING,  /* dispatched; no answer yet */
    H3S_ANSWERING, /* the answer's head is submitted; body flows */
    H3S_DONE,      /* the answer ended or was cut */
};

/* A piece of answer body: handed to nghttp3 from `sent`, freed once the
 * client acknowledged all of it (nghttp3 keeps pointers until then). */
typedef struct h3_chunk {
    struct h3_chunk *next;
    size_t len, cap, sent;
    uint8_t data[];
} h3_chunk;

typedef struct h3_stream {
    h3_conn *c;
    int64_t id;
    enum h3_stream_state state;
    hx_req *req;            /* one reference, dropped when the stream closes */
    h3_chunk *head, *tail;  /* answer body: acked from head, sent up to tail */
    size_t buffered;        /* bytes in the chunks (sent or not, not acked) */
    size_t unacked_head;    /* of head->len, bytes acknowledged so far */
    size_t header_bytes;
    bool too_large;         /* past the header limit: 431 at the end of the head */
    bool has_host;
    bool eof;               /* the answer ended: EOF after the last chunk */
    bool blocked;           /* read_data said WOULDBLOCK: resume on write */
    bool busy;              /* the writer heard HX_RES_BUSY: on_drain owed */
    bool early;             /* part of the request arrived in 0-RTT */
    bool held;              /* waits for the handshake (when_confirmed) */
    bool gated;             /* early: waits for the shared register's verdict */
    bool dispatch_due;      /* whole: to the router after this read */
    bool drain_due;         /* acknowledged under LOW: on_drain after this read */
    size_t body_counted;    /* its request body, in h3_conn.body_bytes */
    hx_req_cb confirmed_cb;
    void *confirmed_ud;
    struct h3_stream *prev, *next;
} h3_stream;

enum h3_conn_state {
    H3C_HANDSHAKE, /* before the TLS handshake completed */
    H3C_OPEN,
    H3C_CLOSING,   /* CONNECTION_CLOSE sent: answer further packets with it */
    H3C_DRAINING,  /* the peer closed: wait, send nothing */
    H3C_CLOSED,    /* handles closing */
};

struct h3_conn {
    h3_worker *hw;
    ngtcp2_conn *qc;
    nghttp3_conn *h3;
    gnutls_session_t tls;
    ngtcp2_crypto_conn_ref ref;
    hx_tls_ctx *tctx;
    enum h3_conn_state state;
    ngtcp2_cid cids[HX_H3_MAX_CIDS]; /* in the worker's table */
    int ncids;
    struct sockaddr_storage local, remote; /* the current path (for logs) */
    socklen_t locallen, remotelen;
    char peer_ip[48];
    int peer_port;
    uv_timer_t timer;
    ngtcp2_connection_close_error last_error;
    uint8_t *closebuf;                /* the CONNECTION_CLOSE we send again */
    size_t closelen;
    h3_stream *streams;
    size_t nstreams;
    size_t early_bytes;               /* request bytes that came in 0-RTT */
    uint64_t body_bytes;              /* request bodies its streams hold */
    bool counted;                     /* holds a slot of server.max_connections */
    bool in_use;                      /* inside ngtcp2/nghttp3 calls: free later */
    bool free_due;
    bool write_due;                   /* on the worker's write list */
    bool confirm_due;                 /* the handshake completed: wake held streams */
    bool dispatch_due;                /* a stream has dispatch_due */
    bool drain_due;                   /* a stream has drain_due */
    bool draining_goaway;             /* shutdown: GOAWAY sent */
    bool early_offered;               /* the ClientHello offered early data */
    bool replay_seen;                 /* the register refused its ticket: a replay */
    bool shared_pending;              /* the shared register has not answered yet */
    bool shared_refused;              /* the shared register saw it (or failed): 425 early requests */
    struct h3_verdict *verdict;       /* the shared register's answer on its way */
    bool in_early;                    /* the stream data being read came in 0-RTT */
    h3_conn *prev, *next;             /* worker list */
    h3_conn *wnext;                   /* write list */
};

/* One slot of the worker's connection-ID table (open addressing). */
typedef struct {
    uint8_t len; /* 0 = empty */
    bool tomb;
    uint8_t id[NGTCP2_MAX_CIDLEN];
    h3_conn *c;
} h3_cid_slot;

struct h3_worker {
    hx_worker *w;
    int fd;
    int family;
    uv_poll_t poll;
    bool poll_open;
    bool want_write;       /* EAGAIN on send: waiting for POLLOUT */
    bool gso;              /* UDP_SEGMENT works on this socket */
    uint16_t port;
    h3_cid_slot *cids;
    size_t cid_cap, cid_used;
    h3_conn *conns;
    size_t nconns, handshaking;
    h3_conn *write_head;   /* connections to write this turn */
    uv_check_t write_check;
    uv_idle_t write_idle;
    uint8_t *rx;           /* HX_H3_RX_BUF */
    uint8_t *tx;           /* HX_H3_GSO_MAX * HX_H3_MAX_UDP */
    uv_timer_t sweep;      /* server.read_timeout for requests still arriving */
};

/* The process-wide HTTP/3 setup (h3_udp.c): built by hx_h3_server_init. */
typedef struct {
    hx_tls_ctx *tls;       /* certificates of server.http3, ALPN h3 */
    hx_antireplay *replay; /* NULL without enable_0rtt; lets all through with allow_0rtt_replay */
    uint8_t secret[HX_H3_SECRET_LEN];
    int validation;        /* 0 auto, 1 always, 2 never */
    bool debug;            /* HX_H3_DEBUG set at start: ngtcp2's packet log on stderr */
} h3_global;
extern h3_global hx_h3_g;

/* h3_udp.c */
uint64_t hx_h3_now(void);
int hx_h3_cid_add(h3_worker *hw, const ngtcp2_cid *cid, h3_conn *c);
void hx_h3_cid_del(h3_worker *hw, const ngtcp2_cid *cid);
/* Sends `len` bytes of packets of `seg` bytes each (the last may be
 * shorter) on path; 0, 1 when the socket is full (the caller keeps them),
 * -1 on error. */
int hx_h3_send(h3_worker *hw, const ngtcp2_path *path, const uint8_t *data, size_t len, size_t seg);
void hx_h3_write_soon(h3_conn *c);
void hx_h3_make_cid(h3_worker *hw, ngtcp2_cid *cid);

/* h3_server.c: c is going, its shared verdict (if on its way) finds no one. */
void hx_h3_verdict_detach(h3_conn *c);

/* h3_conn.c */
h3_conn *hx_h3_conn_new(h3_worker *hw, const ngtcp2_path *path, const ngtcp2_pkt_hd *hd,
                        const ngtcp2_cid *ocid, const uint8_t *token, size_t tokenlen);
/* A datagram for c. Returns 0, or -1 when c was closed (and freed). */
int hx_h3_conn_read(h3_conn *c, const ngtcp2_path *path, const ngtcp2_pkt_info *pi, const uint8_t *pkt,
                    size_t len);
/* Writes what c has to send. -1 when c was closed. */
int hx_h3_conn_write(h3_conn *c);
void hx_h3_conn_close(h3_conn *c, const char *why);
/* Shutdown: GOAWAY; streams finish, then the connection closes. */
void hx_h3_conn_drain(h3_conn *c);
/* The connection whose packet is being read (for the register's event). */
extern _Thread_local h3_conn *hx_h3_reading;
/* The early-data metric and SIEM event (h3_conn.c). */
void hx_h3_count_early(const char *outcome, h3_conn *c);

/* h3_stream.c */
int hx_h3_http_open(h3_conn *c);
void hx_h3_stream_free_all(h3_conn *c);
/* Once a second: requests still arriving past server.read_timeout get 408. */
void hx_h3_sweep(h3_worker *hw);
/* The handshake completed: held requests go on. */
void hx_h3_streams_confirmed(h3_conn *c);
/* The shared register answered: dispatch the early requests it held. */
void hx_h3_streams_ungate(h3_conn *c);
/* After a read: requests whose head and body are complete go to the
 * router (never from inside an nghttp3 callback). */
void hx_h3_streams_dispatch(h3_conn *c);
extern const hx_transport hx_h3_transport;

#endif
