/* Stream target: the SSE and NDJSON splitters and each provider's response
 * parser (openai, anthropic, ollama; streamed and whole), fed in chunks the
 * input chooses, with the events rendered back by every inbound renderer.
 *
 * Input: byte 0 picks the parser (bits 0-2) and streaming (bit 3); byte 1
 * seeds the chunk sizes; the rest is the upstream body.
 * Invariants: every non-streamed body rendered is one valid JSON value, and
 * every `data:` line of a rendered stream is valid JSON or [DONE]. */
#include <string.h>

#include "fuzz.h"
#include "gateway/render.h"
#include "provider/adapter.h"
#include "provider/sse.h"
#include "util/json.h"

#define NRENDER 4

typedef struct {
    hx_render r[NRENDER];   /* streaming renderers */
    hx_render c[NRENDER];   /* collecting (non-streamed) renderers */
    hx_buf out[NRENDER];
    int events;
} sink_state;

static const hx_render_vt *const vts[NRENDER] = {
    &hx_render_openai_chat, &hx_render_openai_legacy, &hx_render_hapax, &hx_render_anthropic,
};

static int on_event(void *ud, const hx_event *ev)
{
    sink_state *s = ud;
    s->events++;
    for (int i = 0; i < NRENDER; i++) {
        if (s->r[i].vt->stream_event(&s->r[i], ev, &s->out[i]) != 0)
            return -1;
        if (hx_render_collect(&s->c[i], ev) != 0)
            return -1;
    }
    return 0;
}

/* Each `data:` line of a rendered stream carries one JSON value. */
static void check_sse_out(const hx_buf *b)
{
    const char *p = b->data, *end = b->data + b->len;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if ((size_t)(le - p) >= 6 && memcmp(p, "data: ", 6) == 0) {
            const char *v = p + 6;
            size_t vl = (size_t)(le - v);
            FUZZ_CHECK((vl == 6 && memcmp(v, "[DONE]", 6) == 0) || hx_json_valid(v, vl));
        }
        p = nl ? nl + 1 : NULL;
    }
}

static int sse_cb(void *ud, const char *event, const char *data, size_t len)
{
    (void)data;
    FUZZ_CHECK(strlen(event) < 64);
    FUZZ_CHECK(len <= HX_STREAM_EVENT_MAX);
    return *(int *)ud == 0 ? 0 : -1;
}

static int nd_cb(void *ud, const char *line, size_t len)
{
    FUZZ_CHECK(len > 0 && memchr(line, '\n', len) == NULL);
    return *(int *)ud == 0 ? 0 : -1;
}

/* Next chunk length from a tiny LCG seeded by the input. */
static size_t next_chunk(unsigned *seed, size_t left)
{
    *seed = *seed * 1103515245u + 12345u;
    size_t n = 1 + (*seed >> 16) % 97;
    return n < left ? n : left;
}

static void splitters(const char *body, size_t len, unsigned seed, int stop)
{
    hx_sse s;
    hx_sse_init(&s);
    hx_ndjson nd;
    hx_ndjson_init(&nd);
    int src = 0, nrc = 0;
    for (size_t off = 0; off < len;) {
        size_t n = next_chunk(&seed, len - off);
        if (src == 0)
            src = hx_sse_feed(&s, body + off, n, sse_cb, &stop);
        if (nrc == 0)
            nrc = hx_ndjson_feed(&nd, body + off, n, nd_cb, &stop);
        off += n;
    }
    if (src == 0)
        hx_sse_end(&s, sse_cb, &stop);
    if (nrc == 0)
        hx_ndjson_end(&nd, nd_cb, &stop);
    hx_sse_free(&s);
    hx_ndjson_free(&nd);
}

static void provider(const hx_adapter *ad, bool stream, const char *body, size_t len, unsigned seed)
{
    sink_state s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < NRENDER; i++) {
        hx_render_init(&s.r[i], vts[i], true, (seed & 1) != 0, "fuzz-model");
        hx_render_init(&s.c[i], vts[i], false, false, "fuzz-model");
        hx_buf_init(&s.out[i], 0);
    }
    void *ps = ad->parser_new(stream);
    int rc = ps ? 0 : -1;
    for (size_t off = 0; rc == 0 && off < len;) {
        size_t n = next_chunk(&seed, len - off);
        rc = ad->parser_feed(ps, body + off, n, on_event, &s);
        off += n;
    }
    if (rc == 0)
        rc = ad->parser_end(ps, on_event, &s);
    if (ps) {
        const char *why = ad->parser_error(ps);
        (void)why;
        ad->parser_free(ps);
    }
    for (int i = 0; i < NRENDER; i++) {
        if (rc == 0)
            s.r[i].vt->stream_end(&s.r[i], &s.out[i]);
        else
            s.r[i].vt->stream_error(&s.r[i], "api_error", "upstream broke \"the\" stream\n", &s.out[i]);
        check_sse_out(&s.out[i]);
        if (rc == 0) {
            hx_buf b;
            hx_buf_init(&b, 0);
            if (s.c[i].vt->body(&s.c[i], &b) == 0) {
                if (!hx_json_valid(b.data, b.len) && getenv("HX_FUZZ_DUMP"))
                    fprintf(stderr, "renderer %d: %.*s\n", i, (int)b.len, b.data);
                FUZZ_CHECK(hx_json_valid(b.data, b.len));
            }
            hx_buf_free(&b);
        }
        hx_render_free(&s.r[i]);
        hx_render_free(&s.c[i]);
        hx_buf_free(&s.out[i]);
    }
    char msg[512];
    ad->error_message(body, len, msg, sizeof msg);
    FUZZ_CHECK(strlen(msg) < sizeof msg);
}

int hx_fuzz_stream(const uint8_t *data, size_t size)
{
    hx_fuzz_setup();
    if (size < 2)
        return 0;
    static const hx_adapter *const ads[3] = {&hx_adapter_openai, &hx_adapter_anthropic, &hx_adapter_ollama};
    int sel = data[0] & 7;
    bool stream = (data[0] & 8) != 0;
    unsigned seed = data[1];
    const char *body = (const char *)data + 2;
    size_t len = size - 2;
    if (sel < 3)
        provider(ads[sel], stream, body, len, seed);
    else if (sel < 6)
        splitters(body, len, seed, sel == 5);
    else
        provider(ads[sel - 6], !stream, body, len, seed);
    return 0;
}
