/* Taking connections from a worker's listener, bounded by descriptors.
 *
 * Protocol-neutral: the listener's adapter (proto.h) makes and starts the
 * connection. libuv accepts for us and calls hx_accept_on_connection; a
 * connection the callback does not uv_accept stays pending and libuv
 * stops polling the listener until uv_accept is called. That is used as the pause: when a
 * connection cannot be taken now (no descriptor to spare, no memory) it
 * waits there and a timer retries, so the worker neither spins nor goes
 * deaf. At EMFILE libuv first sheds the backlog with its own spare
 * descriptor; when another thread took that one, libuv calls back with
 * UV_EMFILE and retries at once, so one of ours is given up. */
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "http/server_int.h"
#include "obs/log.h"

long hx_fd_conn_cap(unsigned long nofile, int nworkers)
{
    unsigned long reserve =
        HX_FD_RESERVE_BASE + HX_FD_RESERVE_PER_WORKER * (unsigned long)(nworkers > 0 ? nworkers : 1);
    if (nofile <= reserve + 2)
        return 1;
    unsigned long cap = (nofile - reserve) / 2;
    return cap > LONG_MAX ? LONG_MAX : (long)cap;
}

static int spare_open(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void hx_accept_init(hx_worker *w)
{
    uv_timer_init(&w->loop, &w->accept_timer);
    w->accept_timer.data = w;
    w->spare_fd = spare_open();
}

void hx_accept_stop(hx_worker *w)
{
    /* Closing the listener also closes its pending connection. */
    uv_timer_stop(&w->accept_timer);
    w->accept_paused = false;
    for (int i = 0; i < w->nlisteners; i++)
        w->listeners[i].paused = false;
}

void hx_accept_close(hx_worker *w)
{
    uv_close((uv_handle_t *)&w->accept_timer, NULL);
    if (w->spare_fd >= 0)
        close(w->spare_fd);
    w->spare_fd = -1;
}

/* Takes the pending connection. Returns false, leaving it pending, when
 * the spare descriptor cannot be restored (the table is still full) or
 * the connection cannot be allocated. */
static bool accept_one(hx_worker *w, hx_listener *l)
{
    if (w->spare_fd < 0 && (w->spare_fd = spare_open()) < 0)
        return false;
    const hx_proto *p = l->proto;
    void *c = p->conn_new(w, l);
    if (c == NULL)
        return false;
    /* Into a fresh handle uv_accept cannot fail (libuv 1.44 only fails
     * when the handle already has another fd or options to apply). */
    if (uv_accept((uv_stream_t *)&l->tcp, p->conn_stream(c)) != 0) {
        p->conn_discard(c);
        return true;
    }
    long max = (long)w->cfg->server.max_connections;
    if (w->srv->fd_conn_cap > 0 && w->srv->fd_conn_cap < max)
        max = w->srv->fd_conn_cap;
    p->conn_start(c, max);
    return true;
}

static void on_accept_retry(uv_timer_t *t)
{
    hx_worker *w = t->data;
    if (!w->accept_paused || w->draining)
        return;
    bool waiting = false;
    for (int i = 0; i < w->nlisteners; i++) {
        hx_listener *l = &w->listeners[i];
        if (l->paused && accept_one(w, l))
            l->paused = false; /* uv_accept resumed polling */
        waiting |= l->paused;
    }
    w->accept_paused = waiting;
    if (waiting)
        uv_timer_start(&w->accept_timer, on_accept_retry, HX_ACCEPT_RETRY_MS, 0);
}

static void accept_pause(hx_worker *w, hx_listener *l)
{
    l->paused = true;
    uint64_t now = uv_now(&w->loop);
    if (!w->accept_paused && (w->pause_logged == 0 || now - w->pause_logged >= HX_ACCEPT_LOG_EVERY_MS)) {
        w->pause_logged = now;
        HX_LOG_WARN("cannot take a new connection now, pausing the listener",
                    HX_F_INT("worker", w->id), HX_F_INT("retry_ms", HX_ACCEPT_RETRY_MS),
                    HX_F_BOOL("fd_exhausted", w->spare_fd < 0));
    }
    w->accept_paused = true;
    uv_timer_start(&w->accept_timer, on_accept_retry, HX_ACCEPT_RETRY_MS, 0);
}

/* libuv retries accept as soon as this returns: free one descriptor for
 * it. The connection it then accepts finds no spare and pauses. */
static void shed_emfile(hx_worker *w)
{
    if (w->spare_fd >= 0) {
        close(w->spare_fd);
        w->spare_fd = -1;
        return;
    }
    /* Another thread took the one we freed: give up a connection that is
     * closing anyway, else an idle one (as nginx does). With neither,
     * libuv retries until another worker frees a descriptor. */
    w->listeners[0].proto->shed_one(w);
}

void hx_accept_on_connection(uv_stream_t *listener, int status)
{
    hx_worker *w = listener->data;
    hx_listener *l = (hx_listener *)listener; /* tcp is its first member */
    if (status == UV_EMFILE || status == UV_ENFILE) {
        shed_emfile(w);
        return;
    }
    if (status < 0 || w->draining)
        return;
    if (!accept_one(w, l))
        accept_pause(w, l);
}
