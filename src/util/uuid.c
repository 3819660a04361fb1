#include "util/uuid.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Request ids need uniqueness, not secrecy: a per-thread xoshiro256**
 * generator seeded from the kernel once per thread saves a system call per
 * request. */
static _Thread_local uint64_t st[4];
static _Thread_local int seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next(void)
{
    uint64_t r = rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl(st[3], 45);
    return r;
}

static void seed(void)
{
    if (getrandom(st, sizeof st, 0) != (ssize_t)sizeof st) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)&ts;
        for (int i = 0; i < 4; i++) { /* splitmix64 */
            x += 0x9e3779b97f4a7c15ull;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            st[i] = z ^ (z >> 31);
        }
    }
    if ((st[0] | st[1] | st[2] | st[3]) == 0)
        st[0] = 1;
    seeded = 1;
}

void hx_random_bytes(void *out, size_t n)
{
    if (!seeded)
        seed();
    unsigned char *p = out;
    while (n > 0) {
        uint64_t v = next();
        size_t k = n < sizeof v ? n : sizeof v;
        memcpy(p, &v, k);
        p += k;
        n -= k;
    }
}

void hx_uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    hx_random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

void hx_random_id(char *out, size_t outlen, const char *prefix)
{
    static const char hexd[] = "0123456789abcdef";
    unsigned char b[12];
    char hex[25];
    hx_random_bytes(b, sizeof b);
    for (size_t i = 0; i < sizeof b; i++) {
        hex[2 * i] = hexd[b[i] >> 4];
        hex[2 * i + 1] = hexd[b[i] & 15];
    }
    hex[24] = '\0';
    snprintf(out, outlen, "%s%s", prefix, hex);
}
