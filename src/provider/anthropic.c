/* Anthropic Messages API adapter, answer side: the Anthropic answer (JSON
 * or SSE) → canonical events; error bodies → messages. The request side is
 * in anthropic_req.c. */
#include <stdio.h>
#include <string.h>

#include "provider/anthropic_int.h"
#include "provider/sse.h"
#include "util/alloc.h"
#include "util/json.h"

#define ANTH_BODY_MAX ((size_t)64 * 1024 * 1024)

/* Parses exactly one JSON value from s[0..len) (trailing whitespace only). */
json_object *hx_anth_parse_json(const char *s, size_t len)
{
    return hx_json_parse(s, len);
}

/* Drops an incomplete UTF-8 sequence left at the end of s by truncation. */
static void utf8_trim(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80 && n - i < 3)
        i--;
    if (i == 0 || (unsigned char)s[i - 1] < 0xC0)
        return; /* ASCII end (or stray continuation bytes: left as they are) */
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (i - 1) < want)
        s[i - 1] = '\0';
}

/* ---- response parser ----------------------------------------------------- */

typedef struct {
    bool stream;
    bool failed;
    bool done;       /* message_stop seen (stream) */
    hx_buf body;     /* non-stream: the whole answer */
    hx_sse sse;
    int ntools;      /* tool_use blocks seen so far */
    int cur_block;   /* Anthropic index of the open tool_use block, -1 */
    int cur_tool;    /* its canonical tool index */
    char stop[32];
    hx_buf stop_seq;  /* the matched stop sequence (stop_reason stop_sequence) */
    bool has_stop_seq;
    int64_t in_tok, out_tok, cache_read, cache_write;
    hx_event_sink sink;
    void *ud;
    char err[256];
} anth_parser;

static void *anth_parser_new(bool stream)
{
    anth_parser *ps = hx_calloc(1, sizeof *ps);
    if (ps == NULL)
        return NULL;
    ps->stream = stream;
    ps->cur_block = -1;
    hx_buf_init(&ps->body, ANTH_BODY_MAX);
    hx_buf_init(&ps->stop_seq, HX_PROVIDER_TEXT_MAX);
    hx_sse_init(&ps->sse);
    return ps;
}

static void anth_parser_free(void *p)
{
    anth_parser *ps = p;
    if (ps == NULL)
        return;
    hx_buf_free(&ps->body);
    hx_buf_free(&ps->stop_seq);
    hx_sse_free(&ps->sse);
    hx_free(ps);
}

static const char *anth_parser_error(void *p)
{
    anth_parser *ps = p;
    return ps && ps->err[0] ? ps->err : "";
}

static int perr(anth_parser *ps, const char *msg)
{
    if (!ps->failed)
        snprintf(ps->err, sizeof ps->err, "%s", msg);
    ps->failed = true;
    return -1;
}

static int emit(anth_parser *ps, const hx_event *ev)
{
    if (ps->sink(ps->ud, ev) != 0)
        return perr(ps, "stopped by the receiver");
    return 0;
}

static const char *map_stop(const char *s)
{
    if (s == NULL || strcmp(s, "end_turn") == 0 || strcmp(s, "stop_sequence") == 0)
        return "stop";
    if (strcmp(s, "max_tokens") == 0)
        return "length";
    if (strcmp(s, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(s, "refusal") == 0)
        return "content_filter";
    return "stop";
}

/* Counts are clamped and their sum saturates (hx_json_tokens): an
 * upstream's 1e308 or INT64_MAX must not overflow anything downstream. */
static int64_t usage_count(json_object *usage, const char *k)
{
    return hx_json_tokens(aj_get(usage, k));
}

/* Canonical prompt tokens (event.h) include the cached parts; Anthropic's
 * input_tokens excludes them: read_usage adds them back. */
/* Takes the counts a usage object carries (message_delta repeats only
 * some of them). */
static void read_usage(anth_parser *ps, json_object *u)
{
    if (aj_get(u, "output_tokens"))
        ps->out_tok = usage_count(u, "output_tokens");
    if (aj_get(u, "cache_read_input_tokens"))
        ps->cache_read = usage_count(u, "cache_read_input_tokens");
    if (aj_get(u, "cache_creation_input_tokens"))
        ps->cache_write = usage_count(u, "cache_creation_input_tokens");
    if (aj_get(u, "input_tokens"))
        ps->in_tok = hx_tokens_add(hx_tokens_add(usage_count(u, "input_tokens"), ps->cache_read), ps->cache_write);
}

/* stop_reason and stop_sequence of a message or a message_delta. */
static int read_stop(anth_parser *ps, json_object *o)
{
    const char *sr = aj_str(o, "stop_reason");
    json_object *seq = aj_get(o, "stop_sequence");
    if (sr)
        snprintf(ps->stop, sizeof ps->stop, "%s", sr);
    if (seq && json_object_is_type(seq, json_type_string)) {
        hx_buf_reset(&ps->stop_seq);
        if (hx_buf_append(&ps->stop_seq, json_object_get_string(seq), (size_t)json_object_get_string_len(seq)) != 0)
            return perr(ps, "out of memory");
        ps->has_stop_seq = true;
    }
    return 0;
}

static int emit_error_obj(anth_parser *ps, json_object *o)
{
    const char *msg = aj_str(aj_get(o, "error"), "message");
    char m[256];
    snprintf(m, sizeof m, "%s", msg ? msg : "upstream reported an error");
    utf8_trim(m);
    hx_event ev = {.type = HX_EV_ERROR, .text = m, .len = strlen(m)};
    if (emit(ps, &ev) != 0)
        return -1;
    return perr(ps, m);
}

static int emit_tool(anth_parser *ps, int index, json_object *block)
{
    hx_event ev = {.type = HX_EV_TOOL_CALL, .index = index, .id = aj_str(block, "id"), .name = aj_str(block, "name")};
    if (emit(ps, &ev) != 0)
        return -1;
    json_object *input = aj_get(block, "input");
    if (input == NULL || (ps->stream && json_object_is_type(input, json_type_object) && json_object_object_length(input) == 0))
        return 0;
    size_t len = 0;
    const char *s = json_object_to_json_string_length(input, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (s == NULL)
        return perr(ps, "out of memory");
    hx_event a = {.type = HX_EV_TOOL_ARGS, .index = index, .text = s, .len = len};
    return emit(ps, &a);
}

static int emit_finish_usage(anth_parser *ps)
{
    hx_event f = {.type = HX_EV_FINISH, .finish = map_stop(ps->stop[0] ? ps->stop : NULL)};
    if (ps->has_stop_seq && strcmp(ps->stop, "stop_sequence") == 0) {
        f.text = ps->stop_seq.data ? ps->stop_seq.data : "";
        f.len = ps->stop_seq.len;
    }
    hx_event u = {.type = HX_EV_USAGE, .prompt_tokens = ps->in_tok, .completion_tokens = ps->out_tok,
                  .cache_read_tokens = ps->cache_read, .cache_write_tokens = ps->cache_write};
    return emit(ps, &f) != 0 || emit(ps, &u) != 0 ? -1 : 0;
}

/* A string member as an event of `type` (nothing when empty). */
static int emit_str(anth_parser *ps, hx_ev_type type, json_object *o, const char *k, bool empty_too)
{
    json_object *t = aj_get(o, k);
    if (t == NULL || !json_object_is_type(t, json_type_string))
        return perr(ps, "malformed event from upstream");
    if (json_object_get_string_len(t) == 0 && !empty_too)
        return 0;
    hx_event ev = {.type = type, .text = json_object_get_string(t), .len = (size_t)json_object_get_string_len(t)};
    return emit(ps, &ev);
}

static int on_block_start(anth_parser *ps, json_object *o)
{
    json_object *b = aj_get(o, "content_block");
    const char *type = aj_str(b, "type");
    if (type == NULL)
        return perr(ps, "malformed event from upstream");
    if (strcmp(type, "text") == 0) {
        json_object *t = aj_get(b, "text");
        if (t && json_object_is_type(t, json_type_string) && json_object_get_string_len(t) > 0) {
            hx_event ev = {.type = HX_EV_TEXT, .text = json_object_get_string(t), .len = (size_t)json_object_get_string_len(t)};
            return emit(ps, &ev);
        }
    } else if (strcmp(type, "tool_use") == 0) {
        ps->cur_block = (int)aj_int(o, "index");
        ps->cur_tool = ps->ntools++;
        return emit_tool(ps, ps->cur_tool, b);
    } else if (strcmp(type, "thinking") == 0) {
        /* The text and signature come as deltas; a start that carries
         * them already is taken too. */
        if (aj_get(b, "thinking") && emit_str(ps, HX_EV_THINKING, b, "thinking", false) != 0)
            return -1;
        json_object *sig = aj_get(b, "signature");
        if (sig && json_object_is_type(sig, json_type_string) && json_object_get_string_len(sig) > 0)
            return emit_str(ps, HX_EV_THINKING_SIGNATURE, b, "signature", false);
    } else if (strcmp(type, "redacted_thinking") == 0) {
        return emit_str(ps, HX_EV_REDACTED_THINKING, b, "data", true);
    }
    return 0; /* other blocks (server tools) are not part of the canonical answer */
}

static int on_block_delta(anth_parser *ps, json_object *o)
{
    json_object *d = aj_get(o, "delta");
    const char *type = aj_str(d, "type");
    if (type == NULL)
        return perr(ps, "malformed event from upstream");
    if (strcmp(type, "text_delta") == 0) {
        json_object *t = aj_get(d, "text");
        if (t == NULL || !json_object_is_type(t, json_type_string))
            return perr(ps, "malformed event from upstream");
        if (json_object_get_string_len(t) == 0)
            return 0;
        hx_event ev = {.type = HX_EV_TEXT, .text = json_object_get_string(t), .len = (size_t)json_object_get_string_len(t)};
        return emit(ps, &ev);
    }
    if (strcmp(type, "input_json_delta") == 0) {
        json_object *t = aj_get(d, "partial_json");
        if (t == NULL || !json_object_is_type(t, json_type_string) || ps->cur_block < 0 || aj_int(o, "index") != ps->cur_block)
            return perr(ps, "malformed event from upstream");
        if (json_object_get_string_len(t) == 0)
            return 0;
        hx_event ev = {.type = HX_EV_TOOL_ARGS, .index = ps->cur_tool, .text = json_object_get_string(t),
                       .len = (size_t)json_object_get_string_len(t)};
        return emit(ps, &ev);
    }
    if (strcmp(type, "thinking_delta") == 0)
        return emit_str(ps, HX_EV_THINKING, d, "thinking", false);
    if (strcmp(type, "signature_delta") == 0)
        return emit_str(ps, HX_EV_THINKING_SIGNATURE, d, "signature", false);
    return 0; /* citations_delta and future delta types */
}

static int on_event(anth_parser *ps, const char *type, json_object *o)
{
    if (strcmp(type, "message_start") == 0) {
        json_object *m = aj_get(o, "message");
        read_usage(ps, aj_get(m, "usage"));
        /* The input is known up front: the Anthropic renderer shows it in
         * its own message_start. */
        hx_event ev = {.type = HX_EV_META, .id = aj_str(m, "id"), .name = aj_str(m, "model"),
                       .prompt_tokens = ps->in_tok, .cache_read_tokens = ps->cache_read,
                       .cache_write_tokens = ps->cache_write};
        return emit(ps, &ev);
    }
    if (strcmp(type, "content_block_start") == 0)
        return on_block_start(ps, o);
    if (strcmp(type, "content_block_delta") == 0)
        return on_block_delta(ps, o);
    if (strcmp(type, "content_block_stop") == 0) {
        if (aj_int(o, "index") == ps->cur_block)
            ps->cur_block = -1;
        return 0;
    }
    if (strcmp(type, "message_delta") == 0) {
        read_usage(ps, aj_get(o, "usage"));
        return read_stop(ps, aj_get(o, "delta"));
    }
    if (strcmp(type, "message_stop") == 0) {
        ps->done = true;
        return emit_finish_usage(ps);
    }
    if (strcmp(type, "error") == 0)
        return emit_error_obj(ps, o);
    return 0; /* ping and future event types */
}

static int on_sse(void *ud, const char *event, const char *data, size_t len)
{
    anth_parser *ps = ud;
    if (ps->done || ps->failed)
        return ps->failed ? -1 : 0;
    json_object *o = hx_anth_parse_json(data, len);
    if (o == NULL || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return perr(ps, "malformed event from upstream");
    }
    const char *type = aj_str(o, "type");
    if (type == NULL)
        type = event;
    int rc = on_event(ps, type, o);
    json_object_put(o);
    return rc;
}

static int anth_parser_feed(void *p, const char *data, size_t len, hx_event_sink sink, void *ud)
{
    anth_parser *ps = p;
    if (ps->failed)
        return -1;
    if (!ps->stream)
        return hx_buf_append(&ps->body, data, len) == 0 ? 0 : perr(ps, "upstream answer too large");
    ps->sink = sink;
    ps->ud = ud;
    if (hx_sse_feed(&ps->sse, data, len, on_sse, ps) != 0)
        return perr(ps, "upstream event too large");
    return 0;
}

static int parse_message(anth_parser *ps, json_object *o)
{
    json_object *content = aj_get(o, "content");
    if (strcmp(aj_str(o, "type") ? aj_str(o, "type") : "", "error") == 0)
        return emit_error_obj(ps, o);
    if (content == NULL || !json_object_is_type(content, json_type_array))
        return perr(ps, "malformed answer from upstream: no content");
    read_usage(ps, aj_get(o, "usage"));
    if (read_stop(ps, o) != 0)
        return -1;
    hx_event meta = {.type = HX_EV_META, .id = aj_str(o, "id"), .name = aj_str(o, "model"),
                     .prompt_tokens = ps->in_tok, .cache_read_tokens = ps->cache_read,
                     .cache_write_tokens = ps->cache_write};
    if (emit(ps, &meta) != 0)
        return -1;
    /* Blocks in their order: thinking before the text it led to. */
    size_t n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++) {
        json_object *b = json_object_array_get_idx(content, i);
        const char *type = aj_str(b, "type");
        int rc = 0;
        if (type == NULL)
            continue;
        if (strcmp(type, "text") == 0 && aj_get(b, "text"))
            rc = emit_str(ps, HX_EV_TEXT, b, "text", false);
        else if (strcmp(type, "tool_use") == 0)
            rc = emit_tool(ps, ps->ntools++, b);
        else if (strcmp(type, "thinking") == 0)
            rc = emit_str(ps, HX_EV_THINKING, b, "thinking", false) ||
                 emit_str(ps, HX_EV_THINKING_SIGNATURE, b, "signature", true);
        else if (strcmp(type, "redacted_thinking") == 0)
            rc = emit_str(ps, HX_EV_REDACTED_THINKING, b, "data", true);
        if (rc != 0)
            return -1;
    }
    return emit_finish_usage(ps);
}

static int anth_parser_end(void *p, hx_event_sink sink, void *ud)
{
    anth_parser *ps = p;
    if (ps->failed)
        return -1;
    ps->sink = sink;
    ps->ud = ud;
    if (ps->stream) {
        if (hx_sse_end(&ps->sse, on_sse, ps) != 0)
            return perr(ps, "upstream event too large");
        return ps->done ? 0 : perr(ps, "upstream stream ended early");
    }
    json_object *o = hx_anth_parse_json(ps->body.data ? ps->body.data : "", ps->body.len);
    if (o == NULL || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return perr(ps, "malformed answer from upstream: not a JSON object");
    }
    int rc = parse_message(ps, o);
    json_object_put(o);
    return rc;
}

/* ---- error bodies -------------------------------------------------------- */

static void anth_error_message(const char *body, size_t len, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    json_object *o = body && len ? hx_anth_parse_json(body, len) : NULL;
    const char *msg = aj_str(aj_get(o, "error"), "message");
    if (msg && msg[0]) {
        snprintf(out, outlen, "%s", msg);
        utf8_trim(out);
        json_object_put(o);
        return;
    }
    json_object_put(o);
    if (body == NULL)
        len = 0;
    size_t k = 0, i = 0, lim = outlen - 1 < 200 ? outlen - 1 : 200;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    for (; i < len && k < lim; i++)
        out[k++] = (unsigned char)body[i] < 0x20 || body[i] == 0x7f ? ' ' : body[i];
    while (k && out[k - 1] == ' ')
        k--;
    out[k] = '\0';
    utf8_trim(out);
    if (k == 0)
        snprintf(out, outlen, "%s", "upstream error without a message");
}

const hx_adapter hx_adapter_anthropic = {
    .name = "anthropic",
    .default_endpoint = "https://api.anthropic.com/v1",
    .key_required = true,
    .build_chat = hx_anth_build_chat,
    .native = {[HX_API_MESSAGES] = &hx_anth_native_messages, [HX_API_COUNT_TOKENS] = &hx_anth_native_count_tokens},
    .build_probe = hx_anth_build_probe,
    .parser_new = anth_parser_new,
    .parser_feed = anth_parser_feed,
    .parser_end = anth_parser_end,
    .parser_error = anth_parser_error,
    .parser_free = anth_parser_free,
    .error_message = anth_error_message,
};
