#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_child.h"

bool hx_test_redis_installed(void)
{
    return access(HX_TEST_REDIS_BIN, X_OK) == 0;
}

int hx_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

pid_t hx_test_redis_start(int port, const char *password)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL)
            _exit(126);
        if (password)
            execl(HX_TEST_REDIS_BIN, HX_TEST_REDIS_BIN, "--port", p, "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--requirepass", password, (char *)NULL);
        else
            execl(HX_TEST_REDIS_BIN, HX_TEST_REDIS_BIN, "--port", p, "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    /* Ready once it accepts. */
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return pid;
        usleep(20000);
    }
    fail_msg("redis-server did not start");
    return pid;
}

void hx_test_redis_stop(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGCONT);
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

void hx_test_spin_ms(uv_loop_t *loop, int ms)
{
    uint64_t until = uv_hrtime() + (uint64_t)ms * 1000000ull;
    uv_timer_t t;
    uv_timer_init(loop, &t);
    while (uv_hrtime() < until) {
        uv_timer_start(&t, on_tick, 5, 0);
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}
