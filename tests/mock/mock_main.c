/* mock-provider: a fast single-threaded mock LLM upstream (OpenAI,
 * Anthropic, Ollama wire formats) with fault injection, for hapax's
 * integration tests and benchmarks. See tests/mock/README.md. */
#include <ctype.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include <http_parser.h>
#include <json-c/json.h>
#include <uv.h>

#include "mock_embed.h"
#include "mock_formats.h"
#include "mock_http.h"

#define SLOW_MS 200
#define RESET_AFTER_CHUNKS 2

enum fmode { FM_NONE, FM_STATUS, FM_HANG, FM_SLOW, FM_RESET, FM_MALJSON, FM_MALSSE, FM_HUGE, FM_CLOSE,
             FM_STALL, FM_HUGE_STALL, FM_ECHO_KEY, FM_ECHO_KEY_STREAM, FM_MULTILINE_SSE, FM_ACCEPT_STALL,
             FM_QUOTA, FM_REDIRECT, FM_CTX_LEN, FM_POLICY };

/* Delay between the two writes of a split answer (echo-key-stream). */
#define SPLIT_MS 100

typedef struct {
    int mode, status;
    long delay_ms, retry_after; /* -1: default */
    char ra_text[40];           /* X-Mock-Retry-After as sent, when not a plain number */
} fault;

enum { R_NOTFOUND, R_GENERATE, R_MODELS, R_TAGS, R_OAI_EMBED, R_OLL_EMBED, R_COUNT };

static struct {
    uv_loop_t *loop;
    uv_tcp_t server;
    uv_signal_t sigterm, sigint;
    long chunks, chunk_delay;
    unsigned long seq;
    fault armed;
    long armed_count;
    int last_valid, last_method;
    mbuf last_url, last_hdrs, last_body;
    json_tokener *tok;
} g;

/* ---- small helpers --------------------------------------------------- */

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    long v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int path_is(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(p, lit, l) == 0;
}

static json_object *parse_json(mbuf *b)
{
    if (b->len == 0 || b->len >= INT_MAX)
        return NULL;
    mbuf_cstr(b);
    json_tokener_reset(g.tok);
    json_object *o = json_tokener_parse_ex(g.tok, b->data, (int)b->len + 1);
    if (json_tokener_get_error(g.tok) != json_tokener_success) {
        json_object_put(o);
        return NULL;
    }
    for (size_t i = json_tokener_get_parse_end(g.tok); i < b->len; i++) {
        if (!isspace((unsigned char)b->data[i]) && b->data[i] != '\0') {
            json_object_put(o);
            return NULL;
        }
    }
    return o;
}

static long slow_delay(const fault *f)
{
    return f->delay_ms >= 0 ? f->delay_ms : SLOW_MS;
}

/* Sends c->ev as a whole response, applying the slow/reset faults. */
static void send_body(mock_conn *c, int status, const char *ctype, const char *extra,
                      const fault *f)
{
    uint64_t delay = 0;
    if (f && f->mode == FM_SLOW)
        delay = (uint64_t)slow_delay(f) * (uint64_t)c->req_chunks;
    int stall = f && (f->mode == FM_STALL || f->mode == FM_HUGE_STALL);
    c->stall = stall;
    mock_send(c, status, ctype, extra, delay, f && (f->mode == FM_RESET || stall));
}

static void start_stream(mock_conn *c, const fault *f)
{
    int stall = f->mode == FM_STALL || f->mode == FM_HUGE_STALL;
    c->stall = stall;
    mock_start_stream(c, f->mode == FM_SLOW ? slow_delay(f) : g.chunk_delay,
                      f->mode == FM_RESET || stall ? RESET_AFTER_CHUNKS : -1, f->mode == FM_MALSSE);
}

/* ---- request handling ------------------------------------------------ */

/* Provider auth headers; Anthropic's version header only where required. */
static int check_auth(mock_conn *c, mf_family fam, int need_version)
{
    if (fam == FAM_OPENAI) {
        const char *a = mock_header(c, "authorization");
        if (a && strncasecmp(a, "Bearer ", 7) == 0 && a[7] && a[7] != ' ')
            return 1;
        mock_send_error(c, fam, 401,
                        a ? "Incorrect API key provided."
                          : "You didn't provide an API key. You need to provide your API key "
                            "in an Authorization header using Bearer auth (i.e. "
                            "Authorization: Bearer YOUR_KEY).",
                        NULL);
        return 0;
    }
    if (fam == FAM_ANTHROPIC) {
        const char *k = mock_header(c, "x-api-key");
        if (!k || !*k) {
            mock_send_error(c, fam, 401, "x-api-key header is required", NULL);
            return 0;
        }
        const char *v = mock_header(c, "anthropic-version");
        if (need_version && (!v || !*v)) {
            mock_send_error(c, fam, 400, "anthropic-version: header is required", NULL);
            return 0;
        }
    }
    return 1;
}

static void handle_generate(mock_conn *c, mf_endpoint ep, const fault *f)
{
    mf_family fam = mf_family_of(ep);
    if (!check_auth(c, fam, 1))
        return;
    json_object *body = parse_json(&c->body);
    if (!body) {
        mock_send_error(c, fam, 400, "We could not parse the JSON body of your request.", NULL);
        return;
    }
    const char *err = NULL;
    if (mf_reply_init(&c->reply, ep, body, (size_t)c->req_chunks, f->mode == FM_HUGE || f->mode == FM_HUGE_STALL,
                      ++g.seq, &err) != 0) {
        json_object_put(body);
        mf_reply_free(&c->reply);
        mock_send_error(c, fam, 400, err, NULL);
        return;
    }
    c->has_reply = 1;
    int stream = mf_wants_stream(ep, body);
    json_object_put(body);
    if (stream) {
        start_stream(c, f);
        return;
    }
    c->ev.len = 0;
    mf_render_full(&c->reply, &c->ev);
    send_body(c, 200, "application/json", NULL, f);
}

/* Embeddings and count_tokens: one whole JSON answer (mock_embed.c). */
static void handle_embed(mock_conn *c, int r, mf_family fam, const fault *f)
{
    if (!check_auth(c, fam, 1))
        return;
    json_object *body = parse_json(&c->body);
    if (!body || !json_object_is_type(body, json_type_object)) {
        json_object_put(body);
        mock_send_error(c, fam, 400, "We could not parse the JSON body of your request.", NULL);
        return;
    }
    const char *err = "bad request";
    c->ev.len = 0;
    int st = r == R_COUNT ? me_count_tokens(body, &c->ev, &err) : me_embeddings(r == R_OLL_EMBED, body, &c->ev, &err);
    json_object_put(body);
    if (st != 200) {
        mock_send_error(c, fam, st, err, NULL);
        return;
    }
    send_body(c, 200, "application/json", NULL, f);
}

static int route(mock_conn *c, const char *p, size_t n, mf_endpoint *ep, mf_family *fam, int *post)
{
    *post = 1;
    *fam = FAM_OPENAI;
    if (n >= 5 && memcmp(p, "/api/", 5) == 0)
        *fam = FAM_OLLAMA;
    if (path_is(p, n, "/v1/chat/completions"))
        return *ep = EP_OAI_CHAT, R_GENERATE;
    if (path_is(p, n, "/v1/completions"))
        return *ep = EP_OAI_COMPLETIONS, R_GENERATE;
    if (path_is(p, n, "/v1/messages"))
        return *fam = FAM_ANTHROPIC, *ep = EP_ANTHROPIC, R_GENERATE;
    if (path_is(p, n, "/api/chat"))
        return *ep = EP_OLLAMA_CHAT, R_GENERATE;
    if (path_is(p, n, "/v1/embeddings"))
        return R_OAI_EMBED;
    if (path_is(p, n, "/api/embed"))
        return R_OLL_EMBED;
    if (path_is(p, n, "/v1/messages/count_tokens"))
        return *fam = FAM_ANTHROPIC, R_COUNT;
    *post = 0;
    if (path_is(p, n, "/api/tags"))
        return R_TAGS;
    if (path_is(p, n, "/v1/models")) {
        if (!mock_header(c, "authorization") && mock_header(c, "x-api-key"))
            *fam = FAM_ANTHROPIC;
        return R_MODELS;
    }
    if (n >= 13 && memcmp(p, "/v1/messages/", 13) == 0)
        *fam = FAM_ANTHROPIC;
    return R_NOTFOUND;
}

static int parse_fault(const char *s, size_t n, fault *f)
{
    static const struct {
        const char *name;
        int mode;
    } names[] = { { "hang", FM_HANG },        { "slow", FM_SLOW },
                  { "reset", FM_RESET },      { "malformed-json", FM_MALJSON },
                  { "malformed-sse", FM_MALSSE }, { "huge", FM_HUGE },
                  { "close", FM_CLOSE },      { "none", FM_NONE },
                  { "stall", FM_STALL },      { "huge-stall", FM_HUGE_STALL },
                  { "echo-key", FM_ECHO_KEY }, { "echo-key-stream", FM_ECHO_KEY_STREAM },
                  { "multiline-sse", FM_MULTILINE_SSE }, { "accept-stall", FM_ACCEPT_STALL },
                  { "quota", FM_QUOTA },      { "redirect", FM_REDIRECT },
                  { "context-length", FM_CTX_LEN }, { "content-policy", FM_POLICY } };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (path_is(s, n, names[i].name)) {
            f->mode = names[i].mode;
            return 0;
        }
    }
    char num[8];
    long code;
    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    if (parse_long(num, 400, 599, &code) != 0)
        return -1;
    f->mode = FM_STATUS;
    f->status = (int)code;
    return 0;
}

/* Picks the fault: X-Mock-Fault header, else /fault/MODE prefix (always
 * stripped from *p), else the armed one. Returns -1 on an unknown mode. */
static int select_fault(mock_conn *c, const char **p, size_t *n, fault *f)
{
    const char *seg = NULL;
    size_t seglen = 0;
    *f = (fault){ FM_NONE, 0, -1, -1, "" };
    if (*n > 7 && memcmp(*p, "/fault/", 7) == 0) {
        seg = *p + 7;
        const char *slash = memchr(seg, '/', *n - 7);
        seglen = slash ? (size_t)(slash - seg) : *n - 7;
        *p = slash ? slash : "/";
        *n = slash ? *n - 7 - seglen : 1;
    }
    const char *h = mock_header(c, "x-mock-fault");
    if (h) {
        if (parse_fault(h, strlen(h), f) != 0)
            return -1;
    } else if (seg) {
        if (parse_fault(seg, seglen, f) != 0)
            return -1;
    } else if (g.armed_count != 0) {
        *f = g.armed;
        if (g.armed_count > 0 && --g.armed_count == 0)
            g.armed.mode = FM_NONE;
    }
    long v;
    if (parse_long(mock_header(c, "x-mock-delay-ms"), 0, 3600000, &v) == 0)
        f->delay_ms = v;
    const char *ra = mock_header(c, "x-mock-retry-after");
    if (parse_long(ra, 0, 86400, &v) == 0)
        f->retry_after = v;
    else if (ra && strlen(ra) < sizeof f->ra_text && strcspn(ra, "\r\n") == strlen(ra))
        snprintf(f->ra_text, sizeof f->ra_text, "%s", ra); /* hostile values, sent as they are */
    return 0;
}

/* The credential the client sent, as a hostile upstream would echo it. */
static const char *sent_key(const mock_conn *c, mf_family fam)
{
    const char *k = mock_header(c, fam == FAM_ANTHROPIC ? "x-api-key" : "authorization");
    return k ? k : "(none)";
}

#define OAI_CHUNK_HEAD "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
#define OAI_CHUNK_END                                                                                    \
    "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\"," \
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"                          \
    "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\"," \
    "\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n"      \
    "data: [DONE]\n\n"

/* OpenAI chat streams written by hand: the content echoes the key, split
 * across two writes in the middle of the key; or each event's JSON is
 * spread over two data: lines (valid SSE, joined with a newline). */
static void send_special_stream(mock_conn *c, const fault *f, mf_family fam)
{
    mbuf a = { 0 }, b = { 0 };
    mbuf_cstr(&c->body);
    int stream = c->body.data && strstr(c->body.data, "\"stream\":true") != NULL;
    if (f->mode == FM_ECHO_KEY_STREAM && !stream) {
        /* not streamed: the whole chat.completion, cut inside the key */
        const char *k = sent_key(c, fam);
        size_t half = strlen(k) / 2;
        mbuf_str(&a, "{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\","
                     "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"your key was ");
        mbuf_add(&a, k, half);
        mbuf_str(&b, k + half);
        mbuf_str(&b, "\"},\"finish_reason\":\"stop\"}],"
                     "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}");
        mock_send_split(c, 200, "application/json", a.data, a.len, b.data, b.len, SPLIT_MS);
        mbuf_free(&a);
        mbuf_free(&b);
        return;
    }
    if (f->mode == FM_ECHO_KEY_STREAM) {
        const char *k = sent_key(c, fam);
        size_t half = strlen(k) / 2;
        mbuf_str(&a, OAI_CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                     "\"content\":\"your key was ");
        mbuf_add(&a, k, half);
        mbuf_str(&b, k + half);
        mbuf_str(&b, "\"},\"finish_reason\":null}]}\n\n" OAI_CHUNK_END);
    } else {
        mbuf_str(&a, OAI_CHUNK_HEAD "\n"
                     "data: \"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"multi\"},"
                     "\"finish_reason\":null}]}\n\n");
        mbuf_str(&b, OAI_CHUNK_HEAD "\n"
                     "data: \"choices\":[{\"index\":0,\"delta\":{\"content\":\" line\"},"
                     "\"finish_reason\":null}]}\n\n" OAI_CHUNK_END);
    }
    mock_send_split(c, 200, "text/event-stream", a.data, a.len, b.data, b.len, SPLIT_MS);
    mbuf_free(&a);
    mbuf_free(&b);
}

/* Provider errors with a meaning of their own (type and code as the real
 * APIs send them): quota 429, context length 400, content policy 400. */
static void send_coded_error(mock_conn *c, const fault *f, mf_family fam)
{
    int status = f->mode == FM_QUOTA ? 429 : 400;
    const char *type = f->mode == FM_QUOTA ? "insufficient_quota" : "invalid_request_error";
    const char *code = f->mode == FM_QUOTA    ? "insufficient_quota"
                       : f->mode == FM_CTX_LEN ? "context_length_exceeded"
                                               : "content_policy_violation";
    const char *msg = f->mode == FM_QUOTA
                          ? "You exceeded your current quota, please check your plan and billing details."
                      : f->mode == FM_CTX_LEN
                          ? "This model's maximum context length is 8 tokens. However, your messages resulted in 9 tokens."
                          : "Your request was rejected as a result of our safety system.";
    c->ev.len = 0;
    if (fam == FAM_ANTHROPIC && f->mode == FM_CTX_LEN)
        msg = "prompt is too long: 9 tokens > 8 maximum"; /* Anthropic's wording */
    if (fam == FAM_ANTHROPIC) {
        /* Anthropic has no codes: its types carry the meaning. */
        mbuf_fmt(&c->ev, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}",
                 f->mode == FM_QUOTA ? "rate_limit_error" : "invalid_request_error", msg);
    } else {
        mbuf_fmt(&c->ev, "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":\"%s\"}}",
                 msg, type, code);
    }
    mock_send(c, status, "application/json", NULL, 0, 0);
}

/* Faults that replace the answer; returns 1 when one was applied. */
static int apply_hard_fault(mock_conn *c, const fault *f, mf_family fam)
{
    char extra[64], msg[64];
    switch (f->mode) {
    case FM_CLOSE:
        mock_conn_close(c);
        return 1;
    case FM_ECHO_KEY: {
        mbuf m = { 0 };
        mbuf_fmt(&m, "Incorrect API key provided: your key was %s", sent_key(c, fam));
        mbuf_cstr(&m);
        mock_send_error(c, fam, 400, m.data, NULL);
        mbuf_free(&m);
        return 1;
    }
    case FM_ECHO_KEY_STREAM:
    case FM_MULTILINE_SSE:
        send_special_stream(c, f, fam);
        return 1;
    case FM_HANG:
    case FM_ACCEPT_STALL:
        mock_hang(c);
        return 1;
    case FM_QUOTA:
    case FM_CTX_LEN:
    case FM_POLICY:
        send_coded_error(c, f, fam);
        return 1;
    case FM_REDIRECT:
        c->ev.len = 0;
        mock_send(c, 302, "text/plain", "Location: http://127.0.0.1:9/elsewhere\r\n", 0, 0);
        return 1;
    case FM_MALJSON:
        c->ev.len = 0;
        mbuf_str(&c->ev, MF_MALFORMED_JSON);
        send_body(c, 200, "application/json", NULL, NULL);
        return 1;
    case FM_STATUS:
        extra[0] = '\0';
        if (f->ra_text[0] && (f->status == 429 || f->status == 503 || f->status == 529))
            snprintf(extra, sizeof extra, "Retry-After: %s\r\n", f->ra_text);
        else if (f->status == 429 || (f->retry_after >= 0 && (f->status == 503 || f->status == 529)))
            snprintf(extra, sizeof extra, "Retry-After: %ld\r\n",
                     f->retry_after >= 0 ? f->retry_after : 1);
        snprintf(msg, sizeof msg, f->status == 429 ? "Rate limit exceeded (mock fault %d)"
                                                   : "Mock fault %d", f->status);
        mock_send_error(c, fam, f->status, msg, extra);
        return 1;
    default:
        return 0;
    }
}

static void handle_api(mock_conn *c, const char *p, size_t n)
{
    fault f;
    mf_endpoint ep = EP_OAI_CHAT;
    mf_family fam;
    int post;
    int bad_fault = select_fault(c, &p, &n, &f);
    int r = route(c, p, n, &ep, &fam, &post);
    if (bad_fault) {
        mock_send_error(c, fam, 400, "unknown X-Mock-Fault / /fault/ mode", NULL);
        return;
    }
    long ch;
    c->req_chunks = g.chunks;
    if (parse_long(mock_header(c, "x-mock-chunks"), 1, 100000, &ch) == 0)
        c->req_chunks = ch;
    if (apply_hard_fault(c, &f, fam))
        return;
    if (r != R_NOTFOUND && c->method != (post ? HTTP_POST : HTTP_GET)) {
        mock_send_error(c, fam, 405, "Method not allowed", NULL);
        return;
    }
    if (r == R_GENERATE) {
        handle_generate(c, ep, &f);
        return;
    }
    if (r == R_OAI_EMBED || r == R_OLL_EMBED || r == R_COUNT) {
        handle_embed(c, r, fam, &f);
        return;
    }
    if (r == R_NOTFOUND) {
        mock_send_error(c, fam, 404, "Unknown request URL", NULL);
        return;
    }
    if (!check_auth(c, fam, 0))
        return;
    c->ev.len = 0;
    if (r == R_TAGS)
        mf_render_tags(&c->ev);
    else
        mf_render_models(fam, &c->ev);
    send_body(c, 200, "application/json", NULL, &f);
}

/* ---- control endpoints ----------------------------------------------- */

static void render_last(mbuf *out)
{
    if (!g.last_valid) {
        mbuf_str(out, "null");
        return;
    }
    json_object *o = json_object_new_object(), *h = json_object_new_object();
    mbuf_cstr(&g.last_url);
    const char *url = g.last_url.data, *q = strchr(url, '?');
    size_t plen = q ? (size_t)(q - url) : strlen(url);
    json_object_object_add(o, "method", json_object_new_string(http_method_str(g.last_method)));
    json_object_object_add(o, "path", json_object_new_string_len(url, (int)plen));
    json_object_object_add(o, "query", json_object_new_string(q ? q + 1 : ""));
    const char *p = g.last_hdrs.data, *end = p + g.last_hdrs.len;
    while (p && p < end) {
        const char *v = p + strlen(p) + 1;
        if (v >= end)
            break;
        json_object *prev;
        if (json_object_object_get_ex(h, p, &prev)) {
            mbuf joined = { 0 };
            mbuf_fmt(&joined, "%s, %s", json_object_get_string(prev), v);
            json_object_object_add(h, p, json_object_new_string_len(joined.data, (int)joined.len));
            mbuf_free(&joined);
        } else {
            json_object_object_add(h, p, json_object_new_string(v));
        }
        p = v + strlen(v) + 1;
    }
    json_object_object_add(o, "headers", h);
    json_object *body = parse_json(&g.last_body);
    if (!body && g.last_body.len)
        body = json_object_new_string_len(g.last_body.data, (int)g.last_body.len);
    json_object_object_add(o, "body", body);
    mbuf_str(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static const char *fault_name(const fault *f, char *buf, size_t n)
{
    static const char *names[] = { "none", "", "hang", "slow", "reset", "malformed-json",
                                   "malformed-sse", "huge", "close", "stall", "huge-stall",
                                   "echo-key", "echo-key-stream", "multiline-sse", "accept-stall",
                                   "quota", "redirect", "context-length", "content-policy" };
    if (f->mode != FM_STATUS)
        return names[f->mode];
    snprintf(buf, n, "%d", f->status);
    return buf;
}

static int control_fault(mock_conn *c)
{
    json_object *b = parse_json(&c->body), *v;
    fault f = { FM_NONE, 0, -1, -1, "" };
    long count = -1;
    const char *mode = json_object_object_get_ex(b, "mode", &v) ? json_object_get_string(v) : NULL;
    int ok = json_object_is_type(b, json_type_object) && mode &&
             parse_fault(mode, strlen(mode), &f) == 0;
    if (ok && json_object_object_get_ex(b, "count", &v))
        count = json_object_get_int64(v) < -1 ? -1 : (long)json_object_get_int64(v);
    if (ok && json_object_object_get_ex(b, "delay_ms", &v))
        f.delay_ms = (long)json_object_get_int64(v);
    if (ok && json_object_object_get_ex(b, "retry_after", &v) && json_object_is_type(v, json_type_string)) {
        const char *t = json_object_get_string(v);
        if (strcspn(t, "\r\n") == strlen(t)) /* a value, never a header of its own */
            snprintf(f.ra_text, sizeof f.ra_text, "%s", t);
    }
    else if (ok && json_object_object_get_ex(b, "retry_after", &v))
        f.retry_after = (long)json_object_get_int64(v);
    json_object_put(b);
    if (!ok) {
        mbuf_str(&c->ev, "{\"error\":\"expected {\\\"mode\\\": MODE, \\\"count\\\": N}\"}");
        return 400;
    }
    g.armed = f;
    g.armed_count = f.mode == FM_NONE ? 0 : count;
    if (g.armed_count == 0)
        g.armed.mode = FM_NONE;
    char nb[16];
    mbuf_fmt(&c->ev, "{\"ok\":true,\"mode\":\"%s\",\"count\":%ld}", fault_name(&f, nb, sizeof nb),
             g.armed_count);
    return 200;
}

static void handle_control(mock_conn *c, const char *p, size_t n)
{
    int status = 200;
    c->ev.len = 0;
    if (path_is(p, n, "/_mock/last") && c->method == HTTP_GET) {
        render_last(&c->ev);
    } else if (path_is(p, n, "/_mock/stats") && c->method == HTTP_GET) {
        char nb[16];
        mbuf_fmt(&c->ev, "{\"requests\":%lu,\"active\":%ld,\"connections\":%ld,"
                         "\"fault\":\"%s\",\"fault_count\":%ld}",
                 mock_count.requests, mock_count.active, mock_count.conns, fault_name(&g.armed, nb, sizeof nb),
                 g.armed_count);
    } else if (path_is(p, n, "/_mock/reset") && c->method == HTTP_POST) {
        mock_count.requests = 0;
        g.last_valid = 0;
        g.armed.mode = FM_NONE;
        g.armed_count = 0;
        mbuf_str(&c->ev, "{\"ok\":true}");
    } else if (path_is(p, n, "/_mock/fault") && c->method == HTTP_POST) {
        status = control_fault(c);
    } else {
        status = 404;
        mbuf_str(&c->ev, "{\"error\":\"unknown control endpoint\"}");
    }
    send_body(c, status, "application/json", NULL, NULL);
}

static void record_last(mock_conn *c)
{
    mbuf t;
    t = g.last_url, g.last_url = c->url, c->url = t;
    t = g.last_hdrs, g.last_hdrs = c->hdrs, c->hdrs = t;
    t = g.last_body, g.last_body = c->body, c->body = t;
    g.last_method = c->method;
    g.last_valid = 1;
}

void mock_dispatch(mock_conn *c)
{
    mbuf_cstr(&c->url);
    const char *url = c->url.data, *q = strchr(url, '?');
    size_t n = q ? (size_t)(q - url) : strlen(url);
    if (n >= 7 && memcmp(url, "/_mock/", 7) == 0) {
        handle_control(c, url, n);
        return;
    }
    mock_count.requests++;
    mock_count.active++;
    c->active = 1;
    handle_api(c, url, n);
    record_last(c);
}

/* ---- startup and shutdown -------------------------------------------- */

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->data) /* connection handles carry their mock_conn */
        mock_conn_close(h->data);
    else
        uv_close(h, NULL);
}

static void usage(FILE *f)
{
    fputs("usage: mock-provider [--host 127.0.0.1] [--port N] [--chunks N] "
          "[--chunk-delay-ms D]\n", f);
}

static int parse_args(int argc, char **argv, const char **host, long *port)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), *v;
        size_t klen = eq ? (size_t)(eq - a) : strlen(a);
        if (path_is(a, klen, "--help") || path_is(a, klen, "-h")) {
            usage(stdout);
            exit(0);
        }
        v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        int bad = !v;
        if (!bad && path_is(a, klen, "--host"))
            *host = v;
        else if (!bad && path_is(a, klen, "--port"))
            bad = parse_long(v, 0, 65535, port);
        else if (!bad && path_is(a, klen, "--chunks"))
            bad = parse_long(v, 1, 100000, &g.chunks);
        else if (!bad && path_is(a, klen, "--chunk-delay-ms"))
            bad = parse_long(v, 0, 3600000, &g.chunk_delay);
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "mock-provider: bad argument '%s'\n", a);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 0;
    g.chunks = 8;
    if (parse_args(argc, argv, &host, &port) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    g.loop = uv_default_loop();
    g.tok = json_tokener_new();
    json_tokener_set_flags(g.tok, JSON_TOKENER_STRICT);
    int rc = mock_listen(g.loop, &g.server, host, port);
    if (rc == 0) {
        uv_signal_init(g.loop, &g.sigterm);
        uv_signal_init(g.loop, &g.sigint);
        g.sigterm.data = g.sigint.data = NULL;
        uv_signal_start(&g.sigterm, on_signal, SIGTERM);
        uv_signal_start(&g.sigint, on_signal, SIGINT);
        uv_run(g.loop, UV_RUN_DEFAULT);
    }
    uv_walk(g.loop, close_walk, NULL);
    uv_run(g.loop, UV_RUN_DEFAULT);
    uv_loop_close(g.loop);
    json_tokener_free(g.tok);
    mbuf_free(&g.last_url);
    mbuf_free(&g.last_hdrs);
    mbuf_free(&g.last_body);
    return rc == 0 ? 0 : 1;
}
