/* libcurl's multi handles on a worker's uv loop: the sockets libcurl
 * watches (poll handles that outlive a transfer while its connection
 * idles), its timers, the multi handles calls spread over under load, and
 * the pool of easy handles. The calls themselves are in upstream.c. */
#include <curl/curl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "upstream/upstream_int.h"
#include "util/alloc.h"

/* ---- loop integration ---------------------------------------------------- */

static void socket_action(up_shard *sh, curl_socket_t fd, int flags)
{
    int running;
    sh->up->in_curl++;
    curl_multi_socket_action(sh->multi, fd, flags, &running);
    sh->up->in_curl--;
    hx_up_check_done(sh);
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

void hx_up_poll_closed(uv_handle_t *h)
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
int hx_up_on_close_socket(void *userp, curl_socket_t fd)
{
    hx_upstream *up = userp;
    sock_ctx *s = sock_get(up, fd);
    if (s) {
        up->socks[fd] = NULL;
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, hx_up_poll_closed);
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

void hx_up_release_easy(hx_upstream *up, CURL *e)
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

CURL *hx_up_take_easy(hx_upstream *up)
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

void hx_up_on_trim(uv_timer_t *t)
{
    hx_upstream_trim(t->data);
}

/* Opens the next multi handle (NULL: no memory; callers use an open one). */
up_shard *hx_up_shard_open(hx_upstream *up)
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
up_shard *hx_up_shard_pick(hx_upstream *up)
{
    up_shard *best = &up->shards[0];
    for (int i = 1; i < up->nshards; i++)
        if (up->shards[i].calls < best->calls)
            best = &up->shards[i];
    if (best->calls >= HX_UP_SHARD_CALLS) {
        up_shard *sh = hx_up_shard_open(up);
        if (sh)
            return sh;
    }
    return best;
}

void hx_up_shard_timer_closed(uv_handle_t *h)
{
    up_shard *sh = h->data;
    hx_upstream *up = sh->up;
    hx_up_handle_closed(up);
}

