/* Rendering of the OpenAI, Anthropic and Ollama wire formats for the mock
 * provider. JSON is written by hand (escaped) for speed; json-c is only used
 * to read request bodies. */
#include "mock_formats.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HUGE_BYTES ((size_t)8 << 20)
#define HUGE_CHUNKS 128
#define SAID_WORDS 8
#define TOOL_CALL_TOKENS 2
/* Arguments of every tool call, and the content of a structured answer. */
#define TOOL_ARGS "{\"location\":\"Paris\"}"

/* ---- buffer ---------------------------------------------------------- */

void mbuf_reserve(mbuf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        fputs("mock-provider: out of memory\n", stderr);
        abort();
    }
    b->data = p;
    b->cap = cap;
}

void mbuf_add(mbuf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    mbuf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void mbuf_str(mbuf *b, const char *s)
{
    mbuf_add(b, s, strlen(s));
}

void mbuf_fmt(mbuf *b, const char *fmt, ...)
{
    va_list ap;
    mbuf_reserve(b, 128);
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        mbuf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void mbuf_jstr(mbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    mbuf_reserve(b, n + 2);
    b->data[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        mbuf_add(b, s + start, i - start);
        start = i + 1;
        char esc[6] = { '\\', 0, 0, 0, 0, 0 };
        size_t elen = 2;
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            elen = 6;
        }
        mbuf_add(b, esc, elen);
    }
    mbuf_add(b, s + start, n - start);
    mbuf_add(b, "\"", 1);
}

static void mbuf_jcstr(mbuf *b, const char *s)
{
    mbuf_jstr(b, s, strlen(s));
}

void mbuf_cstr(mbuf *b)
{
    mbuf_reserve(b, 1);
    b->data[b->len] = '\0';
}

void mbuf_free(mbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- request reading ------------------------------------------------- */

static json_object *jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object))
        json_object_object_get_ex(o, key, &v);
    return v;
}

static const char *jget_str(json_object *o, const char *key)
{
    json_object *v = jget(o, key);
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Text of a message content: a string, or parts with "text" (and
 * tool_result blocks with nested "content"), joined by spaces. */
static void collect_text(json_object *c, mbuf *out)
{
    if (json_object_is_type(c, json_type_string)) {
        if (out->len)
            mbuf_add(out, " ", 1);
        mbuf_add(out, json_object_get_string(c), (size_t)json_object_get_string_len(c));
    } else if (json_object_is_type(c, json_type_array)) {
        size_t n = json_object_array_length(c);
        for (size_t i = 0; i < n; i++)
            collect_text(json_object_array_get_idx(c, i), out);
    } else if (json_object_is_type(c, json_type_object)) {
        collect_text(jget(c, "text"), out);
        collect_text(jget(c, "content"), out);
    }
}

static size_t count_words(const char *s, size_t n)
{
    size_t w = 0;
    int in = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = isspace((unsigned char)s[i]);
        if (!sp && !in)
            w++;
        in = !sp;
    }
    return w;
}

/* Whether the last message is a tool result (then answer with text). */
static int is_tool_result(mf_endpoint ep, json_object *msg)
{
    const char *role = jget_str(msg, "role");
    if (role && strcmp(role, "tool") == 0)
        return 1;
    json_object *c = jget(msg, "content");
    if (ep != EP_ANTHROPIC || !json_object_is_type(c, json_type_array))
        return 0;
    size_t n = json_object_array_length(c);
    for (size_t i = 0; i < n; i++) {
        const char *t = jget_str(json_object_array_get_idx(c, i), "type");
        if (t && strcmp(t, "tool_result") == 0)
            return 1;
    }
    return 0;
}

/* The tool a tool_choice names (OpenAI {"type":"function","function":
 * {"name"}}, Anthropic {"type":"tool","name"}); "" when it forbids tools
 * ("none"); NULL when it leaves the choice to the model. */
static const char *named_tool(json_object *body)
{
    json_object *tc = jget(body, "tool_choice");
    if (json_object_is_type(tc, json_type_string))
        return strcmp(json_object_get_string(tc), "none") == 0 ? "" : NULL;
    const char *type = jget_str(tc, "type");
    if (!type)
        return NULL;
    if (strcmp(type, "none") == 0)
        return "";
    if (strcmp(type, "function") == 0)
        return jget_str(jget(tc, "function"), "name");
    if (strcmp(type, "tool") == 0)
        return jget_str(tc, "name");
    return NULL;
}

static const char *first_tool(mf_endpoint ep, json_object *body)
{
    json_object *tools = jget(body, "tools");
    if (!json_object_is_type(tools, json_type_array) || json_object_array_length(tools) == 0)
        return NULL;
    const char *chosen = named_tool(body);
    if (chosen)
        return *chosen ? chosen : NULL;
    json_object *t = json_object_array_get_idx(tools, 0);
    const char *name = ep == EP_ANTHROPIC ? NULL : jget_str(jget(t, "function"), "name");
    if (!name)
        name = jget_str(t, "name");
    return name ? name : "tool";
}

/* Structured output asked for: OpenAI response_format json_object /
 * json_schema, Anthropic output_config.format (or the older beta
 * output_format), Ollama format ("json" or a schema). */
static int wants_json(mf_endpoint ep, json_object *body)
{
    if (ep == EP_OAI_CHAT) {
        const char *t = jget_str(jget(body, "response_format"), "type");
        return t && (strcmp(t, "json_object") == 0 || strcmp(t, "json_schema") == 0);
    }
    if (ep == EP_ANTHROPIC)
        return jget(jget(body, "output_config"), "format") != NULL || jget(body, "output_format") != NULL;
    if (ep == EP_OLLAMA_CHAT) {
        json_object *f = jget(body, "format");
        if (json_object_is_type(f, json_type_string))
            return json_object_get_string_len(f) > 0;
        return json_object_is_type(f, json_type_object);
    }
    return 0;
}

/* Collects all message text into `all` and the last user text into `said`;
 * sets r->tool. Returns -1 when "messages" is not an array. */
static int read_messages(mf_reply *r, json_object *body, mbuf *all, mbuf *said)
{
    json_object *msgs = jget(body, "messages");
    if (!msgs && r->ep == EP_OLLAMA_CHAT)
        return 0;
    if (!json_object_is_type(msgs, json_type_array))
        return -1;
    if (r->ep == EP_ANTHROPIC)
        collect_text(jget(body, "system"), all);
    size_t n = json_object_array_length(msgs);
    json_object *last_user = NULL, *m = NULL;
    for (size_t i = 0; i < n; i++) {
        m = json_object_array_get_idx(msgs, i);
        collect_text(jget(m, "content"), all);
        const char *role = jget_str(m, "role");
        if (role && strcmp(role, "user") == 0)
            last_user = m;
    }
    collect_text(jget(last_user, "content"), said);
    if (!m || !is_tool_result(r->ep, m)) {
        const char *tool = first_tool(r->ep, body);
        r->tool = tool ? strdup(tool) : NULL;
    }
    return 0;
}

static const char *family_name(mf_endpoint ep)
{
    static const char *names[] = { "openai", "anthropic", "ollama" };
    return names[mf_family_of(ep)];
}

static void build_text(mf_reply *r, const char *said, size_t n, size_t nchunks)
{
    mbuf t = { 0 };
    size_t words = 8; /* "Hello from the mock X provider. You said:" */
    mbuf_fmt(&t, "Hello from the mock %s provider. You said:", family_name(r->ep));
    size_t i = 0, taken = 0;
    while (i < n && taken < SAID_WORDS) {
        while (i < n && isspace((unsigned char)said[i]))
            i++;
        size_t s = i;
        while (i < n && !isspace((unsigned char)said[i]))
            i++;
        if (i > s) {
            mbuf_add(&t, " ", 1);
            mbuf_add(&t, said + s, i - s);
            taken++;
            words++;
        }
    }
    for (; words < nchunks; words++)
        mbuf_add(&t, " lorem", 6);
    mbuf_cstr(&t);
    r->text = t.data;
    r->text_len = t.len;
    r->nwords = words;
    r->nchunks = nchunks;
}

/* A structured-output answer: the JSON object TOOL_ARGS as the content,
 * streamed in byte slices (it has no spaces to cut at). */
static void build_json(mf_reply *r, size_t nchunks)
{
    static const char obj[] = TOOL_ARGS;
    r->text = strdup(obj);
    if (!r->text) {
        fputs("mock-provider: out of memory\n", stderr);
        abort();
    }
    r->text_len = sizeof obj - 1;
    r->nwords = 1;
    r->nchunks = nchunks < r->text_len ? nchunks : r->text_len;
    r->bytewise = 1;
}

static void build_huge(mf_reply *r)
{
    static const char pat[] = "lorem ipsum dolor sit amet consectetur adipiscing elit ";
    r->text = malloc(HUGE_BYTES + 1);
    if (!r->text) {
        fputs("mock-provider: out of memory\n", stderr);
        abort();
    }
    for (size_t i = 0; i < HUGE_BYTES; i++)
        r->text[i] = pat[i % (sizeof pat - 1)];
    r->text[HUGE_BYTES] = '\0';
    r->text_len = HUGE_BYTES;
    r->nwords = count_words(r->text, HUGE_BYTES);
    r->nchunks = HUGE_CHUNKS;
    r->bytewise = 1;
}

static const char *default_model(mf_endpoint ep)
{
    static const char *m[] = { "gpt-4o-mini", "gpt-3.5-turbo-instruct",
                               "claude-3-5-sonnet-20241022", "llama3.2:latest" };
    return m[ep];
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

mf_family mf_family_of(mf_endpoint ep)
{
    return ep == EP_ANTHROPIC ? FAM_ANTHROPIC : ep == EP_OLLAMA_CHAT ? FAM_OLLAMA : FAM_OPENAI;
}

int mf_reply_init(mf_reply *r, mf_endpoint ep, json_object *body, size_t nchunks,
                  int huge, unsigned long id, const char **err)
{
    memset(r, 0, sizeof *r);
    r->ep = ep;
    r->id = id;
    r->start_ns = now_ns();
    r->created = r->start_ns / 1000000000LL;
    if (!json_object_is_type(body, json_type_object)) {
        *err = "request body must be a JSON object";
        return -1;
    }
    mbuf all = { 0 }, said = { 0 };
    if (ep == EP_OAI_COMPLETIONS) {
        json_object *p = jget(body, "prompt");
        if (!p) {
            *err = "'prompt' is required";
            return -1;
        }
        collect_text(p, &all);
        collect_text(p, &said);
    } else if (read_messages(r, body, &all, &said) != 0) {
        *err = "'messages' must be an array";
        mbuf_free(&all);
        return -1;
    }
    const char *model = jget_str(body, "model");
    r->model = strdup(model && *model ? model : default_model(ep));
    json_object *so = jget(body, "stream_options");
    r->include_usage = json_object_get_boolean(jget(so, "include_usage"));
    size_t pw = count_words(all.data, all.len);
    r->prompt_tokens = pw ? (long)pw : 1;
    if (huge)
        build_huge(r);
    else if (!r->tool && wants_json(ep, body))
        build_json(r, nchunks);
    else
        build_text(r, said.data, said.len, nchunks);
    r->completion_tokens = r->tool ? TOOL_CALL_TOKENS : (long)r->nchunks;
    mbuf_free(&all);
    mbuf_free(&said);
    return 0;
}

void mf_reply_free(mf_reply *r)
{
    free(r->model);
    free(r->text);
    free(r->tool);
    r->model = r->text = r->tool = NULL;
}

int mf_wants_stream(mf_endpoint ep, json_object *body)
{
    json_object *s = jget(body, "stream");
    if (ep == EP_OLLAMA_CHAT && !s)
        return 1;
    return json_object_get_boolean(s);
}

/* ---- shared pieces --------------------------------------------------- */

static const char *const tool_arg_parts[2] = { "{\"location\":", "\"Paris\"}" };

static void render_created_at(mbuf *b)
{
    long long ns = now_ns();
    time_t sec = (time_t)(ns / 1000000000LL);
    struct tm tm;
    char ts[32];
    gmtime_r(&sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    mbuf_fmt(b, "\"created_at\":\"%s.%09lldZ\"", ts, ns % 1000000000LL);
}

static void render_oai_usage(const mf_reply *r, mbuf *b)
{
    mbuf_fmt(b, "\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}",
             r->prompt_tokens, r->completion_tokens, r->prompt_tokens + r->completion_tokens);
}

static void render_oai_head(const mf_reply *r, mbuf *b, const char *object)
{
    int chat = r->ep == EP_OAI_CHAT;
    mbuf_fmt(b, "{\"id\":\"%s-mock-%lu\",\"object\":\"%s\",\"created\":%lld,\"model\":",
             chat ? "chatcmpl" : "cmpl", r->id, object, r->created);
    mbuf_jcstr(b, r->model);
}

static void render_ollama_stats(const mf_reply *r, mbuf *b)
{
    long long total = now_ns() - r->start_ns;
    if (total < 1000)
        total = 1000;
    mbuf_fmt(b, ",\"done_reason\":\"stop\",\"done\":true,\"total_duration\":%lld,"
                "\"load_duration\":%lld,\"prompt_eval_count\":%ld,\"prompt_eval_duration\":%lld,"
                "\"eval_count\":%ld,\"eval_duration\":%lld}",
             total, total / 10, r->prompt_tokens, total / 10, r->completion_tokens, total / 2);
}

static void render_ollama_tool_msg(const mf_reply *r, mbuf *b)
{
    mbuf_str(b, "\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
                "[{\"function\":{\"name\":");
    mbuf_jcstr(b, r->tool);
    mbuf_str(b, ",\"arguments\":" TOOL_ARGS "}}]}");
}

/* ---- whole responses ------------------------------------------------- */

static void full_oai(const mf_reply *r, mbuf *b)
{
    if (r->ep == EP_OAI_COMPLETIONS) {
        render_oai_head(r, b, "text_completion");
        mbuf_str(b, ",\"choices\":[{\"text\":");
        mbuf_jstr(b, r->text, r->text_len);
        mbuf_str(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}],");
    } else {
        render_oai_head(r, b, "chat.completion");
        mbuf_str(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        if (r->tool) {
            mbuf_str(b, "null,\"tool_calls\":[{\"id\":\"call_mock_1\",\"type\":\"function\","
                        "\"function\":{\"name\":");
            mbuf_jcstr(b, r->tool);
            mbuf_str(b, ",\"arguments\":");
            mbuf_jcstr(b, TOOL_ARGS);
            mbuf_str(b, "}}]");
        } else {
            mbuf_jstr(b, r->text, r->text_len);
        }
        mbuf_fmt(b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],",
                 r->tool ? "tool_calls" : "stop");
    }
    render_oai_usage(r, b);
    mbuf_str(b, "}");
}

static void full_anthropic(const mf_reply *r, mbuf *b)
{
    mbuf_fmt(b, "{\"id\":\"msg_mock_%lu\",\"type\":\"message\",\"role\":\"assistant\",\"model\":",
             r->id);
    mbuf_jcstr(b, r->model);
    if (r->tool) {
        mbuf_str(b, ",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_mock_1\",\"name\":");
        mbuf_jcstr(b, r->tool);
        mbuf_str(b, ",\"input\":" TOOL_ARGS "}]");
    } else {
        mbuf_str(b, ",\"content\":[{\"type\":\"text\",\"text\":");
        mbuf_jstr(b, r->text, r->text_len);
        mbuf_str(b, "}]");
    }
    mbuf_fmt(b, ",\"stop_reason\":\"%s\",\"stop_sequence\":null,"
                "\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld}}",
             r->tool ? "tool_use" : "end_turn", r->prompt_tokens, r->completion_tokens);
}

static void full_ollama(const mf_reply *r, mbuf *b)
{
    mbuf_str(b, "{\"model\":");
    mbuf_jcstr(b, r->model);
    mbuf_add(b, ",", 1);
    render_created_at(b);
    mbuf_add(b, ",", 1);
    if (r->tool) {
        render_ollama_tool_msg(r, b);
    } else {
        mbuf_str(b, "\"message\":{\"role\":\"assistant\",\"content\":");
        mbuf_jstr(b, r->text, r->text_len);
        mbuf_str(b, "}");
    }
    render_ollama_stats(r, b);
}

void mf_render_full(const mf_reply *r, mbuf *out)
{
    if (r->ep == EP_ANTHROPIC)
        full_anthropic(r, out);
    else if (r->ep == EP_OLLAMA_CHAT)
        full_ollama(r, out);
    else
        full_oai(r, out);
}

/* ---- streams ---------------------------------------------------------
 * Event layout: `pre` structural events, `content` chunk/delta events,
 * `post` closing events. */

static size_t pre_count(const mf_reply *r)
{
    return r->ep == EP_OAI_CHAT ? 1 : r->ep == EP_ANTHROPIC ? 3 : 0;
}

static size_t content_count(const mf_reply *r)
{
    if (!r->tool)
        return r->nchunks;
    return r->ep == EP_OAI_CHAT ? 3 : r->ep == EP_ANTHROPIC ? 2 : 1;
}

static size_t post_count(const mf_reply *r)
{
    if (r->ep == EP_ANTHROPIC)
        return 3;
    if (r->ep == EP_OLLAMA_CHAT)
        return 1;
    return 2 + (r->include_usage ? 1 : 0);
}

/* Next slice of text: word-aligned chunks (each but the first starts with
 * the separating space), or equal byte ranges for huge content. */
static void next_slice(mf_reply *r, const char **s, size_t *n)
{
    size_t i = r->chunk++, end;
    if (r->bytewise) {
        end = (size_t)((unsigned long long)r->text_len * (i + 1) / r->nchunks);
    } else {
        size_t target = (size_t)((unsigned long long)r->nwords * (i + 1) / r->nchunks);
        end = r->pos;
        while (r->word < target && end < r->text_len) {
            const char *sp = memchr(r->text + end + 1, ' ', r->text_len - end - 1);
            end = sp ? (size_t)(sp - r->text) : r->text_len;
            r->word++;
        }
    }
    if (i + 1 >= r->nchunks)
        end = r->text_len;
    *s = r->text + r->pos;
    *n = end - r->pos;
    r->pos = end;
}

static void oai_chunk_open(const mf_reply *r, mbuf *b)
{
    mbuf_str(b, "data: ");
    render_oai_head(r, b, r->ep == EP_OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    mbuf_str(b, ",\"choices\":[");
}

static void oai_tool_delta(const mf_reply *r, size_t k, mbuf *b)
{
    mbuf_str(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,");
    if (k == 0) {
        mbuf_str(b, "\"id\":\"call_mock_1\",\"type\":\"function\",\"function\":{\"name\":");
        mbuf_jcstr(b, r->tool);
        mbuf_str(b, ",\"arguments\":\"\"}");
    } else {
        mbuf_str(b, "\"function\":{\"arguments\":");
        mbuf_jcstr(b, tool_arg_parts[k - 1]);
        mbuf_str(b, "}");
    }
    mbuf_str(b, "}]},\"logprobs\":null,\"finish_reason\":null}");
}

static void oai_event(mf_reply *r, int part, size_t k, mbuf *b)
{
    int chat = r->ep == EP_OAI_CHAT;
    if (part == 2 && k == post_count(r) - 1) {
        mbuf_str(b, "data: [DONE]\n\n");
        return;
    }
    oai_chunk_open(r, b);
    if (part == 0) {
        mbuf_fmt(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":%s},"
                    "\"logprobs\":null,\"finish_reason\":null}]",
                 r->tool ? "null" : "\"\"");
    } else if (part == 1 && r->tool) {
        oai_tool_delta(r, k, b);
        mbuf_str(b, "]");
    } else if (part == 1) {
        const char *s;
        size_t n;
        next_slice(r, &s, &n);
        mbuf_str(b, chat ? "{\"index\":0,\"delta\":{\"content\":" : "{\"text\":");
        mbuf_jstr(b, s, n);
        mbuf_str(b, chat ? "},\"logprobs\":null,\"finish_reason\":null}]"
                         : ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]");
    } else if (k == 0) {
        mbuf_fmt(b, "{%s\"index\":0,%s\"logprobs\":null,\"finish_reason\":\"%s\"}]",
                 chat ? "" : "\"text\":\"\",", chat ? "\"delta\":{}," : "",
                 r->tool ? "tool_calls" : "stop");
    } else {
        mbuf_str(b, "],");
        render_oai_usage(r, b);
    }
    mbuf_str(b, "}\n\n");
}

static void anthropic_pre(const mf_reply *r, size_t k, mbuf *b)
{
    if (k == 0) {
        mbuf_fmt(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                    "{\"id\":\"msg_mock_%lu\",\"type\":\"message\",\"role\":\"assistant\",\"model\":",
                 r->id);
        mbuf_jcstr(b, r->model);
        mbuf_fmt(b, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                    "\"usage\":{\"input_tokens\":%ld,\"output_tokens\":1}}}\n\n",
                 r->prompt_tokens);
    } else if (k == 1) {
        mbuf_str(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                    "\"index\":0,\"content_block\":");
        if (r->tool) {
            mbuf_str(b, "{\"type\":\"tool_use\",\"id\":\"toolu_mock_1\",\"name\":");
            mbuf_jcstr(b, r->tool);
            mbuf_str(b, ",\"input\":{}}}\n\n");
        } else {
            mbuf_str(b, "{\"type\":\"text\",\"text\":\"\"}}\n\n");
        }
    } else {
        mbuf_str(b, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
    }
}

static void anthropic_event(mf_reply *r, int part, size_t k, mbuf *b)
{
    if (part == 0) {
        anthropic_pre(r, k, b);
    } else if (part == 1) {
        const char *s;
        size_t n;
        mbuf_str(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                    "\"index\":0,\"delta\":");
        if (r->tool) {
            mbuf_str(b, "{\"type\":\"input_json_delta\",\"partial_json\":");
            mbuf_jcstr(b, tool_arg_parts[k]);
        } else {
            next_slice(r, &s, &n);
            mbuf_str(b, "{\"type\":\"text_delta\",\"text\":");
            mbuf_jstr(b, s, n);
        }
        mbuf_str(b, "}}\n\n");
    } else if (k == 0) {
        mbuf_str(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                    "\"index\":0}\n\n");
    } else if (k == 1) {
        mbuf_fmt(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                    "{\"stop_reason\":\"%s\",\"stop_sequence\":null},"
                    "\"usage\":{\"output_tokens\":%ld}}\n\n",
                 r->tool ? "tool_use" : "end_turn", r->completion_tokens);
    } else {
        mbuf_str(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }
}

static void ollama_event(mf_reply *r, int part, mbuf *b)
{
    mbuf_str(b, "{\"model\":");
    mbuf_jcstr(b, r->model);
    mbuf_add(b, ",", 1);
    render_created_at(b);
    if (part == 1 && r->tool) {
        mbuf_add(b, ",", 1);
        render_ollama_tool_msg(r, b);
        mbuf_str(b, ",\"done\":false}\n");
    } else if (part == 1) {
        const char *s;
        size_t n;
        next_slice(r, &s, &n);
        mbuf_str(b, ",\"message\":{\"role\":\"assistant\",\"content\":");
        mbuf_jstr(b, s, n);
        mbuf_str(b, "},\"done\":false}\n");
    } else {
        mbuf_str(b, ",\"message\":{\"role\":\"assistant\",\"content\":\"\"}");
        render_ollama_stats(r, b);
        mbuf_add(b, "\n", 1);
    }
}

static void malformed_event(const mf_reply *r, mbuf *b)
{
    if (r->ep == EP_ANTHROPIC)
        mbuf_str(b, "event: content_block_delta\ndata: {not json at all\n\n");
    else if (r->ep == EP_OLLAMA_CHAT)
        mbuf_str(b, "{not json at all\n");
    else
        mbuf_str(b, "data: {not json at all\n\n");
}

const char *mf_stream_ctype(mf_endpoint ep)
{
    return ep == EP_OLLAMA_CHAT ? "application/x-ndjson" : "text/event-stream";
}

int mf_stream_next(mf_reply *r, mbuf *out)
{
    size_t pre = pre_count(r), cc = content_count(r), post = post_count(r);
    if (r->malformed >= 2) {
        if (r->malformed == 2 && mf_family_of(r->ep) == FAM_OPENAI) {
            r->malformed = 3;
            mbuf_str(out, "data: [DONE]\n\n");
            return 1;
        }
        return 0;
    }
    if (r->malformed == 1 && r->step == pre + 1) {
        r->malformed = 2;
        malformed_event(r, out);
        return 1;
    }
    size_t s = r->step;
    if (s >= pre + cc + post)
        return 0;
    r->step++;
    int part = s < pre ? 0 : s < pre + cc ? 1 : 2;
    size_t k = part == 0 ? s : part == 1 ? s - pre : s - pre - cc;
    if (r->ep == EP_ANTHROPIC)
        anthropic_event(r, part, k, out);
    else if (r->ep == EP_OLLAMA_CHAT)
        ollama_event(r, part, out);
    else
        oai_event(r, part, k, out);
    return 1;
}

int mf_stream_at_content(const mf_reply *r)
{
    size_t pre = pre_count(r);
    if (r->malformed >= 2 || (r->malformed == 1 && r->step == pre + 1))
        return 0;
    return r->step >= pre && r->step < pre + content_count(r);
}

size_t mf_stream_content_sent(const mf_reply *r)
{
    size_t pre = pre_count(r), cc = content_count(r);
    if (r->step <= pre)
        return 0;
    return r->step - pre < cc ? r->step - pre : cc;
}
