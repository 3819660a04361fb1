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

void hx_up_check_done(up_shard *sh)
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
        hx_up_release_easy(up, c->easy);
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

hx_upstream *hx_upstream_new(uv_loop_t *loop)
{
    hx_upstream *up = hx_calloc(1, sizeof *up);
    if (up == NULL)
        return NULL;
    up->loop = loop;
    if ((up->h1 = hx_h1up_new(up)) == NULL || hx_up_shard_open(up) == NULL) {
        hx_free(up->h1);
        hx_free(up);
        return NULL;
    }
    uv_timer_init(loop, &up->reap);
    uv_timer_init(loop, &up->trim);
    up->reap.data = up->trim.data = up;
    up->open_handles += 2;
    uv_timer_start(&up->trim, hx_up_on_trim, HX_UP_TRIM_MS, HX_UP_TRIM_MS);
    uv_unref((uv_handle_t *)&up->trim); /* never keeps a loop alive */
    return up;
}

static void on_up_timer_closed(uv_handle_t *h)
{
    hx_upstream *up = h->data;
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
            uv_close((uv_handle_t *)&up->socks[i]->poll, hx_up_poll_closed);
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
        uv_close((uv_handle_t *)&up->shards[i].timer, hx_up_shard_timer_closed);
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
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, hx_up_on_close_socket);
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
        c->easy = hx_up_take_easy(up);
        if (c->easy == NULL || setup_easy(c, method, url, headers, len, opts) != 0)
            goto fail;
        c->sh = hx_up_shard_pick(up);
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
        hx_up_release_easy(up, c->easy);
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
    hx_up_check_done(c->sh);
}
