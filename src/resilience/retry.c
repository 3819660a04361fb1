#include "resilience/retry.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"

/* ---- backoff ---- */

/* The high 64 bits of a * b, from 32-bit halves (no 128-bit type needed). */
static uint64_t mul_hi64(uint64_t a, uint64_t b)
{
    uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32;
    uint64_t b_lo = b & 0xffffffffu, b_hi = b >> 32;
    uint64_t p0 = a_lo * b_lo;
    uint64_t p1 = a_lo * b_hi;
    uint64_t p2 = a_hi * b_lo;
    uint64_t p3 = a_hi * b_hi;
    uint64_t mid = (p0 >> 32) + (p1 & 0xffffffffu) + (p2 & 0xffffffffu);
    return p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
}

static uint64_t nonneg(int64_t v)
{
    return v < 0 ? 0 : (uint64_t)v;
}

/* initial * multiplier^(attempt-1), capped at max_delay. */
static uint64_t backoff(const hx_cfg_retry *cfg, int attempt)
{
    uint64_t initial = nonneg(cfg->initial_delay);
    uint64_t cap = nonneg(cfg->max_delay);
    double mult = cfg->multiplier;
    if (!(mult >= 1.0)) /* also catches NaN */
        mult = 1.0;
    /* pow saturates to +inf instead of overflowing; the comparison below
     * then caps it (and catches NaN). */
    double d = (double)initial * pow(mult, (double)(attempt - 1));
    if (!(d < (double)cap))
        return cap;
    return (uint64_t)d; /* 0 <= d < cap <= INT64_MAX: in range */
}

uint64_t hx_retry_delay_ms(const hx_cfg_retry *cfg, int attempt, uint64_t random64)
{
    if (cfg == NULL || attempt < 1)
        return 0;
    uint64_t v = backoff(cfg, attempt);
    uint64_t half = v / 2;
    uint64_t span = v - half; /* <= 2^63: span + 1 cannot wrap */
    /* random64 / 2^64 scaled onto [0, span]: UINT64_MAX maps to span. */
    return half + mul_hi64(random64, span + 1);
}

/* ---- error classes ---- */

static const hx_fail_class retry_classes[] = {
    HX_FAIL_RATE_LIMIT, HX_FAIL_TIMEOUT, HX_FAIL_SERVER_ERROR, HX_FAIL_CONNECTION, HX_FAIL_UNANSWERED,
};

unsigned hx_retry_classes(const hx_strlist *retryable_errors)
{
    if (retryable_errors == NULL)
        return 0;
    unsigned set = 0;
    for (size_t i = 0; i < retryable_errors->n; i++) {
        const char *s = retryable_errors->items[i];
        for (size_t k = 0; s != NULL && k < sizeof retry_classes / sizeof retry_classes[0]; k++)
            if (strcmp(s, hx_fail_name(retry_classes[k])) == 0)
                set |= 1u << retry_classes[k];
    }
    return set;
}

bool hx_retry_allowed(unsigned classes, hx_fail_class c)
{
    hx_fail_class r = hx_fail_retry_class(c);
    return r != HX_FAIL_NONE && (classes & (1u << r)) != 0;
}

/* ---- budget ---- */

typedef struct {
    uint64_t sec;
    uint64_t requests;
    uint64_t retries;
} budget_bucket;

struct hx_retry_budget {
    pthread_mutex_t mu;
    double percent;
    uint32_t min_per_second;
    uint64_t latest_sec;
    budget_bucket ring[HX_RETRY_BUDGET_WINDOW_S];
};

hx_retry_budget *hx_retry_budget_new(double percent, uint32_t min_per_second)
{
    hx_retry_budget *b = hx_calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        hx_free(b);
        return NULL;
    }
    if (!(percent >= 0.0)) /* negative or NaN */
        percent = 0.0;
    b->percent = percent > 100.0 ? 100.0 : percent;
    b->min_per_second = min_per_second;
    return b;
}

void hx_retry_budget_free(hx_retry_budget *b)
{
    if (b == NULL)
        return;
    pthread_mutex_destroy(&b->mu);
    hx_free(b);
}

/* The bucket of the current second, emptied if it last held an older
 * second. A caller's clock a little behind another thread's counts in the
 * newest second, so the window never moves backwards. */
static budget_bucket *current(hx_retry_budget *b, uint64_t now_ms)
{
    uint64_t sec = now_ms / 1000;
    if (sec < b->latest_sec)
        sec = b->latest_sec;
    b->latest_sec = sec;
    budget_bucket *k = &b->ring[sec % HX_RETRY_BUDGET_WINDOW_S];
    if (k->sec != sec)
        *k = (budget_bucket){.sec = sec};
    return k;
}

void hx_retry_budget_deposit(hx_retry_budget *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    current(b, now_ms)->requests++;
    pthread_mutex_unlock(&b->mu);
}

bool hx_retry_budget_withdraw(hx_retry_budget *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    budget_bucket *cur = current(b, now_ms);
    uint64_t requests = 0, retries = 0;
    for (size_t i = 0; i < HX_RETRY_BUDGET_WINDOW_S; i++) {
        const budget_bucket *k = &b->ring[i];
        if (k->sec + HX_RETRY_BUDGET_WINDOW_S > cur->sec) {
            requests += k->requests;
            retries += k->retries;
        }
    }
    double allowed = (double)requests * b->percent / 100.0
                     + (double)b->min_per_second * HX_RETRY_BUDGET_WINDOW_S;
    bool ok = (double)(retries + 1) <= allowed;
    if (ok)
        cur->retries++;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

/* ---- Retry-After ---- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* delta-seconds with an optional fraction; s..end holds no OWS. */
static uint64_t parse_delta(const char *s, const char *end)
{
    uint64_t secs = 0;
    while (s < end && is_digit(*s)) {
        if (secs <= HX_RETRY_AFTER_MAX_MS) /* stop growing once past the cap */
            secs = secs * 10 + (uint64_t)(*s - '0');
        s++;
    }
    uint64_t ms = 0;
    if (s < end && *s == '.') {
        s++;
        if (s == end)
            return 0;
        uint64_t scale = 100;
        bool rest = false;
        for (; s < end && is_digit(*s); s++) {
            if (scale > 0)
                ms += scale * (uint64_t)(*s - '0');
            else if (*s != '0')
                rest = true;
            scale /= 10;
        }
        ms += rest; /* round sub-millisecond parts up */
    }
    if (s != end)
        return 0;
    if (secs >= HX_RETRY_AFTER_MAX_MS / 1000)
        return HX_RETRY_AFTER_MAX_MS;
    ms += secs * 1000;
    return ms > HX_RETRY_AFTER_MAX_MS ? HX_RETRY_AFTER_MAX_MS : ms;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (memcmp(s, names[i], 3) == 0)
            return i;
    return -1;
}

static int days_in_month(int mon, int year)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return mon == 1 && leap ? 29 : days[mon];
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT", exactly 29 bytes. Returns
 * false when malformed. */
static bool parse_imf_fixdate(const char *s, size_t len, time_t *out)
{
    static const char *const wdays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (len != 29 || name_index(s, wdays, 7) < 0 || memcmp(s + 3, ", ", 2) != 0
        || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':'
        || memcmp(s + 25, " GMT", 4) != 0)
        return false;
    struct tm tm = {0};
    tm.tm_mday = digits(s + 5, 2);
    tm.tm_mon = name_index(s + 8, months, 12);
    int year = digits(s + 12, 4);
    tm.tm_hour = digits(s + 17, 2);
    tm.tm_min = digits(s + 20, 2);
    tm.tm_sec = digits(s + 23, 2);
    if (tm.tm_mon < 0 || year < 0 || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0
        || tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60 || tm.tm_mday < 1
        || tm.tm_mday > days_in_month(tm.tm_mon, year))
        return false;
    tm.tm_year = year - 1900;
    *out = timegm(&tm);
    return true;
}

uint64_t hx_retry_after_ms(const char *retry_after_header, uint64_t now_wall_s)
{
    if (retry_after_header == NULL)
        return 0;
    const char *s = retry_after_header;
    const char *end = s + strlen(s);
    while (s < end && is_ows(*s))
        s++;
    while (end > s && is_ows(end[-1]))
        end--;
    if (s == end)
        return 0;
    if (is_digit(*s))
        return parse_delta(s, end);
    time_t t;
    if (!parse_imf_fixdate(s, (size_t)(end - s), &t) || t < 0 || (uint64_t)t <= now_wall_s)
        return 0;
    uint64_t delta = (uint64_t)t - now_wall_s;
    if (delta >= HX_RETRY_AFTER_MAX_MS / 1000)
        return HX_RETRY_AFTER_MAX_MS;
    return delta * 1000;
}
