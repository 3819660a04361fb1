/* The HTTP/1.1 connection (src/http/h1.c) on a real loop and loopback
 * socket (loop_harness.h): keep-alive, pipelining, bodies in pieces, a
 * client that leaves mid-answer, limits, discarding, and the state
 * machine's table (h1_state.c). Every transition the connections make is
 * traced through hx_h1_state_hook; an illegal one aborts this (debug)
 * build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "http/request.h"
#include "loop_harness.h"

enum mode { ANSWER, HOLD, STREAM };

static struct {
    enum mode mode;
    int calls;
    hx_req *held;        /* a request the handler has not answered yet */
    h1_conn *conn;       /* the connection of the last request */
    int aborts;
    enum h1_state state_at_abort;
    char body[4096];     /* the last request's body */
    size_t body_len;
    struct {
        enum h1_state from, to;
    } trace[64];
    int ntrace;
} g;

static unsigned seen_states; /* every state entered, across all tests */

static void on_state(const h1_conn *c, enum h1_state from, enum h1_state to, const char *why)
{
    (void)c;
    assert_non_null(why);
    seen_states |= 1u << to;
    if (g.ntrace < (int)(sizeof g.trace / sizeof g.trace[0]))
        g.trace[g.ntrace].from = from, g.trace[g.ntrace++].to = to;
}

static bool traced(enum h1_state from, enum h1_state to)
{
    for (int i = 0; i < g.ntrace; i++)
        if (g.trace[i].from == from && g.trace[i].to == to)
            return true;
    return false;
}

static int traced_count(enum h1_state from, enum h1_state to)
{
    int n = 0;
    for (int i = 0; i < g.ntrace; i++)
        n += g.trace[i].from == from && g.trace[i].to == to;
    return n;
}

/* "<method> <path> body=<n>": the order of answers shows in the output. */
static void answer(hx_req *r)
{
    char b[256];
    int n = snprintf(b, sizeof b, "%s %s body=%zu", r->method, r->path, r->body.len);
    hx_res_send(r, 200, "text/plain", b, (size_t)n);
}

static void on_abort(hx_req *r, void *ud)
{
    (void)r;
    (void)ud;
    g.aborts++;
    g.state_at_abort = g.conn->state; /* the connection is still allocated here */
}

static void stub(hx_req *r)
{
    g.calls++;
    g.conn = r->tp_ctx;
    g.body_len = r->body.len < sizeof g.body ? r->body.len : sizeof g.body;
    if (g.body_len)
        memcpy(g.body, r->body.data, g.body_len);
    if (g.mode == ANSWER) {
        answer(r);
        return;
    }
    g.held = hx_req_ref(r);
    if (g.mode == STREAM) {
        r->on_abort = on_abort;
        assert_int_equal(hx_res_start(r, 200), 0);
        assert_int_equal(hx_res_write(r, "partial", 7), 0);
    }
}

static const char yaml[] = "server:\n  max_header_bytes: 4KB\n  max_body_bytes: 2KB\n";

typedef struct {
    lh_loop h;
    int fd;
    hx_buf got;
} fixture;

static int setup_with(void **state, const char *config)
{
    memset(&g, 0, sizeof g);
    hx_h1_state_hook = on_state;
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(lh_init(&f->h, config, stub), 0);
    hx_buf_init(&f->got, 1024 * 1024);
    f->fd = lh_connect(&f->h);
    assert_true(f->fd >= 0);
    assert_non_null(lh_conn(&f->h));
    assert_int_equal(lh_conn(&f->h)->state, H1_IDLE);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, yaml);
}

/* One client at most; a short read timeout (waited for, never timed). */
static int setup_tight(void **state)
{
    return setup_with(state, "server:\n  max_connections: 1\n  read_timeout: 200ms\n");
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (g.held)
        hx_req_unref(g.held);
    if (f->fd >= 0)
        close(f->fd);
    lh_fini(&f->h);
    hx_buf_free(&f->got);
    hx_h1_state_hook = NULL;
    free(f);
    return 0;
}

static void turns(lh_loop *h, int n)
{
    for (int i = 0; i < n; i++)
        lh_turn(h);
}

static bool cond_called(lh_loop *h, void *ud)
{
    (void)h;
    return g.calls >= *(int *)ud;
}

static bool cond_state(lh_loop *h, void *ud)
{
    return lh_conn(h) && lh_conn(h)->state == *(enum h1_state *)ud;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: x\r\n\r\n"

static void test_keepalive_two_requests(void **state)
{
    fixture *f = *state;
    assert_true(lh_send(f->fd, GET("/health")));
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "GET /health body=0", 1));
    assert_int_equal(lh_conn(&f->h)->state, H1_IDLE);
    assert_true(lh_send(f->fd, GET("/v1/models")));
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "GET /v1/models body=0", 1));
    assert_int_equal(g.calls, 2);
    assert_int_equal(lh_count(&f->got, "HTTP/1.1 200 OK\r\n"), 2);
    assert_int_equal(lh_count(&f->got, "Connection: close"), 0);
    assert_int_equal(f->h.w->nconns, 1); /* the same connection served both */
    assert_int_equal(lh_conn(&f->h)->state, H1_IDLE);
    assert_int_equal(traced_count(H1_IDLE, H1_READING), 2);
    assert_int_equal(traced_count(H1_READING, H1_HANDLING), 2);
    assert_int_equal(traced_count(H1_HANDLING, H1_IDLE), 2);
}

static void test_pipelined_answered_in_order(void **state)
{
    fixture *f = *state;
    g.mode = HOLD;
    assert_true(lh_send(f->fd, GET("/health") GET("/v1/models")));
    int one = 1;
    assert_true(lh_run_until(&f->h, cond_called, &one));
    /* The second request waits, parsed no further, while the first is
     * being handled. */
    turns(&f->h, 20);
    h1_conn *c = lh_conn(&f->h);
    assert_int_equal(g.calls, 1);
    assert_int_equal(c->state, H1_HANDLING);
    assert_true(c->in.len > 0);
    g.mode = ANSWER;
    hx_req *r = g.held;
    g.held = NULL;
    answer(r); /* the first answer lets the second request in */
    hx_req_unref(r);
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "HTTP/1.1 200 OK\r\n", 2));
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "GET /v1/models body=0", 1));
    const char *first = memmem(f->got.data, f->got.len, "GET /health body=0", 18);
    const char *second = memmem(f->got.data, f->got.len, "GET /v1/models body=0", 21);
    assert_non_null(first);
    assert_true(first < second);
    assert_int_equal(g.calls, 2);
    assert_int_equal(c->state, H1_IDLE);
}

static void test_body_in_segments(void **state)
{
    fixture *f = *state;
    enum h1_state reading = H1_READING;
    assert_true(lh_send(f->fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"));
    assert_true(lh_run_until(&f->h, cond_state, &reading));
    assert_true(lh_send(f->fd, "hello"));
    turns(&f->h, 10);
    assert_int_equal(g.calls, 0);
    assert_int_equal(lh_conn(&f->h)->state, H1_READING);
    assert_true(lh_send(f->fd, "world"));
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "POST /v1/chat/completions body=10", 1));
    assert_int_equal(g.body_len, 10);
    assert_memory_equal(g.body, "helloworld", 10);

    /* The same with chunks cut across writes. */
    const char *pieces[] = {"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                            "5\r\nhel", "lo\r\n", "6\r\n wor", "ld\r\n0\r\n", "\r\n"};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        assert_true(lh_send(f->fd, pieces[i]));
        turns(&f->h, 5);
        if (i + 1 < sizeof pieces / sizeof pieces[0])
            assert_int_equal(g.calls, 1); /* incomplete: not dispatched */
    }
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "POST /v1/chat/completions body=11", 1));
    assert_int_equal(g.calls, 2);
    assert_memory_equal(g.body, "hello world", 11);
    assert_int_equal(lh_conn(&f->h)->state, H1_IDLE);
}

static void test_client_gone_mid_response(void **state)
{
    fixture *f = *state;
    g.mode = STREAM;
    assert_true(lh_send(f->fd, GET("/health")));
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "partial", 1));
    assert_int_equal(lh_conn(&f->h)->state, H1_HANDLING);
    close(f->fd);
    f->fd = -1;
    assert_true(lh_run_until(&f->h, lh_cond_no_conns, NULL));
    assert_int_equal(g.aborts, 1);
    assert_int_equal(g.state_at_abort, H1_CLOSED);
    assert_true(traced(H1_HANDLING, H1_CLOSED));
    assert_int_equal(g.trace[g.ntrace - 1].to, H1_CLOSED);
    /* The handler's late end finds no transport: nothing happens twice. */
    assert_int_equal(hx_res_end(g.held), HX_RES_EGONE);
    assert_int_equal(g.aborts, 1);
}

/* The connection answers `status` with Connection: close, then lingers. */
static void expect_error_then_linger(fixture *f, const char *status)
{
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, status, 1));
    assert_non_null(memmem(f->got.data, f->got.len, "Connection: close\r\n", 19));
    enum h1_state linger = H1_LINGER;
    assert_true(lh_run_until(&f->h, cond_state, &linger));
    assert_int_equal(g.calls, 0);
    assert_true(traced(H1_READING, H1_DISCARD));
    assert_true(traced(H1_DISCARD, H1_LINGER));
}

static void test_body_too_large_413(void **state)
{
    fixture *f = *state;
    assert_true(lh_send(f->fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"));
    expect_error_then_linger(f, "HTTP/1.1 413 ");
}

static void test_headers_too_large_431(void **state)
{
    fixture *f = *state;
    char big[6000];
    int n = snprintf(big, sizeof big, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: %0*d\r\n\r\n", 5000, 0);
    assert_true(n > 5000 && (size_t)n < sizeof big);
    assert_true(lh_send(f->fd, big));
    expect_error_then_linger(f, "HTTP/1.1 431 ");
}

static void test_unread_body_discarded_then_close(void **state)
{
    fixture *f = *state;
    char body[2000];
    memset(body, 'x', sizeof body);
    assert_true(lh_send(f->fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"));
    assert_true(lh_sendn(f->fd, body, 100));
    expect_error_then_linger(f, "HTTP/1.1 413 ");
    /* The rest of the refused body is read and dropped: nothing parsed,
     * nothing queued, no second answer. */
    assert_true(lh_sendn(f->fd, body, sizeof body));
    turns(&f->h, 20);
    assert_int_equal(lh_conn(&f->h)->in.len, 0);
    assert_int_equal(lh_conn(&f->h)->state, H1_LINGER);
    assert_int_equal(g.calls, 0);
    /* The client finishes: the connection closes (before its linger). */
    shutdown(f->fd, SHUT_WR);
    assert_true(lh_run_until_eof(&f->h, f->fd, &f->got));
    assert_true(lh_run_until(&f->h, lh_cond_no_conns, NULL));
    assert_int_equal(lh_count(&f->got, "HTTP/1.1 "), 1);
    assert_true(traced(H1_LINGER, H1_CLOSED));
}

/* Shutdown: an idle connection closes at once; one in the middle of a
 * request is answered, with Connection: close, and then closes. */
static void test_drain_finishes_request_then_closes(void **state)
{
    fixture *f = *state;
    int idle_fd = lh_connect(&f->h);
    assert_true(idle_fd >= 0);
    assert_int_equal(f->h.w->nconns, 2);
    assert_true(lh_send(f->fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"));
    h1_conn *busy = f->h.w->conns->next; /* the list is newest first */
    for (int i = 0; i < LH_MAX_TURNS && busy->state != H1_READING; i++)
        lh_turn(&f->h);
    assert_int_equal(busy->state, H1_READING);
    hx_h1_drain(f->h.w);
    assert_int_equal(f->h.w->nconns, 1); /* the idle one is gone */
    assert_true(lh_send(f->fd, "cd"));
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "body=4", 1));
    assert_non_null(memmem(f->got.data, f->got.len, "Connection: close\r\n", 19));
    assert_true(traced(H1_HANDLING, H1_DISCARD));
    shutdown(f->fd, SHUT_WR);
    assert_true(lh_run_until_eof(&f->h, f->fd, &f->got));
    assert_true(lh_run_until(&f->h, lh_cond_no_conns, NULL));
    hx_buf idle_got;
    hx_buf_init(&idle_got, 4096);
    assert_true(lh_run_until_eof(&f->h, idle_fd, &idle_got));
    assert_int_equal(idle_got.len, 0); /* closed without a word */
    hx_buf_free(&idle_got);
    close(idle_fd);
}

static void test_over_max_connections_503(void **state)
{
    fixture *f = *state;
    int fd2 = lh_connect(&f->h);
    assert_true(fd2 >= 0);
    hx_buf got2;
    hx_buf_init(&got2, 65536);
    assert_true(lh_run_until_read(&f->h, fd2, &got2, "HTTP/1.1 503 ", 1));
    assert_non_null(memmem(got2.data, got2.len, "Connection: close\r\n", 19));
    assert_true(traced(H1_IDLE, H1_DISCARD));
    assert_true(traced(H1_DISCARD, H1_LINGER));
    hx_buf_free(&got2);
    close(fd2);
    /* The first client is served as usual. */
    assert_true(lh_send(f->fd, GET("/health")));
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "GET /health body=0", 1));
}

static void test_incomplete_request_408(void **state)
{
    fixture *f = *state;
    assert_true(lh_send(f->fd, "GET /health HTTP/1.1\r\nHost: x\r\n"));
    assert_true(lh_run_until_read(&f->h, f->fd, &f->got, "HTTP/1.1 408 ", 1));
    assert_int_equal(g.calls, 0);
    assert_true(traced(H1_READING, H1_DISCARD));
}

/* ---- the table ----------------------------------------------------------- */

/* The transitions docs/internals/state-machines.md lists, and no other. */
static const bool expected[H1__COUNT][H1__COUNT] = {
    [H1_IDLE] = {[H1_READING] = true, [H1_DISCARD] = true, [H1_LINGER] = true, [H1_CLOSED] = true},
    [H1_READING] = {[H1_HANDLING] = true, [H1_DISCARD] = true, [H1_LINGER] = true, [H1_CLOSED] = true},
    [H1_HANDLING] = {[H1_IDLE] = true, [H1_DISCARD] = true, [H1_CLOSED] = true},
    [H1_DISCARD] = {[H1_LINGER] = true, [H1_CLOSED] = true},
    [H1_LINGER] = {[H1_CLOSED] = true},
    [H1_CLOSED] = {0},
};

static void test_transition_table(void **state)
{
    (void)state;
    for (int a = 0; a < H1__COUNT; a++)
        for (int b = 0; b < H1__COUNT; b++)
            assert_int_equal(hx_h1_state_allowed((enum h1_state)a, (enum h1_state)b), expected[a][b]);
    /* Out of range is refused, not read past the table. */
    assert_false(hx_h1_state_allowed(H1__COUNT, H1_IDLE));
    assert_false(hx_h1_state_allowed(H1_IDLE, H1__COUNT));
    /* Every state is reachable from IDLE, and CLOSED from every state. */
    unsigned reach = 1u << H1_IDLE;
    for (int round = 0; round < H1__COUNT; round++)
        for (int a = 0; a < H1__COUNT; a++)
            for (int b = 0; b < H1__COUNT; b++)
                if ((reach & (1u << a)) && hx_h1_state_allowed((enum h1_state)a, (enum h1_state)b))
                    reach |= 1u << b;
    assert_int_equal(reach, (1u << H1__COUNT) - 1);
    for (int a = 0; a < H1_CLOSED; a++)
        assert_true(hx_h1_state_allowed((enum h1_state)a, H1_CLOSED));
    for (int s = 0; s < H1__COUNT; s++)
        assert_string_not_equal(hx_h1_state_name((enum h1_state)s), "?");
}

/* An illegal change aborts a debug build and is refused (state kept) in
 * release; run in a child so the abort can be watched. */
static void test_illegal_transition_refused(void **state)
{
    (void)state;
    hx_h1_state_hook = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        h1_conn c;
        memset(&c, 0, sizeof c);
        c.state = H1_CLOSED;
        bool moved = hx_h1_set_state(&c, H1_IDLE, "test: resurrect");
        _exit(!moved && c.state == H1_CLOSED ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
#ifdef HX_DEBUG_CHECKS
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
#else
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
#endif
    /* A legal one is made. */
    h1_conn c;
    memset(&c, 0, sizeof c);
    c.state = H1_IDLE;
    assert_true(hx_h1_set_state(&c, H1_READING, "test"));
    assert_int_equal(c.state, H1_READING);
}

/* Runs last: the tests above drove a real connection through every state. */
static void test_every_state_entered(void **state)
{
    (void)state;
    assert_int_equal(seen_states, (1u << H1__COUNT) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keepalive_two_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_answered_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_in_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_mid_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_too_large_431, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unread_body_discarded_then_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_finishes_request_then_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_max_connections_503, setup_tight, teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_request_408, setup_tight, teardown),
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_illegal_transition_refused),
        cmocka_unit_test(test_every_state_entered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
