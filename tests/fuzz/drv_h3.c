/* HTTP/3 target: raw HTTP/3 stream bytes past QUIC's encryption, through
 * the real server path: the worker's UDP socket (src/http/h3_udp.c: read,
 * connection IDs, Retry, tokens), the QUIC connection (h3_conn.c: TLS,
 * 0-RTT, close), the nghttp3 callbacks and the stream's transport
 * (h3_stream.c: hx_req, limits, dispatch), with the router and an echo
 * handler (streamed for POST), small limits (max_body_bytes 4KB,
 * max_header_bytes 2KB, max_0rtt_size 1KB) so 413, 431 and 425 are
 * reachable, on a private uv loop and a UDP socket on 127.0.0.1.
 *
 * The client is in-process: ngtcp2 + GnuTLS (as tests/tools/h3client.c),
 * but no nghttp3: the fuzz input goes out as raw stream bytes. Byte 0:
 *   bits 0-1  0: the rest on one request stream (bidi, then FIN)
 *             1: the same, in small pieces (byte 1: piece size), a server
 *                turn between pieces (frames straddle reads)
 *             2: bytes 1-3 are the lengths of what follows the stream
 *                type on the client's control stream (0x00: SETTINGS
 *                frame and more; if 0, an empty SETTINGS), QPACK encoder
 *                (0x02) and decoder (0x03) streams; then those bytes; the
 *                rest on the request stream
 *             3: raw datagrams to the server's socket, no handshake: each
 *                a 2-byte length and its bytes (seeds are mutations of a
 *                real client Initial: ngtcp2_accept, Version Negotiation,
 *                Retry, invalid tokens, stateless reset, max_connections)
 *   modes 0-2, bits 2-3: 1 the server demands address validation (a
 *             Retry round trip first); 2 the client brings a NEW_TOKEN of
 *             an earlier connection; 3 the request stream is left open
 *             (no FIN) and, once nothing moves, the read-timeout sweep
 *             runs (408; server.read_timeout is 1 ms)
 *             bit 4: the client resumes a TLS session; bit 5: it sends its
 *             streams in 0-RTT (implies bit 4)
 *             bits 6-7: 1 the request stream's bytes go ahead of the uni
 *             streams' (QPACK-blocked heads); 2 once written, the client
 *             cancels the request stream (RESET_STREAM, STOP_SENDING); 3
 *             once the server read some of it, the worker shuts down
 *             (GOAWAY, then each connection closes when its streams end)
 *   mode 3, bits 2-3: address validation auto / always / never / auto.
 * The echo handler answers POST streamed; a body with "!cut" has its
 * answer cut after the head (the handler fails: tp_abort), one with "!big"
 * gets a 320 KB answer (past HX_H3_STREAM_HIGH: HX_RES_BUSY, on_drain),
 * through the client's 16 KB stream window.
 * The session ticket, token and transport parameters come from a priming
 * connection made when they are missing or older than 2 s (0-RTT needs a
 * ticket from GnuTLS's current anti-replay window).
 *
 * Per input: a new connection, the input, both loops driven until the
 * answer ended and the server closed its streams (the client ACKs at
 * once), or nothing moves; then the client closes.
 * Invariants: the handshake completes, the server speaks valid QUIC to a
 * valid client (the client's ngtcp2 never sees an error), its control
 * stream starts with SETTINGS, an answer is HEADERS (:status first,
 * lower-case names, nothing connection-specific) then DATA adding up to
 * its content-length, a dispatched request is answered within 5 s (the
 * input goes on while one is owed), the server takes the client's
 * CONNECTION_CLOSE (draining) in bounded time, and once the worker frees
 * what is draining no connection is left (count 0, ASan/LSan: no leak).
 * HX_FUZZ_H3_CAPTURE=FILE appends each connection's first datagram (its
 * Initial) to FILE, a mode-3 seed; HX_FUZZ_H3_DUMP=1 prints each answer's head. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "fuzz.h"
#include "fuzz_net.h"
#include "http/h3_int.h"
#include "http/request.h"

#define MODE_REQ 0
#define MODE_PIECES 1
#define MODE_STREAMS 2
#define MODE_DGRAM 3
#define CONN_MASK 0x0c
#define C_RETRY 0x04
#define C_TOKEN 0x08
#define C_OPEN 0x0c
#define F_RESUME 0x10
#define F_EARLY 0x20
#define TWIST_MASK 0xc0
#define T_REQ_FIRST 0x40
#define T_CANCEL 0x80
#define T_SHUTDOWN 0xc0

/* Rounds without anything moving before an input counts as done. */
#define IDLE_ROUNDS 2
#define MAX_DGRAMS 32
/* The answer bytes the client keeps for its checks. */
#define ANSWER_MAX (512 * 1024)
/* "!big" in a POST body: an answer this long (past HX_H3_STREAM_HIGH,
 * so the handler hears HX_RES_BUSY and waits for on_drain). */
#define BIG_ANSWER (320 * 1024)

static hx_fuzz_net net;
static hx_worker *wk;
static h3_worker *hw;
static struct sockaddr_in srv_addr, cli_addr;
static int cfd = -1; /* the client's UDP socket, connected to the server's */
static gnutls_certificate_credentials_t cred;

/* What an earlier connection left the next one. */
static struct {
    uint8_t *ticket;
    size_t ticket_len;
    uint8_t token[256];
    size_t token_len;
    ngtcp2_transport_params tp; /* scalar fields only */
    bool have_tp;
    double at; /* hx_fuzz_now() of the ticket; 0: stale */
} saved;

/* ---- the server ------------------------------------------------------------------ */

/* The rest of a "!big" answer: written until the stream is full, then
 * again from on_drain (cb_ud: the bytes still owed). */
static void big_write(hx_req *r, void *ud)
{
    static char block[4096];
    size_t left = (size_t)(uintptr_t)ud;
    r->on_drain = NULL;
    if (block[0] == 0)
        memset(block, 'b', sizeof block);
    while (left > 0) {
        size_t n = left < sizeof block ? left : sizeof block;
        int rc = hx_res_write(r, block, n);
        left -= n;
        if (rc < 0)
            return; /* gone: the request is detached */
        if (rc == HX_RES_BUSY && left > 0) {
            r->on_drain = big_write;
            r->cb_ud = (void *)(uintptr_t)left;
            return;
        }
    }
    hx_res_end(r);
}

static void echo(hx_req *r)
{
    char b[256];
    int n = snprintf(b, sizeof b, "%s %s %zu %zu\n", r->method, r->path ? r->path : "", r->headers.n, r->body.len);
    if (strcmp(r->method, "POST") == 0) {
        bool cut = r->body.len && memmem(r->body.data, r->body.len, "!cut", 4);
        bool big = r->body.len && memmem(r->body.data, r->body.len, "!big", 4);
        if (hx_res_start(r, 200) != 0 || hx_res_write(r, b, (size_t)n) < 0 ||
            hx_res_write(r, r->body.data, r->body.len) < 0)
            hx_res_end(r);
        else if (cut)
            hx_res_error(r, HX_ERR_INTERNAL, NULL); /* after the head: the stream is cut (tp_abort) */
        else if (big)
            big_write(r, (void *)(uintptr_t)BIG_ANSWER);
        else
            hx_res_end(r);
    } else {
        hx_res_send(r, 200, "text/plain", b, (size_t)n);
    }
}

static const hx_handler_def *lookup(const char *name)
{
    return hx_fuzz_handler_def(echo, name);
}

/* The single-use register: every ticket is new (the same ticket serves
 * many inputs; the register's refusal is h3's unit tests' business). */
static hx_replay_rc replay_add(void *ud, const char *key, int64_t ttl_ms)
{
    (void)ud, (void)key, (void)ttl_ms;
    return HX_REPLAY_NEW;
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz h3: %s\n", what);
    abort();
}

static int write_file(const char *path, const gnutls_datum_t *d)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    chmod(path, 0600);
    size_t w = fwrite(d->data, 1, d->size, f);
    return fclose(f) == 0 && w == d->size ? 0 : -1;
}

/* A self-signed ECDSA certificate for the server, made now (no key is
 * committed); the files live only until the TLS context has read them. */
static void make_cert(const char *cert, const char *key)
{
    gnutls_x509_privkey_t k = NULL;
    gnutls_x509_crt_t c = NULL;
    gnutls_datum_t cd = {0}, kd = {0};
    uint8_t serial[8];
    time_t now = time(NULL);
    gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial);
    serial[0] &= 0x7f;
    if (gnutls_x509_privkey_init(&k) != 0 || gnutls_x509_crt_init(&c) != 0 ||
        gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) != 0 ||
        gnutls_x509_crt_set_version(c, 3) != 0 || gnutls_x509_crt_set_serial(c, serial, sizeof serial) != 0 ||
        gnutls_x509_crt_set_activation_time(c, now - 3600) != 0 ||
        gnutls_x509_crt_set_expiration_time(c, now + 3650 * 86400) != 0 ||
        gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9) != 0 ||
        gnutls_x509_crt_set_key(c, k) != 0 || gnutls_x509_crt_sign2(c, c, k, GNUTLS_DIG_SHA256, 0) != 0 ||
        gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_PEM, &cd) != 0 ||
        gnutls_x509_privkey_export2(k, GNUTLS_X509_FMT_PEM, &kd) != 0 || write_file(cert, &cd) != 0 ||
        write_file(key, &kd) != 0)
        die("cannot make the test certificate");
    gnutls_free(cd.data);
    gnutls_free(kd.data);
    gnutls_x509_crt_deinit(c);
    gnutls_x509_privkey_deinit(k);
}

static int udp_socket(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t al = sizeof *a;
    int big = 4 << 20;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof *a) != 0 || getsockname(fd, (struct sockaddr *)a, &al) != 0)
        die("cannot bind a UDP socket on 127.0.0.1");
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    return fd;
}

static void setup(void)
{
    hx_fuzz_setup();
    const char *tmp = getenv("TMPDIR");
    char dir[256], cert[300], key[300];
    snprintf(dir, sizeof dir, "%s/hx-fuzz-h3-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        die("mkdtemp failed");
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    make_cert(cert, key);
    /* Small limits so that 413, 431, 425 and the refusal past
     * max_connections are reachable. */
    char yaml[2048];
    int yl = snprintf(yaml, sizeof yaml,
                      "server:\n"
                      "  max_body_bytes: 4KB\n"
                      "  max_header_bytes: 2KB\n"
                      "  max_connections: 2\n"
                      "  read_timeout: 1ms\n"
                      "  middleware: [request_id, request_timer, panic_recovery]\n"
                      "  http3:\n"
                      "    enabled: true\n"
                      "    port: 4433\n"
                      "    tls_cert_file: %s\n"
                      "    tls_key_file: %s\n"
                      "    max_bi_streams_concurrent: 8\n"
                      "    max_uni_streams_concurrent: 8\n"
                      "    max_stream_receive_window: 64KB\n"
                      "    max_connection_receive_window: 256KB\n"
                      "    enable_0rtt: true\n"
                      "    max_0rtt_size: 1KB\n",
                      cert, key);
    hx_config_errors errs = {0};
    hx_config *cfg = hx_config_load_string(yaml, (size_t)yl, "fuzz-h3.yaml", &errs);
    hx_config_errors_free(&errs);
    char err[256];
    hx_router *rt = cfg ? hx_router_build(cfg, lookup, NULL, err, sizeof err) : NULL;
    if (cfg == NULL || hx_h3_server_init(cfg, replay_add, NULL, NULL, err, sizeof err) != 0)
        die("HTTP/3 set-up failed");
    unlink(cert);
    unlink(key);
    rmdir(dir);
    hx_fuzz_net_init(&net, "h3", cfg, rt);
    wk = net.wk;
    wk->h3_fd = udp_socket(&srv_addr);
    if (hx_h3_worker_open(wk) != 0)
        die("hx_h3_worker_open failed");
    hw = wk->h3;
    /* The read-timeout sweep runs when an input asks (C_OPEN), never at
     * a random moment of another input. */
    uv_timer_stop(&hw->sweep);
    cfd = udp_socket(&cli_addr);
    if (connect(cfd, (struct sockaddr *)&srv_addr, sizeof srv_addr) != 0 ||
        gnutls_certificate_allocate_credentials(&cred) != 0)
        die("client set-up failed");
}

/* ---- the client -------------------------------------------------------------------- */

typedef struct {
    int64_t id;
    bool open, fin, fin_sent, shut, stalled;
    const uint8_t *data;
    size_t len, off;
} cstream;

typedef struct {
    ngtcp2_conn *qc;
    gnutls_session_t tls;
    ngtcp2_crypto_conn_ref ref;
    ngtcp2_connection_close_error err;
    bool early;       /* streams go out in 0-RTT */
    bool tried_early; /* they did (accepted or not) */
    bool hs_done;
    bool closed;         /* our CONNECTION_CLOSE is out, or the server's came in */
    bool streams_wanted; /* open ctrl/enc/dec/req once allowed */
    bool req_ended;      /* the server ended its side of the request stream */
    bool got_ticket, got_token;
    bool req_first; /* request bytes ahead of the uni streams' */
    bool cancel;    /* once written, the request stream is cancelled */
    bool cancelled;
    bool shutdown; /* once some request bytes are out, the server shuts down */
    bool shut_down;
    bool answer_fin; /* the answer ended with FIN (not reset) */
    size_t piece;    /* MODE_PIECES: request bytes per packet */
    cstream s[4];    /* control, QPACK encoder, QPACK decoder, request */
    uint8_t *answer; /* the answer's first ANSWER_MAX bytes */
    size_t answer_len, answer_cap;
    bool answer_cut; /* more than ANSWER_MAX, or a gap */
    bool captured;
    bool own_settings; /* the control stream is the input's (it may allow a dynamic table) */
} client;

enum { S_CTRL, S_ENC, S_DEC, S_REQ };

static const char *capture; /* HX_FUZZ_H3_CAPTURE */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((client *)ref->user_data)->qc;
}

static void q_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    (void)ctx;
    gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
}

static int q_new_cid(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
    (void)qc, (void)ud;
    gnutls_rnd(GNUTLS_RND_NONCE, cid->data, cidlen);
    gnutls_rnd(GNUTLS_RND_NONCE, token, NGTCP2_STATELESS_RESET_TOKENLEN);
    cid->datalen = cidlen;
    return 0;
}

static void check(bool ok, const char *what, const char *detail)
{
    if (ok || hx_fuzz_torture)
        return;
    fprintf(stderr, "fuzz h3: check failed: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static int q_recv_stream_data(ngtcp2_conn *qc, uint32_t flags, int64_t id, uint64_t offset, const uint8_t *data,
                              size_t len, void *ud, void *sud)
{
    (void)sud;
    client *c = ud;
    ngtcp2_conn_extend_max_stream_offset(qc, id, len);
    ngtcp2_conn_extend_max_offset(qc, len);
    if (id == c->s[S_REQ].id && c->s[S_REQ].open) {
        /* ngtcp2 hands stream data over in order. */
        if (offset != c->answer_len || c->answer_len + len > ANSWER_MAX) {
            c->answer_cut = true;
        } else {
            if (c->answer_len + len > c->answer_cap) {
                size_t cap = c->answer_cap ? c->answer_cap : 16384;
                while (cap < c->answer_len + len)
                    cap *= 2;
                uint8_t *a = realloc(c->answer, cap);
                if (a == NULL)
                    die("out of memory");
                c->answer = a;
                c->answer_cap = cap;
            }
            memcpy(c->answer + c->answer_len, data, len);
            c->answer_len += len;
        }
        if (flags & NGTCP2_STREAM_DATA_FLAG_FIN)
            c->req_ended = c->answer_fin = true;
    } else if (!ngtcp2_is_bidi_stream(id) && offset == 0 && len > 0) {
        /* The server's control stream (its first) starts with SETTINGS. */
        check(data[0] <= 0x03 && data[0] != 0x01, "a server stream of unknown type", NULL);
        if (data[0] == 0x00 && len > 1)
            check(data[1] == 0x04, "the server's control stream does not start with SETTINGS", NULL);
    }
    return 0;
}

static int q_stream_reset(ngtcp2_conn *qc, int64_t id, uint64_t final_size, uint64_t code, void *ud, void *sud)
{
    (void)qc, (void)final_size, (void)code, (void)sud;
    client *c = ud;
    if (id == c->s[S_REQ].id)
        c->req_ended = true;
    return 0;
}

static int q_stream_close(ngtcp2_conn *qc, uint32_t flags, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)qc, (void)flags, (void)code, (void)sud;
    client *c = ud;
    if (id == c->s[S_REQ].id)
        c->req_ended = true;
    for (int i = 0; i < 4; i++)
        if (c->s[i].open && c->s[i].id == id)
            c->s[i].shut = true;
    return 0;
}

static int q_stop_sending(ngtcp2_conn *qc, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)qc, (void)code, (void)sud;
    client *c = ud;
    for (int i = 0; i < 4; i++)
        if (c->s[i].open && c->s[i].id == id)
            c->s[i].shut = true;
    return 0;
}

static int q_new_token(ngtcp2_conn *qc, const ngtcp2_vec *token, void *ud)
{
    (void)qc;
    client *c = ud;
    if (token->len <= sizeof saved.token) {
        memcpy(saved.token, token->base, token->len);
        saved.token_len = token->len;
        c->got_token = true;
    }
    return 0;
}

static void save_tp(const ngtcp2_transport_params *p)
{
    ngtcp2_transport_params *t = &saved.tp;
    ngtcp2_transport_params_default(t);
    t->initial_max_streams_bidi = p->initial_max_streams_bidi;
    t->initial_max_streams_uni = p->initial_max_streams_uni;
    t->initial_max_stream_data_bidi_local = p->initial_max_stream_data_bidi_local;
    t->initial_max_stream_data_bidi_remote = p->initial_max_stream_data_bidi_remote;
    t->initial_max_stream_data_uni = p->initial_max_stream_data_uni;
    t->initial_max_data = p->initial_max_data;
    t->active_connection_id_limit = p->active_connection_id_limit;
    t->max_datagram_frame_size = p->max_datagram_frame_size;
    t->max_idle_timeout = p->max_idle_timeout;
    t->max_udp_payload_size = p->max_udp_payload_size;
    t->disable_active_migration = p->disable_active_migration;
    saved.have_tp = true;
}

static int tls_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming, const gnutls_datum_t *msg)
{
    (void)when, (void)incoming, (void)msg;
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
    client *c = ref->user_data;
    gnutls_datum_t d;
    const ngtcp2_transport_params *p = ngtcp2_conn_get_remote_transport_params(c->qc);
    if (htype != GNUTLS_HANDSHAKE_NEW_SESSION_TICKET || p == NULL || gnutls_session_get_data2(s, &d) != 0)
        return 0;
    uint8_t *t = malloc(d.size);
    if (t) {
        memcpy(t, d.data, d.size);
        free(saved.ticket);
        saved.ticket = t;
        saved.ticket_len = d.size;
        saved.at = hx_fuzz_now();
        save_tp(p);
        c->got_ticket = true;
    }
    gnutls_free(d.data);
    return 0;
}

static int q_handshake_completed(ngtcp2_conn *qc, void *ud)
{
    client *c = ud;
    c->hs_done = true;
    if (c->early && !(gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_EARLY_DATA)) {
        /* Refused (the anti-replay window moved on): ngtcp2 forgets the
         * streams; they go again in 1-RTT, and the next input primes. */
        saved.at = 0;
        c->early = false;
        if (ngtcp2_conn_early_data_rejected(qc) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        for (int i = 0; i < 4; i++)
            c->s[i].open = c->s[i].fin_sent = c->s[i].shut = false, c->s[i].off = 0;
        c->req_ended = false;
    }
    return 0;
}

static bool client_new(client *c, int flags)
{
    static const ngtcp2_callbacks cb = {
        .client_initial = ngtcp2_crypto_client_initial_cb,
        .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
        .handshake_completed = q_handshake_completed,
        .encrypt = ngtcp2_crypto_encrypt_cb,
        .decrypt = ngtcp2_crypto_decrypt_cb,
        .hp_mask = ngtcp2_crypto_hp_mask_cb,
        .recv_stream_data = q_recv_stream_data,
        .stream_close = q_stream_close,
        .recv_retry = ngtcp2_crypto_recv_retry_cb,
        .rand = q_rand,
        .get_new_connection_id = q_new_cid,
        .update_key = ngtcp2_crypto_update_key_cb,
        .stream_reset = q_stream_reset,
        .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
        .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
        .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
        .stream_stop_sending = q_stop_sending,
        .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
        .recv_new_token = q_new_token,
    };
    static char alpn_h3[] = "h3";
    const gnutls_datum_t alpn = {(unsigned char *)alpn_h3, 2};
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 4; i++)
        c->s[i].id = -1;
    bool resume = (flags & (F_RESUME | F_EARLY)) && saved.ticket;
    c->early = c->tried_early = (flags & F_EARLY) && resume && saved.have_tp;
    unsigned gf = GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA | (c->early ? GNUTLS_ENABLE_EARLY_DATA : 0);
    c->ref.get_conn = get_conn;
    c->ref.user_data = c;
    if (gnutls_init(&c->tls, gf) != 0) {
        c->tls = NULL;
        return false;
    }
    if (ngtcp2_crypto_gnutls_configure_client_session(c->tls) != 0 ||
        gnutls_priority_set_direct(c->tls, "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE", NULL) != 0 ||
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, cred) != 0 ||
        gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0)
        return false;
    gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET, GNUTLS_HOOK_POST, tls_hook);
    gnutls_session_set_ptr(c->tls, &c->ref);
    if (resume && gnutls_session_set_data(c->tls, saved.ticket, saved.ticket_len) != 0)
        c->early = c->tried_early = false;
    ngtcp2_cid dcid = {.datalen = 18}, scid = {.datalen = 16};
    gnutls_rnd(GNUTLS_RND_NONCE, dcid.data, dcid.datalen);
    gnutls_rnd(GNUTLS_RND_NONCE, scid.data, scid.datalen);
    ngtcp2_settings st;
    ngtcp2_settings_default(&st);
    st.initial_ts = hx_h3_now();
    if ((flags & CONN_MASK) == C_TOKEN && saved.token_len)
        st.token = (ngtcp2_vec){saved.token, saved.token_len};
    ngtcp2_transport_params tp;
    ngtcp2_transport_params_default(&tp);
    /* A small window: a long answer waits for the client's credit. */
    tp.initial_max_stream_data_bidi_local = 16 << 10;
    tp.initial_max_stream_data_bidi_remote = 1 << 20;
    tp.initial_max_stream_data_uni = 1 << 20;
    tp.initial_max_data = 16 << 20;
    tp.initial_max_streams_bidi = 0;
    tp.initial_max_streams_uni = 16;
    tp.max_idle_timeout = 30 * NGTCP2_SECONDS;
    /* ACKs at once: the server sees its answers acknowledged and its
     * streams close before the input ends. */
    tp.max_ack_delay = 0;
    ngtcp2_path path = {
        {(ngtcp2_sockaddr *)&cli_addr, sizeof cli_addr}, {(ngtcp2_sockaddr *)&srv_addr, sizeof srv_addr}, NULL};
    if (ngtcp2_conn_client_new(&c->qc, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &st, &tp, NULL, c) != 0) {
        c->qc = NULL;
        return false;
    }
    ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
    if (c->early)
        ngtcp2_conn_set_early_remote_transport_params(c->qc, &saved.tp);
    ngtcp2_connection_close_error_default(&c->err);
    hx_h3_g.validation = (flags & CONN_MASK) == C_RETRY ? 1 : 0;
    return true;
}

static void client_free(client *c)
{
    free(c->answer);
    c->answer = NULL;
    if (c->qc)
        ngtcp2_conn_del(c->qc);
    if (c->tls)
        gnutls_deinit(c->tls);
    c->qc = NULL;
    c->tls = NULL;
}

static void client_send(const uint8_t *p, size_t n)
{
    while (send(cfd, p, n, 0) < 0 && errno == EINTR)
        ;
}

/* Sends our CONNECTION_CLOSE (once). */
static void client_close(client *c)
{
    if (c->closed || c->qc == NULL)
        return;
    c->closed = true;
    if (ngtcp2_conn_is_in_draining_period(c->qc) || ngtcp2_conn_is_in_closing_period(c->qc))
        return;
    uint8_t pkt[1500];
    ngtcp2_path_storage ps;
    ngtcp2_pkt_info pi;
    ngtcp2_path_storage_zero(&ps);
    if (c->err.error_code == 0)
        ngtcp2_connection_close_error_set_application_error(&c->err, NGHTTP3_H3_NO_ERROR, NULL, 0);
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, pkt, sizeof pkt, &c->err, hx_h3_now());
    if (n > 0)
        client_send(pkt, (size_t)n);
}

static void client_error(client *c, int rv, const char *where)
{
    check(false, where, ngtcp2_strerror(rv));
    if (c->err.error_code == 0)
        ngtcp2_connection_close_error_set_transport_error_liberr(&c->err, rv, NULL, 0);
    client_close(c);
}

static void open_streams(client *c)
{
    if (!c->streams_wanted || c->closed || (!c->hs_done && !c->early))
        return;
    for (int i = 0; i < 4; i++) {
        cstream *s = &c->s[i];
        if (s->open || s->data == NULL)
            continue;
        int rv = i == S_REQ ? ngtcp2_conn_open_bidi_stream(c->qc, &s->id, NULL)
                            : ngtcp2_conn_open_uni_stream(c->qc, &s->id, NULL);
        if (rv != 0)
            return; /* no credit yet */
        s->open = true;
    }
}

static cstream *next_stream(client *c, bool piece_out)
{
    static const int order[2][4] = {{S_CTRL, S_ENC, S_DEC, S_REQ}, {S_REQ, S_CTRL, S_ENC, S_DEC}};
    for (int k = 0; k < 4; k++) {
        int i = order[c->req_first][k];
        cstream *s = &c->s[i];
        if (!s->open || s->shut || s->stalled || (i == S_REQ && piece_out))
            continue;
        if (s->off < s->len || (s->fin && !s->fin_sent))
            return s;
    }
    return NULL;
}

static void advance(cstream *s, ngtcp2_ssize ndata)
{
    if (s == NULL || ndata < 0)
        return;
    s->off += (size_t)ndata;
    if (s->fin && s->off == s->len)
        s->fin_sent = true;
}

/* Writes what the client has to send; the number of datagrams. In
 * MODE_PIECES at most one packet of request bytes per call. */
static int client_write(client *c)
{
    if (c->qc == NULL || c->closed)
        return 0;
    uint8_t pkt[1500];
    size_t max = ngtcp2_conn_get_max_tx_udp_payload_size(c->qc);
    if (max > sizeof pkt)
        max = sizeof pkt;
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_tstamp ts = hx_h3_now();
    int sent = 0;
    bool piece_out = false;
    open_streams(c);
    for (int guard = 0; guard < 4096; guard++) {
        cstream *s = next_stream(c, piece_out);
        ngtcp2_vec v = {NULL, 0};
        uint32_t fl = NGTCP2_WRITE_STREAM_FLAG_MORE;
        bool piece = false;
        if (s) {
            size_t left = s->len - s->off;
            if (s == &c->s[S_REQ] && c->piece) {
                if (left > c->piece)
                    left = c->piece;
                fl = NGTCP2_WRITE_STREAM_FLAG_NONE; /* a packet of its own */
                piece = true;
            }
            v.base = (uint8_t *)(uintptr_t)(s->data + s->off);
            v.len = left;
            if (s->fin && s->off + left == s->len)
                fl |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        }
        ngtcp2_ssize ndata = -1;
        ngtcp2_pkt_info pi;
        ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, pkt, max, &ndata, fl, s ? s->id : -1,
                                                   s ? &v : NULL, s ? 1 : 0, ts);
        if (n == NGTCP2_ERR_WRITE_MORE) {
            advance(s, ndata);
            continue;
        }
        if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
            s->stalled = true;
            continue;
        }
        if (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
            s->shut = true;
            continue;
        }
        if (n < 0) {
            client_error(c, (int)n, "the client cannot write");
            break;
        }
        advance(s, ndata);
        if (n == 0)
            break;
        if (capture && !c->captured) {
            /* Appended: [MODE_DGRAM] then length-prefixed datagrams. */
            FILE *f = fopen(capture, "ab");
            uint8_t hd[3] = {MODE_DGRAM, (uint8_t)(n >> 8), (uint8_t)n};
            if (f == NULL)
                die("cannot write HX_FUZZ_H3_CAPTURE");
            fseek(f, 0, SEEK_END);
            fwrite(ftell(f) ? hd + 1 : hd, 1, ftell(f) ? 2 : 3, f);
            fwrite(pkt, 1, (size_t)n, f);
            fclose(f);
            c->captured = true;
        }
        client_send(pkt, (size_t)n);
        sent++;
        if (piece && ndata >= 0)
            piece_out = true;
    }
    for (int i = 0; i < 4; i++)
        c->s[i].stalled = false;
    cstream *r = &c->s[S_REQ];
    if (c->cancel && !c->cancelled && r->open && (r->fin_sent || r->shut) && !c->closed) {
        /* RESET_STREAM and STOP_SENDING: the client gives up on it. */
        c->cancelled = true;
        ngtcp2_conn_shutdown_stream(c->qc, r->id, NGHTTP3_H3_REQUEST_CANCELLED);
        sent += client_write(c);
    }
    return sent;
}

/* Reads what the server sent (c NULL or closed: drops it); the number of
 * datagrams. */
static int client_read(client *c)
{
    static uint8_t buf[65536];
    int got = 0;
    for (int i = 0; i < 256; i++) {
        ssize_t n = recv(cfd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        got++;
        if (c == NULL || c->qc == NULL || c->closed)
            continue;
        ngtcp2_path path = {
            {(ngtcp2_sockaddr *)&cli_addr, sizeof cli_addr}, {(ngtcp2_sockaddr *)&srv_addr, sizeof srv_addr}, NULL};
        ngtcp2_pkt_info pi = {0};
        int rv = ngtcp2_conn_read_pkt(c->qc, &path, &pi, buf, (size_t)n, hx_h3_now());
        if (rv == NGTCP2_ERR_DRAINING) {
            c->closed = true; /* the server closed */
        } else if (rv != 0) {
            client_error(c, rv, "the client cannot read the server's packet");
        }
    }
    return got;
}

static bool client_timers(client *c)
{
    if (c == NULL || c->qc == NULL || c->closed)
        return false;
    ngtcp2_tstamp now = hx_h3_now();
    ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(c->qc);
    if (exp > now)
        return exp - now < 2 * NGTCP2_MILLISECONDS;
    int rv = ngtcp2_conn_handle_expiry(c->qc, now);
    if (rv == NGTCP2_ERR_IDLE_CLOSE)
        c->closed = true;
    else if (rv != 0)
        client_error(c, rv, "the client's timer");
    return true;
}

/* A server connection with a timer due soon (pacing) or output queued. */
static bool server_busy(void)
{
    if (hw->write_head)
        return true;
    ngtcp2_tstamp now = hx_h3_now();
    for (h3_conn *sc = hw->conns; sc; sc = sc->next) {
        if (sc->state >= H3C_CLOSING)
            continue;
        ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(sc->qc);
        if (exp <= now || exp - now < 2 * NGTCP2_MILLISECONDS)
            return true;
    }
    return false;
}

/* One round: the client writes, the server runs a turn, the client reads.
 * True when anything moved or is about to. */
static bool round_trip(client *c)
{
    bool soon = client_timers(c);
    int moved = c ? client_write(c) : 0;
    uv_run(&wk->loop, UV_RUN_NOWAIT);
    if (c && c->shutdown && !c->shut_down && (c->s[S_REQ].off > 0 || c->s[S_REQ].fin_sent)) {
        /* The server has read some of the request: GOAWAY, and each
         * connection closes once its streams are done. */
        c->shut_down = true;
        hx_h3_worker_drain(wk);
        moved++;
    }
    moved += client_read(c);
    return moved > 0 || soon || server_busy();
}

/* A request dispatched and not yet fully answered: the server owes
 * more (its answer waits for credit, ACKs or a timer), never idle. Not
 * under the torture: a handler that ignores a failed hx_res_send (the
 * echo, like real ones) leaves its request open until the connection
 * ends, and the adapter does not promise otherwise. */
static bool answer_owed(void)
{
    if (hx_fuzz_torture)
        return false;
    for (h3_conn *sc = hw->conns; sc; sc = sc->next)
        if (sc->state < H3C_CLOSING)
            for (h3_stream *s = sc->streams; s; s = s->next)
                if (s->req && (s->state == H3S_HANDLING || s->state == H3S_ANSWERING))
                    return true;
    return false;
}

/* Sleeps until the next timer of either end (at most 10 ms) or a
 * datagram. */
static void wait_next(client *c)
{
    ngtcp2_tstamp now = hx_h3_now(), next = now + 10 * NGTCP2_MILLISECONDS;
    for (h3_conn *sc = hw->conns; sc; sc = sc->next) {
        ngtcp2_tstamp e = sc->state < H3C_CLOSING ? ngtcp2_conn_get_expiry(sc->qc) : UINT64_MAX;
        if (e < next)
            next = e;
    }
    if (c && c->qc && !c->closed && ngtcp2_conn_get_expiry(c->qc) < next)
        next = ngtcp2_conn_get_expiry(c->qc);
    struct pollfd pf[2] = {{cfd, POLLIN, 0}, {hw->fd, POLLIN, 0}};
    poll(pf, 2, next > now ? (int)((next - now + NGTCP2_MILLISECONDS - 1) / NGTCP2_MILLISECONDS) : 0);
}

/* Drives both ends until done() or nothing moves for IDLE_ROUNDS rounds
 * (false) while no answer is owed; past `limit` seconds (an answer that
 * never comes, a handshake that never ends) the check fails. */
static bool drive(client *c, bool (*done)(client *), double limit, const char *what)
{
    double start = hx_fuzz_now();
    int idle = 0;
    for (;;) {
        if (done(c))
            return true;
        if (round_trip(c)) {
            idle = 0;
        } else if (answer_owed()) {
            idle = 0;
            wait_next(c);
        } else if (++idle >= IDLE_ROUNDS && !done(c)) {
            return false;
        }
        if (hx_fuzz_now() - start > limit) {
            check(false, what, "timed out");
            hx_fuzz_hung++;
            return false;
        }
    }
}

static bool hs_done(client *c)
{
    return c->hs_done || c->closed;
}

static bool primed(client *c)
{
    return (c->got_ticket && c->got_token) || c->closed;
}

static bool never(client *c)
{
    (void)c;
    return false;
}

/* The answer ended and the server has closed its streams (the client
 * acknowledged everything). */
static bool req_done(client *c)
{
    if (c->closed)
        return true;
    if (!c->req_ended)
        return false;
    for (h3_conn *sc = hw->conns; sc; sc = sc->next)
        if (sc->state < H3C_CLOSING && sc->nstreams > 0)
            return false;
    return true;
}

/* Every server connection closing or draining (or gone). */
static bool server_closed(client *c)
{
    (void)c;
    for (h3_conn *sc = hw->conns; sc; sc = sc->next)
        if (sc->state < H3C_CLOSING)
            return false;
    return true;
}

static bool dump;

/* A QUIC variable-length integer (RFC 9000 16); *used 0 when cut short. */
static uint64_t varint(const uint8_t *p, size_t n, size_t *used)
{
    size_t len = n ? (size_t)1 << (p[0] >> 6) : 1;
    *used = 0;
    if (len > n)
        return 0;
    uint64_t v = p[0] & 0x3f;
    for (size_t i = 1; i < len; i++)
        v = v << 8 | p[i];
    *used = len;
    return v;
}

static bool connection_specific(const nghttp3_vec *nm)
{
    static const char *const bad[] = {"connection",        "keep-alive", "proxy-connection",
                                      "transfer-encoding", "upgrade",    "te"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (nm->len == strlen(bad[i]) && memcmp(nm->base, bad[i], nm->len) == 0)
            return true;
    return false;
}

/* The answer's head (RFC 9114 4.2, 4.3): :status first and alone, then
 * lower-case names, nothing connection-specific. Its content-length, or
 * -1. `strict`: the client allowed no dynamic table, so the head must
 * decode without one (else the server's encoder stream, which this
 * decoder does not read, may be needed). */
static int64_t check_head(const uint8_t *p, size_t n, int *status, bool strict)
{
    nghttp3_qpack_decoder *d = NULL;
    nghttp3_qpack_stream_context *sc = NULL;
    int64_t cl = -1;
    size_t k = 0;
    if (nghttp3_qpack_decoder_new(&d, 0, 0, nghttp3_mem_default()) != 0 ||
        nghttp3_qpack_stream_context_new(&sc, 0, nghttp3_mem_default()) != 0)
        goto out;
    for (;;) {
        nghttp3_qpack_nv nv;
        uint8_t fl = 0;
        nghttp3_ssize r = nghttp3_qpack_decoder_read_request(d, sc, &nv, &fl, p, n, 1);
        if (r < 0) {
            check(!strict, "the answer's head does not decode", nghttp3_strerror((int)r));
            cl = -1;
            goto out;
        }
        p += r;
        n -= (size_t)r;
        if (fl & NGHTTP3_QPACK_DECODE_FLAG_EMIT) {
            nghttp3_vec nm = nghttp3_rcbuf_get_buf(nv.name), v = nghttp3_rcbuf_get_buf(nv.value);
            if (dump)
                fprintf(stderr, "  %.*s: %.*s\n", (int)nm.len, (const char *)nm.base, (int)v.len, (const char *)v.base);
            if (k++ == 0) {
                bool ok = nm.len == 7 && memcmp(nm.base, ":status", 7) == 0 && v.len == 3 && v.base[0] >= '1' &&
                          v.base[0] <= '5' && v.base[1] >= '0' && v.base[1] <= '9' && v.base[2] >= '0' &&
                          v.base[2] <= '9';
                check(ok, "the answer's head does not start with :status", NULL);
                if (ok)
                    *status = (v.base[0] - '0') * 100 + (v.base[1] - '0') * 10 + (v.base[2] - '0');
            } else {
                bool lower = nm.len > 0 && nm.base[0] != ':';
                for (size_t i = 0; i < nm.len; i++)
                    lower &= !(nm.base[i] >= 'A' && nm.base[i] <= 'Z');
                check(lower, "a field name in the answer is not a lower-case name", (const char *)nm.base);
                check(!connection_specific(&nm), "a connection-specific field in the answer", (const char *)nm.base);
                if (nm.len == 14 && memcmp(nm.base, "content-length", 14) == 0)
                    cl = strtoll((const char *)v.base, NULL, 10);
            }
            nghttp3_rcbuf_decref(nv.name);
            nghttp3_rcbuf_decref(nv.value);
        }
        if (fl & NGHTTP3_QPACK_DECODE_FLAG_FINAL)
            break;
        if (fl & NGHTTP3_QPACK_DECODE_FLAG_BLOCKED) {
            check(!strict, "the answer's head needs a dynamic table the client never allowed", NULL);
            goto out;
        }
        if (r == 0 && !(fl & NGHTTP3_QPACK_DECODE_FLAG_EMIT))
            break;
    }
    check(k > 0, "an answer's head without fields", NULL);
out:
    if (sc)
        nghttp3_qpack_stream_context_del(sc);
    if (d)
        nghttp3_qpack_decoder_del(d);
    return cl;
}

/* The answer's frames: HEADERS first, then DATA (and no other frame
 * type); its DATA adds up to its content-length. */
static void check_answer(client *c)
{
    if (c->answer_cut || c->answer_len == 0)
        return;
    const uint8_t *p = c->answer;
    size_t n = c->answer_len, off = 0;
    int64_t cl = -1;
    uint64_t body = 0;
    int status = 0, frames = 0;
    while (off < n) {
        size_t u1, u2;
        uint64_t type = varint(p + off, n - off, &u1);
        uint64_t len = u1 ? varint(p + off + u1, n - off - u1, &u2) : 0;
        if (u1 == 0 || u2 == 0 || len > n - off - u1 - u2) {
            check(!c->answer_fin, "the answer ends inside a frame", NULL);
            break;
        }
        const uint8_t *pl = p + off + u1 + u2;
        if (frames++ == 0) {
            check(type == 0x01, "the answer does not start with HEADERS", NULL);
            if (dump)
                fprintf(stderr, "fuzz h3: answer\n");
            if (type == 0x01)
                cl = check_head(pl, (size_t)len, &status, !c->own_settings);
        } else {
            check(type == 0x00, "a frame other than DATA after the answer's head", NULL);
            body += len;
        }
        off += u1 + u2 + (size_t)len;
    }
    if (dump)
        fprintf(stderr, "  (%llu body bytes%s)\n", (unsigned long long)body, c->answer_fin ? "" : ", no FIN");
    if (c->answer_fin && cl >= 0 && body > 0)
        check((uint64_t)cl == body, "the answer's DATA does not add up to its content-length", NULL);
    if (status == 204 || status == 304)
        check(body == 0, "a body on a 204 or 304", NULL);
}

/* The client closes; the server must take it, then the worker frees
 * what is closing or draining at once (the 3 PTO wait is timer-driven):
 * nothing may be left. */
static void finish(client *c, double limit)
{
    if (c) {
        client_close(c);
        drive(c, server_closed, limit, "the server never took the client's CONNECTION_CLOSE");
    }
    for (int i = 0; i < 2 && hw->conns; i++)
        hx_h3_worker_close_all(wk);
    for (int i = 0; i < 4; i++)
        uv_run(&wk->loop, UV_RUN_NOWAIT);
    client_read(NULL);
    char counts[160];
    snprintf(counts, sizeof counts, "listed %s, h3 %zu, handshaking %zu, worker %zu, server %ld",
             hw->conns ? "yes" : "no", hw->nconns, hw->handshaking, wk->nconns, (long)atomic_load(&net.srv.conns));
    check(hw->conns == NULL && hw->nconns == 0 && hw->handshaking == 0 && wk->nconns == 0 &&
              atomic_load(&net.srv.conns) == 0,
          "a connection outlived its input", counts);
    if (hw->conns || wk->nconns)
        hx_fuzz_hung++;
    /* A handful of IDs live at once: the table stays small however many
     * connections came and went. */
    check(hw->cid_cap <= 1024, "the connection-ID table grows with connections that are gone", NULL);
    if (c)
        client_free(c);
    hx_h3_g.validation = 0;
}

/* A connection that only collects a session ticket, a token and the
 * server's transport parameters for the next ones. */
static void prime(double limit)
{
    client c;
    if (!client_new(&c, 0))
        die("client set-up failed");
    drive(&c, hs_done, limit, "the priming handshake never completed");
    drive(&c, primed, limit, "no session ticket or token from the server");
    finish(&c, limit);
}

static void feed_datagrams(const uint8_t *p, size_t n, int flags, double limit)
{
    static const int validation[4] = {0, 1, 2, 0};
    hx_h3_g.validation = validation[(flags >> 2) & 3];
    hx_fuzz_arm();
    for (int k = 0; k < MAX_DGRAMS && n >= 2; k++) {
        size_t len = (size_t)p[0] << 8 | p[1];
        p += 2;
        n -= 2;
        if (len > n)
            len = n;
        if (len > 0)
            client_send(p, len);
        p += len;
        n -= len;
        uv_run(&wk->loop, UV_RUN_NOWAIT);
        client_read(NULL);
    }
    drive(NULL, never, limit, "the server never settled after the datagrams");
    finish(NULL, limit);
}

int hx_fuzz_h3(const uint8_t *data, size_t size)
{
    static const uint8_t settings[] = {0x04, 0x00}; /* an empty SETTINGS frame */
    static uint8_t ctrl_buf[1 + 255], enc_buf[1 + 255], dec_buf[1 + 255];
    if (wk == NULL) {
        setup();
        dump = getenv("HX_FUZZ_H3_DUMP") != NULL;
        capture = getenv("HX_FUZZ_H3_CAPTURE");
    }
    double limit = hx_fuzz_torture ? 4 : 5;
    int flags = size > 0 ? data[0] : 0;
    int mode = flags & 3;
    const uint8_t *p = size > 0 ? data + 1 : data;
    size_t n = size > 0 ? size - 1 : 0;
    if (mode == MODE_DGRAM && !capture) {
        feed_datagrams(p, n, flags, limit);
        return 0;
    }
    if (((flags & CONN_MASK) == C_TOKEN || (flags & (F_RESUME | F_EARLY))) &&
        (saved.at == 0 || hx_fuzz_now() - saved.at > 2))
        prime(limit);
    client c;
    if (!client_new(&c, flags))
        die("client set-up failed");
    /* The client's streams. */
    size_t lens[3] = {0, 0, 0};
    if (mode == MODE_STREAMS)
        for (int i = 0; i < 3; i++)
            if (n > 0)
                lens[i] = *p++, n--;
    uint8_t *bufs[3] = {ctrl_buf, enc_buf, dec_buf};
    static const uint8_t types[3] = {0x00, 0x02, 0x03};
    for (int i = 0; i < 3; i++) {
        if (lens[i] > n)
            lens[i] = n;
        bufs[i][0] = types[i];
        if (mode == MODE_STREAMS && (lens[i] > 0 || i > 0)) {
            memcpy(bufs[i] + 1, p, lens[i]);
            p += lens[i];
            n -= lens[i];
            c.s[i].data = bufs[i];
            c.s[i].len = 1 + lens[i];
            c.own_settings |= i == S_CTRL;
        } else if (i == S_CTRL) {
            memcpy(ctrl_buf + 1, settings, sizeof settings);
            c.s[i].data = ctrl_buf;
            c.s[i].len = 1 + sizeof settings;
        }
    }
    if (mode == MODE_PIECES && n > 0) {
        c.piece = 1 + *p++ % 32;
        n--;
        if (c.piece < n / 64)
            c.piece = n / 64; /* at most 64 pieces */
    }
    c.s[S_REQ].data = p;
    c.s[S_REQ].len = n;
    c.s[S_REQ].fin = (flags & CONN_MASK) != C_OPEN;
    c.req_first = (flags & TWIST_MASK) == T_REQ_FIRST;
    c.cancel = (flags & TWIST_MASK) == T_CANCEL;
    c.shutdown = (flags & TWIST_MASK) == T_SHUTDOWN;
    c.streams_wanted = c.early;
    if (!drive(&c, hs_done, limit, "the handshake never completed") || c.closed) {
        /* Streams sent in 0-RTT (even refused, once the worker shut
         * down on them) may end the connection first. */
        check(c.tried_early, "the handshake failed", NULL);
        finish(&c, limit);
        return 0;
    }
    hx_fuzz_arm(); /* from here on allocations may fail */
    c.streams_wanted = true;
    bool done = drive(&c, req_done, limit, "the request stream never settled");
    if (!done && (flags & CONN_MASK) == C_OPEN) {
        /* The request is left open: past server.read_timeout (1 ms) the
         * sweep answers 408. */
        struct timespec ts = {0, 1200000};
        nanosleep(&ts, NULL);
        hx_h3_sweep(hw);
        drive(&c, req_done, limit, "the request stream never settled after the sweep");
    }
    check_answer(&c);
    finish(&c, limit);
    return 0;
}
