/* Structured logging: one line per event on stderr, JSON or text.
 *
 *   HX_LOG_INFO("listening", HX_F_STR("host", host), HX_F_INT("port", port));
 *
 * JSON:  {"ts":"2026-11-27T21:03:39.123Z","level":"info","msg":"listening","host":"0.0.0.0","port":8080}
 * text:  2026-11-27T21:03:39.123Z INFO listening host=0.0.0.0 port=8080
 *
 * Each line is formatted in a local buffer and written with one write(2),
 * so lines from different threads never interleave. Secrets must go through
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

/* True when a header or config key names a secret (authorization,
 * x-api-key, api_key, password, token, secret, cookie ...), compared
 * case-insensitively. Anything that logs names and values asks this first. */
bool hx_log_is_secret_name(const char *name);

/* Writes `value` into out (size > 0), or "[redacted]" when `name` is a
 * secret name. Returns out. */
const char *hx_log_redact(const char *name, const char *value, char *out, size_t size);

#endif
