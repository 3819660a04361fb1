#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "obs/log.h"
#include "obs/metrics.h"
#include "util/alloc.h"

static hx_buf out;

static const char *render(void)
{
    hx_buf_free(&out);
    hx_buf_init(&out, 0);
    assert_int_equal(hx_metrics_render(&out), 0);
    return out.data;
}

static void assert_has(const char *text, const char *want)
{
    if (strstr(text, want) == NULL)
        fail_msg("missing %s in:\n%s", want, text);
}

static int setup(void **state)
{
    (void)state;
    hx_buf_init(&out, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hx_alloc_fail_at(0, 0);
    hx_metrics_shutdown();
    hx_buf_free(&out);
    return 0;
}

static int reg_counter(const char *name, const char *const *labels, size_t max_series)
{
    hx_metric_def d = {.name = name, .help = "h", .type = HX_METRIC_COUNTER,
                       .labels = labels, .max_series = max_series};
    return hx_metrics_register(&d);
}

static const char *const AB[] = {"a", "b", NULL};

static void test_series_interning(void **state)
{
    (void)state;
    int f = reg_counter("t_total", AB, 0);
    assert_int_equal(f, 0);
    int s1 = hx_metrics_series(f, "x", "y");
    int s2 = hx_metrics_series(f, "x", "z");
    assert_true(s1 >= 0 && s2 >= 0 && s1 != s2);
    assert_int_equal(hx_metrics_series(f, "x", "y"), s1);
    /* "x","y" vs "xy","" must not collide. */
    int s3 = hx_metrics_series(f, "xy", "");
    assert_true(s3 != s1 && s3 != s2);
    hx_log_set_level(HX_LOG_ERROR + 1); /* quiet: these log on purpose */
    assert_int_equal(hx_metrics_series(f, "x"), -1);
    assert_int_equal(hx_metrics_series(f + 1, "x", "y"), -1);
    hx_log_set_level(HX_LOG_INFO);
    hx_metrics_inc(f, s1, 3);
    hx_metrics_inc(f, s1, 2);
    hx_metrics_inc(f, -1, 7); /* ignored */
    hx_metrics_gauge_add(f, s1, 1); /* wrong kind: ignored */
    const char *t = render();
    assert_has(t, "# HELP t_total h\n# TYPE t_total counter\n");
    assert_has(t, "t_total{a=\"x\",b=\"y\"} 5\n");
    assert_has(t, "t_total{a=\"x\",b=\"z\"} 0\n");
    assert_has(t, "t_total{a=\"xy\",b=\"\"} 0\n");
}

static void test_overflow_series(void **state)
{
    (void)state;
    int f = reg_counter("o_total", AB, 2);
    assert_int_equal(hx_metrics_series(f, "1", "1"), 0);
    assert_int_equal(hx_metrics_series(f, "2", "2"), 1);
    int ov = hx_metrics_series(f, "3", "3");
    assert_int_equal(ov, 2);
    assert_int_equal(hx_metrics_series(f, "4", "4"), ov);
    assert_int_equal(hx_metrics_series(f, "other", "other"), ov);
    assert_int_equal(hx_metrics_series(f, "1", "1"), 0);
    hx_metrics_inc(f, ov, 4);
    hx_metrics_inc(f, hx_metrics_series(f, "5", "5"), 1);
    const char *t = render();
    assert_has(t, "o_total{a=\"other\",b=\"other\"} 5\n");
    assert_null(strstr(t, "a=\"3\""));
}

static void test_no_overflow_line_until_used(void **state)
{
    (void)state;
    int f = reg_counter("n_total", AB, 2);
    hx_metrics_inc(f, hx_metrics_series(f, "1", "1"), 1);
    assert_null(strstr(render(), "other"));
}

static void test_escaping(void **state)
{
    (void)state;
    hx_metric_def d = {.name = "e_total", .help = "back\\slash\nnew \"q\"", .type = HX_METRIC_COUNTER,
                       .labels = (const char *const[]){"v", NULL}};
    int f = hx_metrics_register(&d);
    assert_true(f >= 0);
    hx_metrics_inc(f, hx_metrics_series(f, "a\\b\"c\nd"), 1);
    hx_metrics_inc(f, hx_metrics_series(f, "bad\xff\xc3 utf8"), 1);
    hx_metrics_inc(f, hx_metrics_series(f, (const char *)NULL), 1);
    char big[300];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\0';
    hx_metrics_inc(f, hx_metrics_series(f, big), 1);
    const char *t = render();
    assert_has(t, "# HELP e_total back\\\\slash\\nnew \"q\"\n");
    assert_has(t, "e_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
    assert_has(t, "e_total{v=\"bad?? utf8\"} 1\n");
    assert_has(t, "e_total{v=\"\"} 1\n");
    char want[HX_METRICS_MAX_VALUE_LEN + 32];
    snprintf(want, sizeof want, "e_total{v=\"%.*s\"} 1\n", HX_METRICS_MAX_VALUE_LEN, big);
    assert_has(t, want);
}

static void test_histogram_cumulative(void **state)
{
    (void)state;
    static const double b[] = {1, 2, 5};
    hx_metric_def d = {.name = "h_seconds", .help = "h", .type = HX_METRIC_HISTOGRAM,
                       .labels = (const char *const[]){"r", NULL}, .buckets = b, .nbuckets = 3};
    int f = hx_metrics_register(&d);
    int s = hx_metrics_series(f, "x");
    const double obs[] = {0.5, 1, 1.5, 3, 10, 0.25};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        hx_metrics_observe(f, s, obs[i]);
    const char *t = render();
    assert_has(t, "# TYPE h_seconds histogram\n");
    assert_has(t, "h_seconds_bucket{r=\"x\",le=\"1\"} 3\n"
                  "h_seconds_bucket{r=\"x\",le=\"2\"} 4\n"
                  "h_seconds_bucket{r=\"x\",le=\"5\"} 5\n"
                  "h_seconds_bucket{r=\"x\",le=\"+Inf\"} 6\n"
                  "h_seconds_sum{r=\"x\"} 16.25\n"
                  "h_seconds_count{r=\"x\"} 6\n");
}

static void test_histogram_no_labels_fraction_bounds(void **state)
{
    (void)state;
    static const double b[] = {0.005, 0.1};
    hx_metric_def d = {.name = "w_seconds", .help = "h", .type = HX_METRIC_HISTOGRAM,
                       .buckets = b, .nbuckets = 2};
    int f = hx_metrics_register(&d);
    assert_int_equal(hx_metrics_series(f), 0);
    hx_metrics_observe(f, 0, 0.05);
    const char *t = render();
    assert_has(t, "w_seconds_bucket{le=\"0.005\"} 0\nw_seconds_bucket{le=\"0.1\"} 1\n"
                  "w_seconds_bucket{le=\"+Inf\"} 1\nw_seconds_sum 0.05\nw_seconds_count 1\n");
}

static void test_gauges(void **state)
{
    (void)state;
    hx_metric_def d = {.name = "g", .help = "h", .type = HX_METRIC_GAUGE};
    int f = hx_metrics_register(&d);
    hx_metrics_gauge_inc(f, 0);
    hx_metrics_gauge_inc(f, 0);
    hx_metrics_gauge_dec(f, 0);
    assert_has(render(), "\ng 1\n");
    hx_metrics_gauge_set(f, 0, 42.5);
    assert_has(render(), "\ng 42.5\n");
    hx_metrics_gauge_add(f, 0, -2.5);
    assert_has(render(), "\ng 40\n");
}

static double read_fn(void *ud) { return *(double *)ud; }

static void test_gauge_callback(void **state)
{
    (void)state;
    static double v = 7;
    hx_metric_def d = {.name = "cb", .help = "h", .type = HX_METRIC_GAUGE, .value_fn = read_fn,
                       .value_ud = &v};
    int f = hx_metrics_register(&d);
    assert_true(f >= 0);
    hx_metrics_gauge_add(f, 0, 100); /* ignored: the callback owns the value */
    assert_has(render(), "# TYPE cb gauge\ncb 7\n");
    v = 0.125;
    assert_has(render(), "\ncb 0.125\n");
}

static void test_register_rejects(void **state)
{
    (void)state;
    hx_log_set_level(HX_LOG_ERROR + 1); /* quiet: these log on purpose */
    static const double bad[] = {1, 1};
    static const double ok[] = {1};
    const hx_metric_def defs[] = {
        {.name = "no_suffix", .help = "h", .type = HX_METRIC_COUNTER},
        {.name = "g_total", .help = "h", .type = HX_METRIC_GAUGE},
        {.name = "1bad", .help = "h", .type = HX_METRIC_GAUGE},
        {.name = "h", .help = "h", .type = HX_METRIC_HISTOGRAM, .buckets = bad, .nbuckets = 2},
        {.name = "h", .help = "h", .type = HX_METRIC_HISTOGRAM},
        {.name = "h", .help = "h", .type = HX_METRIC_HISTOGRAM, .buckets = ok, .nbuckets = 1,
         .labels = (const char *const[]){"le", NULL}},
        {.name = "x_total", .help = "h", .type = HX_METRIC_COUNTER,
         .labels = (const char *const[]){"a", "a", NULL}},
        {.name = "x_total", .help = "h", .type = HX_METRIC_COUNTER,
         .labels = (const char *const[]){"__a", NULL}},
        {.name = "x", .help = "h", .type = HX_METRIC_GAUGE, .value_fn = read_fn,
         .labels = (const char *const[]){"a", NULL}},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        assert_int_equal(hx_metrics_register(&defs[i]), -1);
    assert_int_equal(reg_counter("d_total", NULL, 0), 0);
    assert_int_equal(reg_counter("d_total", NULL, 0), -1);
    hx_log_set_level(HX_LOG_INFO);
}

enum { NTHREADS = 8, NITER = 20000 };

static void *worker(void *arg)
{
    int *ids = arg;
    for (int i = 0; i < NITER; i++) {
        hx_metrics_inc(ids[0], ids[1], 1);
        hx_metrics_gauge_add(ids[2], 0, 1);
        hx_metrics_observe(ids[3], 0, (i % 2) ? 0.5 : 2);
    }
    hx_metrics_gauge_add(ids[2], 0, -NITER / 2);
    return NULL;
}

static void test_threads_sum(void **state)
{
    (void)state;
    static const double b[] = {1};
    int ids[4];
    ids[0] = reg_counter("mt_total", (const char *const[]){"k", NULL}, 0);
    ids[1] = hx_metrics_series(ids[0], "v");
    ids[2] = hx_metrics_register(&(hx_metric_def){.name = "mt_g", .help = "h", .type = HX_METRIC_GAUGE});
    ids[3] = hx_metrics_register(&(hx_metric_def){.name = "mt_h", .help = "h",
                                                  .type = HX_METRIC_HISTOGRAM, .buckets = b,
                                                  .nbuckets = 1});
    pthread_t th[NTHREADS];
    /* Render while the workers write: sums only grow, never tear. */
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, ids), 0);
    for (int i = 0; i < 5; i++)
        render();
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    hx_metrics_inc(ids[0], ids[1], 1); /* and the main thread's own shard */
    const char *t = render();
    char want[128];
    snprintf(want, sizeof want, "mt_total{k=\"v\"} %d\n", NTHREADS * NITER + 1);
    assert_has(t, want);
    snprintf(want, sizeof want, "\nmt_g %d\n", NTHREADS * NITER / 2);
    assert_has(t, want);
    snprintf(want, sizeof want, "mt_h_bucket{le=\"1\"} %d\nmt_h_bucket{le=\"+Inf\"} %d\n"
             "mt_h_sum %d\nmt_h_count %d\n", NTHREADS * NITER / 2, NTHREADS * NITER,
             NTHREADS * NITER / 2 * 5 / 2, NTHREADS * NITER);
    assert_has(t, want);
}

static void test_render_empty(void **state)
{
    (void)state;
    const char *t = render();
    assert_has(t, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                  "# TYPE process_cpu_seconds_total counter\n");
    assert_has(t, "# TYPE process_resident_memory_bytes gauge\n");
    assert_has(t, "# TYPE process_virtual_memory_bytes gauge\n");
    assert_has(t, "# TYPE process_start_time_seconds gauge\n");
    assert_has(t, "# TYPE process_open_fds gauge\n");
    assert_has(t, "# TYPE process_max_fds gauge\n");
    /* Nothing but process_* lines. */
    for (const char *p = t; *p; p = strchr(p, '\n') + 1) {
        if (strncmp(p, "process_", 8) != 0 && strncmp(p, "# HELP process_", 15) != 0 &&
            strncmp(p, "# TYPE process_", 15) != 0)
            fail_msg("unexpected line: %.60s", p);
    }
}

static void good_collector(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    assert_int_equal(hx_metrics_write_family(w, "c_state", "State of \"x\".", HX_METRIC_GAUGE), 0);
    assert_int_equal(hx_metrics_write_sample(w, "c_state",
                                             (const char *const[]){"provider", "a\"b", NULL}, 2),
                     0);
    assert_int_equal(hx_metrics_write_sample(w, "c_statex", NULL, 1), -1);
    assert_int_equal(hx_metrics_write_sample(w, "c_state",
                                             (const char *const[]){"bad-name", "v", NULL}, 1),
                     -1);
    assert_int_equal(hx_metrics_write_sample(w, "c_state",
                                             (const char *const[]){"a", "1", "a", "2", NULL}, 1),
                     -1);
    /* Refused families drop their samples too. */
    assert_int_equal(hx_metrics_write_family(w, "c_state", "again", HX_METRIC_GAUGE), -1);
    assert_int_equal(hx_metrics_write_sample(w, "c_state", NULL, 1), -1);
    assert_int_equal(hx_metrics_write_family(w, "reg_total", "dup", HX_METRIC_COUNTER), -1);
    assert_int_equal(hx_metrics_write_family(w, "c_count", "x", HX_METRIC_COUNTER), -1);
    assert_int_equal(hx_metrics_write_family(w, "process_open_fds", "x", HX_METRIC_GAUGE), -1);
    assert_int_equal(hx_metrics_write_family(w, "bad name", "x", HX_METRIC_GAUGE), -1);
    assert_int_equal(hx_metrics_write_family(w, "c_h", "x", HX_METRIC_HISTOGRAM), 0);
    assert_int_equal(hx_metrics_write_sample(w, "c_h", NULL, 1), -1);
    assert_int_equal(hx_metrics_write_sample(w, "c_h_bucket", NULL, 1), -1); /* no le */
    assert_int_equal(hx_metrics_write_sample(w, "c_h_bucket",
                                             (const char *const[]){"le", "+Inf", NULL}, 1), 0);
    assert_int_equal(hx_metrics_write_sample(w, "c_h_sum", NULL, 0.5), 0);
    assert_int_equal(hx_metrics_write_sample(w, "c_h_count", NULL, 1), 0);
    assert_int_equal(hx_metrics_write_family(w, "c_h_sum", "x", HX_METRIC_GAUGE), -1);
}

static void second_collector(hx_metrics_writer *w, void *ud)
{
    /* Starts without a current family: a stray sample is refused. */
    assert_int_equal(hx_metrics_write_sample(w, "c_h_sum", NULL, 1), -1);
    hx_metrics_write_family(w, "c2", "h", HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "c2", NULL, *(double *)ud);
}

static void test_collectors(void **state)
{
    (void)state;
    hx_log_set_level(HX_LOG_ERROR);
    static double nan_value;
    nan_value = 0.0 / 0.0;
    assert_int_equal(reg_counter("reg_total", NULL, 0), 0);
    assert_int_equal(hx_metrics_add_collector(good_collector, NULL), 0);
    assert_int_equal(hx_metrics_add_collector(second_collector, &nan_value), 0);
    const char *t = render();
    hx_log_set_level(HX_LOG_INFO);
    assert_has(t, "# HELP c_state State of \"x\".\n# TYPE c_state gauge\n"
                  "c_state{provider=\"a\\\"b\"} 2\n# HELP c_h x\n# TYPE c_h histogram\n"
                  "c_h_bucket{le=\"+Inf\"} 1\nc_h_sum 0.5\nc_h_count 1\n");
    assert_has(t, "\nc2 NaN\n");
    /* Registered families first, then process, then collectors. */
    assert_true(strstr(t, "reg_total") < strstr(t, "process_open_fds"));
    assert_true(strstr(t, "process_open_fds") < strstr(t, "c_state"));
}

static void test_status_class(void **state)
{
    (void)state;
    assert_string_equal(hx_metrics_status_class(200), "2xx");
    assert_string_equal(hx_metrics_status_class(404), "4xx");
    assert_string_equal(hx_metrics_status_class(599), "5xx");
    assert_string_equal(hx_metrics_status_class(101), "1xx");
    assert_string_equal(hx_metrics_status_class(600), "other");
    assert_string_equal(hx_metrics_status_class(42), "other");
}

static void test_out_of_memory(void **state)
{
    (void)state;
    hx_log_set_level(HX_LOG_ERROR + 1);
    /* Each allocation in turn fails; every call copes and nothing leaks. */
    for (unsigned long n = 1; n < 40; n++) {
        hx_alloc_fail_at(n, 1);
        int f = reg_counter("m_total", AB, 0);
        int s = f >= 0 ? hx_metrics_series(f, "a", "b") : -1;
        hx_metrics_inc(f, s, 1);
        hx_buf b;
        hx_buf_init(&b, 0);
        hx_metrics_render(&b);
        hx_buf_free(&b);
        hx_alloc_fail_at(0, 0);
        hx_metrics_shutdown();
    }
    /* A full output buffer is an error, not a truncated exposition. */
    assert_int_equal(hx_metrics_init(), 0);
    hx_buf small;
    hx_buf_init(&small, 64);
    assert_int_equal(hx_metrics_render(&small), -1);
    hx_buf_free(&small);
    hx_log_set_level(HX_LOG_INFO);
}

static void test_reinit_after_shutdown(void **state)
{
    (void)state;
    assert_int_equal(hx_metrics_init(), 0);
    hx_log_set_level(HX_LOG_ERROR + 1);
    assert_int_equal(hx_metrics_init(), -1); /* only once */
    hx_log_set_level(HX_LOG_INFO);
    hx_metrics_gauge_add(HX_M_ACTIVE_REQUESTS, 0, 1);
    hx_metrics_shutdown();
    assert_int_equal(hx_metrics_init(), 0);
    /* The thread's old shard was freed: a new one starts from zero. */
    hx_metrics_gauge_add(HX_M_ACTIVE_REQUESTS, 0, 1);
    assert_has(render(), "\nhapax_active_requests 1\n");
}

static void extra_collector(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    const char *const providers[] = {"openai", "anth\"ropic\n"};
    hx_metrics_write_family(w, "hapax_circuit_breaker_state", "Breaker state.", HX_METRIC_GAUGE);
    for (int i = 0; i < 2; i++)
        hx_metrics_write_sample(w, "hapax_circuit_breaker_state",
                                (const char *const[]){"provider", providers[i], NULL}, i);
    hx_metrics_write_family(w, "hapax_queue_depth", "Requests waiting.", HX_METRIC_GAUGE);
    hx_metrics_write_sample(w, "hapax_queue_depth", NULL, 3);
}

/* Every family with data, checked by Prometheus's own parser and linter. */
static void exercise_catalog(void)
{
    const char *routes[] = {"/v1/chat/completions", "/v1/messages"};
    for (int i = 0; i < 2; i++) {
        int s = hx_metrics_series(HX_M_REQUEST_DURATION, routes[i], "POST",
                                  hx_metrics_status_class(200 + 100 * i * 3));
        hx_metrics_observe(HX_M_REQUEST_DURATION, s, 0.2 + i * 30);
        s = hx_metrics_series(HX_M_REQUEST_SIZE, routes[i]);
        hx_metrics_observe(HX_M_REQUEST_SIZE, s, 1500);
        s = hx_metrics_series(HX_M_RESPONSE_SIZE, routes[i]);
        hx_metrics_observe(HX_M_RESPONSE_SIZE, s, 2.5e6);
    }
    hx_metrics_gauge_add(HX_M_ACTIVE_REQUESTS, 0, 2);
    hx_metrics_inc(HX_M_ERRORS, hx_metrics_series(HX_M_ERRORS, "rate_limit_exceeded"), 1);
    hx_metrics_inc(HX_M_PROVIDER_REQUESTS,
                   hx_metrics_series(HX_M_PROVIDER_REQUESTS, "openai", "success"), 5);
    hx_metrics_inc(HX_M_PROVIDER_REQUESTS,
                   hx_metrics_series(HX_M_PROVIDER_REQUESTS, "ollama", "failure"), 1);
    hx_metrics_observe(HX_M_PROVIDER_LATENCY, hx_metrics_series(HX_M_PROVIDER_LATENCY, "openai"), 1.7);
    hx_metrics_inc(HX_M_PROVIDER_FAILURES,
                   hx_metrics_series(HX_M_PROVIDER_FAILURES, "ollama", "connection"), 1);
    hx_metrics_inc(HX_M_RETRIES, hx_metrics_series(HX_M_RETRIES, "ollama"), 2);
    hx_metrics_inc(HX_M_FAILOVERS, hx_metrics_series(HX_M_FAILOVERS, "ollama"), 1);
    hx_metrics_inc(HX_M_TOKENS, hx_metrics_series(HX_M_TOKENS, "openai", "gpt-4o", "prompt"), 12);
    hx_metrics_inc(HX_M_TOKENS, hx_metrics_series(HX_M_TOKENS, "openai", "gpt\\4\"o\n", "completion"), 30);
    hx_metrics_observe(HX_M_QUEUE_WAIT, 0, 0.003);
    hx_metrics_inc(HX_M_QUEUE_REJECTIONS, hx_metrics_series(HX_M_QUEUE_REJECTIONS, "full"), 1);
    hx_metrics_inc(HX_M_RATE_LIMIT_HITS, hx_metrics_series(HX_M_RATE_LIMIT_HITS, "tokens"), 1);
    hx_metrics_inc(HX_M_AUTH_FAILURES, hx_metrics_series(HX_M_AUTH_FAILURES, "invalid"), 1);
    hx_metrics_inc(HX_M_CONFIG_RELOADS, hx_metrics_series(HX_M_CONFIG_RELOADS, "success"), 1);
    hx_metrics_inc(HX_M_LOAD_SHED, hx_metrics_series(HX_M_LOAD_SHED, "memory"), 1);
    /* Push one family past its cap so the overflow series is checked too. */
    for (int i = 0; i < HX_METRICS_DEFAULT_MAX_SERIES + 5; i++) {
        char v[32];
        snprintf(v, sizeof v, "code_%d", i);
        hx_metrics_inc(HX_M_ERRORS, hx_metrics_series(HX_M_ERRORS, v), 1);
    }
}

static void test_promtool_accepts_catalog(void **state)
{
    (void)state;
    assert_int_equal(hx_metrics_init(), 0);
    assert_int_equal(hx_metrics_add_collector(extra_collector, NULL), 0);
    exercise_catalog();
    const char *t = render();
    /* 1 + 133 codes under a cap of 128: 6 land in the overflow series. */
    assert_has(t, "hapax_errors_total{type=\"other\"} 6\n");
    assert_has(t, "hapax_tokens_total{provider=\"openai\",model=\"gpt\\\\4\\\"o\\n\",kind=\"completion\"} 30\n");

    char path[] = "/tmp/hx_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, out.data, out.len), (ssize_t)out.len);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char report[4096] = "";
    size_t n = fread(report, 1, sizeof report - 1, p);
    report[n] = '\0';
    int status = pclose(p);
    unlink(path);
    if (status != 0 || n != 0)
        fail_msg("promtool check metrics (status %d) said:\n%s", status, report);
}

static void test_catalog_names(void **state)
{
    (void)state;
    assert_int_equal(hx_metrics_init(), 0);
    const char *t = render();
    const char *names[] = {
        "hapax_request_duration_seconds histogram", "hapax_request_size_bytes histogram",
        "hapax_response_size_bytes histogram", "hapax_active_requests gauge",
        "hapax_errors_total counter", "hapax_provider_requests_total counter",
        "hapax_provider_latency_seconds histogram", "hapax_provider_failures_total counter",
        "hapax_retries_total counter", "hapax_failovers_total counter", "hapax_tokens_total counter",
        "hapax_queue_wait_seconds histogram", "hapax_queue_rejections_total counter",
        "hapax_rate_limit_hits_total counter", "hapax_auth_failures_total counter",
        "hapax_config_reloads_total counter", "hapax_load_shed_total counter",
        "hapax_panic_requests_total counter",
        "hapax_retries_by_class_total counter", "hapax_failovers_by_class_total counter",
        "hapax_http2_goaway_total counter", "hapax_http3_early_data_total counter",
        "hapax_http3_events_total counter",
    };
    assert_int_equal(sizeof names / sizeof names[0], HX_M__COUNT);
    const char *prev = t;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "# TYPE %s\n", names[i]);
        const char *at = strstr(t, want);
        if (at == NULL || at < prev)
            fail_msg("%s missing or out of registration order", names[i]);
        prev = at;
    }
    /* The unlabelled ones have their single series from the start. */
    assert_has(t, "\nhapax_active_requests 0\n");
    assert_has(t, "\nhapax_queue_wait_seconds_count 0\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_series_interning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_series, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_overflow_line_until_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_cumulative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_no_labels_fraction_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauge_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_sum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reinit_after_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promtool_accepts_catalog, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
