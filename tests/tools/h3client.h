/* h3client (test-only HTTP/3 client): what h3client_main.c (command line,
 * output, session file) and h3client.c (QUIC + HTTP/3) share. */
#ifndef H3CLIENT_H
#define H3CLIENT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#define MAX_HEADERS 64
#define TP_COUNT 11 /* transport parameters kept in a session file */

typedef struct {
    char *p;
    size_t len, cap;
} buf;

typedef struct {
    char *name, *value;
} hdr;

typedef struct {
    char *authority, *host, *path;
} url;

typedef struct {
    const char *host, *port, *method, *session_file;
    url *urls;
    size_t nurls;
    hdr headers[MAX_HEADERS]; /* names lowercased */
    size_t nheaders;
    int has_clen;   /* -H content-length given */
    uint8_t *body;  /* non-NULL with -d (even for an empty file) */
    size_t body_len;
    long requests;
    int conns, streams, no_early, quiet, bench;
    long window; /* --window: per-stream receive window (0: 4 MiB) */
    double duration; /* --duration: stop starting requests after it (0: none) */
    double timeout;
} options;

typedef struct {
    long responses, ok2xx, errors, conn_errors;
    int early_attempted, early_accepted, early_rejected, resumed;
    char peer_sha256[65]; /* the server certificate of connection 0 (hex SHA-256 of its DER) */
    double *lat_ms; /* one per response */
    size_t nlat;
    double *hs_ms; /* one per connection; -1: no handshake */
    uint64_t t_start, t_end;
    uint64_t t_first; /* the first response complete (0: none yet) */
} statistics;

typedef struct {
    uint64_t tp[TP_COUNT];
    uint8_t *ticket;
    size_t ticket_len;
} session_data;

extern options opt;
extern statistics stats;

uint64_t now_ns(void);
char *xstrndup(const char *s, size_t n);
int buf_add(buf *b, const void *p, size_t n);
int is_numeric_host(const char *h);
void record_response(int k, int64_t id, int status, const hdr *h, size_t nh, const buf *body, size_t body_len,
                     uint64_t ns);
/* 1 loaded, 0 no file, -1 not a session file */
int session_read(const char *path, session_data *s);
int session_write(const char *path, const ngtcp2_transport_params *tp, const uint8_t *ticket, size_t len);
void session_tp_apply(const session_data *s, ngtcp2_transport_params *tp);
/* 0 done (see stats), 3 deadline reached, -1 setup failure */
int run_connections(void);

#endif
