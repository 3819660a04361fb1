#include "util/alloc.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong alloc_count;
static atomic_ulong fail_at;     /* absolute allocation number, 0 = off */
static atomic_int fail_sticky;
/* Counting starts with the first test call (hx_alloc_count or
 * hx_alloc_fail_at): a serving process never arms a failure, and a shared
 * counter bumped by every allocation of every worker costs a locked
 * instruction and a contended cache line each time. */
static atomic_bool counting;

static int should_fail(void)
{
    if (!atomic_load_explicit(&counting, memory_order_relaxed))
        return 0;
    unsigned long n = atomic_fetch_add(&alloc_count, 1) + 1;
    unsigned long at = atomic_load(&fail_at);
    if (at == 0)
        return 0;
    if (n == at)
        return 1;
    return n > at && atomic_load(&fail_sticky);
}

void *hx_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *hx_calloc(size_t count, size_t n)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, n ? n : 1);
}

void *hx_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

char *hx_strndup(const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    char *d = hx_malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *hx_strdup(const char *s)
{
    return s ? hx_strndup(s, strlen(s)) : NULL;
}

void hx_free(void *p)
{
    free(p);
}

void hx_alloc_fail_at(unsigned long nth, int sticky)
{
    atomic_store(&counting, true);
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_at, nth ? atomic_load(&alloc_count) + nth : 0);
}

unsigned long hx_alloc_count(void)
{
    atomic_store(&counting, true);
    return atomic_load(&alloc_count);
}
