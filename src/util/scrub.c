#include "util/scrub.h"

#include <string.h>

#include "util/alloc.h"

/* What one feed may hold plus what it is given: libcurl hands over at most
 * 16 KiB per write, so this is a bound that is never reached in practice. */
#define SCRUB_STREAM_MAX (16 * 1024 * 1024)

/* Matching is a set Horspool scan: windows of the shortest secret's length
 * m; the byte at a window's end says how far the next window may start
 * (`shift`, from the first m bytes of every secret), and only when it can
 * end a secret's first m bytes (`endc`) are the secrets compared there. A
 * clean chunk costs about len/m steps, whatever the number of secrets. */
struct hx_scrub {
    char **sec;
    size_t *len;
    size_t n, cap;
    size_t m;                  /* shortest secret */
    unsigned char shift[256];
    unsigned char endc[256];   /* ends the first m bytes of a secret */
    unsigned char first[256];  /* starts a secret */
};

static void index_build(hx_scrub *s)
{
    size_t m = s->len[0];
    for (size_t i = 1; i < s->n; i++)
        if (s->len[i] < m)
            m = s->len[i];
    if (m > 255)
        m = 255; /* a window of 255 is as good as any longer one */
    s->m = m;
    memset(s->shift, (int)m, sizeof s->shift);
    memset(s->endc, 0, sizeof s->endc);
    memset(s->first, 0, sizeof s->first);
    for (size_t i = 0; i < s->n; i++) {
        const unsigned char *k = (const unsigned char *)s->sec[i];
        for (size_t j = 0; j + 1 < m; j++)
            if (s->shift[k[j]] > m - 1 - j)
                s->shift[k[j]] = (unsigned char)(m - 1 - j);
        s->endc[k[m - 1]] = 1;
        s->first[k[0]] = 1;
    }
}

hx_scrub *hx_scrub_new(void)
{
    return hx_calloc(1, sizeof(hx_scrub));
}

void hx_scrub_free(hx_scrub *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        /* the copy held a credential: do not leave it in freed memory */
        explicit_bzero(s->sec[i], s->len[i]);
        hx_free(s->sec[i]);
    }
    hx_free(s->sec);
    hx_free(s->len);
    hx_free(s);
}

size_t hx_scrub_count(const hx_scrub *s)
{
    return s ? s->n : 0;
}

int hx_scrub_add(hx_scrub *s, const char *secret, size_t len)
{
    if (secret == NULL || len < HX_SCRUB_MIN_LEN || len > HX_SCRUB_MAX_LEN || s->n >= HX_SCRUB_MAX_SECRETS)
        return 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->len[i] == len && memcmp(s->sec[i], secret, len) == 0)
            return 0;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        char **ns = hx_realloc(s->sec, nc * sizeof *ns);
        if (ns == NULL)
            return -1;
        s->sec = ns;
        size_t *nl = hx_realloc(s->len, nc * sizeof *nl);
        if (nl == NULL)
            return -1;
        s->len = nl;
        s->cap = nc;
    }
    char *c = hx_strndup(secret, len);
    if (c == NULL)
        return -1;
    s->sec[s->n] = c;
    s->len[s->n++] = len;
    index_build(s);
    return 0;
}

/* Inputs at least this long are searched with memmem per secret: glibc's
 * scan is faster on long text, the set scan below on short text (an SSE
 * event), where memmem's per-call setup dominates. */
#define SCRUB_MEMMEM_FROM 512

static size_t find_memmem(const hx_scrub *s, const char *t, size_t n, size_t *slen)
{
    size_t best = n;
    for (size_t i = 0; i < s->n; i++) {
        size_t lim = best < n ? best + s->len[i] : n; /* no better match starts after best */
        const char *f = memmem(t, lim < n ? lim : n, s->sec[i], s->len[i]);
        if (f == NULL)
            continue;
        size_t at = (size_t)(f - t);
        if (at < best || (at == best && s->len[i] > *slen)) {
            best = at;
            *slen = s->len[i];
        }
    }
    return best;
}

/* The leftmost secret in t[0..n) (the longest at equal positions).
 * Returns its offset and sets *slen, or returns n when there is none. */
static size_t find_first(const hx_scrub *s, const char *t, size_t n, size_t *slen)
{
    size_t m = s->m;
    *slen = 0;
    if (n >= SCRUB_MEMMEM_FROM)
        return find_memmem(s, t, n, slen);
    for (size_t p = 0; p + m <= n;) {
        unsigned char c = (unsigned char)t[p + m - 1];
        if (s->endc[c] && s->first[(unsigned char)t[p]]) {
            for (size_t i = 0; i < s->n; i++)
                if (s->len[i] <= n - p && s->len[i] > *slen && memcmp(t + p, s->sec[i], s->len[i]) == 0)
                    *slen = s->len[i];
            if (*slen)
                return p;
        }
        p += s->shift[c];
    }
    return n;
}

/* Length of the longest tail of t[0..m) that is a proper prefix of a
 * secret: those bytes may be the start of a secret the next chunk ends. */
static size_t hold_len(const hx_scrub *s, const char *t, size_t m)
{
    size_t hold = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t L = s->len[i];
        size_t q = m > L - 1 ? m - (L - 1) : 0;
        if (m - q <= hold)
            continue;
        while (q < m) {
            const char *f = memchr(t + q, s->sec[i][0], m - q);
            if (f == NULL)
                break;
            q = (size_t)(f - t);
            if (memcmp(f, s->sec[i], m - q) == 0) {
                if (m - q > hold)
                    hold = m - q;
                break;
            }
            q++;
        }
    }
    return hold;
}

/* A secret longer than the slen bytes found at t could still match here
 * once more bytes arrive: t[0..m) is a proper prefix of it. */
static bool longer_may_follow(const hx_scrub *s, const char *t, size_t m, size_t slen)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->len[i] > slen && s->len[i] > m && memcmp(t, s->sec[i], m) == 0)
            return true;
    return false;
}

/* Appends t[0..m) to out with secrets replaced, except a tail that may
 * begin a secret (when !final); returns the length of that tail. */
static int scrub_into(const hx_scrub *s, const char *t, size_t m, hx_buf *out, int final, size_t *held)
{
    size_t i = 0, slen;
    for (;;) {
        size_t at = find_first(s, t + i, m - i, &slen);
        if (at == m - i)
            break;
        if (!final && longer_may_follow(s, t + i + at, m - i - at, slen)) {
            /* wait: the next chunk may complete a longer secret here */
            if (hx_buf_append(out, t + i, at) != 0)
                return -1;
            *held = m - i - at;
            return 0;
        }
        if (hx_buf_append(out, t + i, at) != 0 || hx_buf_append_str(out, HX_SCRUB_MARK) != 0)
            return -1;
        i += at + slen;
    }
    size_t h = final ? 0 : hold_len(s, t + i, m - i);
    if (hx_buf_append(out, t + i, m - i - h) != 0)
        return -1;
    *held = h;
    return 0;
}

int hx_scrub_append(const hx_scrub *s, hx_buf *out, const char *text, size_t len)
{
    size_t held;
    if (s == NULL || s->n == 0)
        return hx_buf_append(out, text, len);
    return scrub_into(s, text, len, out, 1, &held);
}

void hx_scrub_cstr(const hx_scrub *s, char *str, size_t cap)
{
    size_t len = strlen(str), slen;
    if (s == NULL || s->n == 0 || cap == 0 || find_first(s, str, len, &slen) == len)
        return;
    hx_buf b;
    hx_buf_init(&b, HX_SCRUB_MAX_LEN * 4 + cap * 2);
    if (scrub_into(s, str, len, &b, 1, &slen) == 0) {
        size_t n = b.len < cap - 1 ? b.len : cap - 1;
        memcpy(str, b.data, n);
        str[n] = '\0';
    } else {
        /* cannot rewrite it: say nothing rather than leak */
        strncpy(str, HX_SCRUB_MARK, cap - 1);
        str[cap - 1] = '\0';
    }
    hx_buf_free(&b);
}

void hx_scrub_stream_init(hx_scrub_stream *st)
{
    hx_buf_init(&st->held, SCRUB_STREAM_MAX);
    hx_buf_init(&st->work, 2 * SCRUB_STREAM_MAX);
}

void hx_scrub_stream_free(hx_scrub_stream *st)
{
    hx_buf_free(&st->held);
    hx_buf_free(&st->work);
}

void hx_scrub_stream_reset(hx_scrub_stream *st)
{
    hx_buf_reset(&st->held);
    hx_buf_reset(&st->work);
}

int hx_scrub_feed(const hx_scrub *s, hx_scrub_stream *st, const char *p, size_t n, const char **outp,
                  size_t *outn)
{
    size_t slen, h;
    if (s == NULL || s->n == 0) {
        *outp = p;
        *outn = n;
        return 0;
    }
    if (st->held.len == 0) {
        /* the hot path: a clean chunk goes on as it is */
        if (find_first(s, p, n, &slen) == n) {
            h = hold_len(s, p, n);
            if (h && hx_buf_append(&st->held, p + n - h, h) != 0)
                return -1;
            *outp = p;
            *outn = n - h;
            return 0;
        }
        hx_buf_reset(&st->work);
        if (scrub_into(s, p, n, &st->work, 0, &h) != 0 || hx_buf_append(&st->held, p + n - h, h) != 0)
            return -1;
    } else {
        if (hx_buf_append(&st->held, p, n) != 0)
            return -1;
        size_t m = st->held.len;
        hx_buf_reset(&st->work);
        if (scrub_into(s, st->held.data, m, &st->work, 0, &h) != 0)
            return -1;
        hx_buf_consume(&st->held, m - h);
    }
    *outp = st->work.data ? st->work.data : "";
    *outn = st->work.len;
    return 0;
}

int hx_scrub_flush(hx_scrub_stream *st, const char **outp, size_t *outn)
{
    hx_buf_reset(&st->work);
    if (hx_buf_append(&st->work, st->held.data ? st->held.data : "", st->held.len) != 0)
        return -1;
    hx_buf_reset(&st->held);
    *outp = st->work.data ? st->work.data : "";
    *outn = st->work.len;
    return 0;
}
