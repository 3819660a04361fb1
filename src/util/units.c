#include "util/units.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_PER_MS 1000000ULL
#define NS_PER_S 1000000000ULL
/* Fraction digits kept; 10^9 keeps every product below in 64 bits. */
#define FRAC_DIGITS_MAX 9

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number "123", "1.5", ".5" or "5." at *pp: whole part in *ip (sets
 * *range on overflow), fraction as f / scale with scale = 10^digits.
 * Fraction digits beyond FRAC_DIGITS_MAX set *long_frac and are dropped.
 * Returns false when there is no digit at all. */
typedef struct {
    uint64_t ip;
    uint64_t f;
    uint64_t scale;
    bool range;
    bool long_frac;
} number;

static bool scan_number(const char **pp, number *n)
{
    const char *p = *pp;
    int digits = 0;
    *n = (number){.scale = 1};
    for (; is_digit(*p); p++, digits++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (n->ip > (UINT64_MAX - d) / 10)
            n->range = true;
        else
            n->ip = n->ip * 10 + d;
    }
    if (*p == '.') {
        p++;
        for (int k = 0; is_digit(*p); p++, digits++, k++) {
            if (k >= FRAC_DIGITS_MAX) {
                n->long_frac = n->long_frac || *p != '0';
                continue;
            }
            n->f = n->f * 10 + (uint64_t)(*p - '0');
            n->scale *= 10;
        }
    }
    *pp = p;
    return digits > 0;
}

/* ip * mult + f * mult / scale, without overflow; *exact tells whether the
 * fractional product was a whole number. Returns false on overflow. */
static bool scale_number(const number *n, uint64_t mult, uint64_t *out, bool *exact)
{
    if (n->range || (mult != 0 && n->ip > UINT64_MAX / mult))
        return false;
    uint64_t whole = n->ip * mult;
    uint64_t q = mult / n->scale;
    uint64_t r = mult % n->scale;
    uint64_t frac = n->f * q + (n->f * r) / n->scale; /* < mult: no overflow */
    *exact = !n->long_frac && (n->f * r) % n->scale == 0;
    if (whole > UINT64_MAX - frac)
        return false;
    *out = whole + frac;
    return true;
}

static int finish_signed(bool neg, uint64_t v, int64_t *out)
{
    if (v > (uint64_t)INT64_MAX)
        return HX_UNITS_ERANGE;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static const char *skip_sign(const char *s, bool *neg)
{
    *neg = *s == '-';
    return (*s == '-' || *s == '+') ? s + 1 : s;
}

int hx_units_parse_int(const char *s, int64_t *out)
{
    bool neg;
    const char *p = skip_sign(s, &neg);
    if (!is_digit(*p))
        return HX_UNITS_EINVAL;
    uint64_t v = 0;
    bool range = false;
    for (; is_digit(*p); p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > ((uint64_t)INT64_MAX + 1 - d) / 10)
            range = true;
        else
            v = v * 10 + d;
    }
    if (*p != '\0')
        return HX_UNITS_EINVAL;
    if (range || (!neg && v > (uint64_t)INT64_MAX))
        return HX_UNITS_ERANGE;
    *out = (neg && v == (uint64_t)INT64_MAX + 1) ? INT64_MIN : (neg ? -(int64_t)v : (int64_t)v);
    return 0;
}

int hx_units_parse_double(const char *s, double *out)
{
    bool neg;
    const char *p = skip_sign(s, &neg);
    number n;
    if (!scan_number(&p, &n))
        return HX_UNITS_EINVAL;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!is_digit(*p))
            return HX_UNITS_EINVAL;
        while (is_digit(*p))
            p++;
    }
    if (*p != '\0')
        return HX_UNITS_EINVAL;
    errno = 0;
    double d = strtod(s, NULL);
    if (!isfinite(d))
        return HX_UNITS_ERANGE;
    *out = d;
    return 0;
}

int hx_units_parse_percent(const char *s, double *out)
{
    size_t len = strlen(s);
    if (len == 0 || s[len - 1] != '%')
        return hx_units_parse_double(s, out);
    char tmp[HX_UNITS_BUFSZ];
    if (len >= sizeof tmp)
        return HX_UNITS_EINVAL;
    memcpy(tmp, s, len - 1);
    tmp[len - 1] = '\0';
    return hx_units_parse_double(tmp, out);
}

static const struct {
    const char *name;
    uint64_t ns;
} dur_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000}, /* U+03BC greek mu */
    {"ms", NS_PER_MS},
    {"s", NS_PER_S},
    {"m", 60 * NS_PER_S},
    {"h", 3600 * NS_PER_S},
};

static uint64_t match_dur_unit(const char **pp)
{
    for (size_t i = 0; i < sizeof dur_units / sizeof dur_units[0]; i++) {
        size_t n = strlen(dur_units[i].name);
        if (strncmp(*pp, dur_units[i].name, n) == 0) {
            *pp += n;
            return dur_units[i].ns;
        }
    }
    return 0;
}

static bool is_bare_number(const char *p)
{
    bool dot = false;
    for (; *p; p++) {
        if (*p == '.' && !dot)
            dot = true;
        else if (!is_digit(*p))
            return false;
    }
    return true;
}

int hx_units_parse_duration(const char *s, int64_t *ms)
{
    bool neg;
    const char *p = skip_sign(s, &neg);
    if (*p == '\0')
        return HX_UNITS_EINVAL;
    bool bare = is_bare_number(p);
    uint64_t total = 0;
    bool range = false;
    while (*p != '\0') {
        number n;
        if (!scan_number(&p, &n))
            return HX_UNITS_EINVAL;
        uint64_t unit = bare ? NS_PER_S : match_dur_unit(&p);
        if (unit == 0)
            return HX_UNITS_EINVAL;
        uint64_t part;
        bool exact;
        if (!scale_number(&n, unit, &part, &exact) || total > UINT64_MAX - part)
            range = true;
        else
            total += part;
    }
    if (range || total > (uint64_t)INT64_MAX)
        return HX_UNITS_ERANGE;
    uint64_t v = total / NS_PER_MS + (total % NS_PER_MS != 0);
    return finish_signed(neg, v, ms);
}

static const struct {
    const char *name;
    unsigned shift;
} size_units[] = {
    {"", 0}, {"b", 0},
    {"k", 10}, {"kb", 10}, {"kib", 10},
    {"m", 20}, {"mb", 20}, {"mib", 20},
    {"g", 30}, {"gb", 30}, {"gib", 30},
    {"t", 40}, {"tb", 40}, {"tib", 40},
};

int hx_units_parse_size(const char *s, int64_t *bytes)
{
    bool neg;
    const char *p = skip_sign(s, &neg);
    number n;
    if (!scan_number(&p, &n))
        return HX_UNITS_EINVAL;
    while (*p == ' ')
        p++;
    for (size_t i = 0; i < sizeof size_units / sizeof size_units[0]; i++) {
        if (strcasecmp(p, size_units[i].name) != 0)
            continue;
        uint64_t v;
        bool exact;
        if (!scale_number(&n, (uint64_t)1 << size_units[i].shift, &v, &exact))
            return HX_UNITS_ERANGE;
        if (!exact)
            return HX_UNITS_EINVAL;
        return finish_signed(neg, v, bytes);
    }
    return HX_UNITS_EINVAL;
}

const char *hx_units_format_duration(int64_t ms, char *out, size_t size)
{
    if (ms == 0) {
        snprintf(out, size, "0s");
        return out;
    }
    const char *sign = ms < 0 ? "-" : "";
    uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    if (u < 1000) {
        snprintf(out, size, "%s%" PRIu64 "ms", sign, u);
        return out;
    }
    uint64_t h = u / 3600000, m = u / 60000 % 60, sec = u / 1000 % 60, frac = u % 1000;
    size_t len = (size_t)snprintf(out, size, "%s", sign);
    if (h)
        len += (size_t)snprintf(out + len, size - len, "%" PRIu64 "h", h);
    if (m)
        len += (size_t)snprintf(out + len, size - len, "%" PRIu64 "m", m);
    if (frac) {
        char f[8];
        snprintf(f, sizeof f, "%03" PRIu64, frac);
        for (size_t k = strlen(f); k > 0 && f[k - 1] == '0'; k--)
            f[k - 1] = '\0';
        snprintf(out + len, size - len, "%" PRIu64 ".%ss", sec, f);
    } else if (sec) {
        snprintf(out + len, size - len, "%" PRIu64 "s", sec);
    }
    return out;
}

const char *hx_units_format_size(int64_t bytes, char *out, size_t size)
{
    static const struct {
        int64_t mult;
        const char *suffix;
    } sz[] = {{(int64_t)1 << 30, "GB"}, {(int64_t)1 << 20, "MB"}, {(int64_t)1 << 10, "KB"}};
    for (size_t i = 0; bytes > 0 && i < sizeof sz / sizeof sz[0]; i++) {
        if (bytes % sz[i].mult == 0) {
            snprintf(out, size, "%" PRId64 "%s", bytes / sz[i].mult, sz[i].suffix);
            return out;
        }
    }
    snprintf(out, size, "%" PRId64, bytes);
    return out;
}

const char *hx_units_format_double(double d, char *out, size_t size)
{
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(out, size, "%.0f", d);
        return out;
    }
    char tmp[HX_UNITS_BUFSZ];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    snprintf(out, size, "%s", tmp);
    return out;
}
