/* Allocation-failure torture: every input of the committed fuzz corpora
 * (tests/fuzz/corpus/<target>/) runs through its driver once normally (the
 * driver's checks on), then again with the Nth allocation failing, for
 * N = 1, 2, ... until a run completes without reaching its Nth allocation;
 * once with only that allocation failing, once with every later one
 * failing too. Success is finishing: no crash, no hang, and (ASan build)
 * no leak reported at exit.
 *
 * The http target arms its failures only once its connection is accepted
 * (hx_fuzz_arm): a failed accept is a known defect of its own (issue 9,
 * "a worker goes deaf"). h2 likewise, and h3 once its QUIC handshake
 * completed (before its datagrams in its datagram mode). A connection the
 * server never closes fails the run.
 *
 * Usage: torture CORPUS_DIR [TARGET...] (default: every target). */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "util/alloc.h"

typedef int (*driver_fn)(const uint8_t *, size_t);

static const struct {
    const char *name;
    driver_fn fn;
    bool deferred; /* arms its failures itself (hx_fuzz_arm) */
} targets[] = {
    {"json", hx_fuzz_json, false},
    {"stream", hx_fuzz_stream, false},
    {"inbound", hx_fuzz_inbound, false},
    {"config", hx_fuzz_config, false},
    {"request", hx_fuzz_request, false},
    {"http", hx_fuzz_http, true},
    {"h2", hx_fuzz_h2, true},
    {"h3", hx_fuzz_h3, true},
    {"upstream", hx_fuzz_upstream, false},
    {"peer", hx_fuzz_peer, false},
};

/* Past this many allocations in one input the corpus file is too big for
 * the quadratic sweep; it is still run once with checks. */
#define MAX_N 20000

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            unsigned char *nb = realloc(b, cap *= 2);
            if (nb == NULL) {
                free(b);
                b = NULL;
            }
            b = nb;
        }
    }
    fclose(f);
    *len = n;
    return b;
}

/* Returns the number of failure points swept. */
static unsigned long sweep(driver_fn fn, bool deferred, const unsigned char *d, size_t len, int sticky)
{
    unsigned long n;
    for (n = 1; n <= MAX_N; n++) {
        unsigned long before = hx_alloc_count();
        if (deferred) {
            hx_fuzz_fail_n = n;
            hx_fuzz_fail_sticky = sticky;
            hx_fuzz_armed_at = 0;
        } else {
            hx_alloc_fail_at(n, sticky);
        }
        fn(d, len);
        hx_alloc_fail_at(0, 0);
        hx_fuzz_fail_n = 0;
        if (deferred) {
            if (hx_fuzz_armed_at == 0)
                break;
            before = hx_fuzz_armed_at;
        }
        if (hx_alloc_count() - before < n)
            break; /* the run never reached its Nth allocation */
    }
    return n - 1;
}

static int run_target(const char *root, const char *name, driver_fn fn, bool deferred)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    DIR *dp = opendir(dir);
    if (dp == NULL) {
        fprintf(stderr, "torture: cannot open %s\n", dir);
        return -1;
    }
    struct dirent *de;
    unsigned long files = 0, points = 0, most = 0;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        unsigned char *d = read_all(path, &len);
        if (d == NULL)
            continue;
        hx_fuzz_torture = 0;
        fn(d, len); /* normal run: the driver's checks hold */
        hx_fuzz_torture = 1;
        unsigned long a = sweep(fn, deferred, d, len, 0);
        unsigned long b = sweep(fn, deferred, d, len, 1);
        hx_fuzz_torture = 0;
        if (a >= MAX_N)
            fprintf(stderr, "torture: %s: more than %d allocations, sweep cut short\n", path, MAX_N);
        points += a + b;
        if (a > most)
            most = a;
        files++;
        free(d);
    }
    closedir(dp);
    printf("torture %-8s %4lu inputs, %7lu failure points, at most %lu allocations per input\n", name,
           files, points, most);
    if (hx_fuzz_hung) {
        fprintf(stderr, "torture %s: %d runs left a connection open\n", name, hx_fuzz_hung);
        hx_fuzz_hung = 0;
        return -1;
    }
    return files > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: torture CORPUS_DIR [TARGET...]\n");
        return 2;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        bool want = argc == 2;
        for (int a = 2; a < argc; a++)
            want |= strcmp(argv[a], targets[i].name) == 0;
        if (want && run_target(argv[1], targets[i].name, targets[i].fn, targets[i].deferred) != 0)
            rc = 1;
    }
    return rc;
}
