#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "obs/metrics.h"
#include "util/buf.h"

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

/* JSON string body escaping; control characters as \u00XX. Runs of
 * plain characters are copied whole. */
static void put_json_str(line_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    const unsigned char *c = (const unsigned char *)(s ? s : ""), *run = c;
    for (;; c++) {
        if (*c >= 0x20 && *c != '"' && *c != '\\')
            continue;
        put(b, (const char *)run, (size_t)(c - run));
        run = c + 1;
        switch (*c) {
        case '\0': put(b, "\"", 1); return;
        case '"': put(b, "\\\"", 2); break;
        case '\\': put(b, "\\\\", 2); break;
        case '\n': put(b, "\\n", 2); break;
        case '\r': put(b, "\\r", 2); break;
        case '\t': put(b, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 0xf]};
            put(b, u, sizeof u);
        }
        }
    }
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
    /* The date part changes once a second: each thread keeps its last. */
    static _Thread_local time_t last_sec = -1;
    static _Thread_local char last[40];
    static _Thread_local size_t last_len;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != last_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        last_len = strftime(last, sizeof last, "%Y-%m-%dT%H:%M:%S", &tm);
        last_sec = ts.tv_sec;
    }
    put(b, last, last_len);
    long ms = ts.tv_nsec / 1000000;
    char frac[5] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z'};
    put(b, frac, sizeof frac);
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
    case HX_LF_INT: {
        char tmp[HX_FMT_INT_MAX];
        put(b, tmp, hx_fmt_int(tmp, (long long)f->v.i));
        break;
    }
    case HX_LF_DOUBLE: putf(b, "%.6g", f->v.d); break;
    case HX_LF_BOOL: puts_(b, f->v.b ? "true" : "false"); break;
    case HX_LF_SECRET: puts_(b, json ? "\"[redacted]\"" : "[redacted]"); break;
    case HX_LF_NONE: break;
    }
}

/* Formats one line into mem (HX_LOG_LINE_MAX bytes); returns its length. */
static size_t format_line(char *mem, hx_log_level level, const char *msg, const hx_log_field *fields, int n)
{
    line_buf b = {.p = mem, .len = 0, .cap = HX_LOG_LINE_MAX - 32};
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
    b.cap = HX_LOG_LINE_MAX;
    if (b.cut)
        puts_(&b, json ? ",\"truncated\":true" : " truncated=true");
    puts_(&b, json ? "}\n" : "\n");
    return b.len;
}

/* Returns -1 on a failed or refused write (the bytes are lost). */
static int write_all(int fd, const char *p, size_t left)
{
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        left -= (size_t)w;
    }
    return 0;
}

/* ---- the asynchronous sink -------------------------------------------------
 *
 * Once hx_log_start has run, a line is formatted by its caller and copied
 * into a bounded in-memory batch (one short mutex section, no system call
 * unless the writer sleeps); one writer thread swaps the batch out and
 * writes it. A slow, full or blocked sink therefore never stalls an event
 * loop: when the batch is full the line is dropped and counted, and the
 * writer reports the count in the log once it can write again. */

typedef struct {
    char data[HX_LOG_QUEUE_BYTES];
    size_t len;
    uint64_t lines;
} log_batch;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* a producer or a control call -> the writer */
    pthread_cond_t done;  /* the writer -> hx_log_flush / hx_log_stop */
    pthread_t thread;
    log_batch bufs[2];
    log_batch *fill;      /* producers append here */
    bool sleeping;        /* the writer waits for work */
    bool writing;         /* the writer has a batch out */
    bool stop;
    bool exited;
    bool reopen;
    char path[PATH_MAX];  /* logging.file; "" = stderr */
    uint64_t reported;    /* dropped lines already reported in the log */
} q = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

/* 0 = synchronous (before start, --validate, unit tests), 1 = async, 2 =
 * stopped with a stuck writer: lines are dropped, never written inline. */
static atomic_int mode;
static atomic_uint_least64_t dropped;

void hx_log_write(hx_log_level level, const char *msg, const hx_log_field *fields, int n)
{
    char mem[HX_LOG_LINE_MAX];
    size_t len = format_line(mem, level, msg, fields, n);
    int m = atomic_load(&mode);
    if (m == 0) {
        (void)write_all(atomic_load(&out_fd), mem, len); /* nowhere else to report a failing sink */
        return;
    }
    bool wake = false, ok = false;
    pthread_mutex_lock(&q.mu);
    if (m == 1 && !q.exited && q.fill->len + len <= sizeof q.fill->data) {
        memcpy(q.fill->data + q.fill->len, mem, len);
        q.fill->len += len;
        q.fill->lines++;
        wake = q.sleeping;
        ok = true;
    }
    pthread_mutex_unlock(&q.mu);
    if (!ok)
        atomic_fetch_add(&dropped, 1);
    else if (wake)
        pthread_cond_signal(&q.wake);
}

uint64_t hx_log_dropped_total(void) { return atomic_load(&dropped); }

/* Opens the log file for appending. O_NONBLOCK only for the open (a FIFO
 * without a reader fails instead of hanging); writes then block, in the
 * writer thread only. */
static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
    if (fd < 0)
        return -1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Writer thread: switches to the (new) file; on failure keeps the old sink. */
static void writer_reopen(void)
{
    char path[PATH_MAX];
    pthread_mutex_lock(&q.mu);
    memcpy(path, q.path, sizeof path);
    pthread_mutex_unlock(&q.mu);
    int fd = path[0] ? open_log_file(path) : STDERR_FILENO;
    if (fd < 0) {
        int err = errno;
        HX_LOG_ERROR("cannot reopen the log file, still writing to the old one", HX_F_STR("path", path),
                     HX_F_STR("error", strerror(err)));
        return;
    }
    int old = atomic_exchange(&out_fd, fd);
    if (old != STDERR_FILENO && old != fd)
        close(old);
    HX_LOG_INFO("log file reopened", HX_F_STR("event", "log_reopen"),
                HX_F_STR("path", path[0] ? path : "stderr"));
}

/* Writer thread: one warning for the lines lost since the last one. */
static void writer_report_drops(void)
{
    uint64_t total = atomic_load(&dropped);
    if (total == q.reported)
        return;
    const hx_log_field f[] = {HX_F_STR("event", "log_dropped"), HX_F_INT("dropped", total - q.reported),
                              HX_F_INT("dropped_total", total)};
    char mem[HX_LOG_LINE_MAX];
    size_t len = format_line(mem, HX_LOG_WARN, "log lines dropped: the log sink could not keep up", f, 3);
    if (write_all(atomic_load(&out_fd), mem, len) == 0)
        q.reported = total;
}

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&q.mu);
    for (;;) {
        while (!q.stop && !q.reopen && q.fill->len == 0) {
            q.sleeping = true;
            pthread_cond_wait(&q.wake, &q.mu);
            q.sleeping = false;
        }
        if (q.reopen) {
            q.reopen = false;
            pthread_mutex_unlock(&q.mu);
            writer_reopen();
            pthread_mutex_lock(&q.mu);
            continue;
        }
        if (q.fill->len == 0 && q.stop)
            break;
        log_batch *b = q.fill;
        q.fill = b == &q.bufs[0] ? &q.bufs[1] : &q.bufs[0];
        q.writing = true;
        pthread_mutex_unlock(&q.mu);
        if (write_all(atomic_load(&out_fd), b->data, b->len) != 0)
            atomic_fetch_add(&dropped, b->lines);
        b->len = 0;
        b->lines = 0;
        writer_report_drops();
        pthread_mutex_lock(&q.mu);
        q.writing = false;
        pthread_cond_broadcast(&q.done);
    }
    q.exited = true;
    pthread_cond_broadcast(&q.done);
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

static void set_path_locked(const char *path)
{
    snprintf(q.path, sizeof q.path, "%s", path ? path : "");
}

int hx_log_start(const char *path, char *err, size_t errlen)
{
    if (atomic_load(&mode) != 0)
        return 0;
    if (path && strlen(path) >= sizeof q.path) {
        snprintf(err, errlen, "logging.file: path too long");
        return -1;
    }
    if (path && *path) {
        int fd = open_log_file(path);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
            return -1;
        }
        atomic_store(&out_fd, fd);
    }
    pthread_mutex_lock(&q.mu);
    set_path_locked(path);
    q.fill = &q.bufs[0];
    q.stop = q.exited = q.reopen = false;
    q.reported = atomic_load(&dropped);
    pthread_mutex_unlock(&q.mu);
    int rc = pthread_create(&q.thread, NULL, writer_main, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the log writer thread: %s", strerror(rc));
        return -1;
    }
    atomic_store(&mode, 1);
    return 0;
}

void hx_log_set_file(const char *path)
{
    if (atomic_load(&mode) != 1)
        return;
    pthread_mutex_lock(&q.mu);
    if (strcmp(q.path, path ? path : "") != 0) {
        set_path_locked(path);
        q.reopen = true;
    }
    pthread_mutex_unlock(&q.mu);
    pthread_cond_signal(&q.wake);
}

void hx_log_reopen(void)
{
    if (atomic_load(&mode) != 1)
        return;
    pthread_mutex_lock(&q.mu);
    q.reopen = true;
    pthread_mutex_unlock(&q.mu);
    pthread_cond_signal(&q.wake);
}

/* Waits at most ms until the writer has exited (until_exit) or has nothing
 * queued. Caller holds q.mu. True when that happened. */
static bool wait_writer_locked(int64_t ms, bool until_exit)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    for (;;) {
        bool idle = q.fill->len == 0 && !q.writing && !q.reopen;
        if (q.exited || (!until_exit && idle))
            return true;
        if (pthread_cond_timedwait(&q.done, &q.mu, &until) != 0)
            return q.exited || (!until_exit && q.fill->len == 0 && !q.writing);
    }
}

bool hx_log_flush(int64_t timeout_ms)
{
    if (atomic_load(&mode) != 1)
        return true;
    pthread_mutex_lock(&q.mu);
    pthread_cond_signal(&q.wake);
    bool ok = wait_writer_locked(timeout_ms, false);
    pthread_mutex_unlock(&q.mu);
    return ok;
}

void hx_log_stop(int64_t timeout_ms)
{
    if (atomic_load(&mode) != 1)
        return;
    pthread_mutex_lock(&q.mu);
    q.stop = true;
    pthread_cond_signal(&q.wake);
    bool exited = wait_writer_locked(timeout_ms, true);
    pthread_mutex_unlock(&q.mu);
    if (!exited) {
        /* The sink is stuck in write(): leave the thread to the exit, and
         * never block the caller with an inline write. */
        pthread_detach(q.thread);
        atomic_store(&mode, 2);
        return;
    }
    pthread_join(q.thread, NULL);
    atomic_store(&mode, 0);
}

int hx_log_fd(void) { return atomic_load(&out_fd); }

void hx_log_crash_flush(void)
{
    if (atomic_load(&mode) != 1 || q.fill == NULL)
        return;
    /* Best effort from a signal handler: no lock (the crashing thread may
     * hold it); a line being copied at this instant may come out torn. */
    size_t len = q.fill->len;
    if (len <= sizeof q.fill->data)
        (void)write_all(atomic_load(&out_fd), q.fill->data, len);
}

static void collect_log(hx_metrics_writer *w, void *ud)
{
    (void)ud;
    if (hx_metrics_write_family(w, "hapax_log_dropped_lines_total",
                                "Log lines dropped because the log sink could not keep up",
                                HX_METRIC_COUNTER) == 0)
        hx_metrics_write_sample(w, "hapax_log_dropped_lines_total", NULL, (double)hx_log_dropped_total());
}

int hx_log_metrics_register(void) { return hx_metrics_add_collector(collect_log, NULL); }

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
