/* Secret scrubbing: every configured secret (provider api_keys, client
 * keys, passwords) is replaced by "[redacted]" in what an upstream sends
 * before it can reach a client or a log line.
 *
 * A set is built once per configuration and is read-only afterwards, so
 * all workers share it without locks. Secrets shorter than
 * HX_SCRUB_MIN_LEN are not scrubbed: replacing every "abc" in model output
 * would corrupt answers without protecting anything worth a key.
 *
 * The stream form finds a secret split across any number of chunks: it
 * holds back only the tail of a chunk that could begin a secret (usually
 * nothing, so a clean chunk passes on without a copy). */
#ifndef HX_UTIL_SCRUB_H
#define HX_UTIL_SCRUB_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define HX_SCRUB_MIN_LEN 8
#define HX_SCRUB_MAX_LEN 4096     /* longer values are not credentials */
#define HX_SCRUB_MAX_SECRETS 1024
#define HX_SCRUB_MARK "[redacted]"

typedef struct hx_scrub hx_scrub;

hx_scrub *hx_scrub_new(void);
void hx_scrub_free(hx_scrub *s);
/* Adds a secret (copied). Too short, too long, duplicate or past
 * HX_SCRUB_MAX_SECRETS: ignored, returns 0. Returns -1 out of memory. */
int hx_scrub_add(hx_scrub *s, const char *secret, size_t len);
/* Number of secrets scrubbed (NULL set: 0). */
size_t hx_scrub_count(const hx_scrub *s);

/* One-shot: appends text[0..len) to out with every secret replaced.
 * Returns 0, or -1 (out full / out of memory). */
int hx_scrub_append(const hx_scrub *s, hx_buf *out, const char *text, size_t len);
/* In place on a C string of capacity `cap` (truncated to fit). */
void hx_scrub_cstr(const hx_scrub *s, char *str, size_t cap);

/* Streaming. */
typedef struct {
    hx_buf held;   /* tail that may begin a secret */
    hx_buf work;   /* what the last feed returned, when it had to change */
} hx_scrub_stream;

void hx_scrub_stream_init(hx_scrub_stream *st);
void hx_scrub_stream_free(hx_scrub_stream *st);
void hx_scrub_stream_reset(hx_scrub_stream *st);
/* Feeds n bytes. On success sets *outp and *outn to the bytes that may go on
 * now: p itself when nothing had to change, else memory owned by st that
 * stays valid until the next call. Returns 0, or -1 out of memory. */
int hx_scrub_feed(const hx_scrub *s, hx_scrub_stream *st, const char *p, size_t n, const char **outp,
                  size_t *outn);
/* End of stream: the held tail (not a secret after all). Same contract. */
int hx_scrub_flush(hx_scrub_stream *st, const char **outp, size_t *outn);

#endif
