/* QUIC datagram steering (src/http/quic_steer.c): the kernel program on a
 * real SO_REUSEPORT group of UDP sockets sends every datagram of a
 * connection ID to the same socket (worker), whatever the sender's
 * address (migration), and agrees with the C version; short datagrams go
 * to socket 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/quic_steer.h"

#define MAXW 4

typedef struct {
    int fd[MAXW];
    unsigned n;
    struct sockaddr_in at;
} group;

/* n sockets on one 127.0.0.1 port, bound in order, the program attached. */
static void group_open(group *g, unsigned n)
{
    g->n = n;
    memset(&g->at, 0, sizeof g->at);
    g->at.sin_family = AF_INET;
    g->at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (unsigned i = 0; i < n; i++) {
        g->fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        assert_true(g->fd[i] >= 0);
        int one = 1;
        assert_int_equal(setsockopt(g->fd[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
        assert_int_equal(bind(g->fd[i], (struct sockaddr *)&g->at, sizeof g->at), 0);
        if (i == 0) {
            socklen_t len = sizeof g->at;
            assert_int_equal(getsockname(g->fd[0], (struct sockaddr *)&g->at, &len), 0);
        }
    }
    assert_int_equal(hx_quic_steer_attach(g->fd[0], n), 0);
}

static void group_close(group *g)
{
    for (unsigned i = 0; i < g->n; i++)
        close(g->fd[i]);
}

/* Sends pkt from a fresh socket (a new source port each time, as after a
 * migration) and answers which socket of the group got it. */
static int deliver(group *g, const uint8_t *pkt, size_t len)
{
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(c >= 0);
    assert_int_equal(sendto(c, pkt, len, 0, (struct sockaddr *)&g->at, sizeof g->at), (ssize_t)len);
    close(c);
    for (int tries = 0; tries < 1000; tries++) {
        for (unsigned i = 0; i < g->n; i++) {
            uint8_t buf[1500];
            if (recv(g->fd[i], buf, sizeof buf, 0) == (ssize_t)len)
                return (int)i;
        }
        usleep(1000);
    }
    fail_msg("the datagram reached no socket");
    return -1;
}

static size_t short_pkt(uint8_t *p, const uint8_t *cid, size_t cidlen)
{
    p[0] = 0x40 | 0x01; /* short header, fixed bit */
    memcpy(p + 1, cid, cidlen);
    memset(p + 1 + cidlen, 0xab, 20);
    return 1 + cidlen + 20;
}

static size_t long_pkt(uint8_t *p, const uint8_t *dcid, size_t dlen)
{
    p[0] = 0xc0; /* long header, Initial */
    p[1] = 0, p[2] = 0, p[3] = 0, p[4] = 1; /* QUIC v1 */
    p[5] = (uint8_t)dlen;
    if (dlen)
        memcpy(p + 6, dcid, dlen);
    p[6 + dlen] = 8; /* SCID length */
    memset(p + 7 + dlen, 0x11, 8 + 1200);
    return 7 + dlen + 8 + 1200;
}

static void test_server_ids_reach_their_worker(void **state)
{
    (void)state;
    for (unsigned n = 2; n <= MAXW; n += 2) {
        group g;
        group_open(&g, n);
        static const uint8_t rnd[17] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3};
        for (unsigned w = 0; w < n; w++) {
            uint8_t cid[18], pkt[1400];
            hx_quic_cid_make(cid, sizeof cid, w, rnd);
            assert_int_equal(cid[0], w);
            for (int i = 0; i < 3; i++) { /* three source ports: migration */
                size_t len = short_pkt(pkt, cid, sizeof cid);
                assert_int_equal(deliver(&g, pkt, len), (int)w);
                assert_int_equal(hx_quic_steer_worker(pkt, len, n), w);
            }
            size_t len = long_pkt(pkt, cid, sizeof cid); /* a Handshake packet to a server ID */
            assert_int_equal(deliver(&g, pkt, len), (int)w);
            assert_int_equal(hx_quic_steer_worker(pkt, len, n), w);
        }
        group_close(&g);
    }
}

/* A client's own first DCID: every packet with it goes to one worker, the
 * one the C version names. */
static void test_client_ids_are_consistent(void **state)
{
    (void)state;
    group g;
    group_open(&g, 4);
    for (unsigned first = 0; first < 256; first += 37) {
        uint8_t dcid[8] = {(uint8_t)first, 1, 2, 3, 4, 5, 6, 7}, pkt[1400];
        size_t len = long_pkt(pkt, dcid, sizeof dcid);
        int w = deliver(&g, pkt, len);
        assert_int_equal(w, (int)hx_quic_steer_worker(pkt, len, 4));
        assert_int_equal(deliver(&g, pkt, len), w);
    }
    group_close(&g);
}

/* Datagrams too short to hold a DCID byte, or an empty DCID: socket 0. */
static void test_short_datagrams_go_to_zero(void **state)
{
    (void)state;
    group g;
    group_open(&g, 4);
    const uint8_t one[1] = {0x41};
    assert_int_equal(deliver(&g, one, 1), 0);
    assert_int_equal(hx_quic_steer_worker(one, 1, 4), 0);
    uint8_t empty[1400];
    size_t len = long_pkt(empty, NULL, 0);
    assert_int_equal(deliver(&g, empty, len), 0);
    assert_int_equal(hx_quic_steer_worker(empty, len, 4), 0);
    const uint8_t cut[6] = {0xc0, 0, 0, 0, 1, 8}; /* says 8 DCID bytes, has none */
    assert_int_equal(deliver(&g, cut, sizeof cut), 0);
    assert_int_equal(hx_quic_steer_worker(cut, sizeof cut, 4), 0);
    group_close(&g);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(hx_quic_steer_attach(fd, 0), -EINVAL);
    assert_int_equal(hx_quic_steer_attach(fd, 257), -EINVAL);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_ids_reach_their_worker),
        cmocka_unit_test(test_client_ids_are_consistent),
        cmocka_unit_test(test_short_datagrams_go_to_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
