/* A private redis-server for the unit tests that need one
 * (test_store_redis.c, test_cache_redis.c): Debian's binary on a free
 * loopback port, no persistence, killed by the test. */
#ifndef HX_TEST_REDIS_CHILD_H
#define HX_TEST_REDIS_CHILD_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#define HX_TEST_REDIS_BIN "/usr/bin/redis-server"

bool hx_test_redis_installed(void);
/* A port nothing listens on now. */
int hx_test_free_port(void);
/* Starts redis-server on port (with requirepass unless password is NULL);
 * returns once it accepts connections, or fails the test. */
pid_t hx_test_redis_start(int port, const char *password);
/* Kills it (a stopped one too) and reaps it; *pid becomes 0. */
void hx_test_redis_stop(pid_t *pid);
/* Runs loop for about ms milliseconds. */
void hx_test_spin_ms(uv_loop_t *loop, int ms);

/* Skips a test where redis-server is not installed. */
#define NEED_REDIS()                                                                                   \
    do {                                                                                               \
        if (!hx_test_redis_installed())                                                                \
            skip();                                                                                    \
    } while (0)

#endif
