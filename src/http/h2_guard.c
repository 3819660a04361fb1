/* HTTP/2 defences: frame-rate token buckets per connection (RST_STREAM
 * received and provoked, SETTINGS, PING, PRIORITY, WINDOW_UPDATE, empty
 * DATA), nghttp2's own limits (CONTINUATION frames per head, queued
 * acknowledgements) set from the config, idle and slow-read clocks. An
 * abusive connection gets GOAWAY(ENHANCE_YOUR_CALM), one `security` log
 * event (the SIEM line) and a count in hapax_http2_goaway_total, then is
 * closed once the GOAWAY is written. docs/http2.md lists them. */
#include <string.h>

#include "http/h2_int.h"
#include "obs/log.h"
#include "obs/metrics.h"

void hx_h2_count_goaway(const char *reason)
{
    hx_metrics_inc(HX_M_HTTP2_GOAWAY, hx_metrics_series(HX_M_HTTP2_GOAWAY, reason), 1);
}

nghttp2_option *hx_h2_guard_options(const hx_config *cfg)
{
    const hx_cfg_http2 *h = &cfg->server.http2;
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0)
        return NULL;
    nghttp2_option_set_max_continuations(opt, (size_t)h->max_continuations);
    /* The library's reset limiter answers INTERNAL_ERROR; ours (half its
     * rate) answers ENHANCE_YOUR_CALM first and logs the event. */
    uint64_t r = (uint64_t)h->max_resets_per_second * 2;
    nghttp2_option_set_stream_reset_rate_limit(opt, r, r);
    nghttp2_option_set_no_http_messaging(opt, 0);
    return opt;
}

static bool take(h2_bucket *b, int64_t rate, uint64_t now_ms)
{
    if (!b->started) {
        b->started = true;
        b->tokens = (double)rate;
        b->last_ms = now_ms;
    }
    /* Refill up to the burst; credit above it (hx_h2_guard_data_sent)
     * is kept until spent. */
    if (b->tokens < (double)rate) {
        b->tokens += (double)(now_ms - b->last_ms) * (double)rate / 1000.0;
        if (b->tokens > (double)rate)
            b->tokens = (double)rate;
    }
    b->last_ms = now_ms;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

void hx_h2_guard_init(h2_conn *c)
{
    memset(&c->resets, 0, sizeof c->resets);
    c->settings = c->pings = c->priority = c->wupdates = c->empty_data = c->resets;
}

/* GOAWAY without nghttp2 (after a fatal error the session takes no more
 * calls): 9-byte frame header, last stream id, error code. */
static void raw_goaway(h2_conn *c, int32_t last)
{
    uint8_t f[17] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0};
    uint32_t id = (uint32_t)last & 0x7fffffffu, code = NGHTTP2_ENHANCE_YOUR_CALM;
    for (int i = 0; i < 4; i++) {
        f[9 + i] = (uint8_t)(id >> (24 - 8 * i));
        f[13 + i] = (uint8_t)(code >> (24 - 8 * i));
    }
    hx_h2_io_write(c, f, sizeof f);
}

/* The one SIEM event of an abusive connection. */
static bool mark_abusive(h2_conn *c, const char *reason)
{
    if (c->abusive || c->state == H2C_CLOSED)
        return false;
    c->abusive = true;
    HX_LOG_WARN("abusive HTTP/2 connection: GOAWAY(ENHANCE_YOUR_CALM) and close", HX_F_STR("event", "security"),
                HX_F_STR("kind", "http2_abuse"), HX_F_STR("reason", reason), HX_F_STR("client_ip", c->peer_ip),
                HX_F_INT("client_port", c->peer_port), HX_F_INT("open_streams", (int64_t)c->nstreams));
    hx_h2_count_goaway(reason);
    return true;
}

void hx_h2_goaway_sent(h2_conn *c, uint32_t code)
{
    /* nghttp2's own limits (SETTINGS entries, its reset limiter, ...)
     * send ENHANCE_YOUR_CALM without asking us: log it all the same. */
    if (code != NGHTTP2_ENHANCE_YOUR_CALM || !mark_abusive(c, "nghttp2_limit"))
        return;
    if (c->state != H2C_CLOSING)
        hx_h2_set_conn_state(c, H2C_CLOSING, "nghttp2 limit");
}

static void send_goaway(h2_conn *c)
{
    int32_t last = c->sess ? nghttp2_session_get_last_proc_stream_id(c->sess) : 0;
    if (c->sess_dead || nghttp2_session_terminate_session2(c->sess, last, NGHTTP2_ENHANCE_YOUR_CALM) != 0) {
        c->sess_dead = true;
        raw_goaway(c, last);
    }
    hx_h2_io_flush_soon(c);
}

void hx_h2_abuse(h2_conn *c, const char *reason)
{
    if (!mark_abusive(c, reason))
        return;
    if (c->state != H2C_CLOSING)
        hx_h2_set_conn_state(c, H2C_CLOSING, reason);
    /* Inside mem_recv, nghttp2 resets its inbound state after each frame
     * callback and so undoes a terminate made there (the next bad frame
     * then trips an assertion in nghttp2_session_mem_recv): the callback
     * fails instead and the GOAWAY follows once mem_recv returned. */
    if (c->in_recv)
        c->goaway_due = true;
    else
        send_goaway(c);
}

void hx_h2_abuse_finish(h2_conn *c)
{
    if (!c->goaway_due)
        return;
    c->goaway_due = false;
    send_goaway(c);
}

bool hx_h2_guard_frame(h2_conn *c, const nghttp2_frame *f)
{
    if (c->abusive)
        return false;
    const hx_cfg_http2 *h = &c->w->cfg->server.http2;
    uint64_t now = uv_now(&c->w->loop);
    const char *why = NULL;
    switch (f->hd.type) {
    case NGHTTP2_RST_STREAM:
        why = take(&c->resets, h->max_resets_per_second, now) ? NULL : "rapid_reset";
        break;
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            why = take(&c->settings, h->max_settings_per_second, now) ? NULL : "settings_flood";
        break;
    case NGHTTP2_PING:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            why = take(&c->pings, h->max_pings_per_second, now) ? NULL : "ping_flood";
        break;
    case NGHTTP2_PRIORITY:
        why = take(&c->priority, h->max_priority_per_second, now) ? NULL : "priority_flood";
        break;
    case NGHTTP2_WINDOW_UPDATE:
        why = take(&c->wupdates, h->max_window_updates_per_second, now) ? NULL : "window_update_flood";
        break;
    case NGHTTP2_DATA:
        if (f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            why = take(&c->empty_data, h->max_empty_data_per_second, now) ? NULL : "empty_data_flood";
        break;
    default:
        break;
    }
    if (why == NULL)
        return true;
    hx_h2_abuse(c, why);
    return false;
}

bool hx_h2_guard_reset_sent(h2_conn *c)
{
    if (c->abusive)
        return false;
    /* Resets the client provokes (malformed heads, refused streams)
     * share the bucket of the resets it sends: the "MadeYouReset" shape. */
    if (take(&c->resets, c->w->cfg->server.http2.max_resets_per_second, uv_now(&c->w->loop)))
        return true;
    hx_h2_abuse(c, "provoked_reset");
    return false;
}

void hx_h2_guard_data_sent(h2_conn *c)
{
    /* A client answers our DATA with WINDOW_UPDATEs (one for the stream,
     * one for the connection at most per frame): credit them, so a big
     * download at loopback speed is never taken for a flood. The bucket
     * stays capped at twice the rate. */
    int64_t rate = c->w->cfg->server.http2.max_window_updates_per_second;
    double cap = 2.0 * (double)rate;
    if (!c->wupdates.started) {
        c->wupdates.started = true;
        c->wupdates.tokens = (double)rate;
        c->wupdates.last_ms = uv_now(&c->w->loop);
    }
    c->wupdates.tokens += 2.0;
    if (c->wupdates.tokens > cap)
        c->wupdates.tokens = cap;
    /* Answer bytes move: the slow-read clock starts over. Only DATA
     * counts: PING or SETTINGS answers flowing past a stream kept at a
     * zero window are no progress. */
    hx_h2_guard_output(c, true);
}

/* ---- clocks -------------------------------------------------------------- */

static void on_slow(uv_timer_t *t)
{
    h2_conn *c = t->data;
    if (c->state == H2C_CLOSED)
        return;
    if (c->abusive) {
        hx_h2_conn_close(c, "goaway not read"); /* not even the GOAWAY leaves */
        return;
    }
    hx_h2_abuse(c, "slow_read");
}

void hx_h2_guard_output(h2_conn *c, bool progress)
{
    int64_t ms = c->w->cfg->server.http2.slow_read_timeout;
    bool waiting = c->out_pending > 0;
    for (const h2_stream *s = c->streams; s && !waiting; s = s->next)
        waiting = s->out.len > s->out_off;
    if (!waiting || ms <= 0) {
        uv_timer_stop(&c->slow_t);
        return;
    }
    if (progress || !uv_is_active((uv_handle_t *)&c->slow_t))
        uv_timer_start(&c->slow_t, on_slow, (uint64_t)ms, 0);
}

static void on_idle(uv_timer_t *t)
{
    h2_conn *c = t->data;
    if (c->state != H2C_OPEN || c->nstreams > 0)
        return;
    hx_h2_count_goaway("idle");
    if (c->sess_dead || nghttp2_session_terminate_session(c->sess, NGHTTP2_NO_ERROR) != 0) {
        hx_h2_conn_close(c, "idle");
        return;
    }
    hx_h2_set_conn_state(c, H2C_CLOSING, "idle");
    hx_h2_io_flush_soon(c);
}

void hx_h2_guard_idle(h2_conn *c)
{
    int64_t ms = c->w->cfg->server.http2.idle_timeout;
    if (ms > 0)
        uv_timer_start(&c->idle_t, on_idle, (uint64_t)ms, 0);
}
