#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

void hx_buf_init(hx_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

static int reserve(hx_buf *b, size_t extra)
{
    if (extra > ((size_t)-1) / 2 - b->len)
        return -1;
    size_t need = b->len + extra + 1; /* + NUL */
    if (b->max && need - 1 > b->max)
        return -1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = hx_realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int hx_buf_append(hx_buf *b, const void *p, size_t n)
{
    if (reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int hx_buf_append_str(hx_buf *b, const char *s)
{
    return hx_buf_append(b, s, strlen(s));
}

int hx_buf_printf(hx_buf *b, const char *fmt, ...)
{
    /* One pass when the text fits the spare capacity (the usual case),
     * a second after growing only when it does not. */
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (b->max && (size_t)n > b->max - (b->len < b->max ? b->len : b->max)) ||
        ((size_t)n >= room && reserve(b, (size_t)n) != 0)) {
        if (b->data)
            b->data[b->len] = '\0'; /* undo a partial first pass */
        return -1;
    }
    if ((size_t)n >= room) {
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

size_t hx_fmt_int(char out[HX_FMT_INT_MAX], long long v)
{
    char tmp[HX_FMT_INT_MAX];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t k = 0;
    if (v < 0)
        out[k++] = '-';
    while (n)
        out[k++] = tmp[--n];
    out[k] = '\0';
    return k;
}

int hx_buf_append_int(hx_buf *b, long long v)
{
    char tmp[HX_FMT_INT_MAX];
    return hx_buf_append(b, tmp, hx_fmt_int(tmp, v));
}

void hx_buf_consume(hx_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void hx_buf_reset(hx_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void hx_buf_free(hx_buf *b)
{
    hx_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *hx_buf_steal(hx_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
