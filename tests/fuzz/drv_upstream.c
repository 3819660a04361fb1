/* Upstream target: bytes as an upstream's answer, read by hapax's own
 * HTTP/1.1 client (src/upstream/h1up.c: http_parser, kept headers, 1xx
 * heads, chunked and length bodies, keep-alive, pause and resume) on a
 * private uv loop. A loopback TCP server in the same loop answers each
 * request with the input and ends its side (FIN), so every call ends.
 *
 * Input: byte 0 picks how the caller reads (bit 0: pause after every other
 * chunk, resumed on the next loop turn; bit 1: stop after 4 KiB), byte 1
 * how the answer is cut into writes (1 + byte1 % 64 pieces), the rest is
 * the answer. Invariants: on_done runs exactly once; the head comes once,
 * before any body byte, with a final status (200-999 for http_parser);
 * an OK call had a head; nothing arrives while paused; no call outlives
 * its input (a bounded wait); no leak (the sanitizers). */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "upstream/upstream.h"
#include "util/alloc.h"

typedef struct {
    uv_tcp_t tcp;
    const uint8_t *ans;
    size_t ans_len;
    int pieces;
    bool answered;
    bool closing;
    uv_shutdown_t sd;
} srv_conn;

static uv_loop_t loop;
static uv_tcp_t listener;
static int port;
static hx_upstream *up; /* one per input */
static const uint8_t *cur_ans;
static size_t cur_len;
static int cur_pieces;

typedef struct {
    hx_up_call *call;
    int heads, dones;
    bool paused, pause_mode, stop_mode;
    int chunks;
    size_t got;
    hx_up_result res;
    uv_timer_t resume;
} sink;

static void srv_closed(uv_handle_t *h)
{
    hx_free(h->data);
}

static void srv_close(srv_conn *c)
{
    if (!c->closing) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, srv_closed);
    }
}

static void srv_written(uv_write_t *w, int status)
{
    (void)status;
    hx_free(w);
}

/* The answer in pieces, then FIN. */
static void srv_answer(srv_conn *c)
{
    size_t at = 0;
    for (int i = 0; i < c->pieces && at < c->ans_len; i++) {
        size_t n = i == c->pieces - 1 ? c->ans_len - at : (c->ans_len - at) / (size_t)(c->pieces - i);
        if (n == 0)
            continue;
        uv_write_t *w = hx_malloc(sizeof *w);
        if (w == NULL)
            break;
        uv_buf_t b = uv_buf_init((char *)(uintptr_t)(c->ans + at), (unsigned)n);
        if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, srv_written) != 0)
            hx_free(w);
        at += n;
    }
    uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, NULL);
}

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h, (void)hint;
    static char buf[65536];
    *b = uv_buf_init(buf, sizeof buf);
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    srv_conn *c = s->data;
    if (n < 0) {
        srv_close(c);
        return;
    }
    if (n > 0 && !c->answered) { /* the request's first bytes: answer once */
        c->answered = true;
        srv_answer(c);
    }
}

static void srv_accept(uv_stream_t *l, int status)
{
    if (status != 0)
        return;
    srv_conn *c = hx_calloc(1, sizeof *c);
    if (c == NULL) {
        uv_tcp_t tmp; /* refuse: accept and close at once */
        uv_tcp_init(&loop, &tmp);
        if (uv_accept(l, (uv_stream_t *)&tmp) == 0) {
            uv_close((uv_handle_t *)&tmp, NULL);
            uv_run(&loop, UV_RUN_NOWAIT);
        }
        return;
    }
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c;
    c->ans = cur_ans;
    c->ans_len = cur_len;
    c->pieces = cur_pieces;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read) != 0)
        srv_close(c);
}

static void setup(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    hx_fuzz_setup();
    if (uv_loop_init(&loop) != 0 || hx_upstream_global_init() != 0)
        abort();
    uv_tcp_init(&loop, &listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    if (uv_tcp_bind(&listener, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&listener, 128, srv_accept) != 0) {
        fprintf(stderr, "fuzz upstream: cannot listen on 127.0.0.1\n");
        abort();
    }
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&got, &len);
    port = ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void on_resume(uv_timer_t *t)
{
    sink *k = t->data;
    k->paused = false;
    if (k->dones == 0)
        hx_up_call_resume(k->call);
}

static void on_head(void *ud, int status, const hx_headers *h)
{
    (void)h;
    sink *k = ud;
    FUZZ_CHECK(k->heads == 0 && k->got == 0);
    FUZZ_CHECK(status >= 200 && status <= 999);
    k->heads++;
}

static int on_data(void *ud, const char *data, size_t len)
{
    (void)data;
    sink *k = ud;
    FUZZ_CHECK(k->heads == 1);
    FUZZ_CHECK(!k->paused);
    k->got += len;
    if (k->stop_mode && k->got > 4096)
        return HX_UP_STOP;
    if (k->pause_mode && k->chunks++ % 2 == 0) {
        k->paused = true;
        uv_timer_start(&k->resume, on_resume, 0, 0);
        return HX_UP_PAUSE;
    }
    return HX_UP_CONTINUE;
}

static void on_done(void *ud, hx_up_result res, const char *detail)
{
    (void)detail;
    sink *k = ud;
    k->dones++;
    k->res = res;
    FUZZ_CHECK(k->dones == 1);
}

static const hx_up_callbacks cbs = {on_head, on_data, on_done};

int hx_fuzz_upstream(const uint8_t *data, size_t size)
{
    setup();
    if (size < 2)
        return 0;
    if ((up = hx_upstream_new(&loop)) == NULL)
        return 0; /* (torture) */
    cur_ans = data + 2;
    cur_len = size - 2;
    cur_pieces = 1 + data[1] % 64;
    static sink k;
    memset(&k, 0, sizeof k);
    k.pause_mode = data[0] & 1;
    k.stop_mode = data[0] & 2;
    uv_timer_init(&loop, &k.resume);
    k.resume.data = &k;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", port);
    hx_headers h = {0};
    hx_up_opts o = {.total_timeout_ms = 5000};
    k.call = hx_upstream_start(up, "POST", url, &h, "{}", 2, &o, &cbs, &k);
    if (k.call != NULL) {
        while (k.dones == 0)
            uv_run(&loop, UV_RUN_ONCE);
        FUZZ_CHECK(k.res != HX_UP_TIMEOUT); /* the server always ends its side */
        FUZZ_CHECK(k.res != HX_UP_OK || k.heads == 1);
    }
    uv_close((uv_handle_t *)&k.resume, NULL);
    /* A fresh client per input: a connection kept by one input must not
     * carry the next one's request to a server that already ended. */
    hx_upstream_free(up);
    up = NULL;
    for (int i = 0; i < 4; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
