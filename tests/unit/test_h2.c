/* The HTTP/2 adapter (src/http/h2*.c) on a real loop and loopback socket
 * (loop_harness.h, h2c with prior knowledge through h1's hand-off), driven
 * by an nghttp2 CLIENT session in the test: GET and POST, a streamed
 * answer with backpressure (client window 0 → HX_RES_BUSY; window opened
 * → on_drain), a client RST_STREAM aborting the request, 413 and 431, max
 * concurrent streams, and the connection and stream state tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nghttp2/nghttp2.h>
#include <stdio.h>

#include "http/h2_int.h"
#include "http/request.h"
#include "loop_harness.h"

enum mode { ANSWER, HOLD, STREAM };

#define CHUNK (64 * 1024)
#define NS 8

static struct {
    enum mode mode;
    int calls;
    hx_req *held;
    int aborts;
    int busy;      /* writes answered HX_RES_BUSY */
    int drains;
    int writes;
    size_t body_len;
} g;

static unsigned seen_conn, seen_stream; /* states entered, across all tests */

static void on_state(bool stream, int from, int to, const char *why)
{
    (void)from;
    assert_non_null(why);
    if (stream)
        seen_stream |= 1u << to;
    else
        seen_conn |= 1u << to;
}

/* ---- the server side: one stub handler ---------------------------------- */

static void on_abort(hx_req *r, void *ud)
{
    (void)r, (void)ud;
    g.aborts++;
}

static void stream_more(hx_req *r, void *ud)
{
    (void)ud;
    static char chunk[CHUNK];
    g.drains++;
    g.writes++;
    hx_res_write(r, chunk, sizeof chunk); /* one more, then the end */
    hx_res_end(r);
    hx_req_unref(r);
    g.held = NULL;
}

static void stub(hx_req *r)
{
    g.calls++;
    g.body_len = r->body.len;
    if (g.mode == HOLD) {
        g.held = hx_req_ref(r);
        r->on_abort = on_abort;
        return;
    }
    if (g.mode == STREAM) {
        static char chunk[CHUNK];
        memset(chunk, 'x', sizeof chunk);
        g.held = hx_req_ref(r);
        r->on_drain = stream_more;
        r->on_abort = on_abort;
        hx_res_start(r, 200);
        /* Write until told to wait: the client's window is 0. */
        for (int i = 0; i < 64; i++) {
            g.writes++;
            if (hx_res_write(r, chunk, sizeof chunk) == HX_RES_BUSY) {
                g.busy++;
                break;
            }
        }
        return;
    }
    char b[256];
    int n = snprintf(b, sizeof b, "%s %s body=%zu host=%s", r->method, r->path, r->body.len,
                     hx_headers_get(&r->headers, "host") ? hx_headers_get(&r->headers, "host") : "-");
    hx_res_header(r, "Connection", "keep-alive"); /* hop-by-hop: dropped */
    hx_res_send(r, 200, "text/plain", b, (size_t)n);
}

/* ---- the client: nghttp2 over the loopback socket ----------------------- */

typedef struct {
    int fd;
    nghttp2_session *s;
    int status[NS];
    hx_buf body[NS];
    bool closed[NS];
    uint32_t err[NS];
    int goaway;    /* error code, -1 = none */
    bool conn_hdr; /* a "connection" header reached the client */
    const char *post;
    size_t post_len, post_off;
} cli;

static ssize_t c_send(nghttp2_session *s, const uint8_t *d, size_t n, int fl, void *ud)
{
    (void)s, (void)fl;
    cli *c = ud;
    ssize_t w = write(c->fd, d, n);
    if (w < 0)
        return errno == EAGAIN ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
    return w;
}

static int c_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                    const uint8_t *value, size_t vl, uint8_t fl, void *ud)
{
    (void)s, (void)fl;
    cli *c = ud;
    int i = f->hd.stream_id / 2;
    if (i < NS && nl == 7 && memcmp(name, ":status", 7) == 0)
        c->status[i] = atoi((const char *)value);
    if (nl == 10 && memcmp(name, "connection", 10) == 0)
        c->conn_hdr = true;
    (void)vl;
    return 0;
}

static int c_data(nghttp2_session *s, uint8_t fl, int32_t id, const uint8_t *d, size_t n, void *ud)
{
    (void)s, (void)fl;
    cli *c = ud;
    if (id / 2 < NS)
        hx_buf_append(&c->body[id / 2], d, n);
    return 0;
}

static int c_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
    (void)s;
    cli *c = ud;
    if (id / 2 < NS)
        c->closed[id / 2] = true, c->err[id / 2] = err;
    return 0;
}

static int c_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)s;
    cli *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY)
        c->goaway = (int)f->goaway.error_code;
    return 0;
}

static void cli_open(lh_loop *h, cli *c, uint32_t window)
{
    memset(c, 0, sizeof *c);
    c->goaway = -1;
    for (int i = 0; i < NS; i++)
        hx_buf_init(&c->body[i], 4 * 1024 * 1024);
    c->fd = lh_connect(h);
    assert_true(c->fd >= 0);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, c_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
    assert_int_equal(nghttp2_session_client_new(&c->s, cb, c), 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 1);
}

static void cli_close(cli *c)
{
    nghttp2_session_del(c->s);
    close(c->fd);
    for (int i = 0; i < NS; i++)
        hx_buf_free(&c->body[i]);
}

/* One exchange: our frames out, the server's in, a loop turn. */
static void cli_pump(lh_loop *h, cli *c)
{
    nghttp2_session_send(c->s);
    uint8_t b[65536];
    ssize_t n;
    while ((n = read(c->fd, b, sizeof b)) > 0)
        nghttp2_session_mem_recv(c->s, b, (size_t)n);
    nghttp2_session_send(c->s);
    lh_turn(h);
}

static bool cli_until(lh_loop *h, cli *c, bool (*cond)(cli *c, void *ud), void *ud)
{
    for (int i = 0; i < LH_MAX_TURNS; i++) {
        if (cond(c, ud))
            return true;
        cli_pump(h, c);
    }
    return cond(c, ud);
}

static bool stream_closed(cli *c, void *ud)
{
    return c->closed[(intptr_t)ud / 2];
}

static bool calls_at_least(cli *c, void *ud)
{
    (void)c;
    return g.calls >= (intptr_t)ud;
}

static bool aborted(cli *c, void *ud)
{
    (void)c, (void)ud;
    return g.aborts > 0;
}

static ssize_t c_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                           nghttp2_data_source *src, void *ud)
{
    (void)s, (void)id, (void)src;
    cli *c = ud;
    size_t n = c->post_len - c->post_off;
    if (n > len)
        n = len;
    memcpy(buf, c->post + c->post_off, n);
    c->post_off += n;
    if (c->post_off == c->post_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v) {(uint8_t *)(uintptr_t)(n), (uint8_t *)(uintptr_t)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

static int32_t cli_request(cli *c, const char *method, const char *path, const char *body, size_t blen,
                           const char *xname, const char *xval)
{
    nghttp2_nv nv[5] = {NV(":method", method), NV(":scheme", "http"), NV(":path", path),
                        NV(":authority", "example.test")};
    size_t n = 4;
    if (xname)
        nv[n++] = (nghttp2_nv){(uint8_t *)(uintptr_t)xname, (uint8_t *)(uintptr_t)xval, strlen(xname), strlen(xval), 0};
    c->post = body;
    c->post_len = blen;
    c->post_off = 0;
    nghttp2_data_provider dp = {.read_callback = c_read_body};
    return nghttp2_submit_request(c->s, NULL, nv, n, body ? &dp : NULL, NULL);
}

/* Runs h until stream id of c is closed. */
static void until_closed(lh_loop *h, cli *c, int32_t id)
{
    assert_true(cli_until(h, c, stream_closed, (void *)(intptr_t)id));
}

/* Opens c with a stream window of `window`, sends GET /health and runs h
 * until the handler has it; returns its stream id. */
static int32_t open_get_handled(lh_loop *h, cli *c, uint32_t window)
{
    cli_open(h, c, window);
    int32_t id = cli_request(c, "GET", "/health", NULL, 0, NULL, NULL);
    assert_true(cli_until(h, c, calls_at_least, (void *)1));
    return id;
}

/* ---- fixture ------------------------------------------------------------ */

static int setup_with(void **state, const char *yaml)
{
    memset(&g, 0, sizeof g);
    lh_loop *h = calloc(1, sizeof *h);
    if (h == NULL || lh_init(h, yaml, stub) != 0)
        return -1;
    hx_h2_state_hook = on_state;
    *state = h;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, "server:\n  max_body_bytes: 1KB\n  max_header_bytes: 1KB\n"
                             "  http2:\n    h2c: true\n");
}

static int setup_budget(void **state)
{
    return setup_with(state, "server:\n  max_body_bytes: 256KB\n  http2:\n    h2c: true\n"
                             "    initial_window_size: 1MB\n");
}

static int setup_mcs(void **state)
{
    return setup_with(state, "server:\n  http2:\n    h2c: true\n    max_concurrent_streams: 1\n");
}

static int teardown(void **state)
{
    lh_loop *h = *state;
    if (g.held)
        hx_req_unref(g.held);
    g.held = NULL;
    lh_fini(h); /* closes h1's and h2's connections and handles */
    free(h);
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_get_and_post(void **state)
{
    lh_loop *h = *state;
    cli c;
    cli_open(h, &c, 65535);
    int32_t a = cli_request(&c, "GET", "/health?x=1", NULL, 0, NULL, NULL);
    int32_t b = cli_request(&c, "POST", "/v1/chat/completions", "{\"a\":1}", 7, NULL, NULL);
    until_closed(h, &c, b);
    until_closed(h, &c, a);
    assert_int_equal(c.status[a / 2], 200);
    assert_int_equal(c.status[b / 2], 200);
    assert_string_equal(c.body[a / 2].data, "GET /health body=0 host=example.test");
    assert_string_equal(c.body[b / 2].data, "POST /v1/chat/completions body=7 host=example.test");
    assert_false(c.conn_hdr);               /* hop-by-hop header dropped */
    assert_non_null(h->w->h2_conns);        /* handed over from h1 */
    assert_int_equal(h->w->h2_conns->state, H2C_OPEN);
    cli_close(&c);
}

static void test_stream_backpressure_and_drain(void **state)
{
    lh_loop *h = *state;
    g.mode = STREAM;
    cli c;
    int32_t id = open_get_handled(h, &c, 0); /* the stream window is 0: no body byte may leave */
    for (int i = 0; i < 50; i++)
        cli_pump(h, &c);
    assert_int_equal(g.busy, 1);      /* the handler was told to wait */
    assert_int_equal(g.drains, 0);    /* and nothing drained yet */
    assert_int_equal(c.body[id / 2].len, 0);
    /* Open the window: the body flows, the handler hears on_drain. */
    nghttp2_session_set_local_window_size(c.s, NGHTTP2_FLAG_NONE, 0, 16 * 1024 * 1024);
    nghttp2_session_set_local_window_size(c.s, NGHTTP2_FLAG_NONE, id, 16 * 1024 * 1024);
    until_closed(h, &c, id);
    assert_true(g.drains >= 1);
    assert_int_equal(c.err[id / 2], 0);
    assert_int_equal(c.body[id / 2].len, (size_t)g.writes * CHUNK);
    assert_int_equal(g.aborts, 0);
    cli_close(&c);
}

static void test_client_reset_aborts(void **state)
{
    lh_loop *h = *state;
    g.mode = HOLD;
    cli c;
    int32_t id = open_get_handled(h, &c, 65535);
    nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    assert_true(cli_until(h, &c, aborted, NULL));
    assert_int_equal(g.aborts, 1);
    assert_true(g.held->aborted);
    assert_int_equal(hx_res_send(g.held, 200, "text/plain", "x", 1), HX_RES_EGONE);
    cli_close(&c);
}

static void test_413_and_431(void **state)
{
    lh_loop *h = *state;
    static char big[4096];
    memset(big, 'a', sizeof big);
    cli c;
    cli_open(h, &c, 65535);
    int32_t a = cli_request(&c, "POST", "/v1/chat/completions", big, sizeof big, NULL, NULL);
    until_closed(h, &c, a);
    assert_int_equal(c.status[a / 2], 413);
    big[2000] = '\0';
    int32_t b = cli_request(&c, "GET", "/health", NULL, 0, "x-big", big);
    until_closed(h, &c, b);
    assert_int_equal(c.status[b / 2], 431);
    assert_int_equal(g.calls, 0); /* neither reached the handler */
    cli_close(&c);
}

static void test_max_concurrent_streams(void **state)
{
    lh_loop *h = *state;
    g.mode = HOLD;
    cli c;
    cli_open(h, &c, 65535);
    /* Both go out before the server's SETTINGS is read: the client
     * cannot know the limit yet, the server enforces it. */
    cli_request(&c, "GET", "/health", NULL, 0, NULL, NULL);
    int32_t b = cli_request(&c, "GET", "/health", NULL, 0, NULL, NULL);
    nghttp2_session_send(c.s);
    until_closed(h, &c, b);
    assert_int_equal(c.err[b / 2], NGHTTP2_REFUSED_STREAM);
    assert_int_equal(g.calls, 1);
    cli_close(&c);
}

static bool got_goaway(cli *c, void *ud)
{
    (void)ud;
    return c->goaway >= 0;
}

static bool no_h2_conns(cli *c, void *ud)
{
    (void)c;
    return ((lh_loop *)ud)->w->h2_conns == NULL;
}

typedef struct {
    const char *d;
    size_t len, off;
} body_src;

static ssize_t read_src(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    (void)s, (void)id, (void)ud;
    body_src *b = src->ptr;
    size_t n = b->len - b->off < len ? b->len - b->off : len;
    memcpy(buf, b->d + b->off, n);
    b->off += n;
    if (b->off == b->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static bool all_closed(cli *c, void *ud)
{
    int32_t *ids = ud;
    for (int i = 0; ids[i]; i++)
        if (!c->closed[ids[i] / 2])
            return false;
    return true;
}

/* Six bodies of 240 KB at once on one connection, against a budget of
 * 1 MiB (4 x max_body_bytes, at least 1 MiB): the streams whose DATA
 * crosses it are refused (REFUSED_STREAM, safe to retry), the others
 * answered; memory stays at one budget. */
static void test_connection_body_budget(void **state)
{
    lh_loop *h = *state;
    static char big[240 * 1024];
    memset(big, 'b', sizeof big);
    cli c;
    cli_open(h, &c, 1 << 20);
    nghttp2_session_set_local_window_size(c.s, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    body_src src[6];
    int32_t ids[7] = {0};
    for (int i = 0; i < 6; i++) {
        src[i] = (body_src){big, sizeof big, 0};
        nghttp2_nv nv[4] = {NV(":method", "POST"), NV(":scheme", "http"), NV(":path", "/v1/chat/completions"),
                            NV(":authority", "x")};
        nghttp2_data_provider dp = {.source.ptr = &src[i], .read_callback = read_src};
        ids[i] = nghttp2_submit_request(c.s, NULL, nv, 4, &dp, NULL);
    }
    assert_true(cli_until(h, &c, all_closed, ids));
    int refused = 0, ok = 0;
    for (int i = 0; i < 6; i++) {
        refused += c.err[ids[i] / 2] == NGHTTP2_REFUSED_STREAM;
        ok += c.status[ids[i] / 2] == 200;
    }
    assert_true(refused >= 1);
    assert_int_equal(refused + ok, 6);
    assert_int_equal(g.calls, ok);
    assert_int_equal(h->w->h2_conns->body_bytes, 0); /* all released */
    cli_close(&c);
}

/* Shutdown: GOAWAY(NO_ERROR), the open stream still gets its answer,
 * then the connection closes (DRAINING → CLOSING → CLOSED). */
static void test_drain_lets_stream_finish(void **state)
{
    lh_loop *h = *state;
    g.mode = HOLD;
    cli c;
    int32_t id = open_get_handled(h, &c, 65535);
    hx_h2_drain(h->w);
    assert_true(cli_until(h, &c, got_goaway, NULL));
    assert_int_equal(c.goaway, NGHTTP2_NO_ERROR);
    assert_int_equal(h->w->h2_conns->state, H2C_DRAINING);
    assert_int_equal(hx_res_send(g.held, 200, "text/plain", "late", 4), HX_RES_OK);
    hx_req_unref(g.held);
    g.held = NULL;
    until_closed(h, &c, id);
    assert_int_equal(c.status[id / 2], 200);
    assert_string_equal(c.body[id / 2].data, "late");
    assert_true(cli_until(h, &c, no_h2_conns, h));
    cli_close(&c);
}

/* Every state of both tables was entered by the tests above. */
static void test_every_state_reached(void **state)
{
    (void)state;
    /* HEADERS is where a stream starts (not a move) */
    assert_int_equal(seen_stream, ((1u << H2S__COUNT) - 1u) & ~(1u << H2S_HEADERS));
    assert_int_equal(seen_conn & ((1u << H2C_DRAINING) | (1u << H2C_CLOSING) | (1u << H2C_CLOSED)),
                     (1u << H2C_DRAINING) | (1u << H2C_CLOSING) | (1u << H2C_CLOSED));
}

static void test_state_tables(void **state)
{
    (void)state;
    assert_true(hx_h2_conn_state_allowed(H2C_OPEN, H2C_DRAINING));
    assert_true(hx_h2_conn_state_allowed(H2C_OPEN, H2C_CLOSING));
    assert_true(hx_h2_conn_state_allowed(H2C_DRAINING, H2C_CLOSING));
    assert_false(hx_h2_conn_state_allowed(H2C_CLOSING, H2C_OPEN));
    assert_false(hx_h2_conn_state_allowed(H2C_DRAINING, H2C_OPEN));
    assert_false(hx_h2_conn_state_allowed(H2C_CLOSED, H2C_OPEN));
    assert_false(hx_h2_conn_state_allowed(H2C_OPEN, H2C_OPEN));
    assert_true(hx_h2_stream_state_allowed(H2S_HEADERS, H2S_BODY));
    assert_true(hx_h2_stream_state_allowed(H2S_HEADERS, H2S_ANSWERING)); /* 431 */
    assert_true(hx_h2_stream_state_allowed(H2S_HANDLING, H2S_ANSWERING));
    assert_true(hx_h2_stream_state_allowed(H2S_ANSWERING, H2S_DONE));
    assert_false(hx_h2_stream_state_allowed(H2S_HANDLING, H2S_BODY));
    assert_false(hx_h2_stream_state_allowed(H2S_DONE, H2S_ANSWERING));
    assert_false(hx_h2_stream_state_allowed(H2S_CLOSED, H2S_HEADERS));
    for (int s = 0; s < H2S__COUNT; s++)
        assert_true(s == H2S_CLOSED || hx_h2_stream_state_allowed((enum h2_stream_state)s, H2S_CLOSED));
    assert_string_equal(hx_h2_conn_state_name(H2C_DRAINING), "draining");
    assert_string_equal(hx_h2_stream_state_name(H2S_ANSWERING), "answering");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_and_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_backpressure_and_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_reset_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_and_431, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_concurrent_streams, setup_mcs, teardown),
        cmocka_unit_test_setup_teardown(test_drain_lets_stream_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_body_budget, setup_budget, teardown),
        cmocka_unit_test(test_state_tables),
        cmocka_unit_test(test_every_state_reached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
