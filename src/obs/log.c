#include "obs/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* A line longer than this is cut and marked; logging never allocates. */
#define HX_LOG_LINE_MAX 8192

static atomic_int min_level = HX_LOG_INFO;
static atomic_bool use_json = true;
static atomic_int out_fd = STDERR_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const level_upper[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void hx_log_set_level(hx_log_level level) { atomic_store(&min_level, (int)level); }
hx_log_level hx_log_min_level(void) { return (hx_log_level)atomic_load(&min_level); }
void hx_log_set_json(bool json) { atomic_store(&use_json, json); }
void hx_log_set_fd(int fd) { atomic_store(&out_fd, fd < 0 ? STDERR_FILENO : fd); }

int hx_log_level_parse(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

typedef struct {
    char *p;
    size_t len;
    size_t cap;
    bool cut;
} line_buf;

static void put(line_buf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        n = b->cap - b->len;
        b->cut = true;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(line_buf *b, const char *s) { put(b, s, strlen(s)); }

static void putf(line_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(line_buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* JSON string body escaping; control characters as \u00XX. */
static void put_json_str(line_buf *b, const char *s)
{
    put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        switch (*c) {
        case '"': put(b, "\\\"", 2); break;
        case '\\': put(b, "\\\\", 2); break;
        case '\n': put(b, "\\n", 2); break;
        case '\r': put(b, "\\r", 2); break;
        case '\t': put(b, "\\t", 2); break;
        default:
            if (*c < 0x20)
                putf(b, "\\u%04x", *c);
            else
                put(b, (const char *)c, 1);
        }
    }
    put(b, "\"", 1);
}

/* Text values are quoted only when they contain spaces, quotes or '='. */
static void put_text_str(line_buf *b, const char *s)
{
    s = s ? s : "";
    if (*s && strpbrk(s, " \"=\t\n") == NULL)
        puts_(b, s);
    else
        put_json_str(b, s);
}

static void put_ts(line_buf *b)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char tmp[40];
    size_t n = strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    put(b, tmp, n);
    putf(b, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void put_value(line_buf *b, const hx_log_field *f, bool json)
{
    switch (f->type) {
    case HX_LF_STR:
        if (json)
            put_json_str(b, f->v.s);
        else
            put_text_str(b, f->v.s);
        break;
    case HX_LF_INT: putf(b, "%lld", (long long)f->v.i); break;
    case HX_LF_DOUBLE: putf(b, "%.6g", f->v.d); break;
    case HX_LF_BOOL: puts_(b, f->v.b ? "true" : "false"); break;
    case HX_LF_SECRET: puts_(b, json ? "\"[redacted]\"" : "[redacted]"); break;
    case HX_LF_NONE: break;
    }
}

void hx_log_write(hx_log_level level, const char *msg, const hx_log_field *fields, int n)
{
    char mem[HX_LOG_LINE_MAX];
    line_buf b = {.p = mem, .len = 0, .cap = sizeof mem - 32};
    bool json = atomic_load(&use_json);
    int lv = level < HX_LOG_DEBUG || level > HX_LOG_ERROR ? HX_LOG_ERROR : (int)level;

    if (json) {
        puts_(&b, "{\"ts\":\"");
        put_ts(&b);
        puts_(&b, "\",\"level\":\"");
        puts_(&b, level_names[lv]);
        puts_(&b, "\",\"msg\":");
        put_json_str(&b, msg);
    } else {
        put_ts(&b);
        put(&b, " ", 1);
        puts_(&b, level_upper[lv]);
        put(&b, " ", 1);
        puts_(&b, msg ? msg : "");
    }
    for (int i = 0; i < n; i++) {
        const hx_log_field *f = &fields[i];
        if (f->type == HX_LF_NONE || f->key == NULL)
            continue;
        if (json) {
            put(&b, ",", 1);
            put_json_str(&b, f->key);
            put(&b, ":", 1);
        } else {
            put(&b, " ", 1);
            puts_(&b, f->key);
            put(&b, "=", 1);
        }
        put_value(&b, f, json);
    }
    /* The reserve of 32 bytes past cap always fits the tail. */
    b.cap = sizeof mem;
    if (b.cut)
        puts_(&b, json ? ",\"truncated\":true" : " truncated=true");
    puts_(&b, json ? "}\n" : "\n");

    int fd = atomic_load(&out_fd);
    const char *p = b.p;
    size_t left = b.len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w <= 0)
            break; /* nowhere else to report a failing log sink */
        p += w;
        left -= (size_t)w;
    }
}

bool hx_log_is_secret_name(const char *name)
{
    static const char *const exact[] = {
        "authorization", "proxy-authorization", "x-api-key", "api-key", "api_key",
        "cookie", "set-cookie", "password", "x-goog-api-key",
    };
    static const char *const parts[] = {"secret", "token", "password", "api_key", "apikey", "key_sha256"};
    if (name == NULL)
        return false;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcasecmp(name, exact[i]) == 0)
            return true;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (strcasestr(name, parts[i]) != NULL)
            return true;
    return false;
}

const char *hx_log_redact(const char *name, const char *value, char *out, size_t size)
{
    if (size == 0)
        return out;
    snprintf(out, size, "%s", hx_log_is_secret_name(name) ? "[redacted]" : (value ? value : ""));
    return out;
}
