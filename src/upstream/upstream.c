#include "upstream/upstream.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "obs/log.h"
#include "upstream/upstream_int.h"
#include "util/alloc.h"

static void check_done(up_shard *sh);

/* A handle of up's closed: the last one frees up once it is closing. */
void hx_up_handle_closed(hx_upstream *up)
{
    if (--up->open_handles == 0 && up->closing) {
        hx_free(up->h1);
        hx_free(up);
    }
}
static void finish(hx_up_call *c, hx_up_result res, const char *detail);

/* libcurl allocates through the same failable wrapper as the rest of the
 * program, so allocation-failure tests reach it too. curl calls these from
 * any thread (the threaded resolver): the wrappers only use malloc and
 * atomics, which is thread-safe. */
static void *curl_malloc_cb(size_t n)
{
    return hx_malloc(n);
}

static void curl_free_cb(void *p)
{
    hx_free(p);
}

static void *curl_realloc_cb(void *p, size_t n)
{
    return hx_realloc(p, n);
}

static char *curl_strdup_cb(const char *s)
{
    return hx_strdup(s);
}

static void *curl_calloc_cb(size_t count, size_t n)
{
    return hx_calloc(count, n);
}

int hx_upstream_global_init(void)
{
    return curl_global_init_mem(CURL_GLOBAL_DEFAULT, curl_malloc_cb, curl_free_cb, curl_realloc_cb, curl_strdup_cb,
                                curl_calloc_cb) == CURLE_OK
               ? 0
               : -1;
}

const char *hx_up_result_str(hx_up_result r)
{
    static const char *const names[] = {
        "ok", "connect_timeout", "first_byte_timeout", "timeout", "connection_error",
        "connection_reset", "tls_error", "protocol_error", "aborted", "out_of_memory", "error",
        "idle_timeout", "connection_reset_after_send",
    };
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "error";
}

/* ---- loop integration ---------------------------------------------------- */

static void socket_action(up_shard *sh, curl_socket_t fd, int flags)
{
    int running;
    sh->up->in_curl++;
    curl_multi_socket_action(sh->multi, fd, flags, &running);
    sh->up->in_curl--;
    check_done(sh);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *s = p->data;
    if (s->idle) {
        /* An idle cached connection became readable (closed by the peer,
         * most likely): stop watching; curl checks it before any reuse. */
        uv_poll_stop(&s->poll);
        s->events = 0;
        return;
    }
    int flags = 0;
    if (status < 0) {
        /* An error on the socket (a reset): libuv stopped the handle.
         * Bytes that arrived before the reset still wait in the socket;
         * with "readable" too libcurl reads them first and meets the
         * error itself (an answer cut mid-way stays an answer, not a
         * failure before the head). */
        s->events = 0;
        flags = CURL_CSELECT_IN | CURL_CSELECT_ERR;
    }
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    socket_action(s->sh, s->fd, flags);
}

static void on_poll_closed(uv_handle_t *h)
{
    sock_ctx *s = h->data;
    hx_upstream *up = s->up;
    hx_free(s);
    hx_up_handle_closed(up);
}

static sock_ctx *sock_get(hx_upstream *up, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < up->nsocks ? up->socks[fd] : NULL;
}

static sock_ctx *sock_new(hx_upstream *up, curl_socket_t fd)
{
    if ((size_t)fd >= up->nsocks) {
        size_t n = up->nsocks ? up->nsocks : 64;
        while (n <= (size_t)fd)
            n *= 2;
        sock_ctx **t = hx_realloc(up->socks, n * sizeof *t);
        if (t == NULL)
            return NULL;
        memset(t + up->nsocks, 0, (n - up->nsocks) * sizeof *t);
        up->socks = t;
        up->nsocks = n;
    }
    sock_ctx *s = hx_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->up = up;
    s->fd = fd;
    if (uv_poll_init_socket(up->loop, &s->poll, fd) != 0) {
        hx_free(s);
        return NULL;
    }
    s->poll.data = s;
    up->open_handles++;
    up->socks[fd] = s;
    return s;
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    (void)socketp;
    up_shard *sh = userp;
    hx_upstream *up = sh->up;
    sock_ctx *s = sock_get(up, fd);
    if (what == CURL_POLL_REMOVE) {
        if (s)
            s->idle = true; /* keep watching; on_poll stops it if it fires */
        return 0;
    }
    if (s == NULL && (s = sock_new(up, fd)) == NULL)
        return -1;
    s->sh = sh;
    s->idle = false;
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    /* uv_poll_start re-registers the fd even for the same events (two
     * epoll_ctl calls): only call it when the interest really changes. */
    if (ev != s->events) {
        s->events = ev;
        uv_poll_start(&s->poll, ev, on_poll);
    }
    return 0;
}

/* curl closes a socket: release its poll handle first (never close an fd
 * that a live poll handle watches). */
static int on_close_socket(void *userp, curl_socket_t fd)
{
    hx_upstream *up = userp;
    sock_ctx *s = sock_get(up, fd);
    if (s) {
        up->socks[fd] = NULL;
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, on_poll_closed);
    }
    return close(fd);
}

static void on_timer(uv_timer_t *t)
{
    socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* timeout_ms 0 means "call me on the next loop turn", not "in 1 ms". */
static int on_timer_change(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    up_shard *sh = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&sh->timer);
    else
        uv_timer_start(&sh->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- results --------------------------------------------------------------- */

static hx_up_result map_code(hx_up_call *c, CURLcode code)
{
    curl_off_t connect_us = 0;
    switch (code) {
    case CURLE_OK: return HX_UP_OK;
    case CURLE_OPERATION_TIMEDOUT:
        curl_easy_getinfo(c->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        return connect_us == 0 ? HX_UP_CONNECT_TIMEOUT : HX_UP_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return HX_UP_CONNECT_ERROR;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return HX_UP_RESET;
    case CURLE_SEND_FAIL_REWIND: /* libcurl could not rewind to send it again */
        return HX_UP_RESET_AFTER_SEND;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
        return HX_UP_TLS_ERROR;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_CONTENT_ENCODING:
        return HX_UP_PROTOCOL_ERROR;
    case CURLE_ABORTED_BY_CALLBACK:
        if (c->retry_refused)
            return HX_UP_RESET_AFTER_SEND; /* on_prereq: not sent twice */
        return HX_UP_ABORTED;
    case CURLE_WRITE_ERROR:
        return HX_UP_ABORTED;
    case CURLE_OUT_OF_MEMORY: return HX_UP_NOMEM;
    default: return HX_UP_OTHER;
    }
}

/* May the upstream have the request? CURLINFO_REQUEST_SIZE counts the
 * bytes of head and body that reached the socket over all of libcurl's
 * rounds (a partly sent body is counted too: that loses a retry at worst,
 * never bills twice). A request not sent cannot have been processed: it
 * may go again. */
static bool request_sent(hx_up_call *c)
{
    long sent = 0;
    if (c->native)
        return c->sent > 0;
    if (c->easy == NULL || curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
        return true; /* unknown: assume the worst (sent) */
    return sent > 0;
}

static void check_done(up_shard *sh)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(sh->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        hx_up_call *c = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        if (c == NULL)
            continue;
        CURLcode code = m->data.result;
        hx_up_result res = c->forced != HX_UP_OK ? c->forced : map_code(c, code);
        if (res == HX_UP_RESET && !c->head_done && request_sent(c))
            res = HX_UP_RESET_AFTER_SEND; /* the upstream may be generating: not provably unbilled */
        finish(c, res, c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
    }
}

static void on_call_closed(uv_handle_t *h)
{
    hx_up_call *c = h->data;
    hx_upstream *up = c->up;
    hx_free(c);
    hx_up_handle_closed(up);
}

static void release_easy(hx_upstream *up, CURL *e)
{
    if (!up->closing && up->npool == up->pool_cap && up->pool_cap < HX_UP_POOL_MAX) {
        int cap = up->pool_cap ? up->pool_cap * 2 : HX_UP_POOL_KEEP;
        CURL **p = hx_realloc(up->pool, (size_t)cap * sizeof *p);
        if (p) {
            up->pool = p;
            up->pool_cap = cap;
        }
    }
    if (up->npool < up->pool_cap && !up->closing) {
        curl_easy_reset(e);
        up->pool[up->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

static CURL *take_easy(hx_upstream *up)
{
    if (up->npool == 0)
        return curl_easy_init();
    CURL *e = up->pool[--up->npool];
    if (up->npool < up->pool_low)
        up->pool_low = up->npool;
    return e;
}

/* Handles no call took over a whole period are surplus: keep
 * HX_UP_POOL_KEEP, give back the rest. */
void hx_upstream_trim(hx_upstream *up)
{
    int surplus = up->pool_low - HX_UP_POOL_KEEP;
    while (surplus-- > 0 && up->npool > 0)
        curl_easy_cleanup(up->pool[--up->npool]);
    up->pool_low = up->npool;
}

static void on_trim(uv_timer_t *t)
{
    hx_upstream_trim(t->data);
}

void hx_upstream_own_client(hx_upstream *up, bool on)
{
    hx_h1up_enable(up->h1, on);
}

void hx_upstream_get_stats(const hx_upstream *up, hx_upstream_stats *st)
{
    st->multis = up->nshards;
    st->pooled = up->npool;
    st->calls = 0;
    for (int i = 0; i < up->nshards; i++)
        st->calls += up->shards[i].calls;
}

/* Ends a call: takes it out of libcurl (never from inside a libcurl
 * callback: callers guarantee a clean stack), reports, frees. */
static void finish(hx_up_call *c, hx_up_result res, const char *detail)
{
    if (c->finished)
        return;
    c->finished = true;
    hx_upstream *up = c->up;
    uv_timer_stop(&c->fb_timer);
    if (c->native)
        hx_h1up_detach(c);
    if (c->in_multi) {
        curl_multi_remove_handle(c->sh->multi, c->easy);
        c->in_multi = false;
        c->sh->calls--;
    }
    if (c->easy)
        release_easy(up, c->easy);
    c->easy = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        up->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!c->cancelled && c->cb.on_done)
        c->cb.on_done(c->ud, res, detail);
    curl_slist_free_all(c->hdrs);
    hx_free(c->body);
    hx_buf_free(&c->req);
    hx_headers_free(&c->resp_headers);
    uv_close((uv_handle_t *)&c->fb_timer, on_call_closed);
}

void hx_up_finish(hx_up_call *c, hx_up_result res, const char *detail)
{
    finish(c, res, detail);
}

static void on_reap(uv_timer_t *t)
{
    hx_upstream *up = t->data;
    hx_up_call *c = up->calls;
    while (c) {
        hx_up_call *next = c->next;
        if (c->cancelled || c->forced != HX_UP_OK)
            finish(c, c->forced != HX_UP_OK ? c->forced : HX_UP_ABORTED, c->forced_why ? c->forced_why : "cancelled");
        c = next;
    }
}

void hx_up_schedule_reap(hx_upstream *up)
{
    if (!uv_is_active((uv_handle_t *)&up->reap))
        uv_timer_start(&up->reap, on_reap, 0, 0);
}

/* ---- libcurl callbacks ------------------------------------------------------ */

bool hx_up_kept_header(const char *name, size_t n)
{
    static const char *const kept[] = {"retry-after", "content-type", "x-request-id"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (strlen(kept[i]) == n && strncasecmp(kept[i], name, n) == 0)
            return true;
    return false;
}

/* The status of a line "HTTP/x SSS ...": exactly three digits inside the
 * line (curl's header buffer is not NUL-terminated); 0 if malformed. */
static int status_code(const char *p, size_t len)
{
    const char *sp = memchr(p, ' ', len);
    if (sp == NULL)
        return 0;
    size_t at = (size_t)(sp - p) + 1;
    if (len - at < 3)
        return 0;
    int code = 0;
    for (size_t i = at; i < at + 3; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        code = code * 10 + (p[i] - '0');
    }
    if (at + 3 < len && p[at + 3] >= '0' && p[at + 3] <= '9')
        return 0; /* four digits or more */
    return code;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    hx_up_call *c = ud;
    size_t len = size * n;
    if (c->cancelled)
        return 0;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        c->status = status_code(p, len);
        hx_headers_free(&c->resp_headers);
        return len;
    }
    if ((len == 2 && p[0] == '\r') || (len == 1 && p[0] == '\n')) {
        if (c->status >= 200 && !c->head_done) {
            c->head_done = true;
            hx_up_idle_arm(c);
            if (c->cb.on_head)
                c->cb.on_head(c->ud, c->status, &c->resp_headers);
        }
        return c->cancelled ? 0 : len;
    }
    const char *colon = memchr(p, ':', len);
    /* Only the headers callers use are kept (see upstream.h): copying
     * every upstream header costs two allocations each per request. */
    if (colon && !hx_up_kept_header(p, (size_t)(colon - p)))
        return len;
    if (colon) {
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        size_t vl = len - nl - 1;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (hx_headers_addn(&c->resp_headers, p, nl, v, vl) != 0)
            return 0;
    }
    return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    hx_up_call *c = ud;
    size_t whole = size * n, len = whole;
    if (c->cancelled || c->forced != HX_UP_OK)
        return 0;
    /* CURL_WRITEFUNC_PAUSE tells libcurl the chunk was not taken: it keeps
     * it and delivers it again after the resume. The caller did take it
     * before asking to pause, so that front part is not given twice. */
    size_t skip = c->consumed < len ? c->consumed : len;
    c->consumed -= skip;
    p += skip;
    len -= skip;
    if (len == 0)
        return whole;
    if (!c->head_done) { /* a body without a header block: treat as head now */
        c->head_done = true;
        hx_up_idle_arm(c);
        if (c->cb.on_head)
            c->cb.on_head(c->ud, c->status, &c->resp_headers);
        if (c->cancelled)
            return 0;
    }
    /* A timestamp per chunk, not a timer restart: on_idle re-arms itself
     * for whatever is left. */
    c->last_data_ms = uv_now(c->up->loop);
    int rc = c->cb.on_data ? c->cb.on_data(c->ud, p, len) : HX_UP_CONTINUE;
    if (c->cancelled)
        return 0;
    if (rc == HX_UP_PAUSE) {
        c->paused = true;
        c->consumed = whole; /* all of this chunk comes again */
        uv_timer_stop(&c->fb_timer); /* a slow client is not an idle upstream */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (rc == HX_UP_STOP) {
        c->forced = HX_UP_ABORTED;
        return 0;
    }
    return whole;
}

static void on_first_byte_timeout(uv_timer_t *t)
{
    hx_up_call *c = t->data;
    if (!request_sent(c)) {
        /* Still connecting or sending: nothing the upstream could act on. */
        c->forced = HX_UP_CONNECT_TIMEOUT;
        finish(c, HX_UP_CONNECT_TIMEOUT, "the request could not be sent within first_byte_timeout");
        return;
    }
    c->forced = HX_UP_FIRST_BYTE_TIMEOUT;
    finish(c, HX_UP_FIRST_BYTE_TIMEOUT, "no response from the upstream within first_byte_timeout (request sent)");
}

static void on_idle(uv_timer_t *t)
{
    hx_up_call *c = t->data;
    uint64_t now = uv_now(c->up->loop);
    uint64_t since = now - c->last_data_ms;
    if (since < c->idle_ms) {
        uv_timer_start(&c->fb_timer, on_idle, c->idle_ms - since, 0);
        return;
    }
    /* Timers run from the loop, never inside a libcurl call: finishing
     * here is on a clean stack. */
    c->forced = HX_UP_IDLE_TIMEOUT;
    finish(c, HX_UP_IDLE_TIMEOUT, "the upstream sent nothing within stream_idle_timeout");
}

/* After the response head: the same timer now watches the gaps between
 * body bytes (a hung stream would otherwise hold until the deadline). */
void hx_up_idle_arm(hx_up_call *c)
{
    uv_timer_stop(&c->fb_timer);
    if (c->idle_ms == 0)
        return;
    c->last_data_ms = uv_now(c->up->loop);
    uv_timer_start(&c->fb_timer, on_idle, c->idle_ms, 0);
}

/* ---- public ------------------------------------------------------------------ */

/* Opens the next multi handle (NULL: no memory; callers use an open one). */
static up_shard *shard_open(hx_upstream *up)
{
    if (up->nshards == HX_UP_SHARDS)
        return NULL;
    up_shard *sh = &up->shards[up->nshards];
    sh->multi = curl_multi_init();
    if (sh->multi == NULL)
        return NULL;
    sh->up = up;
    sh->calls = 0;
    uv_timer_init(up->loop, &sh->timer);
    sh->timer.data = sh;
    up->open_handles++;
    up->nshards++;
    curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
    curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
    curl_multi_setopt(sh->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    /* The default cache (4 x handles in use at the moment a transfer ends)
     * shrinks in quiet moments and closes connections a burst reopens. */
    curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, HX_UP_SHARD_CONNS);
    return sh;
}

/* The multi handle with the fewest calls; a new one when all are full. */
static up_shard *shard_pick(hx_upstream *up)
{
    up_shard *best = &up->shards[0];
    for (int i = 1; i < up->nshards; i++)
        if (up->shards[i].calls < best->calls)
            best = &up->shards[i];
    if (best->calls >= HX_UP_SHARD_CALLS) {
        up_shard *sh = shard_open(up);
        if (sh)
            return sh;
    }
    return best;
}

hx_upstream *hx_upstream_new(uv_loop_t *loop)
{
    hx_upstream *up = hx_calloc(1, sizeof *up);
    if (up == NULL)
        return NULL;
    up->loop = loop;
    if ((up->h1 = hx_h1up_new(up)) == NULL || shard_open(up) == NULL) {
        hx_free(up->h1);
        hx_free(up);
        return NULL;
    }
    uv_timer_init(loop, &up->reap);
    uv_timer_init(loop, &up->trim);
    up->reap.data = up->trim.data = up;
    up->open_handles += 2;
    uv_timer_start(&up->trim, on_trim, HX_UP_TRIM_MS, HX_UP_TRIM_MS);
    uv_unref((uv_handle_t *)&up->trim); /* never keeps a loop alive */
    return up;
}

static void on_up_timer_closed(uv_handle_t *h)
{
    hx_upstream *up = h->data;
    hx_up_handle_closed(up);
}

static void on_shard_timer_closed(uv_handle_t *h)
{
    up_shard *sh = h->data;
    hx_upstream *up = sh->up;
    hx_up_handle_closed(up);
}

void hx_upstream_free(hx_upstream *up)
{
    if (up == NULL)
        return;
    while (up->calls) {
        up->calls->cancelled = true;
        finish(up->calls, HX_UP_ABORTED, "shutdown");
    }
    up->closing = true;
    for (int i = 0; i < up->npool; i++)
        curl_easy_cleanup(up->pool[i]);
    up->npool = 0;
    hx_free(up->pool);
    up->pool = NULL;
    hx_h1up_close(up->h1);
    for (int i = 0; i < up->nshards; i++) {
        curl_multi_cleanup(up->shards[i].multi); /* closes sockets: on_close_socket */
        up->shards[i].multi = NULL;
    }
    for (size_t i = 0; i < up->nsocks; i++) /* sockets curl never closed */
        if (up->socks[i]) {
            uv_poll_stop(&up->socks[i]->poll);
            uv_close((uv_handle_t *)&up->socks[i]->poll, on_poll_closed);
            up->socks[i] = NULL;
        }
    hx_free(up->socks);
    up->socks = NULL;
    up->nsocks = 0;
    /* The shards' timers close last: their callback may free up. */
    uv_close((uv_handle_t *)&up->reap, on_up_timer_closed);
    uv_close((uv_handle_t *)&up->trim, on_up_timer_closed);
    int n = up->nshards;
    for (int i = 0; i < n; i++)
        uv_close((uv_handle_t *)&up->shards[i].timer, on_shard_timer_closed);
}

/* The body goes to libcurl as POSTFIELDS, so a small one leaves in the
 * same send as the head (one segment, one wake-up of the upstream).
 * libcurl silently sends a request again on a new connection when a
 * reused one dies before any answer; a request the upstream may have read
 * must not be sent twice (billed twice). Each round of libcurl's passes
 * here before its head is sent: a second round after bytes of the first
 * left (CURLINFO_REQUEST_SIZE counts them over the rounds) is refused and
 * the call ends as HX_UP_RESET_AFTER_SEND. A first round that sent nothing
 * may go again: the upstream cannot have it. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    (void)ip, (void)local_ip, (void)port, (void)local_port;
    hx_up_call *c = ud;
    if (++c->attempts == 1)
        return CURL_PREREQFUNC_OK;
    long sent = 1;
    if (curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK || sent > 0) {
        c->retry_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static int setup_easy(hx_up_call *c, const char *method, const char *url, const hx_headers *headers,
                      size_t len, const hx_up_opts *o)
{
    CURL *e = c->easy;
    for (size_t i = 0; headers && i < headers->n; i++) {
        /* "name: value", cut at the line bound as snprintf did. */
        char line[8192];
        const char *nm = headers->items[i].name, *val = headers->items[i].value;
        size_t nl = strlen(nm), vl = strlen(val), k = nl < sizeof line - 1 ? nl : sizeof line - 1;
        memcpy(line, nm, k);
        for (const char *sep = ": "; *sep && k < sizeof line - 1; sep++)
            line[k++] = *sep;
        size_t take = vl < sizeof line - 1 - k ? vl : sizeof line - 1 - k;
        memcpy(line + k, val, take);
        line[k + take] = '\0';
        struct curl_slist *l = curl_slist_append(c->hdrs, line);
        if (l == NULL)
            return -1;
        c->hdrs = l;
    }
    struct curl_slist *l = curl_slist_append(c->hdrs, "Expect:"); /* no 100-continue round trip */
    if (l == NULL)
        return -1;
    c->hdrs = l;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Providers see who calls them (requests and probes alike); a
     * User-Agent in the request's own headers still wins. */
    curl_easy_setopt(e, CURLOPT_USERAGENT, "hapax/" HX_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_MAXCONNECTS, 1024L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 8192L);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c->up);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body ? c->body : "");
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
        curl_easy_setopt(e, CURLOPT_PREREQDATA, c);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (o && o->connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    if (o && o->total_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->total_timeout_ms);
    return 0;
}

hx_up_call *hx_upstream_start(hx_upstream *up, const char *method, const char *url,
                              const hx_headers *headers, const void *body, size_t len,
                              const hx_up_opts *opts, const hx_up_callbacks *cb, void *ud)
{
    if (up->closing)
        return NULL;
    hx_up_call *c = hx_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->up = up;
    c->cb = *cb;
    c->ud = ud;
    if (len && (c->body = hx_malloc(len)) == NULL)
        goto fail;
    if (len)
        memcpy(c->body, body, len);
    c->body_len = len;
    int native = hx_h1up_start(up->h1, c, method, url, headers, opts);
    if (native < 0)
        goto fail;
    if (native == 0) {
        c->easy = take_easy(up);
        if (c->easy == NULL || setup_easy(c, method, url, headers, len, opts) != 0)
            goto fail;
        c->sh = shard_pick(up);
        if (curl_multi_add_handle(c->sh->multi, c->easy) != CURLM_OK)
            goto fail;
        c->in_multi = true;
        c->sh->calls++;
    }
    uv_timer_init(up->loop, &c->fb_timer);
    c->fb_timer.data = c;
    up->open_handles++;
    c->idle_ms = opts && opts->idle_timeout_ms > 0 ? (uint64_t)opts->idle_timeout_ms : 0;
    if (opts && opts->first_byte_timeout_ms > 0)
        uv_timer_start(&c->fb_timer, on_first_byte_timeout, (uint64_t)opts->first_byte_timeout_ms, 0);
    c->next = up->calls;
    if (up->calls)
        up->calls->prev = c;
    up->calls = c;
    return c;
fail:
    if (c->easy)
        release_easy(up, c->easy);
    curl_slist_free_all(c->hdrs);
    hx_free(c->body);
    hx_buf_free(&c->req);
    hx_free(c);
    return NULL;
}

void hx_up_call_cancel(hx_up_call *c)
{
    if (c == NULL || c->finished || c->cancelled)
        return;
    c->cancelled = true;
    if (c->up->in_curl > 0)
        hx_up_schedule_reap(c->up); /* never remove a handle inside libcurl */
    else
        finish(c, HX_UP_ABORTED, "cancelled");
}

void hx_up_call_resume(hx_up_call *c)
{
    if (c == NULL || c->finished || c->cancelled || !c->paused)
        return;
    c->paused = false;
    hx_upstream *up = c->up;
    if (c->head_done)
        hx_up_idle_arm(c); /* the idle clock restarts once the client reads again */
    if (c->native) {
        hx_h1up_resume(c); /* may deliver data, or end the call, right here */
        return;
    }
    up->in_curl++;
    curl_easy_pause(c->easy, CURLPAUSE_CONT); /* may deliver data right here */
    up->in_curl--;
    if (c->cancelled || c->forced != HX_UP_OK)
        hx_up_schedule_reap(up);
    check_done(c->sh);
}
