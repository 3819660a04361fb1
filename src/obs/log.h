/* Structured logging: one line per event on stderr, JSON or text.
 *
 *   HX_LOG_INFO("listening", HX_F_STR("host", host), HX_F_INT("port", port));
 *
 * JSON:  {"ts":"2026-11-27T21:03:39.123Z","level":"info","msg":"listening","host":"0.0.0.0","port":8080}
 * text:  2026-11-27T21:03:39.123Z INFO listening host=0.0.0.0 port=8080
 *
 * Each line is formatted in a local buffer, so lines from different threads
 * never interleave. Before hx_log_start (and in --validate, tests) a line
 * is written at once with write(2); after it, lines are queued in a bounded
 * buffer and written by one writer thread, so a slow or blocked sink never
 * stalls an event loop (lines that do not fit are dropped and counted:
 * hapax_log_dropped_lines_total, and a warning in the log). Secrets must go through
 * HX_F_SECRET (always printed as "[redacted]") or be left out; callers that
 * log headers or config keys use hx_log_is_secret_name() to decide. */
#ifndef HX_OBS_LOG_H
#define HX_OBS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    HX_LOG_DEBUG = 0,
    HX_LOG_INFO = 1,
    HX_LOG_WARN = 2,
    HX_LOG_ERROR = 3,
} hx_log_level;

typedef enum {
    HX_LF_NONE = 0, /* placeholder, skipped */
    HX_LF_STR,
    HX_LF_INT,
    HX_LF_DOUBLE,
    HX_LF_BOOL,
    HX_LF_SECRET,
} hx_log_ftype;

typedef struct {
    const char *key;
    hx_log_ftype type;
    union {
        const char *s;
        int64_t i;
        double d;
        bool b;
    } v;
} hx_log_field;

#define HX_F_STR(k, val) ((hx_log_field){.key = (k), .type = HX_LF_STR, .v.s = (val)})
#define HX_F_INT(k, val) ((hx_log_field){.key = (k), .type = HX_LF_INT, .v.i = (int64_t)(val)})
#define HX_F_DBL(k, val) ((hx_log_field){.key = (k), .type = HX_LF_DOUBLE, .v.d = (double)(val)})
#define HX_F_BOOL(k, val) ((hx_log_field){.key = (k), .type = HX_LF_BOOL, .v.b = (bool)(val)})
#define HX_F_SECRET(k) ((hx_log_field){.key = (k), .type = HX_LF_SECRET})

void hx_log_write(hx_log_level level, const char *msg, const hx_log_field *fields, int n);

#define HX_LOG_(lvl, msg, ...)                                                    \
    do {                                                                           \
        if ((lvl) >= hx_log_min_level()) {                                         \
            const hx_log_field hx_f_[] = {{.type = HX_LF_NONE}, __VA_ARGS__};       \
            hx_log_write((lvl), (msg), hx_f_, (int)(sizeof hx_f_ / sizeof hx_f_[0])); \
        }                                                                          \
    } while (0)

#define HX_LOG_DEBUG(msg, ...) HX_LOG_(HX_LOG_DEBUG, msg, __VA_ARGS__)
#define HX_LOG_INFO(msg, ...) HX_LOG_(HX_LOG_INFO, msg, __VA_ARGS__)
#define HX_LOG_WARN(msg, ...) HX_LOG_(HX_LOG_WARN, msg, __VA_ARGS__)
#define HX_LOG_ERROR(msg, ...) HX_LOG_(HX_LOG_ERROR, msg, __VA_ARGS__)

/* Level and format; safe to call from any thread (atomics). */
void hx_log_set_level(hx_log_level level);
hx_log_level hx_log_min_level(void);
void hx_log_set_json(bool json);
/* Parses "debug"/"info"/"warn"/"error"; returns -1 for anything else. */
int hx_log_level_parse(const char *s);

/* Test hook: send lines to this fd instead of stderr (-1 restores). */
void hx_log_set_fd(int fd);

/* Bytes queued for the writer thread before lines are dropped (two such
 * buffers: one filling, one being written). */
#define HX_LOG_QUEUE_BYTES (1024 * 1024)
/* How long exit waits for a stuck sink before leaving lines unwritten. */
#define HX_LOG_EXIT_WAIT_MS 2000

/* Switches to asynchronous writing: opens `path` for appending (NULL or ""
 * keeps stderr, or the fd of hx_log_set_fd) and starts the writer thread.
 * Returns 0, or -1 with the reason in err. Main thread, once. */
int hx_log_start(const char *path, char *err, size_t errlen);
/* A reloaded logging.file: switches to it when it changed. */
void hx_log_set_file(const char *path);
/* Reopens logging.file (SIGUSR1, after a rotation renamed it). No-op when
 * logging to stderr. Asynchronous: done by the writer thread. */
void hx_log_reopen(void);
/* Waits up to timeout_ms until every queued line is written; true if so. */
bool hx_log_flush(int64_t timeout_ms);
/* Writes what is queued (waiting up to timeout_ms for a stuck sink), stops
 * the writer and returns to synchronous writing. */
void hx_log_stop(int64_t timeout_ms);
/* Lines dropped since start (the batch was full or the sink failed). */
uint64_t hx_log_dropped_total(void);
/* Registers hapax_log_dropped_lines_total with the metrics. */
int hx_log_metrics_register(void);
/* The fd lines go to, and a best-effort write of the queued lines: for the
 * fatal-signal handler only (async-signal-safe, takes no lock). */
int hx_log_fd(void);
void hx_log_crash_flush(void);

/* True when a header or config key names a secret (authorization,
 * x-api-key, api_key, password, token, secret, cookie ...), compared
 * case-insensitively. Anything that logs names and values asks this first. */
bool hx_log_is_secret_name(const char *name);

/* Writes `value` into out (size > 0), or "[redacted]" when `name` is a
 * secret name. Returns out. */
const char *hx_log_redact(const char *name, const char *value, char *out, size_t size);

#endif
