/* Error-message helper for functions that report a reason in a caller's
 * buffer: `return hx_fail(err, errlen, "messages[%zu]: ...", i);` */
#ifndef HX_UTIL_FAIL_H
#define HX_UTIL_FAIL_H

#include <stddef.h>

/* Formats into err (when err and errlen are set) and returns -1. */
int hx_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
