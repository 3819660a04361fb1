/* The socket end shared by the connection targets (drv_http.c, drv_h2.c):
 * one worker on a private uv loop behind an abstract Unix socket (no file
 * to clean up, no TIME_WAIT, so millions of connections are fine), a
 * client that connects, and the reads until the server closes. Set-up
 * failures abort with a message naming the target. */
#ifndef HX_FUZZ_FUZZ_NET_H
#define HX_FUZZ_FUZZ_NET_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "http/server_int.h"
#include "util/buf.h"

typedef struct {
    hx_server srv;
    hx_worker *wk;
    const char *name; /* the target, for messages and the socket name */
    struct sockaddr_un addr;
    socklen_t addr_len;
} hx_fuzz_net;

/* A server of one worker on cfg and rt, with its loop and accept handles;
 * the caller adds its protocol's per-worker handles, then listens. */
void hx_fuzz_net_init(hx_fuzz_net *n, const char *name, hx_config *cfg, hx_router *rt);
/* Listens with h1's adapter (which also hands h2c over to h2). */
void hx_fuzz_net_listen(hx_fuzz_net *n);
/* A non-blocking client socket, already accepted by the server. */
int hx_fuzz_net_connect(hx_fuzz_net *n);
/* Reads what the server sent (kept up to 64 KiB); 1 at EOF / reset. */
int hx_fuzz_net_drain(int fd, hx_buf *got);
/* Monotonic seconds. */
double hx_fuzz_now(void);
/* Half-closes fd and reads until the server closes, at most `limit`
 * seconds after `start` (a hang is a failed check), then closes fd and
 * lets the server finish closing: no connection may outlive its input. */
void hx_fuzz_net_finish(hx_fuzz_net *n, int fd, hx_buf *got, int eof, double start, double limit);

#endif
