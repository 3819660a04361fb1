/* HTTP/2 target: frames in, through the real path of an h2c client: h1's
 * accept and preface hand-off (src/http/h1.c), the nghttp2 session and
 * its callbacks (h2.c), the transport (h2_out.c), the defences
 * (h2_guard.c) and the socket layer (h2_io.c), with the router and an
 * echo handler (streamed for POST), on a private uv loop and an abstract
 * Unix socket. The input is what follows the connection preface.
 *
 * Per input: connect, send the preface and the input, half-close, read
 * until the server closes. Invariants: the server always closes (never
 * hangs), its first frame is its SETTINGS, and no connection outlives its
 * input. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "fuzz_net.h"
#include "http/request.h"
#include "http/server_int.h"
#include "util/alloc.h"

static hx_fuzz_net net;
static hx_worker *wk;

static void echo(hx_req *r)
{
    char b[256];
    int n = snprintf(b, sizeof b, "%s %s %zu %zu\n", r->method, r->path ? r->path : "", r->headers.n,
                     r->body.len);
    if (strcmp(r->method, "POST") == 0) {
        if (hx_res_start(r, 200) == 0 && hx_res_write(r, b, (size_t)n) >= 0)
            hx_res_write(r, r->body.data, r->body.len);
        hx_res_end(r);
    } else {
        hx_res_send(r, 200, "text/plain", b, (size_t)n);
    }
}

static const hx_handler_def *lookup(const char *name)
{
    return hx_fuzz_handler_def(echo, name);
}

/* Small limits so that 413, 431 and the defences are reachable. */
static const char yaml[] = "server:\n"
                           "  max_body_bytes: 4KB\n"
                           "  max_header_bytes: 2KB\n"
                           "  middleware: [request_id, request_timer, panic_recovery]\n"
                           "  http2:\n"
                           "    h2c: true\n"
                           "    max_concurrent_streams: 8\n"
                           "    max_resets_per_second: 20\n"
                           "    max_pings_per_second: 5\n"
                           "    max_settings_per_second: 5\n"
                           "    max_priority_per_second: 20\n"
                           "    max_window_updates_per_second: 50\n"
                           "    max_empty_data_per_second: 5\n";

static void setup(void)
{
    hx_config_errors errs = {0};
    hx_config *cfg = hx_config_load_string(yaml, sizeof yaml - 1, "fuzz-h2.yaml", &errs);
    hx_config_errors_free(&errs);
    char err[256];
    hx_router *rt = cfg ? hx_router_build(cfg, lookup, NULL, err, sizeof err) : NULL;
    hx_fuzz_net_init(&net, "h2", cfg, rt);
    wk = net.wk;
    hx_h1_proto.worker_init(wk); /* h1's and h2's per-worker handles */
    hx_fuzz_net_listen(&net);
}

static bool sendall(int fd, const uint8_t *p, size_t n, hx_buf *got, int *eof)
{
    size_t off = 0;
    while (off < n && !*eof) {
        ssize_t k = write(fd, p + off, n - off);
        if (k > 0)
            off += (size_t)k;
        else if (k < 0 && errno != EAGAIN && errno != EINTR)
            return false; /* the server closed */
        uv_run(&wk->loop, UV_RUN_NOWAIT);
        *eof = hx_fuzz_net_drain(fd, got);
    }
    return true;
}

int hx_fuzz_h2(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (wk == NULL)
        setup();
    int fd = hx_fuzz_net_connect(&net);
    hx_fuzz_arm(); /* accepted: from here on allocations may fail */
    hx_buf got;
    hx_buf_init(&got, 0);
    int eof = 0;
    double start = hx_fuzz_now();
    double limit = hx_fuzz_torture ? 4 : 10;
    if (sendall(fd, (const uint8_t *)preface, sizeof preface - 1, &got, &eof))
        sendall(fd, data, size, &got, &eof);
    hx_fuzz_net_finish(&net, fd, &got, eof, start, limit);
    /* The server speaks first: its SETTINGS frame (type 4 on stream 0). */
    FUZZ_CHECK(got.len >= 9 && got.data[3] == 4 && got.data[5] == 0 && got.data[8] == 0);
    hx_buf_free(&got);
    return 0;
}
