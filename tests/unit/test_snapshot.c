/* The state file: round trip, modes, corrupt and missing files, an
 * interrupted save, the periodic timer, the queue section. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "config/config.h"
#include "middleware/queue.h"
#include "obs/log.h"
#include "state/snapshot.h"

/* A test section: one counter. */
typedef struct {
    int64_t n;
    int saves;
    int restores;
    bool fail_save;
} counter;

static int ctr_save(json_object *out, void *ud)
{
    counter *c = ud;
    c->saves++;
    if (c->fail_save)
        return -1;
    return json_object_object_add(out, "n", json_object_new_int64(c->n));
}

static int ctr_restore(json_object *in, void *ud)
{
    counter *c = ud;
    c->restores++;
    json_object *v;
    if (!json_object_object_get_ex(in, "n", &v) || !json_object_is_type(v, json_type_int))
        return -1;
    c->n = json_object_get_int64(v);
    return 0;
}

static char base[64];
static char dir[160];
static char file[200];
static counter ctr;

static int setup(void **state)
{
    (void)state;
    hx_log_set_level(HX_LOG_ERROR);
    snprintf(base, sizeof base, "/tmp/hx-snap-XXXXXX");
    if (mkdtemp(base) == NULL)
        return -1;
    snprintf(dir, sizeof dir, "%s/a/state", base);
    snprintf(file, sizeof file, "%s/%s", dir, HX_SNAPSHOT_FILE);
    memset(&ctr, 0, sizeof ctr);
    return hx_snapshot_register("ctr", ctr_save, ctr_restore, &ctr);
}

static int teardown(void **state)
{
    (void)state;
    hx_snapshot_unregister("ctr");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Number of entries of dir whose name starts with prefix; the last one's
 * full path goes to out. */
static int count_prefix(const char *prefix, char *out, size_t size)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            n++;
            if (out)
                snprintf(out, size, "%s/%s", dir, e->d_name);
        }
    closedir(d);
    return n;
}

static void test_round_trip_and_modes(void **state)
{
    (void)state;
    ctr.n = 42;
    mode_t old = umask(077); /* the modes must not depend on the umask */
    int rc = hx_snapshot_save(dir);
    umask(old);
    assert_int_equal(rc, 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    char parent[200];
    snprintf(parent, sizeof parent, "%s/a", base);
    assert_int_equal(stat(parent, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_prefix(HX_SNAPSHOT_FILE ".tmp-", NULL, 0), 0);

    json_object *root = json_object_from_file(file);
    assert_non_null(root);
    json_object *v;
    assert_true(json_object_object_get_ex(root, "version", &v));
    assert_int_equal(json_object_get_int(v), 1);
    assert_true(json_object_object_get_ex(root, "saved_at_unix_ms", &v));
    assert_true(json_object_get_int64(v) > 1600000000000LL);
    json_object_put(root);

    ctr.n = 0;
    assert_int_equal(hx_snapshot_restore(dir), 0);
    assert_int_equal(ctr.n, 42);
    assert_int_equal(ctr.restores, 1);
}

static void test_missing_file(void **state)
{
    (void)state;
    assert_int_equal(hx_snapshot_restore(dir), 1);
    assert_int_equal(ctr.restores, 0);
}

static void expect_corrupt(const char *text)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && rm -f '%s'/*", dir, dir);
    assert_int_equal(system(cmd), 0);
    write_text(file, text);
    ctr.n = 7;
    assert_int_equal(hx_snapshot_restore(dir), 1);
    assert_int_equal(ctr.restores, 0);
    assert_int_equal(ctr.n, 7);
    /* Kept aside with its content, the real name free again. */
    assert_int_equal(access(file, F_OK), -1);
    char aside[600];
    assert_int_equal(count_prefix(HX_SNAPSHOT_FILE ".corrupt-", aside, sizeof aside), 1);
    assert_string_equal(read_text(aside), text);
    /* The next save writes a fresh file and leaves the corrupt one alone. */
    assert_int_equal(hx_snapshot_save(dir), 0);
    assert_string_equal(read_text(aside), text);
    assert_int_equal(hx_snapshot_restore(dir), 0);
    assert_int_equal(ctr.n, 7);
    ctr.restores = 0;
}

static void test_corrupt_files_kept_aside(void **state)
{
    (void)state;
    expect_corrupt("{\"version\":1,\"saved_at_unix_ms\":1,\"ctr\":{\"n\":");  /* truncated */
    expect_corrupt("not json at all");
    expect_corrupt("[1,2,3]");
    expect_corrupt("{\"version\":2,\"saved_at_unix_ms\":1}");
    expect_corrupt("{\"saved_at_unix_ms\":1}");
    expect_corrupt("{\"version\":1,\"saved_at_unix_ms\":1,\"ctr\":5}");
    expect_corrupt("{\"version\":1,\"saved_at_unix_ms\":1} trailing");
    expect_corrupt("");
}

/* A FIFO in the state file's place must not hang start-up (open waited
 * for a writer): it is refused, kept aside, and a save replaces it. */
static void test_fifo_state_file(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mkfifo(file, 0600), 0);
    alarm(10); /* a blocking open fails the test instead of hanging it */
    assert_int_equal(hx_snapshot_restore(dir), 1);
    alarm(0);
    assert_int_equal(ctr.restores, 0);
    assert_int_equal(count_prefix(HX_SNAPSHOT_FILE ".corrupt-", NULL, 0), 1);
    ctr.n = 3;
    assert_int_equal(hx_snapshot_save(dir), 0);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_true(S_ISREG(st.st_mode));
}

/* Client IPs and key names: 0600 even with a permissive umask. */
static void test_mode_0600_with_open_umask(void **state)
{
    (void)state;
    mode_t old = umask(0);
    int rc = hx_snapshot_save(dir);
    umask(old);
    assert_int_equal(rc, 0);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_absent_section_skipped(void **state)
{
    (void)state;
    assert_int_equal(hx_snapshot_save(dir), 0);
    write_text(file, "{\"version\":1,\"saved_at_unix_ms\":5,\"other\":{\"x\":1}}\n");
    assert_int_equal(hx_snapshot_restore(dir), 0);
    assert_int_equal(ctr.restores, 0);
    /* A bad section is skipped with a warning; the file is not corrupt. */
    write_text(file, "{\"version\":1,\"saved_at_unix_ms\":5,\"ctr\":{\"n\":\"x\"}}\n");
    assert_int_equal(hx_snapshot_restore(dir), 0);
    assert_int_equal(ctr.restores, 1);
    assert_int_equal(access(file, F_OK), 0);
}

/* A save killed before its rename leaves a temp file: the real file is
 * intact, and the next start removes the leftover. */
static void test_interrupted_save(void **state)
{
    (void)state;
    ctr.n = 1;
    assert_int_equal(hx_snapshot_save(dir), 0);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp-99999-0", dir, HX_SNAPSHOT_FILE);
    write_text(tmp, "{\"version\":1,\"saved_at_unix_ms\":9,\"ctr\":{\"n\":2");
    ctr.n = 0;
    assert_int_equal(hx_snapshot_restore(dir), 0);
    assert_int_equal(ctr.n, 1);
    assert_int_equal(access(tmp, F_OK), -1);

    /* A section failing to save abandons the save: the old file stays. */
    char before[4096];
    snprintf(before, sizeof before, "%s", read_text(file));
    ctr.n = 5;
    ctr.fail_save = true;
    assert_int_equal(hx_snapshot_save(dir), -1);
    assert_string_equal(read_text(file), before);
    assert_int_equal(count_prefix(HX_SNAPSHOT_FILE ".tmp-", NULL, 0), 0);
}

static void test_register_rules(void **state)
{
    (void)state;
    assert_int_equal(hx_snapshot_register("version", ctr_save, ctr_restore, &ctr), -1);
    assert_int_equal(hx_snapshot_register("", ctr_save, ctr_restore, &ctr), -1);
    assert_int_equal(hx_snapshot_register("x", NULL, ctr_restore, &ctr), -1);
    counter other = {.n = 9};
    /* Registering a name again replaces it. */
    assert_int_equal(hx_snapshot_register("ctr", ctr_save, ctr_restore, &other), 0);
    assert_int_equal(hx_snapshot_save(dir), 0);
    assert_int_equal(other.saves, 1);
    assert_int_equal(ctr.saves, 0);
    assert_int_equal(hx_snapshot_register("ctr", ctr_save, ctr_restore, &ctr), 0);
    assert_int_equal(hx_snapshot_restore(dir), 0);
    assert_int_equal(ctr.n, 9);
}

static void on_stop(uv_timer_t *t)
{
    hx_snapshot_stop();
    uv_close((uv_handle_t *)t, NULL);
}

static void test_periodic_and_final_save(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(hx_snapshot_start(&loop, dir, 20), 0);
    assert_int_equal(hx_snapshot_start(&loop, dir, 20), -1);
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, 300, 0); /* generous: fsync is slow on a busy machine */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* Up to fifteen periodic saves, plus the final one. */
    assert_true(ctr.saves >= 3);
    assert_int_equal(access(file, F_OK), 0);
    hx_snapshot_stop(); /* no-op once stopped */
    assert_int_equal(hx_snapshot_start(NULL, "", 20), 0);
}

static void test_queue_section(void **state)
{
    (void)state;
    hx_config *cfg = hx_config_default();
    assert_non_null(cfg);
    assert_int_equal(hx_queue_init(cfg), 0);
    assert_int_equal(hx_snapshot_save(dir), 0);
    json_object *root = json_object_from_file(file);
    json_object *qs, *v;
    assert_true(json_object_object_get_ex(root, "queue", &qs));
    assert_true(json_object_object_get_ex(qs, "max_concurrent", &v));
    assert_int_equal(json_object_get_int64(v), cfg->queue.max_concurrent);
    assert_true(json_object_object_get_ex(qs, "initial_size", &v));
    assert_int_equal(json_object_get_int64(v), cfg->queue.initial_size);
    json_object_put(root);

    write_text(file, "{\"version\":1,\"saved_at_unix_ms\":5,\"queue\":{\"max_concurrent\":3,"
                     "\"initial_size\":4,\"admitted\":70,\"rejected_full\":8,\"rejected_timeout\":9}}");
    assert_int_equal(hx_snapshot_restore(dir), 0);
    hx_queue_stats s;
    hx_queue_get_stats(&s);
    assert_int_equal(s.admitted_total, 70);
    assert_int_equal(s.rejected_full_total, 8);
    assert_int_equal(s.rejected_timeout_total, 9);
    /* Sizing comes from the configuration. */
    assert_int_equal(s.max_concurrent, cfg->queue.max_concurrent);
    assert_int_equal(s.max_waiting, cfg->queue.initial_size);
    hx_queue_shutdown();
    hx_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_state_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_0600_with_open_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files_kept_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_section_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_periodic_and_final_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_section, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
