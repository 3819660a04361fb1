/* Reload hand-off (reload.c) on a running worker set: SIGHUP loads the
 * file again, the application's hooks build its route table and accept
 * it, and the worker switches; a config refused by either hook leaves the
 * running one in place. The served config is observed through requests:
 * the stub handler answers with its request's server.max_body_bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>

#include "config/config.h"
#include "http/router.h"
#include "worker_harness.h"

/* Configs are told apart by server.max_body_bytes = N * KIB_STEP. */
#define KIB_STEP 1024
#define N_ROUTES_REFUSED 3 /* the route table hook refuses this one */
#define N_APP_REFUSED 4    /* the application's reload hook refuses this one */
#define N_MAX 8

typedef struct {
    wh_server h; /* first: the harness's main_start gets this */
    char dir[64];
    char path[96];
    uv_mutex_t mu;
    uv_cond_t cond;
    bool routes_saw[N_MAX];
    bool reload_saw[N_MAX];
    int applied; /* worker_reloaded calls */
} fixture;


static int cfg_n(const hx_config *cfg)
{
    int n = (int)(cfg->server.max_body_bytes / KIB_STEP);
    return n >= 0 && n < N_MAX ? n : 0;
}

static void stub_handler(hx_req *r)
{
    char body[32];
    int n = snprintf(body, sizeof body, "%d", cfg_n(r->cfg));
    hx_res_send(r, 200, "text/plain", body, (size_t)n);
}

static const hx_handler_def stub_def = {.fn = stub_handler};

static const hx_handler_def *stub_lookup(const char *name)
{
    (void)name;
    return &stub_def;
}

static void note(fixture *f, bool *flag, int *counter)
{
    uv_mutex_lock(&f->mu);
    if (flag)
        *flag = true;
    if (counter)
        ++*counter;
    uv_cond_broadcast(&f->cond);
    uv_mutex_unlock(&f->mu);
}

static hx_router *stub_routes(const hx_config *cfg, void *ud, char *err, size_t errlen)
{
    fixture *f = ud;
    int n = cfg_n(cfg);
    hx_router *rt = NULL;
    if (n == N_ROUTES_REFUSED)
        snprintf(err, errlen, "routes refused");
    else
        rt = hx_router_build(cfg, stub_lookup, NULL, err, errlen);
    note(f, &f->routes_saw[n], NULL);
    return rt;
}

static int stub_reload(hx_config *cfg, void *ud, char *err, size_t errlen)
{
    fixture *f = ud;
    int n = cfg_n(cfg);
    note(f, &f->reload_saw[n], NULL);
    if (n == N_APP_REFUSED) {
        snprintf(err, errlen, "application refused");
        return -1;
    }
    return 0;
}

static void *stub_worker_init(void *loop, void *ud)
{
    (void)loop;
    return ud;
}

static void stub_worker_reloaded(void *ctx)
{
    fixture *f = ctx;
    note(f, NULL, &f->applied);
}

/* Replaces the file by rename, as editors do, so a reload never reads
 * half of it. */
static void write_config(fixture *f, int n)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/next.tmp", f->dir);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fprintf(fp, "server:\n  host: 127.0.0.1\n  port: 0\n  workers: 1\n  max_body_bytes: %d\n", n * KIB_STEP);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(rename(tmp, f->path), 0);
}

static int served(fixture *f)
{
    int fd = wh_connect(&f->h);
    assert_true(fd >= 0);
    assert_int_equal(wh_send(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    hx_buf b;
    hx_buf_init(&b, WH_RESPONSE_MAX);
    assert_int_equal(wh_read_response(fd, &b), 200);
    int n = atoi(wh_body(&b));
    hx_buf_free(&b);
    close(fd);
    return n;
}

static void wait_flag(fixture *f, const bool *flag)
{
    uv_mutex_lock(&f->mu);
    while (!*flag)
        uv_cond_wait(&f->cond, &f->mu);
    uv_mutex_unlock(&f->mu);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hx-reload-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/hapax.yaml", f->dir);
    uv_mutex_init(&f->mu);
    uv_cond_init(&f->cond);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char tmp[128];
    unlink(f->path);
    snprintf(tmp, sizeof tmp, "%s/next.tmp", f->dir);
    unlink(tmp);
    rmdir(f->dir);
    uv_cond_destroy(&f->cond);
    uv_mutex_destroy(&f->mu);
    free(f);
    return 0;
}

/* A valid file is swapped in; a config whose route table fails, and one
 * the application refuses, both leave the running config serving. */
static void test_reload_hand_off(void **state)
{
    fixture *f = *state;
    write_config(f, 1);
    hx_config_errors e = {0};
    hx_config *cfg = hx_config_load_file(f->path, &e);
    hx_config_errors_free(&e);
    assert_non_null(cfg);
    f->h.app = (hx_server_app){
        .routes = stub_routes,
        .reload = stub_reload,
        .worker_init = stub_worker_init,
        .worker_reloaded = stub_worker_reloaded,
        .ud = f,
    };
    char err[256] = "";
    if (wh_start(&f->h, cfg, err, sizeof err) != 0)
        fail_msg("cannot start: %s", err);
    assert_int_equal(served(f), 1);

    /* Accepted: every reload of this file carries 2 (a file-watch reload
     * may follow SIGHUP's), so the first hand-off the worker takes is it. */
    write_config(f, 2);
    kill(getpid(), SIGHUP);
    uv_mutex_lock(&f->mu);
    while (f->applied == 0)
        uv_cond_wait(&f->cond, &f->mu);
    uv_mutex_unlock(&f->mu);
    assert_true(f->routes_saw[2] && f->reload_saw[2]);
    assert_int_equal(served(f), 2);

    /* The route table fails: the application's hook is not even asked. */
    write_config(f, N_ROUTES_REFUSED);
    kill(getpid(), SIGHUP);
    wait_flag(f, &f->routes_saw[N_ROUTES_REFUSED]);
    assert_int_equal(served(f), 2);

    /* The application refuses. */
    write_config(f, N_APP_REFUSED);
    kill(getpid(), SIGHUP);
    wait_flag(f, &f->reload_saw[N_APP_REFUSED]);
    assert_int_equal(served(f), 2);
    assert_false(f->reload_saw[N_ROUTES_REFUSED]);

    hx_server_stop(f->h.srv);
    assert_int_equal(wh_join(&f->h), 0);
    hx_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reload_hand_off, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
