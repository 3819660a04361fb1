/* One allocation wrapper for the whole program.
 *
 * Every allocation goes through these functions so that tests can make the
 * Nth allocation fail (hx_alloc_fail_at) and prove that each caller copes.
 * They never abort: a NULL return is an ordinary error for the caller. */
#ifndef HX_UTIL_ALLOC_H
#define HX_UTIL_ALLOC_H

#include <stddef.h>

void *hx_malloc(size_t n);
void *hx_calloc(size_t count, size_t n);
void *hx_realloc(void *p, size_t n);
/* Returns a heap copy of s (NULL s gives NULL without counting as failure). */
char *hx_strdup(const char *s);
char *hx_strndup(const char *s, size_t n);
void hx_free(void *p);

/* Test hook: the nth allocation from now (1 = the next one) returns NULL,
 * and so does every later one while `sticky` is set. 0 turns it off. */
void hx_alloc_fail_at(unsigned long nth, int sticky);
/* Number of allocations attempted since the first call of either test
 * hook (counting costs nothing until a test asks). */
unsigned long hx_alloc_count(void);

#endif
