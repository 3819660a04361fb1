#include "provider/sse.h"

#include <string.h>

void hx_sse_init(hx_sse *s)
{
    memset(s, 0, sizeof *s);
    hx_buf_init(&s->line, HX_STREAM_EVENT_MAX);
    hx_buf_init(&s->data, HX_STREAM_EVENT_MAX);
}

void hx_sse_free(hx_sse *s)
{
    hx_buf_free(&s->line);
    hx_buf_free(&s->data);
}

static int dispatch(hx_sse *s, hx_sse_cb cb, void *ud)
{
    int rc = 0;
    if (s->has_data)
        rc = cb(ud, s->event, s->data.data ? s->data.data : "", s->data.len);
    hx_buf_reset(&s->data);
    s->event[0] = '\0';
    s->has_data = 0;
    return rc ? -1 : 0;
}

/* One complete line (no terminator). */
static int sse_line(hx_sse *s, const char *l, size_t n, hx_sse_cb cb, void *ud)
{
    if (n == 0)
        return dispatch(s, cb, ud);
    if (l[0] == ':')
        return 0; /* comment / keep-alive */
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vlen = colon ? n - flen - 1 : 0;
    if (vlen && *v == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        if (s->has_data && hx_buf_append(&s->data, "\n", 1) != 0)
            return -1;
        if (hx_buf_append(&s->data, v, vlen) != 0)
            return -1;
        s->has_data = 1;
    } else if (flen == 5 && memcmp(l, "event", 5) == 0) {
        size_t k = vlen < sizeof s->event - 1 ? vlen : sizeof s->event - 1;
        memcpy(s->event, v, k);
        s->event[k] = '\0';
    }
    return 0; /* id:, retry: and unknown fields are ignored */
}

int hx_sse_feed(hx_sse *s, const char *p, size_t n, hx_sse_cb cb, void *ud)
{
    size_t i = 0;
    while (i < n) {
        if (s->skip_lf) {
            s->skip_lf = 0;
            if (p[i] == '\n') {
                i++;
                continue;
            }
        }
        /* memchr is vectorised; '\r' is rare, so look for it only
         * before the next '\n'. */
        const char *nl = memchr(p + i, '\n', n - i);
        const char *cr = memchr(p + i, '\r', (size_t)((nl ? nl : p + n) - (p + i)));
        if (cr)
            nl = cr;
        size_t j = nl ? (size_t)(nl - p) : n;
        if (nl == NULL) {
            if (hx_buf_append(&s->line, p + i, n - i) != 0)
                return -1;
            return 0;
        }
        int rc;
        if (s->line.len) {
            if (hx_buf_append(&s->line, p + i, j - i) != 0)
                return -1;
            rc = sse_line(s, s->line.data, s->line.len, cb, ud);
            hx_buf_reset(&s->line);
        } else {
            rc = sse_line(s, p + i, j - i, cb, ud);
        }
        if (rc != 0)
            return -1;
        if (*nl == '\r')
            s->skip_lf = 1;
        i = j + 1;
    }
    return 0;
}

int hx_sse_end(hx_sse *s, hx_sse_cb cb, void *ud)
{
    if (s->line.len) {
        if (sse_line(s, s->line.data, s->line.len, cb, ud) != 0)
            return -1;
        hx_buf_reset(&s->line);
    }
    return dispatch(s, cb, ud);
}

int hx_sse_write_data(hx_buf *out, const char *data, size_t len, int json)
{
    const char *nl = memchr(data, '\n', len);
    if (nl == NULL) /* the usual case: one line, copied as it is */
        return hx_buf_append(out, "data: ", 6) || hx_buf_append(out, data, len) || hx_buf_append(out, "\n\n", 2)
                   ? -1
                   : 0;
    if (json) {
        if (hx_buf_append(out, "data: ", 6) != 0)
            return -1;
        size_t start = out->len;
        if (hx_buf_append(out, data, len) != 0)
            return -1;
        for (char *q = out->data + start; (q = memchr(q, '\n', (size_t)(out->data + out->len - q))) != NULL; q++)
            *q = ' ';
        return hx_buf_append(out, "\n\n", 2);
    }
    const char *p = data, *end = data + len;
    for (;;) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        size_t n = e ? (size_t)(e - p) : (size_t)(end - p);
        if (hx_buf_append(out, "data: ", 6) || hx_buf_append(out, p, n) || hx_buf_append(out, "\n", 1))
            return -1;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return hx_buf_append(out, "\n", 1);
}

void hx_ndjson_init(hx_ndjson *s)
{
    hx_buf_init(&s->line, HX_STREAM_EVENT_MAX);
}

void hx_ndjson_free(hx_ndjson *s)
{
    hx_buf_free(&s->line);
}

static int nd_line(const char *l, size_t n, hx_ndjson_cb cb, void *ud)
{
    while (n && (l[n - 1] == '\r' || l[n - 1] == ' '))
        n--;
    if (n == 0)
        return 0;
    return cb(ud, l, n) ? -1 : 0;
}

int hx_ndjson_feed(hx_ndjson *s, const char *p, size_t n, hx_ndjson_cb cb, void *ud)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        if (nl == NULL)
            return hx_buf_append(&s->line, p, n) == 0 ? 0 : -1;
        size_t k = (size_t)(nl - p);
        int rc;
        if (s->line.len) {
            if (hx_buf_append(&s->line, p, k) != 0)
                return -1;
            rc = nd_line(s->line.data, s->line.len, cb, ud);
            hx_buf_reset(&s->line);
        } else {
            rc = nd_line(p, k, cb, ud);
        }
        if (rc != 0)
            return -1;
        p += k + 1;
        n -= k + 1;
    }
    return 0;
}

int hx_ndjson_end(hx_ndjson *s, hx_ndjson_cb cb, void *ud)
{
    int rc = 0;
    if (s->line.len)
        rc = nd_line(s->line.data, s->line.len, cb, ud);
    hx_buf_reset(&s->line);
    return rc;
}
