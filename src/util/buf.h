/* Growable byte buffer with a hard maximum.
 *
 * The buffer owns its memory (hx_buf_free releases it). `data` is always
 * NUL-terminated after a successful append, so text can be used as a C
 * string. Appends fail (-1) when memory runs out or `max` would be passed;
 * a max of 0 means "no limit beyond memory". */
#ifndef HX_UTIL_BUF_H
#define HX_UTIL_BUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
} hx_buf;

void hx_buf_init(hx_buf *b, size_t max);
int hx_buf_append(hx_buf *b, const void *p, size_t n);
int hx_buf_append_str(hx_buf *b, const char *s);
int hx_buf_printf(hx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Decimal text of v, without printf's cost (hot paths: heads, logs). */
int hx_buf_append_int(hx_buf *b, long long v);
/* The same into out (NUL-terminated); returns its length. */
#define HX_FMT_INT_MAX 24
size_t hx_fmt_int(char out[HX_FMT_INT_MAX], long long v);
/* Removes the first n bytes (n > len clears). */
void hx_buf_consume(hx_buf *b, size_t n);
void hx_buf_reset(hx_buf *b);
void hx_buf_free(hx_buf *b);
/* Hands the memory to the caller (free with hx_free) and empties b. */
char *hx_buf_steal(hx_buf *b, size_t *len);

#endif
