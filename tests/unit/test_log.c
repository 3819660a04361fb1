#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obs/log.h"

/* Captures what the logger writes through a temp file. */
static FILE *cap;

static int setup(void **state)
{
    (void)state;
    cap = tmpfile();
    hx_log_set_fd(fileno(cap));
    hx_log_set_level(HX_LOG_DEBUG);
    hx_log_set_json(true);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hx_log_set_fd(-1);
    fclose(cap);
    return 0;
}

static char *captured(void)
{
    static char buf[65536];
    fflush(cap);
    long n = ftell(cap);
    rewind(cap);
    size_t got = fread(buf, 1, sizeof buf - 1, cap);
    buf[got] = '\0';
    rewind(cap);
    (void)!ftruncate(fileno(cap), 0);
    (void)n;
    return buf;
}

static void test_json_line_has_fields(void **state)
{
    (void)state;
    HX_LOG_INFO("listening", HX_F_STR("host", "0.0.0.0"), HX_F_INT("port", 8080), HX_F_BOOL("tls", false),
                HX_F_DBL("ratio", 0.5));
    char *out = captured();
    assert_non_null(strchr(out, '\n'));
    json_object *o = json_tokener_parse(out);
    assert_non_null(o);
    json_object *v;
    assert_true(json_object_object_get_ex(o, "ts", &v));
    assert_true(json_object_object_get_ex(o, "level", &v));
    assert_string_equal(json_object_get_string(v), "info");
    assert_true(json_object_object_get_ex(o, "msg", &v));
    assert_string_equal(json_object_get_string(v), "listening");
    assert_true(json_object_object_get_ex(o, "port", &v));
    assert_int_equal(json_object_get_int(v), 8080);
    assert_true(json_object_object_get_ex(o, "tls", &v));
    assert_false(json_object_get_boolean(v));
    json_object_put(o);
}

static void test_level_filter(void **state)
{
    (void)state;
    hx_log_set_level(HX_LOG_WARN);
    HX_LOG_INFO("hidden", HX_F_INT("x", 1));
    HX_LOG_DEBUG("hidden too", HX_F_INT("x", 1));
    assert_string_equal(captured(), "");
    HX_LOG_ERROR("shown", HX_F_INT("x", 1));
    assert_non_null(strstr(captured(), "\"shown\""));
    hx_log_set_level(HX_LOG_DEBUG);
}

static void test_text_format(void **state)
{
    (void)state;
    hx_log_set_json(false);
    HX_LOG_WARN("slow upstream", HX_F_STR("provider", "ollama"), HX_F_STR("note", "has space"));
    hx_log_set_json(true);
    char *out = captured();
    assert_null(strchr(out, '{'));
    assert_non_null(strstr(out, " WARN slow upstream provider=ollama note=\"has space\""));
}

static void test_escaping_and_secret(void **state)
{
    (void)state;
    HX_LOG_INFO("quote\"and\nnewline", HX_F_STR("ctl", "a\x01z"), HX_F_SECRET("api_key"));
    char *out = captured();
    json_object *o = json_tokener_parse(out);
    assert_non_null(o); /* still one valid JSON object */
    json_object *v;
    assert_true(json_object_object_get_ex(o, "ctl", &v));
    assert_string_equal(json_object_get_string(v), "a\x01z");
    assert_true(json_object_object_get_ex(o, "api_key", &v));
    assert_string_equal(json_object_get_string(v), "[redacted]");
    json_object_put(o);
}

static void test_every_escape_and_int(void **state)
{
    (void)state;
    HX_LOG_INFO("m", HX_F_STR("s", "a\"b\\c\nd\re\tf\x1f\x7f\xc3\xa9g"), HX_F_INT("neg", -12345),
                HX_F_INT("big", INT64_MAX), HX_F_STR("empty", ""));
    char *out = captured();
    assert_non_null(strstr(out, "\"s\":\"a\\\"b\\\\c\\nd\\re\\tf\\u001f\x7f\xc3\xa9g\""));
    assert_non_null(strstr(out, "\"neg\":-12345,"));
    assert_non_null(strstr(out, "\"big\":9223372036854775807,"));
    assert_non_null(strstr(out, "\"empty\":\"\"}"));
    /* the timestamp: date, time and three digits of milliseconds */
    const char *ts = strstr(out, "\"ts\":\"");
    assert_non_null(ts);
    assert_int_equal(ts[6 + 23], 'Z');
    assert_int_equal(ts[6 + 19], '.');
}

static void test_long_line_is_cut_but_valid(void **state)
{
    (void)state;
    char *big = malloc(20000);
    memset(big, 'x', 19999);
    big[19999] = '\0';
    HX_LOG_INFO("big", HX_F_STR("v", big));
    free(big);
    char *out = captured();
    assert_true(strlen(out) < 9000);
    assert_non_null(strstr(out, "\"truncated\":true}"));
}

static void test_secret_names(void **state)
{
    (void)state;
    assert_true(hx_log_is_secret_name("Authorization"));
    assert_true(hx_log_is_secret_name("X-API-Key"));
    assert_true(hx_log_is_secret_name("api_key"));
    assert_true(hx_log_is_secret_name("refresh_token"));
    assert_true(hx_log_is_secret_name("PASSWORD"));
    assert_false(hx_log_is_secret_name("content-type"));
    assert_false(hx_log_is_secret_name("model"));
    char out[32];
    assert_string_equal(hx_log_redact("authorization", "Bearer sk-1", out, sizeof out), "[redacted]");
    assert_string_equal(hx_log_redact("accept", "text/plain", out, sizeof out), "text/plain");
}

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(hx_log_level_parse("debug"), HX_LOG_DEBUG);
    assert_int_equal(hx_log_level_parse("error"), HX_LOG_ERROR);
    assert_int_equal(hx_log_level_parse("loud"), -1);
    assert_int_equal(hx_log_level_parse(NULL), -1);
}

/* A sink nobody reads (a full pipe): logging returns at once, the lines
 * past the queue are counted, and once the sink drains the loss is
 * reported and everything queued is written by stop. */
static void test_async_full_sink_drops_and_reports(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    hx_log_set_fd(p[1]);
    hx_log_set_level(HX_LOG_INFO);
    char err[128];
    assert_int_equal(hx_log_start(NULL, err, sizeof err), 0);
    uint64_t before = hx_log_dropped_total();
    char big[1024];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* ~4 MiB of lines: the 64 KiB pipe and the 2 x 1 MiB queue overflow. */
    for (int i = 0; i < 4000; i++)
        HX_LOG_INFO("filler", HX_F_STR("v", big), HX_F_INT("i", i));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 5); /* never blocked on the sink */
    assert_true(hx_log_dropped_total() > before);
    assert_false(hx_log_flush(100)); /* still stuck */

    /* Drain in this thread while stop writes the rest. */
    int fl = fcntl(p[0], F_GETFL);
    fcntl(p[0], F_SETFL, fl | O_NONBLOCK);
    size_t room = 8u << 20, got = 0;
    char *all = malloc(room + 1);
    assert_non_null(all);
    for (int spins = 0; spins < 20000; spins++) {
        ssize_t n = read(p[0], all + got, room - got);
        if (n > 0) {
            got += (size_t)n;
            spins = 0;
        } else if (hx_log_flush(1)) {
            break;
        }
    }
    hx_log_stop(1000);
    for (;;) { /* make room: the next line is written inline */
        ssize_t n = read(p[0], all + got, room - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    HX_LOG_INFO("after-stop", HX_F_INT("n", 1)); /* stopped cleanly: synchronous again, not dropped */
    close(p[1]);
    hx_log_set_fd(-1);
    for (;;) {
        ssize_t n = read(p[0], all + got, room - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(p[0]);
    all[got] = '\0';
    assert_non_null(strstr(all, "\"event\":\"log_dropped\""));
    assert_non_null(strstr(all, "\"i\":0}"));
    assert_non_null(strstr(all, "after-stop"));
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_line_has_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping_and_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_escape_and_int, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_is_cut_but_valid, setup, teardown),
        cmocka_unit_test(test_secret_names),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_async_full_sink_drops_and_reports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
