/* SSE and NDJSON splitters (provider/sse.c) and the JSON string writer
 * (util/json.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/sse.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/json.h"

/* ---- recorders ------------------------------------------------------------- */

typedef struct {
    hx_buf log;     /* one "[event]{data}\n" per callback */
    int calls;
    int stop_at;    /* return `stop_rc` from this call (1-based; 0 = never) */
    int stop_rc;
} rec;

static void rec_init(rec *r)
{
    memset(r, 0, sizeof *r);
    hx_buf_init(&r->log, 0);
    r->stop_rc = -1;
}

static const char *rec_str(rec *r)
{
    return r->log.data ? r->log.data : "";
}

static int sse_cb(void *ud, const char *event, const char *data, size_t len)
{
    rec *r = ud;
    assert_non_null(event);
    assert_non_null(data);
    assert_int_equal(hx_buf_printf(&r->log, "[%s]{", event), 0);
    assert_int_equal(hx_buf_append(&r->log, data, len), 0);
    assert_int_equal(hx_buf_append(&r->log, "}\n", 2), 0);
    r->calls++;
    return r->stop_at && r->calls == r->stop_at ? r->stop_rc : 0;
}

static int nd_cb(void *ud, const char *line, size_t len)
{
    rec *r = ud;
    assert_non_null(line);
    assert_true(len > 0);
    assert_int_equal(hx_buf_append(&r->log, "<", 1), 0);
    assert_int_equal(hx_buf_append(&r->log, line, len), 0);
    assert_int_equal(hx_buf_append(&r->log, ">\n", 2), 0);
    r->calls++;
    return r->stop_at && r->calls == r->stop_at ? r->stop_rc : 0;
}

/* Feeds s[0..len) through a fresh SSE splitter, cut at the given offsets
 * (ascending, may be empty), then ends it. Returns the log (caller frees). */
static char *sse_run_cuts(const char *s, size_t len, const size_t *cuts, size_t ncuts, int *rc_out)
{
    hx_sse sp;
    rec r;
    rec_init(&r);
    hx_sse_init(&sp);
    size_t pos = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = hx_sse_feed(&sp, s + pos, end - pos, sse_cb, &r);
        pos = end;
    }
    if (rc == 0)
        rc = hx_sse_end(&sp, sse_cb, &r);
    hx_sse_free(&sp);
    if (rc_out)
        *rc_out = rc;
    char *out = strdup(rec_str(&r));
    hx_buf_free(&r.log);
    return out;
}

/* Feeds in steps of `step` bytes (0 = all at once). */
static char *sse_run(const char *s, size_t step, int *rc_out)
{
    size_t len = strlen(s);
    size_t cuts[4096], n = 0;
    if (step)
        for (size_t p = step; p < len && n < 4096; p += step)
            cuts[n++] = p;
    return sse_run_cuts(s, len, n ? cuts : NULL, n, rc_out);
}

/* Feed only (no hx_sse_end): what is delivered before the end of stream. */
static char *sse_feed_only(const char *s)
{
    hx_sse sp;
    rec r;
    rec_init(&r);
    hx_sse_init(&sp);
    assert_int_equal(hx_sse_feed(&sp, s, strlen(s), sse_cb, &r), 0);
    hx_sse_free(&sp);
    char *out = strdup(rec_str(&r));
    hx_buf_free(&r.log);
    return out;
}

static void expect_sse(const char *in, const char *want)
{
    int rc;
    char *got = sse_run(in, 0, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, want);
    free(got);
    got = sse_run(in, 1, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, want);
    free(got);
}

/* ---- SSE ------------------------------------------------------------------- */

static void test_sse_fields(void **state)
{
    (void)state;
    expect_sse("event: message_start\ndata: {\"a\":1}\n\n", "[message_start]{{\"a\":1}}\n");
    /* no event field: empty name */
    expect_sse("data: hello\n\n", "[]{hello}\n");
    /* no space after the colon; only one space is stripped */
    expect_sse("data:x\n\ndata:  two\n\n", "[]{x}\n[]{ two}\n");
    /* "data" alone is an empty data line, still an event */
    expect_sse("data\n\n", "[]{}\n");
    /* id, retry and unknown fields are ignored */
    expect_sse("id: 7\nretry: 1000\nfoo: bar\ndata: d\n\n", "[]{d}\n");
    /* the event name is per event: it does not leak into the next one */
    expect_sse("event: ping\ndata: 1\n\ndata: 2\n\n", "[ping]{1}\n[]{2}\n");
    /* an event with a name but no data is not dispatched, and its name
     * does not stick */
    expect_sse("event: lonely\n\ndata: y\n\n", "[]{y}\n");
    /* several blank lines in a row dispatch nothing extra */
    expect_sse("\n\n\ndata: a\n\n\n\n", "[]{a}\n");
    /* a colon inside the value is kept */
    expect_sse("data: a: b:c\n\n", "[]{a: b:c}\n");
    /* the last event name wins */
    expect_sse("event: a\nevent: b\ndata: x\n\n", "[b]{x}\n");
}

static void test_sse_multiline_data(void **state)
{
    (void)state;
    expect_sse("data: a\ndata: b\ndata: c\n\n", "[]{a\nb\nc}\n");
    /* an empty data line adds an empty line */
    expect_sse("data: a\ndata:\n\n", "[]{a\n}\n");
    expect_sse("data:\ndata: b\n\n", "[]{\nb}\n");
    /* event field between data lines */
    expect_sse("data: 1\nevent: e\ndata: 2\n\n", "[e]{1\n2}\n");
}

static void test_sse_comments(void **state)
{
    (void)state;
    expect_sse(": keep-alive\n\n", "");
    expect_sse(":\n\n: ping\n\n", "");
    expect_sse("data: a\n: comment in the middle\ndata: b\n\n", "[]{a\nb}\n");
    /* a comment line ending in CRLF */
    expect_sse(": x\r\ndata: v\r\n\r\n", "[]{v}\n");
}

static void test_sse_line_endings(void **state)
{
    (void)state;
    const char *want = "[e]{1\n2}\n[]{3}\n";
    expect_sse("event: e\ndata: 1\ndata: 2\n\ndata: 3\n\n", want);
    expect_sse("event: e\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n", want);
    expect_sse("event: e\rdata: 1\rdata: 2\r\rdata: 3\r\r", want);
    /* mixed */
    expect_sse("event: e\rdata: 1\r\ndata: 2\n\r\ndata: 3\r\n\r", want);
    /* CR CR is two line ends (an empty line), not one */
    expect_sse("data: a\r\rdata: b\r\r", "[]{a}\n[]{b}\n");
    /* LF CR is two line ends too */
    expect_sse("data: a\n\rdata: b\n\r", "[]{a}\n[]{b}\n");
    /* CR LF LF: end of line, then an empty line */
    expect_sse("data: a\r\n\ndata: b\r\n\n", "[]{a}\n[]{b}\n");
}

static const char TRANSCRIPT[] =
    ": OPENROUTER PROCESSING\r\n"
    "\r\n"
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"x\":\"\\u00e9 caf\xc3\xa9\"}\n"
    "\n"
    "id: 1\r"
    "data: line one\r"
    "data:line two\r"
    "\r"
    "event: delta\r\n"
    "data: {\"t\":\"a:b\"}\r\n"
    ": ping\r\n"
    "data: second\r\n"
    "\r\n"
    "data:\n"
    "data:\n"
    "\n"
    "retry: 5\n"
    "event: done\r\n"
    "data: [DONE]"; /* no trailing blank line: delivered by hx_sse_end */

static const char TRANSCRIPT_EVENTS[] = "[message_start]{{\"type\":\"message_start\",\"x\":\"\\u00e9 caf\xc3\xa9\"}}\n"
                                        "[]{line one\nline two}\n"
                                        "[delta]{{\"t\":\"a:b\"}\nsecond}\n"
                                        "[]{\n}\n"
                                        "[done]{[DONE]}\n";

static void test_sse_every_boundary(void **state)
{
    (void)state;
    size_t len = strlen(TRANSCRIPT);
    int rc;
    char *whole = sse_run(TRANSCRIPT, 0, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(whole, TRANSCRIPT_EVENTS);

    /* one cut at every offset */
    for (size_t i = 0; i <= len; i++) {
        size_t cut = i;
        char *got = sse_run_cuts(TRANSCRIPT, len, &cut, 1, &rc);
        assert_int_equal(rc, 0);
        if (strcmp(got, whole) != 0)
            fail_msg("cut at %zu:\n%s\nwant:\n%s", i, got, whole);
        free(got);
    }
    /* two cuts at every pair of offsets (empty pieces included) */
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = {i, j};
            char *got = sse_run_cuts(TRANSCRIPT, len, cuts, 2, &rc);
            assert_int_equal(rc, 0);
            if (strcmp(got, whole) != 0)
                fail_msg("cuts at %zu,%zu:\n%s\nwant:\n%s", i, j, got, whole);
            free(got);
        }
    }
    /* every step size */
    for (size_t step = 1; step <= len; step++) {
        char *got = sse_run(TRANSCRIPT, step, &rc);
        assert_int_equal(rc, 0);
        assert_string_equal(got, whole);
        free(got);
    }
    free(whole);
}

static void test_sse_last_event_at_end(void **state)
{
    (void)state;
    /* without any line end: nothing before the end, then the event */
    char *got = sse_feed_only("data: tail");
    assert_string_equal(got, "");
    free(got);
    expect_sse("data: tail", "[]{tail}\n");
    /* with a line end but no blank line */
    got = sse_feed_only("event: x\ndata: tail\n");
    assert_string_equal(got, "");
    free(got);
    expect_sse("event: x\ndata: tail\n", "[x]{tail}\n");
    expect_sse("data: a\n\ndata: tail\r", "[]{a}\n[]{tail}\n");
    /* only an event name at the end: no event */
    expect_sse("data: a\n\nevent: x", "[]{a}\n");
    /* a comment at the end: no event */
    expect_sse(": bye", "");

    /* hx_sse_end delivers once: calling it again gives nothing */
    hx_sse sp;
    rec r;
    rec_init(&r);
    hx_sse_init(&sp);
    assert_int_equal(hx_sse_feed(&sp, "data: z", 7, sse_cb, &r), 0);
    assert_int_equal(hx_sse_end(&sp, sse_cb, &r), 0);
    assert_int_equal(hx_sse_end(&sp, sse_cb, &r), 0);
    assert_int_equal(r.calls, 1);
    assert_string_equal(rec_str(&r), "[]{z}\n");
    hx_sse_free(&sp);
    hx_buf_free(&r.log);
}

/* Feeds "data: " + n 'x' + "\n\n" in one piece or in 64 KiB pieces. */
static int sse_big(size_t n, size_t piece, int *calls, size_t *got_len)
{
    size_t len = 6 + n + 2;
    char *s = malloc(len);
    assert_non_null(s);
    memcpy(s, "data: ", 6);
    memset(s + 6, 'x', n);
    memcpy(s + 6 + n, "\n\n", 2);
    hx_sse sp;
    rec r;
    rec_init(&r);
    hx_sse_init(&sp);
    int rc = 0;
    if (piece == 0)
        piece = len;
    for (size_t i = 0; rc == 0 && i < len; i += piece)
        rc = hx_sse_feed(&sp, s + i, len - i < piece ? len - i : piece, sse_cb, &r);
    if (rc == 0)
        rc = hx_sse_end(&sp, sse_cb, &r);
    *calls = r.calls;
    /* log is "[]{" + data + "}\n" */
    *got_len = r.log.len >= 5 ? r.log.len - 5 : 0;
    hx_sse_free(&sp);
    hx_buf_free(&r.log);
    free(s);
    return rc;
}

static void test_sse_too_large(void **state)
{
    (void)state;
    int calls;
    size_t got;
    /* just under the limit works, whole or in pieces */
    assert_int_equal(sse_big(HX_STREAM_EVENT_MAX - 1024, 0, &calls, &got), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(got, HX_STREAM_EVENT_MAX - 1024);
    assert_int_equal(sse_big(HX_STREAM_EVENT_MAX - 1024, 65536, &calls, &got), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(got, HX_STREAM_EVENT_MAX - 1024);
    /* over it fails, whole or in pieces, and nothing is delivered */
    assert_int_equal(sse_big(HX_STREAM_EVENT_MAX + 1, 0, &calls, &got), -1);
    assert_int_equal(calls, 0);
    assert_int_equal(sse_big(HX_STREAM_EVENT_MAX + 1, 65536, &calls, &got), -1);
    assert_int_equal(calls, 0);

    /* many small data lines adding up to more than the limit */
    hx_sse sp;
    rec r;
    rec_init(&r);
    hx_sse_init(&sp);
    size_t linelen = 64 * 1024;
    char *line = malloc(linelen + 7);
    assert_non_null(line);
    memcpy(line, "data: ", 6);
    memset(line + 6, 'y', linelen);
    line[6 + linelen] = '\n';
    int rc = 0;
    size_t fed = 0;
    while (rc == 0 && fed <= HX_STREAM_EVENT_MAX + linelen) {
        rc = hx_sse_feed(&sp, line, linelen + 7, sse_cb, &r);
        fed += linelen + 1;
    }
    assert_int_equal(rc, -1);
    assert_int_equal(r.calls, 0);
    free(line);
    hx_sse_free(&sp);
    hx_buf_free(&r.log);

    /* a partial line that never ends is bounded too */
    rec_init(&r);
    hx_sse_init(&sp);
    char chunk[4096];
    memset(chunk, 'z', sizeof chunk);
    rc = hx_sse_feed(&sp, "data: ", 6, sse_cb, &r);
    for (size_t i = 0; rc == 0 && i < HX_STREAM_EVENT_MAX / sizeof chunk + 2; i++)
        rc = hx_sse_feed(&sp, chunk, sizeof chunk, sse_cb, &r);
    assert_int_equal(rc, -1);
    assert_int_equal(r.calls, 0);
    hx_sse_free(&sp);
    hx_buf_free(&r.log);
}

static void test_sse_callback_stops(void **state)
{
    (void)state;
    const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    int stops[] = {-1, 1, 42};
    for (size_t k = 0; k < sizeof stops / sizeof stops[0]; k++) {
        hx_sse sp;
        rec r;
        rec_init(&r);
        r.stop_at = 2;
        r.stop_rc = stops[k];
        hx_sse_init(&sp);
        assert_int_equal(hx_sse_feed(&sp, in, strlen(in), sse_cb, &r), -1);
        assert_int_equal(r.calls, 2);
        assert_string_equal(rec_str(&r), "[]{1}\n[]{2}\n");
        hx_sse_free(&sp);
        hx_buf_free(&r.log);
    }
    /* also when the stopping event was assembled from a partial line */
    hx_sse sp;
    rec r;
    rec_init(&r);
    r.stop_at = 1;
    hx_sse_init(&sp);
    assert_int_equal(hx_sse_feed(&sp, "data: a", 7, sse_cb, &r), 0);
    assert_int_equal(hx_sse_feed(&sp, "b\n\ndata: c\n\n", 12, sse_cb, &r), -1);
    assert_int_equal(r.calls, 1);
    assert_string_equal(rec_str(&r), "[]{ab}\n");
    hx_sse_free(&sp);
    hx_buf_free(&r.log);
    /* and from hx_sse_end */
    rec_init(&r);
    r.stop_at = 1;
    hx_sse_init(&sp);
    assert_int_equal(hx_sse_feed(&sp, "data: last", 10, sse_cb, &r), 0);
    assert_int_equal(hx_sse_end(&sp, sse_cb, &r), -1);
    assert_int_equal(r.calls, 1);
    hx_sse_free(&sp);
    hx_buf_free(&r.log);
}

/* A callback that allocates nothing (for the allocation-failure sweep). */
static int count_cb(void *ud, const char *event, const char *data, size_t len)
{
    (void)event;
    (void)data;
    (void)len;
    if (ud)
        (*(int *)ud)++;
    return 0;
}

static int sse_alloc_run(void)
{
    hx_sse sp;
    int calls = 0;
    hx_sse_init(&sp);
    /* partial lines force the line buffer to allocate */
    if (hx_sse_feed(&sp, "event: e\ndata: a", 16, count_cb, &calls) == 0 &&
        hx_sse_feed(&sp, "bc\ndata: d\n\ndata: e", 19, count_cb, &calls) == 0)
        (void)hx_sse_end(&sp, count_cb, &calls);
    hx_sse_free(&sp);
    return calls;
}

static void test_sse_alloc_failures(void **state)
{
    (void)state;
    unsigned long before = hx_alloc_count();
    assert_int_equal(sse_alloc_run(), 2);
    unsigned long total = hx_alloc_count() - before;
    assert_true(total > 0);
    for (unsigned long n = 1; n <= total; n++) {
        hx_alloc_fail_at(n, 1);
        assert_true(sse_alloc_run() < 2);
        hx_alloc_fail_at(0, 0);
    }
    /* a partial line that cannot be buffered is an error */
    hx_sse sp;
    hx_sse_init(&sp);
    hx_alloc_fail_at(1, 1);
    int rc = hx_sse_feed(&sp, "data: partial", 13, count_cb, NULL);
    hx_alloc_fail_at(0, 0);
    assert_int_equal(rc, -1);
    hx_sse_free(&sp);
}

/* ---- NDJSON ---------------------------------------------------------------- */

static char *nd_run_cuts(const char *s, size_t len, const size_t *cuts, size_t ncuts, int *rc_out)
{
    hx_ndjson nd;
    rec r;
    rec_init(&r);
    hx_ndjson_init(&nd);
    size_t pos = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = hx_ndjson_feed(&nd, s + pos, end - pos, nd_cb, &r);
        pos = end;
    }
    if (rc == 0)
        rc = hx_ndjson_end(&nd, nd_cb, &r);
    hx_ndjson_free(&nd);
    if (rc_out)
        *rc_out = rc;
    char *out = strdup(rec_str(&r));
    hx_buf_free(&r.log);
    return out;
}

static void expect_nd(const char *in, const char *want)
{
    size_t len = strlen(in);
    int rc;
    char *got = nd_run_cuts(in, len, NULL, 0, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, want);
    free(got);
    for (size_t i = 0; i <= len; i++) {
        got = nd_run_cuts(in, len, &i, 1, &rc);
        assert_int_equal(rc, 0);
        if (strcmp(got, want) != 0)
            fail_msg("ndjson cut at %zu:\n%s\nwant:\n%s", i, got, want);
        free(got);
    }
}

static void test_ndjson_lines(void **state)
{
    (void)state;
    expect_nd("{\"a\":1}\n{\"b\":2}\n", "<{\"a\":1}>\n<{\"b\":2}>\n");
    expect_nd("{\"a\":1}\r\n{\"b\":2}\r\n", "<{\"a\":1}>\n<{\"b\":2}>\n");
    /* blank lines (empty, CR only, spaces) are skipped */
    expect_nd("\n\n{\"a\":1}\n\r\n   \n\n{\"b\":2}\n\n", "<{\"a\":1}>\n<{\"b\":2}>\n");
    /* last line without a newline is delivered by the end */
    expect_nd("{\"a\":1}\n{\"done\":true}", "<{\"a\":1}>\n<{\"done\":true}>\n");
    expect_nd("{\"done\":true}\r", "<{\"done\":true}>\n");
    expect_nd("", "");
    /* a CR inside a line is kept (only a trailing one is a line end) */
    expect_nd("a\rb\n", "<a\rb>\n");
}

static void test_ndjson_every_boundary(void **state)
{
    (void)state;
    const char *in = "{\"model\":\"llama3\",\"message\":{\"content\":\"H\xc3\xa9\"},\"done\":false}\r\n"
                     "\n"
                     "{\"message\":{\"content\":\"llo\\n\"},\"done\":false}\n"
                     "  \r\n"
                     "{\"done\":true,\"eval_count\":5}";
    const char *want = "<{\"model\":\"llama3\",\"message\":{\"content\":\"H\xc3\xa9\"},\"done\":false}>\n"
                       "<{\"message\":{\"content\":\"llo\\n\"},\"done\":false}>\n"
                       "<{\"done\":true,\"eval_count\":5}>\n";
    expect_nd(in, want);
    size_t len = strlen(in);
    for (size_t i = 0; i <= len; i++)
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = {i, j};
            int rc;
            char *got = nd_run_cuts(in, len, cuts, 2, &rc);
            assert_int_equal(rc, 0);
            if (strcmp(got, want) != 0)
                fail_msg("ndjson cuts at %zu,%zu:\n%s", i, j, got);
            free(got);
        }
    /* byte by byte */
    size_t cuts[512];
    assert_true(len < 512);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    int rc;
    char *got = nd_run_cuts(in, len, cuts, len - 1, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, want);
    free(got);
}

static void test_ndjson_stop_and_limit(void **state)
{
    (void)state;
    hx_ndjson nd;
    rec r;
    rec_init(&r);
    r.stop_at = 1;
    hx_ndjson_init(&nd);
    assert_int_equal(hx_ndjson_feed(&nd, "a\nb\n", 4, nd_cb, &r), -1);
    assert_int_equal(r.calls, 1);
    assert_string_equal(rec_str(&r), "<a>\n");
    hx_ndjson_free(&nd);
    hx_buf_free(&r.log);

    /* stop from the end */
    rec_init(&r);
    r.stop_at = 1;
    r.stop_rc = 3;
    hx_ndjson_init(&nd);
    assert_int_equal(hx_ndjson_feed(&nd, "tail", 4, nd_cb, &r), 0);
    assert_int_equal(hx_ndjson_end(&nd, nd_cb, &r), -1);
    assert_int_equal(r.calls, 1);
    hx_ndjson_free(&nd);
    hx_buf_free(&r.log);

    /* a line that never ends is bounded */
    rec_init(&r);
    hx_ndjson_init(&nd);
    char chunk[4096];
    memset(chunk, 'q', sizeof chunk);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < HX_STREAM_EVENT_MAX / sizeof chunk + 2; i++)
        rc = hx_ndjson_feed(&nd, chunk, sizeof chunk, nd_cb, &r);
    assert_int_equal(rc, -1);
    assert_int_equal(r.calls, 0);
    hx_ndjson_free(&nd);
    hx_buf_free(&r.log);
}

/* ---- util/json.c ------------------------------------------------------------ */

static char *jstr(const char *s, size_t len)
{
    hx_buf b;
    hx_buf_init(&b, 0);
    assert_int_equal(hx_json_str(&b, s, len), 0);
    char *out = strdup(b.data);
    hx_buf_free(&b);
    return out;
}

static void expect_json(const char *s, size_t len, const char *want)
{
    char *got = jstr(s, len);
    assert_string_equal(got, want);
    free(got);
}

static void test_json_escapes(void **state)
{
    (void)state;
    expect_json("", 0, "\"\"");
    expect_json("plain", 5, "\"plain\"");
    expect_json("a\"b", 3, "\"a\\\"b\"");
    expect_json("a\\b", 3, "\"a\\\\b\"");
    expect_json("\"\\\"", 3, "\"\\\"\\\\\\\"\"");
    expect_json("l1\nl2\r\tx", 8, "\"l1\\nl2\\r\\tx\"");
    expect_json("\x01", 1, "\"\\u0001\"");
    expect_json("\x08\x0c", 2, "\"\\u0008\\u000c\"");
    expect_json("\x1f", 1, "\"\\u001f\"");
    expect_json("a\x1b[0m", 5, "\"a\\u001b[0m\"");
    /* DEL and slash are not escaped */
    expect_json("\x7f/", 2, "\"\x7f/\"");
    /* UTF-8 passes through byte for byte */
    const char *u = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8";
    char want[64];
    snprintf(want, sizeof want, "\"%s\"", u);
    expect_json(u, strlen(u), want);
    /* invalid UTF-8 too */
    expect_json("\xff\xc3", 2, "\"\xff\xc3\"");
    /* embedded NUL with an explicit length */
    expect_json("a\0b", 3, "\"a\\u0000b\"");
    /* the length is honoured: bytes after it are not read */
    expect_json("abcdef", 3, "\"abc\"");

    hx_buf b;
    hx_buf_init(&b, 0);
    assert_int_equal(hx_json_cstr(&b, NULL), 0);
    assert_int_equal(hx_json_cstr(&b, ","), 0);
    assert_int_equal(hx_json_cstr(&b, "q\""), 0);
    assert_string_equal(b.data, "null\",\"\"q\\\"\"");
    hx_buf_free(&b);
}

/* Every byte value (and a NUL) round-trips through a JSON parser. */
static void test_json_roundtrip(void **state)
{
    (void)state;
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    hx_buf b;
    hx_buf_init(&b, 0);
    /* 0x00..0x7f: plain ASCII and control characters */
    assert_int_equal(hx_json_str(&b, all, 128), 0);
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, b.data, (int)b.len);
    assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
    assert_non_null(o);
    assert_true(json_object_is_type(o, json_type_string));
    assert_int_equal(json_object_get_string_len(o), 128);
    assert_memory_equal(json_object_get_string(o), all, 128);
    json_object_put(o);
    json_tokener_free(tok);
    /* no raw control byte is left in the output */
    for (size_t i = 0; i < b.len; i++)
        assert_true((unsigned char)b.data[i] >= 0x20);
    hx_buf_free(&b);
}

static void test_json_alloc_failure(void **state)
{
    (void)state;
    const char *s = "x\"y\\z\n\x01 some longer text so that the buffer grows past its first size ......"
                    "................................................................................"
                    "................................................................................"
                    "................................................................................";
    for (unsigned long n = 1; n <= 4; n++) {
        hx_buf b;
        hx_buf_init(&b, 0);
        hx_alloc_fail_at(n, 1);
        int rc = hx_json_str(&b, s, strlen(s));
        hx_alloc_fail_at(0, 0);
        /* the first allocation always happens; growth may need more */
        if (n == 1)
            assert_int_equal(rc, -1);
        if (rc == 0) {
            char *want = jstr(s, strlen(s));
            assert_string_equal(b.data, want);
            free(want);
        }
        hx_buf_free(&b);
    }
    /* a bounded buffer: -1 when the literal does not fit */
    hx_buf b;
    hx_buf_init(&b, 8);
    assert_int_equal(hx_json_str(&b, "0123456789", 10), -1);
    hx_buf_free(&b);
    hx_buf_init(&b, 12);
    assert_int_equal(hx_json_str(&b, "0123456789", 10), 0);
    assert_string_equal(b.data, "\"0123456789\"");
    hx_buf_free(&b);
}

/* ---- re-framing for the relay (hx_sse_write_data) ------------------------------ */

/* Splits `in` at every byte boundary; each event is re-emitted with
 * hx_sse_write_data into `out`. */
typedef struct {
    hx_buf out;
    int json;
} reframe;

static int reframe_cb(void *ud, const char *event, const char *data, size_t len)
{
    (void)event;
    reframe *f = ud;
    return hx_sse_write_data(&f->out, data, len, f->json);
}

static void reframe_run(const char *in, size_t cut, int json, hx_buf *out)
{
    reframe f = {.json = json};
    hx_buf_init(&f.out, 1 << 20);
    hx_sse sp;
    hx_sse_init(&sp);
    assert_int_equal(hx_sse_feed(&sp, in, cut, reframe_cb, &f), 0);
    assert_int_equal(hx_sse_feed(&sp, in + cut, strlen(in) - cut, reframe_cb, &f), 0);
    assert_int_equal(hx_sse_end(&sp, reframe_cb, &f), 0);
    hx_sse_free(&sp);
    *out = f.out;
}

/* Several data lines in one event: the relay used to pass the joined value
 * on with a raw newline, so the client saw "data: {..." and a stray line. */
static void test_sse_reframe_multiline_json(void **state)
{
    (void)state;
    const char *in = "data: {\"choices\":\ndata: [{\"delta\":{\"content\":\"a b\"}}]}\n\n"
                     "data: [DONE]\n\n";
    for (size_t cut = 0; cut <= strlen(in); cut++) {
        hx_buf out;
        reframe_run(in, cut, 1, &out);
        assert_string_equal(out.data, "data: {\"choices\": [{\"delta\":{\"content\":\"a b\"}}]}\n\n"
                                      "data: [DONE]\n\n");
        /* every line of the output is a data line or the blank separator */
        int lines = 0;
        for (const char *l = out.data; *l; l = strchr(l, '\n') + 1, lines++)
            assert_true(l[0] == '\n' || strncmp(l, "data: ", 6) == 0);
        assert_int_equal(lines, 4);
        /* and the payload is valid JSON */
        const char *js = out.data + 6;
        size_t jl = (size_t)(strchr(js, '\n') - js);
        assert_true(hx_json_valid(js, jl));
        hx_buf_free(&out);
    }
}

/* Without the JSON promise, the lines come back as separate data lines, so
 * an SSE parser rebuilds exactly the joined value. */
static void test_sse_reframe_multiline_text(void **state)
{
    (void)state;
    const char *in = "event: x\ndata: one\ndata:\ndata: three\n\n";
    for (size_t cut = 0; cut <= strlen(in); cut++) {
        hx_buf out;
        reframe_run(in, cut, 0, &out);
        assert_string_equal(out.data, "data: one\ndata: \ndata: three\n\n");
        int rc = 0;
        char *log = sse_run_cuts(out.data, out.len, NULL, 0, &rc);
        assert_int_equal(rc, 0);
        assert_string_equal(log, "[]{one\n\nthree}\n");
        free(log);
        hx_buf_free(&out);
    }
}

static void test_sse_reframe_bounded(void **state)
{
    (void)state;
    hx_buf out;
    hx_buf_init(&out, 32);
    assert_int_equal(hx_sse_write_data(&out, "a\nb", 3, 0), 0); /* 17 bytes */
    assert_int_equal(hx_sse_write_data(&out, "0123456789", 10, 1), -1);
    hx_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_fields),
        cmocka_unit_test(test_sse_multiline_data),
        cmocka_unit_test(test_sse_comments),
        cmocka_unit_test(test_sse_line_endings),
        cmocka_unit_test(test_sse_every_boundary),
        cmocka_unit_test(test_sse_last_event_at_end),
        cmocka_unit_test(test_sse_too_large),
        cmocka_unit_test(test_sse_callback_stops),
        cmocka_unit_test(test_sse_alloc_failures),
        cmocka_unit_test(test_sse_reframe_multiline_json),
        cmocka_unit_test(test_sse_reframe_multiline_text),
        cmocka_unit_test(test_sse_reframe_bounded),
        cmocka_unit_test(test_ndjson_lines),
        cmocka_unit_test(test_ndjson_every_boundary),
        cmocka_unit_test(test_ndjson_stop_and_limit),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_alloc_failure),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
