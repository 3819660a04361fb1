#include "http/quic_steer.h"

#include <errno.h>
#include <linux/filter.h>
#include <string.h>
#include <sys/socket.h>

/* QUIC invariants (RFC 8999): bit 0x80 of the first byte is the header
 * form. Long header: version at 1..4, DCID length at 5, DCID from 6.
 * Short header: DCID from 1 (its length is the server's choice). */
#define LONG_FORM 0x80
#define SHORT_DCID 1
#define LONG_DCID_LEN 5
#define LONG_DCID 6

int hx_quic_steer_attach(int fd, unsigned nworkers)
{
    if (nworkers == 0 || nworkers > HX_QUIC_STEER_MAX_WORKERS)
        return -EINVAL;
    /* A out-of-bounds load ends a classic BPF program with 0: socket 0. */
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, LONG_FORM, 2, 0),
        /* 2 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, SHORT_DCID),
        /* 3 */ BPF_JUMP(BPF_JMP | BPF_JA, 3, 0, 0),
        /* 4 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, LONG_DCID_LEN),
        /* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0),
        /* 6 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, LONG_DCID),
        /* 7 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, nworkers),
        /* 8 */ BPF_STMT(BPF_RET | BPF_A, 0),
        /* 9 */ BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0)
        return -errno;
    return 0;
}

unsigned hx_quic_steer_worker(const uint8_t *pkt, size_t len, unsigned nworkers)
{
    if (len < 1 || nworkers == 0)
        return 0;
    if (!(pkt[0] & LONG_FORM))
        return len > SHORT_DCID ? pkt[SHORT_DCID] % nworkers : 0;
    if (len <= LONG_DCID_LEN || pkt[LONG_DCID_LEN] == 0)
        return 0;
    return len > LONG_DCID ? pkt[LONG_DCID] % nworkers : 0;
}

void hx_quic_cid_make(uint8_t *cid, size_t len, unsigned w, const uint8_t *rnd)
{
    if (len == 0)
        return;
    cid[0] = (uint8_t)w;
    if (len > 1)
        memcpy(cid + 1, rnd, len - 1);
}
