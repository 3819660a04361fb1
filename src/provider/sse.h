/* Incremental splitters for streamed bodies: Server-Sent Events and
 * NDJSON. Bytes go in as they arrive, split across any boundary; complete
 * events come out. Buffers are bounded: an event larger than `max` is an
 * error, never an unbounded allocation. */
#ifndef HX_PROVIDER_SSE_H
#define HX_PROVIDER_SSE_H

#include <stddef.h>

#include "util/buf.h"

/* Largest single SSE event or NDJSON line accepted from an upstream. */
#define HX_STREAM_EVENT_MAX (4 * 1024 * 1024)

/* Called once per complete SSE event: `event` is the event name ("" when
 * none was given), data is the joined data lines (without the final \n).
 * Return 0 to go on, -1 to stop. */
typedef int (*hx_sse_cb)(void *ud, const char *event, const char *data, size_t len);

typedef struct {
    hx_buf line;   /* partial line */
    hx_buf data;   /* data lines of the current event */
    char event[64];
    int has_data;
    int skip_lf;   /* last byte was \r: a following \n belongs to it */
} hx_sse;

void hx_sse_init(hx_sse *s);
/* Feeds bytes; returns 0, or -1 when a callback stopped, an event grew
 * past HX_STREAM_EVENT_MAX or memory ran out. */
int hx_sse_feed(hx_sse *s, const char *p, size_t n, hx_sse_cb cb, void *ud);
/* End of stream: dispatches a last event not followed by a blank line. */
int hx_sse_end(hx_sse *s, hx_sse_cb cb, void *ud);
void hx_sse_free(hx_sse *s);

/* Appends one event's data to out as valid SSE ("data: ...\n" lines and
 * the blank line that ends the event). A joined multi-line value is split
 * back into one data line per line, so a client's parser rebuilds exactly
 * `data`. With `json` set (data already checked to be JSON, where a
 * newline can only be whitespace between tokens) it becomes one line: the
 * newlines are replaced by spaces, which clients that read one data line
 * per event also parse. Returns 0 or -1 (buffer full, out of memory). */
int hx_sse_write_data(hx_buf *out, const char *data, size_t len, int json);

/* NDJSON: one callback per non-empty line (without the newline). */
typedef int (*hx_ndjson_cb)(void *ud, const char *line, size_t len);

typedef struct {
    hx_buf line;
} hx_ndjson;

void hx_ndjson_init(hx_ndjson *s);
int hx_ndjson_feed(hx_ndjson *s, const char *p, size_t n, hx_ndjson_cb cb, void *ud);
int hx_ndjson_end(hx_ndjson *s, hx_ndjson_cb cb, void *ud);
void hx_ndjson_free(hx_ndjson *s);

#endif
