/* HTTP/3 adapter, connection side: one QUIC connection (ngtcp2) with its
 * TLS 1.3 session (GnuTLS, through libngtcp2-crypto-gnutls): transport
 * parameters from server.http3, packets in and out (GSO batches), the
 * timer, 0-RTT (the single-use register, max_0rtt_size, the metric and
 * the SIEM events), and the three ways a connection ends: closed by us
 * (CONNECTION_CLOSE, repeated to late packets for 3 PTO), closed by the
 * peer (draining, 3 PTO), silently (idle timeout). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "http/h3_int.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "util/alloc.h"

/* The connection whose packet is being read: the register callback
 * (h3_server.c) names its peer in the SIEM event. */
_Thread_local h3_conn *hx_h3_reading;

void hx_h3_count_early(const char *outcome, h3_conn *c)
{
    hx_metrics_inc(HX_M_HTTP3_EARLY_DATA, hx_metrics_series(HX_M_HTTP3_EARLY_DATA, outcome), 1);
    if (strcmp(outcome, "accepted") == 0)
        HX_LOG_INFO("HTTP/3 0-RTT early data accepted", HX_F_STR("event", "security"),
                    HX_F_STR("kind", "early_data_accepted"), HX_F_STR("peer", c ? c->peer_ip : ""));
    else
        HX_LOG_WARN("HTTP/3 0-RTT early data refused", HX_F_STR("event", "security"),
                    HX_F_STR("kind", strcmp(outcome, "replay") == 0 ? "early_data_replay" : "early_data_rejected"),
                    HX_F_STR("reason", outcome), HX_F_STR("peer", c ? c->peer_ip : ""));
}

/* ---- ngtcp2 callbacks ---------------------------------------------------------- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((h3_conn *)ref->user_data)->qc;
}

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    (void)ctx;
    gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
}

static int get_new_cid(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
    (void)qc, (void)cidlen;
    h3_conn *c = ud;
    for (int tries = 0; tries < 4; tries++) {
        hx_h3_make_cid(c->hw, cid);
        if (ngtcp2_crypto_generate_stateless_reset_token(token, hx_h3_g.secret, sizeof hx_h3_g.secret, cid) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        if (hx_h3_cid_add(c->hw, cid, c) == 0)
            return 0;
    }
    return NGTCP2_ERR_CALLBACK_FAILURE;
}

static int remove_cid(ngtcp2_conn *qc, const ngtcp2_cid *cid, void *ud)
{
    (void)qc;
    h3_conn *c = ud;
    hx_h3_cid_del(c->hw, cid);
    return 0;
}

/* Did the ClientHello offer early data (extension 42)? */
static int ext_early(void *ctx, unsigned tls_id, const unsigned char *data, unsigned size)
{
    (void)data, (void)size;
    if (tls_id == 42)
        *(bool *)ctx = true;
    return 0;
}

static int on_client_hello(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                           const gnutls_datum_t *msg)
{
    (void)htype, (void)when, (void)incoming;
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
    h3_conn *c = ref->user_data;
    gnutls_ext_raw_parse(&c->early_offered, ext_early, msg, GNUTLS_EXT_RAW_FLAG_TLS_CLIENT_HELLO);
    return 0;
}

static void early_outcome(h3_conn *c)
{
    bool accepted = (gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
    if (accepted)
        hx_h3_count_early("accepted", c);
    else if (c->early_offered && !c->replay_seen)
        hx_h3_count_early(c->hw->w->cfg->server.http3.enable_0rtt ? "rejected" : "disabled", c);
}

static int handshake_completed(ngtcp2_conn *qc, void *ud)
{
    h3_conn *c = ud;
    c->state = H3C_OPEN;
    c->hw->handshaking--;
    c->confirm_due = true;
    early_outcome(c);
    if (gnutls_session_ticket_send(c->tls, 1, 0) != 0)
        HX_LOG_DEBUG("HTTP/3: no session ticket sent", HX_F_STR("peer", c->peer_ip));
    /* A token for the client's next connection: it proves its address
     * without a Retry round trip. */
    uint8_t token[NGTCP2_CRYPTO_MAX_REGULAR_TOKENLEN];
    const ngtcp2_path *p = ngtcp2_conn_get_path(qc);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ngtcp2_ssize n = ngtcp2_crypto_generate_regular_token(token, hx_h3_g.secret, sizeof hx_h3_g.secret,
                                                          p->remote.addr, p->remote.addrlen,
                                                          (uint64_t)ts.tv_sec * NGTCP2_SECONDS + (uint64_t)ts.tv_nsec);
    if (n > 0)
        ngtcp2_conn_submit_new_token(qc, token, (size_t)n);
    return 0;
}

static int recv_stream_data(ngtcp2_conn *qc, uint32_t flags, int64_t id, uint64_t offset, const uint8_t *data,
                            size_t len, void *ud, void *sud)
{
    (void)offset, (void)sud;
    h3_conn *c = ud;
    if (c->h3 == NULL)
        return 0;
    c->in_early = (flags & NGTCP2_STREAM_DATA_FLAG_EARLY) != 0;
    if (c->in_early)
        c->early_bytes += len;
    nghttp3_ssize n = nghttp3_conn_read_stream(c->h3, id, data, len, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
    c->in_early = false;
    if (n < 0) {
        ngtcp2_connection_close_error_set_application_error(&c->last_error,
                                                            nghttp3_err_infer_quic_app_error_code((int)n), NULL, 0);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    ngtcp2_conn_extend_max_stream_offset(qc, id, (uint64_t)n);
    ngtcp2_conn_extend_max_offset(qc, (uint64_t)n);
    return 0;
}

static int acked_offset(ngtcp2_conn *qc, int64_t id, uint64_t offset, uint64_t len, void *ud, void *sud)
{
    (void)qc, (void)offset, (void)sud;
    h3_conn *c = ud;
    if (c->h3 && nghttp3_conn_add_ack_offset(c->h3, id, len) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int stream_close(ngtcp2_conn *qc, uint32_t flags, int64_t id, uint64_t code, void *ud, void *sud)
{
    (void)sud;
    h3_conn *c = ud;
    if (c->h3 == NULL)
        return 0;
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET))
        code = NGHTTP3_H3_NO_ERROR;
    int rv = nghttp3_conn_close_stream(c->h3, id, code);
    if (rv == NGHTTP3_ERR_STREAM_NOT_FOUND) {
        if (ngtcp2_is_bidi_stream(id))
            ngtcp2_conn_extend_max_streams_bidi(qc, 1);
    } else if (rv != 0) {
        ngtcp2_connection_close_error_set_application_error(&c->last_error,
                                                            nghttp3_err_infer_quic_app_error_code(rv), NULL, 0);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int stream_reset(ngtcp2_conn *qc, int64_t id, uint64_t final_size, uint64_t code, void *ud, void *sud)
{
    (void)qc, (void)final_size, (void)code, (void)sud;
    h3_conn *c = ud;
    if (c->h3 && nghttp3_conn_shutdown_stream_read(c->h3, id) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int stream_stop_sending(ngtcp2_conn *qc, int64_t id, uint64_t code, void *ud, void *sud)
{
    return stream_reset(qc, id, 0, code, ud, sud);
}

static int extend_remote_bidi(ngtcp2_conn *qc, uint64_t max, void *ud)
{
    (void)qc;
    h3_conn *c = ud;
    if (c->h3)
        nghttp3_conn_set_max_client_streams_bidi(c->h3, max);
    return 0;
}

static int extend_stream_data(ngtcp2_conn *qc, int64_t id, uint64_t max, void *ud, void *sud)
{
    (void)qc, (void)max, (void)sud;
    h3_conn *c = ud;
    if (c->h3 && nghttp3_conn_unblock_stream(c->h3, id) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int recv_tx_key(ngtcp2_conn *qc, ngtcp2_crypto_level level, void *ud)
{
    (void)qc;
    if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION)
        return 0;
    return hx_h3_http_open(ud) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

static const ngtcp2_callbacks callbacks = {
    .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = handshake_completed,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = recv_stream_data,
    .acked_stream_data_offset = acked_offset,
    .stream_close = stream_close,
    .rand = rand_cb,
    .get_new_connection_id = get_new_cid,
    .remove_connection_id = remove_cid,
    .update_key = ngtcp2_crypto_update_key_cb,
    .stream_reset = stream_reset,
    .extend_max_remote_streams_bidi = extend_remote_bidi,
    .extend_max_stream_data = extend_stream_data,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .stream_stop_sending = stream_stop_sending,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
    .recv_tx_key = recv_tx_key,
};

/* ---- creation ------------------------------------------------------------------- */

static int tls_open(h3_conn *c)
{
    const hx_cfg_http3 *h = &c->hw->w->cfg->server.http3;
    unsigned flags = GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET | GNUTLS_NO_END_OF_EARLY_DATA;
    if (h->enable_0rtt)
        flags |= GNUTLS_ENABLE_EARLY_DATA;
    if (gnutls_init(&c->tls, flags) != 0) {
        c->tls = NULL;
        return -1;
    }
    c->tctx = hx_h3_tls_current();
    if (hx_tls_ctx_session_setup(c->tctx, c->tls) != 0 || ngtcp2_crypto_gnutls_configure_server_session(c->tls) != 0)
        return -1;
    /* QUIC without ALPN h3 is nothing we serve (RFC 9114 3.1). */
    gnutls_datum_t alpn = {(unsigned char *)"h3", 2};
    if (gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE) != 0)
        return -1;
    if (h->enable_0rtt) {
        /* RFC 9001 4.6.1: in QUIC the TLS limit is 0xffffffff; the real
         * bound is max_0rtt_size, counted on stream data (h3_stream.c). */
        gnutls_record_set_max_early_data_size(c->tls, 0xffffffffu);
        if (hx_h3_g.replay)
            hx_antireplay_enable(hx_h3_g.replay, c->tls);
    }
    gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_POST, on_client_hello);
    c->ref.get_conn = get_conn;
    c->ref.user_data = c;
    gnutls_session_set_ptr(c->tls, &c->ref);
    ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
    return 0;
}

static void params_from_config(ngtcp2_transport_params *p, const hx_cfg_http3 *h)
{
    ngtcp2_transport_params_default(p);
    p->initial_max_stream_data_bidi_remote = (uint64_t)h->max_stream_receive_window;
    p->initial_max_stream_data_bidi_local = (uint64_t)h->max_stream_receive_window;
    p->initial_max_stream_data_uni = (uint64_t)h->max_stream_receive_window;
    p->initial_max_data = (uint64_t)h->max_connection_receive_window;
    p->initial_max_streams_bidi = (uint64_t)h->max_bi_streams_concurrent;
    p->initial_max_streams_uni = (uint64_t)h->max_uni_streams_concurrent;
    p->max_idle_timeout = (uint64_t)h->idle_timeout * NGTCP2_MILLISECONDS;
    p->active_connection_id_limit = HX_H3_ACTIVE_CIDS;
    p->stateless_reset_token_present = 1;
}

static void set_peer(h3_conn *c, const ngtcp2_path *path)
{
    memcpy(&c->remote, path->remote.addr, path->remote.addrlen);
    c->remotelen = path->remote.addrlen;
    memcpy(&c->local, path->local.addr, path->local.addrlen);
    c->locallen = path->local.addrlen;
    const struct sockaddr *sa = (const struct sockaddr *)&c->remote;
    if (sa->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)(const void *)sa, c->peer_ip, sizeof c->peer_ip);
        c->peer_port = ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    } else {
        uv_ip6_name((const struct sockaddr_in6 *)(const void *)sa, c->peer_ip, sizeof c->peer_ip);
        c->peer_port = ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    }
}

static void on_timer(uv_timer_t *t);

/* HX_H3_DEBUG=1: ngtcp2's packet log on stderr (debugging only). */
static void dbg_log(void *ud, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dbg_log(void *ud, const char *fmt, ...)
{
    (void)ud;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

h3_conn *hx_h3_conn_new(h3_worker *hw, const ngtcp2_path *path, const ngtcp2_pkt_hd *hd, const ngtcp2_cid *ocid,
                        const uint8_t *token, size_t tokenlen)
{
    const hx_cfg_http3 *h = &hw->w->cfg->server.http3;
    h3_conn *c = hx_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->hw = hw;
    c->state = H3C_HANDSHAKE;
    set_peer(c, path);
    ngtcp2_cid scid;
    hx_h3_make_cid(hw, &scid);
    ngtcp2_settings s;
    ngtcp2_settings_default(&s);
    s.initial_ts = hx_h3_now();
    if (hx_h3_g.debug)
        s.log_printf = dbg_log;
    s.token = (ngtcp2_vec){(uint8_t *)(uintptr_t)token, tokenlen};
    s.max_window = (uint64_t)h->max_connection_receive_window;
    s.max_stream_window = (uint64_t)h->max_stream_receive_window;
    s.max_tx_udp_payload_size = HX_H3_MAX_UDP;
    s.handshake_timeout = (uint64_t)hw->w->cfg->server.tls.handshake_timeout * NGTCP2_MILLISECONDS;
    ngtcp2_transport_params p;
    params_from_config(&p, h);
    if (ocid) {
        p.original_dcid = *ocid;
        p.retry_scid = hd->dcid;
        p.retry_scid_present = 1;
    } else {
        p.original_dcid = hd->dcid;
    }
    if (ngtcp2_crypto_generate_stateless_reset_token(p.stateless_reset_token, hx_h3_g.secret,
                                                     sizeof hx_h3_g.secret, &scid) != 0)
        goto fail;
    if (ngtcp2_conn_server_new(&c->qc, &hd->scid, &scid, path, hd->version, &callbacks, &s, &p, NULL, c) != 0) {
        c->qc = NULL;
        goto fail;
    }
    if (tls_open(c) != 0)
        goto fail;
    /* The client's first DCID keeps reaching us until it learns ours. */
    if (hx_h3_cid_add(hw, &hd->dcid, c) != 0 || hx_h3_cid_add(hw, &scid, c) != 0)
        goto fail;
    uv_timer_init(&hw->w->loop, &c->timer);
    c->timer.data = c;
    c->next = hw->conns;
    if (hw->conns)
        hw->conns->prev = c;
    hw->conns = c;
    hw->nconns++;
    hw->handshaking++;
    hw->w->nconns++;
    atomic_fetch_add(&hw->w->srv->conns, 1);
    c->counted = true;
    ngtcp2_connection_close_error_default(&c->last_error);
    return c;
fail:
    for (int i = c->ncids - 1; i >= 0; i--)
        hx_h3_cid_del(hw, &c->cids[i]);
    if (c->tls)
        gnutls_deinit(c->tls);
    hx_tls_ctx_unref(c->tctx);
    if (c->qc)
        ngtcp2_conn_del(c->qc);
    hx_free(c);
    return NULL;
}

/* ---- the end --------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    h3_conn *c = h->data;
    hx_h3_stream_free_all(c);
    if (c->h3)
        nghttp3_conn_del(c->h3);
    if (c->qc)
        ngtcp2_conn_del(c->qc);
    if (c->tls)
        gnutls_deinit(c->tls);
    hx_tls_ctx_unref(c->tctx);
    hx_free(c->closebuf);
    hx_free(c);
}

/* Unlinks c and frees it once its timer handle closed. Streams' requests
 * are aborted now (their transport is gone). */
static void conn_free(h3_conn *c)
{
    if (c->state == H3C_CLOSED)
        return;
    h3_worker *hw = c->hw;
    if (c->state == H3C_HANDSHAKE)
        hw->handshaking--;
    c->state = H3C_CLOSED;
    hx_h3_verdict_detach(c);
    hx_h3_stream_free_all(c);
    while (c->ncids > 0)
        hx_h3_cid_del(hw, &c->cids[c->ncids - 1]);
    if (c->prev)
        c->prev->next = c->next;
    else
        hw->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* Off the write list too: write_all skips closed connections. */
    hw->nconns--;
    hw->w->nconns--;
    if (c->counted)
        atomic_fetch_sub(&hw->w->srv->conns, 1);
    c->counted = false;
    uv_timer_stop(&c->timer);
    if (c->write_due) {
        /* write_all still holds it: let it see H3C_CLOSED and free then. */
        c->free_due = true;
    } else {
        uv_close((uv_handle_t *)&c->timer, on_closed);
    }
    hx_worker_maybe_stop(hw->w);
}

static void start_close_wait(h3_conn *c, enum h3_conn_state st)
{
    if (c->state == H3C_HANDSHAKE)
        c->hw->handshaking--; /* conn_free counts only H3C_HANDSHAKE */
    c->state = st;
    uint64_t ms = 3 * ngtcp2_conn_get_pto(c->qc) / NGTCP2_MILLISECONDS + 1;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Sends CONNECTION_CLOSE with last_error and waits 3 PTO (answering late
 * packets with it again); without keys to write it, frees at once. */
static void close_now(h3_conn *c)
{
    if (c->state >= H3C_CLOSING)
        return;
    if (c->last_error.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT_IDLE_CLOSE) {
        conn_free(c);
        return;
    }
    uint8_t buf[HX_H3_MAX_UDP];
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, buf, sizeof buf, &c->last_error,
                                                        hx_h3_now());
    if (n <= 0 || (c->closebuf = hx_malloc((size_t)n)) == NULL) {
        conn_free(c);
        return;
    }
    memcpy(c->closebuf, buf, (size_t)n);
    c->closelen = (size_t)n;
    hx_h3_send(c->hw, &ps.path, buf, (size_t)n, (size_t)n);
    hx_h3_stream_free_all(c);
    start_close_wait(c, H3C_CLOSING);
}

void hx_h3_conn_close(h3_conn *c, const char *why)
{
    HX_LOG_DEBUG("HTTP/3 connection closed", HX_F_STR("reason", why), HX_F_STR("peer", c->peer_ip));
    if (c->state == H3C_CLOSING || c->state == H3C_DRAINING) {
        conn_free(c);
        return;
    }
    if (c->last_error.error_code == 0 && c->h3)
        ngtcp2_connection_close_error_set_application_error(&c->last_error, NGHTTP3_H3_NO_ERROR, NULL, 0);
    close_now(c);
}

void hx_h3_conn_drain(h3_conn *c)
{
    if (c->state >= H3C_CLOSING || c->draining_goaway)
        return;
    c->draining_goaway = true;
    if (c->h3 == NULL || c->nstreams == 0) {
        hx_h3_conn_close(c, "shutdown");
        return;
    }
    nghttp3_conn_submit_shutdown_notice(c->h3);
    hx_h3_write_soon(c);
}

/* ---- packets ---------------------------------------------------------------------- */

static void update_timer(h3_conn *c)
{
    if (c->state >= H3C_CLOSING)
        return;
    ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(c->qc), now = hx_h3_now();
    uint64_t ms = exp <= now ? 0 : (exp - now + NGTCP2_MILLISECONDS - 1) / NGTCP2_MILLISECONDS;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    h3_conn *c = t->data;
    if (c->state == H3C_CLOSING || c->state == H3C_DRAINING) {
        conn_free(c);
        return;
    }
    int rv = ngtcp2_conn_handle_expiry(c->qc, hx_h3_now());
    if (rv != 0) {
        ngtcp2_connection_close_error_set_transport_error_liberr(&c->last_error, rv, NULL, 0);
        if (rv == NGTCP2_ERR_IDLE_CLOSE)
            conn_free(c);
        else
            close_now(c);
        return;
    }
    hx_h3_conn_write(c);
}

/* ngtcp2 moved the connection to the path a client's packets now come
 * from (migration or NAT rebinding; it validates the path itself). */
static void note_path(h3_conn *c)
{
    const ngtcp2_path *p = ngtcp2_conn_get_path(c->qc);
    if (p->remote.addrlen == c->remotelen && memcmp(p->remote.addr, &c->remote, c->remotelen) == 0)
        return;
    if (p->remote.addrlen > sizeof c->remote || p->local.addrlen > sizeof c->local)
        return;
    ngtcp2_path copy = *p;
    set_peer(c, &copy);
    hx_metrics_inc(HX_M_HTTP3_EVENTS, hx_metrics_series(HX_M_HTTP3_EVENTS, "migration"), 1);
}

int hx_h3_conn_read(h3_conn *c, const ngtcp2_path *path, const ngtcp2_pkt_info *pi, const uint8_t *pkt, size_t len)
{
    if (c->state == H3C_DRAINING)
        return 0;
    if (c->state == H3C_CLOSING) {
        hx_h3_send(c->hw, path, c->closebuf, c->closelen, c->closelen);
        return 0;
    }
    hx_h3_reading = c;
    int rv = ngtcp2_conn_read_pkt(c->qc, path, pi, pkt, len, hx_h3_now());
    hx_h3_reading = NULL;
    if (rv != 0) {
        switch (rv) {
        case NGTCP2_ERR_DRAINING:
            hx_h3_stream_free_all(c);
            start_close_wait(c, H3C_DRAINING);
            return -1;
        case NGTCP2_ERR_DROP_CONN:
            conn_free(c);
            return -1;
        case NGTCP2_ERR_CRYPTO:
            if (c->last_error.error_code == 0)
                ngtcp2_connection_close_error_set_transport_error_tls_alert(
                    &c->last_error, ngtcp2_conn_get_tls_alert(c->qc), NULL, 0);
            break;
        default:
            if (c->last_error.error_code == 0)
                ngtcp2_connection_close_error_set_transport_error_liberr(&c->last_error, rv, NULL, 0);
        }
        close_now(c);
        return -1;
    }
    note_path(c);
    if (c->confirm_due) {
        c->confirm_due = false;
        hx_h3_streams_confirmed(c);
    }
    hx_h3_streams_dispatch(c);
    if (c->state >= H3C_CLOSING)
        return -1;
    update_timer(c);
    return 0;
}

/* Answers the packets of one batch: `off` bytes of `seg`-byte packets. */
/* Sends one batch: 0, or 1 when the socket is full (writing resumes when
 * it is writable). A batch that cannot leave (full socket, EMSGSIZE past
 * a path's MTU, an unreachable address) is a loss QUIC's recovery
 * repairs, never the end of the connection. */
static int flush(h3_conn *c, const ngtcp2_path *path, size_t off, size_t seg)
{
    if (off == 0)
        return 0;
    return hx_h3_send(c->hw, path, c->hw->tx, off, seg) == 1 ? 1 : 0;
}

/* Writes packets (streams' data from nghttp3, ACKs, control frames) in
 * GSO batches until ngtcp2 has nothing more; 0 when done, 1 when more
 * waits for the next loop turn, -1 on a fatal error (last_error set). */
static int write_loop(h3_conn *c, ngtcp2_tstamp ts)
{
    h3_worker *hw = c->hw;
    size_t mtu = ngtcp2_conn_get_max_tx_udp_payload_size(c->qc);
    size_t quantum = ngtcp2_conn_get_send_quantum(c->qc) / mtu;
    size_t max_pkts = quantum < 1 ? 1 : quantum > HX_H3_GSO_MAX ? HX_H3_GSO_MAX : quantum;
    size_t off = 0, seg = 0, pkts = 0, batches = 0;
    ngtcp2_path_storage ps, batch;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_path_storage_zero(&batch);
    for (;;) {
        int64_t sid = -1;
        int fin = 0;
        nghttp3_vec vec[16];
        nghttp3_ssize nv = 0;
        if (c->h3 && ngtcp2_conn_get_max_data_left(c->qc)) {
            nv = nghttp3_conn_writev_stream(c->h3, &sid, &fin, vec, 16);
            if (nv < 0) {
                ngtcp2_connection_close_error_set_application_error(
                    &c->last_error, nghttp3_err_infer_quic_app_error_code((int)nv), NULL, 0);
                return -1;
            }
        }
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
        ngtcp2_ssize ndata = -1;
        ngtcp2_pkt_info pi;
        ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, hw->tx + off, mtu, &ndata, flags, sid,
                                                   (const ngtcp2_vec *)vec, (size_t)nv, ts);
        if (n < 0) {
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                nghttp3_conn_block_stream(c->h3, sid);
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
                nghttp3_conn_shutdown_stream_write(c->h3, sid);
                continue;
            }
            if (n == NGTCP2_ERR_WRITE_MORE) {
                if (nghttp3_conn_add_write_offset(c->h3, sid, (size_t)ndata) != 0)
                    return -1;
                continue;
            }
            ngtcp2_connection_close_error_set_transport_error_liberr(&c->last_error, (int)n, NULL, 0);
            return -1;
        }
        if (ndata >= 0 && nghttp3_conn_add_write_offset(c->h3, sid, (size_t)ndata) != 0)
            return -1;
        if (n == 0) {
            flush(c, &batch.path, off, seg);
            return 0;
        }
        if (pkts > 0 && (!ngtcp2_path_eq(&batch.path, &ps.path) || (size_t)n > seg)) {
            /* This packet cannot join the batch: send the batch, start anew. */
            if (flush(c, &batch.path, off, seg) != 0)
                return 0; /* full: the writable event brings the rest */
            memmove(hw->tx, hw->tx + off, (size_t)n);
            off = pkts = 0;
        }
        if (pkts == 0) {
            ngtcp2_path_copy(&batch.path, &ps.path);
            seg = (size_t)n;
        }
        off += (size_t)n;
        pkts++;
        if (pkts == max_pkts || (size_t)n < seg) {
            if (flush(c, &batch.path, off, seg) != 0)
                return 0; /* full: the writable event brings the rest */
            off = pkts = 0;
            /* A long flight goes out over several loop turns, so one
             * connection does not hold the worker. */
            if (++batches == HX_H3_BATCHES_PER_TURN)
                return 1;
        }
    }
}

int hx_h3_conn_write(h3_conn *c)
{
    if (c->state == H3C_CLOSED) {
        if (c->free_due)
            uv_close((uv_handle_t *)&c->timer, on_closed);
        return -1;
    }
    if (c->state >= H3C_CLOSING)
        return 0;
    ngtcp2_tstamp ts = hx_h3_now();
    int rc = write_loop(c, ts);
    if (rc < 0) {
        close_now(c);
        return -1;
    }
    if (rc == 1)
        hx_h3_write_soon(c); /* the rest on the next turn */
    /* Pacing (ngtcp2 0.12) spaces packets by cwnd / smoothed RTT. Before
     * the handshake completes there is no RTT sample yet and the 333 ms
     * default would hold the first answer back for ~25 ms after the
     * handshake: the handshake flights (small, amplification-limited)
     * are not paced; what they sent counts in the first paced interval. */
    if (ngtcp2_conn_get_handshake_completed(c->qc))
        ngtcp2_conn_update_pkt_tx_time(c->qc, ts);
    if (c->draining_goaway && c->nstreams == 0) {
        hx_h3_conn_close(c, "shutdown");
        return -1;
    }
    update_timer(c);
    return 0;
}
