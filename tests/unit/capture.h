/* A fake transport for unit tests: it records the response.
 *
 *     hx_test_capture c;
 *     cap_init(&c);
 *     hx_req *r = hx_req_new(&cap_tp, &c, cfg);
 *     ... run r, check c.status, cap_header(&c, ...), cap_text(&c) ...
 *     cap_free(&c);
 *
 * A test that needs more per request wraps it: a struct whose FIRST member
 * is the hx_test_capture, passed as tp_ctx (r->tp_ctx then points at both). */
#ifndef HX_TEST_CAPTURE_H
#define HX_TEST_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/request.h"
#include "util/buf.h"

typedef struct {
    int status;             /* 0 until head() */
    int64_t content_length; /* as head() got it; < 0: streamed */
    hx_headers headers;     /* a copy of every response header */
    hx_buf body;            /* what body() got; cap_text() for a C string */
    int ends;               /* end() calls */
    bool aborted;           /* abort() was called */
} hx_test_capture;

/* Empties c (all zero is the same empty state). */
static inline void cap_init(hx_test_capture *c)
{
    memset(c, 0, sizeof *c);
    hx_buf_init(&c->body, 0);
}

static inline void cap_free(hx_test_capture *c)
{
    hx_headers_free(&c->headers);
    hx_buf_free(&c->body);
}

/* Frees what c holds and empties it for the next request. */
static inline void cap_reset(hx_test_capture *c)
{
    cap_free(c);
    cap_init(c);
}

/* First value of response header `name` (any case), or NULL. */
static inline const char *cap_header(const hx_test_capture *c, const char *name)
{
    return hx_headers_get(&c->headers, name);
}

/* The same, but "" when the header is missing. */
static inline const char *cap_header_or_empty(const hx_test_capture *c, const char *name)
{
    const char *v = cap_header(c, name);
    return v ? v : "";
}

/* The body as a NUL-terminated string ("" when none was sent). */
static inline const char *cap_text(const hx_test_capture *c)
{
    return c->body.data ? c->body.data : "";
}

static inline int cap_head_(hx_req *r, int status, const hx_headers *h, int64_t cl)
{
    hx_test_capture *c = r->tp_ctx;
    c->status = status;
    c->content_length = cl;
    for (size_t i = 0; i < h->n; i++)
        if (hx_headers_add(&c->headers, h->items[i].name, h->items[i].value) != 0)
            return -1;
    return 0;
}

static inline int cap_body_(hx_req *r, const void *d, size_t n)
{
    return hx_buf_append(&((hx_test_capture *)r->tp_ctx)->body, d, n);
}

static inline int cap_end_(hx_req *r)
{
    ((hx_test_capture *)r->tp_ctx)->ends++;
    return 0;
}

static inline void cap_abort_(hx_req *r)
{
    ((hx_test_capture *)r->tp_ctx)->aborted = true;
}

__attribute__((unused)) static const hx_transport cap_tp = {cap_head_, cap_body_, cap_end_,
                                                            cap_abort_, NULL};

#endif
