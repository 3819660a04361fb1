/* upstream.c against a loopback server in the test's own loop
 * (up_harness.h): answers, backpressure (HX_UP_PAUSE), the result classes
 * of refused, silent and broken connections, bounds, and the rewind that
 * would send a request twice. */
#include "up_harness.h"

#include "http/request.h"
#include "upstream/upstream.h"
#include "util/alloc.h"

typedef struct {
    uv_loop_t *loop;
    hx_up_call *call;
    int status;
    int heads;
    char ctype[64];
    size_t got;
    unsigned sum;        /* of the body's bytes, in order */
    bool done;
    hx_up_result res;
    char detail[256];
    /* backpressure */
    bool pause;          /* answer HX_UP_PAUSE to every chunk */
    bool paused;         /* waiting for the resume timer */
    int pauses;
    int calls;           /* on_data calls: every other one pauses */
    uint64_t resume_ms;  /* how long each pause lasts */
    uv_timer_t resume;
    /* a caller's bound on the body */
    size_t body_max;
} sink;

static int on_data(void *ud, const char *data, size_t len)
{
    sink *k = ud;
    assert_false(k->paused); /* nothing arrives while paused */
    assert_int_equal(k->heads, 1);
    for (size_t i = 0; i < len; i++)
        k->sum = k->sum * 31 + (unsigned char)data[i];
    k->got += len;
    if (k->body_max && k->got > k->body_max)
        return HX_UP_STOP;
    if (k->pause && k->calls++ % 2 == 0) {
        k->paused = true;
        k->pauses++;
        return HX_UP_PAUSE;
    }
    return HX_UP_CONTINUE;
}

static void on_head(void *ud, int status, const hx_headers *h)
{
    sink *k = ud;
    k->heads++;
    k->status = status;
    const char *ct = hx_headers_get(h, "content-type");
    snprintf(k->ctype, sizeof k->ctype, "%s", ct ? ct : "");
}

static void on_done(void *ud, hx_up_result res, const char *detail)
{
    sink *k = ud;
    assert_false(k->done); /* exactly once */
    k->done = true;
    k->res = res;
    k->call = NULL;
    snprintf(k->detail, sizeof k->detail, "%s", detail ? detail : "");
}

static void on_resume(uv_timer_t *t)
{
    sink *k = t->data;
    k->paused = false;
    hx_up_call_resume(k->call);
}

static int on_data_pausing(void *ud, const char *data, size_t len)
{
    sink *k = ud;
    int rc = on_data(ud, data, len);
    if (rc == HX_UP_PAUSE)
        uv_timer_start(&k->resume, on_resume, k->resume_ms, 0);
    return rc;
}

static const hx_up_callbacks cbs = {on_head, on_data, on_done};
static const hx_up_callbacks cbs_pausing = {on_head, on_data_pausing, on_done};

typedef struct {
    uv_loop_t loop;
    hx_upstream *up;
    uph_server srv;
    sink k;
    char url[128];
    const char *host;
    bool curl;        /* libcurl rather than hapax's own HTTP/1.1 client */
} fixture;

static const char *setup_host = "127.0.0.1";
static bool setup_curl;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->up = hx_upstream_new(&f->loop);
    assert_non_null(f->up);
    f->curl = setup_curl;
    hx_upstream_own_client(f->up, !f->curl);
    uph_start(&f->srv, &f->loop);
    f->host = setup_host;
    snprintf(f->url, sizeof f->url, "http://%s:%d/v1/chat/completions", f->host, f->srv.port);
    f->k.loop = &f->loop;
    uv_timer_init(&f->loop, &f->k.resume);
    f->k.resume.data = &f->k;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    hx_upstream_free(f->up);
    uph_stop(&f->srv);
    uv_close((uv_handle_t *)&f->k.resume, NULL);
    uph_loop_close(&f->loop);
    free(f);
    return 0;
}

static void call(fixture *f, const char *body, const hx_up_opts *o, const hx_up_callbacks *cb)
{
    hx_headers h = {0};
    assert_int_equal(hx_headers_add(&h, "Content-Type", "application/json"), 0);
    f->k.done = false;
    f->k.heads = 0;
    f->k.got = 0;
    f->k.sum = 0;
    f->k.call = hx_upstream_start(f->up, body ? "POST" : "GET", f->url, &h, body, body ? strlen(body) : 0, o,
                                  cb ? cb : &cbs, &f->k);
    hx_headers_free(&h);
    assert_non_null(f->k.call);
    uph_run_until(&f->loop, &f->k.done);
}

static unsigned sum_of(const char *p, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s = s * 31 + (unsigned char)p[i];
    return s;
}

#define OK_REPLY "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"

static void test_answer_200(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_REPLY, OK_REPLY, 0}});
    call(f, "{\"model\":\"m\"}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->k.status, 200);
    assert_int_equal(f->k.heads, 1);
    assert_string_equal(f->k.ctype, "application/json");
    assert_int_equal(f->k.got, 11);
    assert_int_equal(f->k.sum, sum_of("{\"ok\":true}", 11));
    assert_string_equal(f->srv.last_head, "POST /v1/chat/completions HTTP/1.1");
    assert_int_equal(f->srv.last_body_len, strlen("{\"model\":\"m\"}"));
    /* A second call reuses the connection (the pool and curl's cache). */
    call(f, NULL, NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_string_equal(f->srv.last_head, "GET /v1/chat/completions HTTP/1.1");
    assert_int_equal(f->srv.requests, 2);
    assert_int_equal(f->srv.connections, 1);
}

/* A status other than 2xx is an answer, not a transport failure. */
static void test_answer_error_status(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1,
               (uph_step[]){{UPH_REPLY, "HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}", 0}});
    call(f, "{}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->k.status, 429);
}

#define BIG (256 * 1024)

/* A streamed answer larger than curl's buffer, the reader taking a chunk
 * and then asking to pause (every other chunk, as the proxy does with a
 * slow client) for longer than the idle timeout: every byte arrives once
 * and in order (libcurl delivers a paused chunk again: it must not reach
 * the reader twice), nothing while paused, and a pause is not an idle
 * upstream. */
static void test_stream_pause_resume(void **state)
{
    fixture *f = *state;
    enum { N = 128 * 1024 };
    static char reply[N + 128];
    int h = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                          "Content-Length: %d\r\n\r\n", N);
    for (size_t i = 0; i < N; i++)
        reply[h + i] = (char)('a' + i % 26);
    uph_script(&f->srv, 2, (uph_step[]){{UPH_REPLY, reply, (size_t)h + N}, {UPH_REPLY, OK_REPLY, 0}});
    f->k.pause = true;
    f->k.resume_ms = 150;
    hx_up_opts o = {.idle_timeout_ms = 100};
    call(f, "{\"stream\":true}", &o, &cbs_pausing);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->k.got, N);
    assert_int_equal(f->k.sum, sum_of(reply + h, N));
    assert_true(f->k.pauses > 1);
    /* The connection paused up to the answer's end is kept and read
     * again: the next call on it is answered. */
    f->k.pause = false;
    hx_up_opts t = {.first_byte_timeout_ms = 2000};
    call(f, "{}", &t, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->k.got, 11);
    assert_int_equal(f->srv.connections, 1);
}

/* Resume after the call ended and cancel of a finished call are no-ops. */
static void test_resume_cancel_harmless(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_REPLY, OK_REPLY, 0}});
    hx_headers hd = {0};
    f->k.done = false;
    hx_up_call *c = hx_upstream_start(f->up, "GET", f->url, &hd, NULL, 0, NULL, &cbs, &f->k);
    assert_non_null(c);
    hx_up_call_resume(c); /* not paused: nothing */
    hx_up_call_cancel(c); /* gone at once, no callback */
    assert_false(f->k.done);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(f->k.done);
}

static void test_connection_refused(void **state)
{
    fixture *f = *state;
    snprintf(f->url, sizeof f->url, "http://%s:%d/", f->host, uph_closed_port(&f->loop));
    call(f, "{}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_CONNECT_ERROR);
    assert_int_equal(f->k.heads, 0);
    assert_string_equal(hx_up_result_str(f->k.res), "connection_error");
}

/* The request went out and nothing came back: first-byte timeout (the
 * upstream may be working on it), not a connect timeout. */
static void test_first_byte_timeout(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_SILENT, NULL, 0}});
    hx_up_opts o = {.first_byte_timeout_ms = 300};
    call(f, "{}", &o, NULL);
    assert_int_equal(f->k.res, HX_UP_FIRST_BYTE_TIMEOUT);
    assert_int_equal(f->srv.requests, 1);
}

static void test_total_timeout(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_SILENT, NULL, 0}});
    hx_up_opts o = {.total_timeout_ms = 300};
    call(f, "{}", &o, NULL);
    assert_int_equal(f->k.res, HX_UP_TIMEOUT);
}

/* The head and part of the body, then silence: the idle timeout. */
static void test_idle_timeout(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1,
               (uph_step[]){{UPH_SILENT, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ndata: {}\n\n", 0}});
    hx_up_opts o = {.idle_timeout_ms = 50};
    call(f, "{}", &o, NULL);
    assert_int_equal(f->k.res, HX_UP_IDLE_TIMEOUT);
    assert_int_equal(f->k.heads, 1);
    assert_int_equal(f->k.got, 10);
}

/* A caller's bound on the body (HX_UP_STOP from on_data) ends the call as
 * aborted, without reading the rest. */
static void test_body_over_bound(void **state)
{
    fixture *f = *state;
    static char reply[BIG + 128];
    int h = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG);
    memset(reply + h, 'x', BIG);
    uph_script(&f->srv, 1, (uph_step[]){{UPH_SILENT, reply, (size_t)h + BIG}});
    f->k.body_max = 1000;
    call(f, "{}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_ABORTED);
    assert_true(f->k.got < BIG);
}

/* A response header line past libcurl's bound (100 KB) fails the call
 * before any head reaches the caller. (libcurl 7.88 reports it as
 * CURLE_OUT_OF_MEMORY, so the class is HX_UP_NOMEM: not asserted, the
 * point is the bound.) */
static void test_header_over_bound(void **state)
{
    fixture *f = *state;
    static char reply[300 * 1024];
    int h = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nX-Big: ");
    size_t n = 200 * 1024;
    memset(reply + h, 'y', n);
    snprintf(reply + h + n, sizeof reply - (size_t)h - n, "\r\nContent-Length: 2\r\n\r\n{}");
    uph_script(&f->srv, 1, (uph_step[]){{UPH_SILENT, reply, 0}});
    call(f, "{}", NULL, NULL);
    assert_int_not_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->k.heads, 0);
    assert_int_equal(f->k.got, 0);
}

/* The upstream read the whole request and closed without a byte: it may be
 * generating (billing), so it is not a plain reset that may go again. */
static void test_reset_after_send(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_CLOSE, NULL, 0}});
    call(f, "{\"model\":\"m\"}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_RESET_AFTER_SEND);
    assert_int_equal(f->srv.requests, 1);
}

/* On a reused connection that dies before any answer libcurl would rewind
 * the body and send the request again on a new connection; the read
 * callback refuses the rewind, so the upstream sees it once. */
static void test_no_rewind_on_reused_connection(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 2, (uph_step[]){{UPH_REPLY, OK_REPLY, 0}, {UPH_CLOSE, NULL, 0}});
    call(f, "{\"first\":1}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    call(f, "{\"second\":2}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_RESET_AFTER_SEND);
    assert_int_equal(f->srv.requests, 2); /* never sent twice */
}

/* A GET (no body) closed without an answer counts as sent too. */
static void test_reset_after_send_get(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_CLOSE, NULL, 0}});
    call(f, NULL, NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_RESET_AFTER_SEND);
}

/* Freeing the client with a call running cancels it without a callback. */
static void test_free_with_call_running(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_SILENT, NULL, 0}});
    hx_headers hd = {0};
    f->k.done = false;
    assert_non_null(hx_upstream_start(f->up, "POST", f->url, &hd, "{}", 2, NULL, &cbs, &f->k));
    while (f->srv.requests == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    hx_upstream_free(f->up);
    f->up = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(f->k.done);
}

/* Under load calls spread over several libcurl multi handles (libcurl
 * walks every connection of one when a transfer ends); the easy handles of
 * the burst are pooled, the pool shrinks back once quiet, and the
 * connections stay cached for the next call. */
#define BURST 80
static sink burst_sinks[BURST];

/* BURST calls at once, each answered OK_REPLY: started, then run to the end. */
static void burst_start(fixture *f)
{
    uph_script(&f->srv, 1, (uph_step[]){{UPH_REPLY, OK_REPLY, 0}});
    hx_headers h = {0};
    memset(burst_sinks, 0, sizeof burst_sinks);
    for (int i = 0; i < BURST; i++)
        assert_non_null(hx_upstream_start(f->up, "POST", f->url, &h, "{}", 2, NULL, &cbs, &burst_sinks[i]));
}

static void burst_finish(fixture *f)
{
    for (int i = 0; i < BURST; i++)
        uph_run_until(&f->loop, &burst_sinks[i].done);
    for (int i = 0; i < BURST; i++) {
        assert_int_equal(burst_sinks[i].res, HX_UP_OK);
        assert_int_equal(burst_sinks[i].status, 200);
        assert_int_equal(burst_sinks[i].got, 11);
    }
}

static void test_burst_spreads_and_pool_trims(void **state)
{
    fixture *f = *state;
    if (!f->curl)
        skip(); /* libcurl's multi handles and easy pool */
    burst_start(f);
    hx_upstream_stats st;
    hx_upstream_get_stats(f->up, &st);
    assert_int_equal(st.calls, BURST);
    assert_int_equal(st.multis, 3); /* 32 calls each before the next opens */
    burst_finish(f);
    hx_upstream_get_stats(f->up, &st);
    assert_int_equal(st.calls, 0);
    assert_int_equal(st.pooled, BURST); /* more than the floor of 64 */
    size_t conns = f->srv.connections;
    assert_int_equal(conns, BURST);
    hx_upstream_trim(f->up); /* the burst's period: every handle was used */
    hx_upstream_get_stats(f->up, &st);
    assert_int_equal(st.pooled, BURST);
    hx_upstream_trim(f->up); /* a quiet period: back to the floor */
    hx_upstream_get_stats(f->up, &st);
    assert_int_equal(st.pooled, 64);
    call(f, "{}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->srv.connections, conns); /* a cached connection */
}

/* The upstream ends a kept connection between two calls: the next call
 * goes on a new connection and is answered (the request never met the
 * dead one, so nothing could be sent twice). */
static void test_kept_connection_closed_by_upstream(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1, (uph_step[]){{UPH_REPLY_FIN, OK_REPLY, 0}});
    call(f, "{\"a\":1}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    for (int i = 0; i < 5; i++) /* the FIN reaches the client's loop */
        uv_run(&f->loop, UV_RUN_NOWAIT);
    call(f, "{\"b\":2}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->srv.requests, 2);
    assert_int_equal(f->srv.connections, 2);
}

/* Interim 1xx heads are skipped; a chunked body arrives decoded; the kept
 * headers come from the final head only. */
static void test_interim_head_and_chunked_body(void **state)
{
    fixture *f = *state;
    uph_script(&f->srv, 1,
               (uph_step[]){{UPH_REPLY,
                             "HTTP/1.1 100 Continue\r\nX-Request-Id: early\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nRetry-After: 7\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                             0}});
    call(f, "{}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->k.status, 200);
    assert_int_equal(f->k.heads, 1);
    assert_string_equal(f->k.ctype, "text/event-stream");
    assert_int_equal(f->k.got, 11);
    assert_int_equal(f->k.sum, sum_of("hello world", 11));
    call(f, NULL, NULL, NULL); /* the connection stays usable */
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->srv.connections, 1);
}

/* A burst on hapax's own client: one connection per concurrent call, all
 * kept, and the next call takes one of them. */
static void test_burst_keeps_connections(void **state)
{
    fixture *f = *state;
    if (f->curl)
        skip();
    burst_start(f);
    burst_finish(f);
    assert_int_equal(f->srv.connections, BURST);
    call(f, "{}", NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(f->srv.connections, BURST);
    hx_upstream_stats st;
    hx_upstream_get_stats(f->up, &st);
    assert_int_equal(st.multis, 1); /* libcurl was never asked */
}

/* A proxy variable sends every call through libcurl (which honours it): a
 * proxy on a closed port makes a call to a live upstream fail. */
static void test_proxy_variable_goes_through_libcurl(void **state)
{
    fixture *f = *state;
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", uph_closed_port(&f->loop));
    hx_upstream_free(f->up);
    setenv("http_proxy", proxy, 1);
    f->up = hx_upstream_new(&f->loop);
    assert_non_null(f->up);
    uph_script(&f->srv, 1, (uph_step[]){{UPH_REPLY, OK_REPLY, 0}});
    call(f, "{}", NULL, NULL); /* libcurl reads the variable per transfer */
    unsetenv("http_proxy");
    assert_int_equal(f->k.res, HX_UP_CONNECT_ERROR);
    assert_int_equal(f->srv.requests, 0);
}

/* localhost is 127.0.0.1 first; a server on ::1 only is reached too (as
 * libcurl tries both), and the connection is kept. */
static void test_localhost_on_ipv6_only(void **state)
{
    fixture *f = *state;
    if (f->curl || strcmp(f->host, "localhost") != 0)
        skip();
    static uph_server s6;
    memset(&s6, 0, sizeof s6);
    if (!uph_start_at(&s6, &f->loop, "::1"))
        skip(); /* no IPv6 loopback here */
    uph_script(&s6, 1, (uph_step[]){{UPH_REPLY, OK_REPLY, 0}});
    snprintf(f->url, sizeof f->url, "http://localhost:%d/v1/models", s6.port);
    call(f, NULL, NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    call(f, NULL, NULL, NULL);
    assert_int_equal(f->k.res, HX_UP_OK);
    assert_int_equal(s6.requests, 2);
    assert_int_equal(s6.connections, 1);
    hx_upstream_free(f->up); /* its connection to s6 closes before s6 stops */
    f->up = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    uph_stop(&s6);
}

static int run_all(const char *host, bool curl, const char *name)
{
    setup_host = host;
    setup_curl = curl;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answer_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_error_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_cancel_harmless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_byte_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_over_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_over_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_after_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_rewind_on_reused_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_after_send_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_call_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_spreads_and_pool_trims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_connection_closed_by_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interim_head_and_chunked_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_keeps_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_variable_goes_through_libcurl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_localhost_on_ipv6_only, setup, teardown),
    };
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}

int main(void)
{
    if (hx_upstream_global_init() != 0)
        return 1;
    int failed = run_all("127.0.0.1", false, "own HTTP/1.1 client");
    failed += run_all("localhost", false, "own HTTP/1.1 client, localhost");
    failed += run_all("127.0.0.1", true, "libcurl");
    return failed;
}
