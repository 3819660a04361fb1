/* Parsing and printing of numbers with units: integers, durations, sizes.
 *
 * Durations follow Go's time.ParseDuration: one or more <number><unit>
 * pairs ("100ms", "1m30s", "1.5h"), units ns, us (or µs), ms, s, m, h.
 * Two additions: "0" needs no unit, and a bare number without any unit
 * means SECONDS ("30" = 30s). A leading '-' or '+' is allowed (callers
 * reject negative values where they make no sense). Results are whole
 * milliseconds; a non-zero remainder below 1 ms rounds up (away from zero),
 * so "500us" is 1 ms and never 0.
 *
 * Sizes are bytes: a plain integer, or a number with a case-insensitive
 * suffix B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB. Every suffix is binary
 * (16KB = 16384, 6MB = 6291456). A decimal ("1.5MB") is accepted only when
 * the result is a whole number of bytes. Spaces between number and suffix
 * are allowed ("16 KB").
 *
 * Parsers never allocate and return 0, HX_UNITS_EINVAL (not a valid text)
 * or HX_UNITS_ERANGE (valid text, does not fit in int64). */
#ifndef HX_UTIL_UNITS_H
#define HX_UTIL_UNITS_H

#include <stddef.h>
#include <stdint.h>

#define HX_UNITS_EINVAL (-1)
#define HX_UNITS_ERANGE (-2)

/* Room for any formatted duration, size or number, NUL included. */
#define HX_UNITS_BUFSZ 48

/* Decimal integer with optional sign; nothing else (no spaces, no "1.0"). */
int hx_units_parse_int(const char *s, int64_t *out);
/* Finite decimal number ("1", "-2.5", "1e3"); no hex, inf or nan. */
int hx_units_parse_double(const char *s, double *out);
/* A number, optionally followed by '%' ("90%" or "90"). No range check. */
int hx_units_parse_percent(const char *s, double *out);
/* Duration text to milliseconds (see above). */
int hx_units_parse_duration(const char *s, int64_t *ms);
/* Size text to bytes (see above). */
int hx_units_parse_size(const char *s, int64_t *bytes);

/* Shortest Go-like text that parses back to the same value: "0s", "100ms",
 * "30s", "1.5s", "2m", "1h30m", "-5s". Returns out. size >= HX_UNITS_BUFSZ. */
const char *hx_units_format_duration(int64_t ms, char *out, size_t size);
/* "2GB", "2MB", "16KB" for exact binary multiples, else a plain integer.
 * Returns out. size >= HX_UNITS_BUFSZ. */
const char *hx_units_format_size(int64_t bytes, char *out, size_t size);
/* Shortest decimal text that strtod reads back to the same double. */
const char *hx_units_format_double(double d, char *out, size_t size);

#endif
