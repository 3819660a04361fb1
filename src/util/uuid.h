/* Random identifiers. */
#ifndef HX_UTIL_UUID_H
#define HX_UTIL_UUID_H

#include <stddef.h>

/* Writes a lowercase UUIDv4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") and a
 * NUL into out, which must hold 37 bytes. */
void hx_uuid4(char out[37]);

/* Fast non-cryptographic random bytes (per-thread generator seeded from
 * the kernel): for identifiers, jitter, sampling. Never for secrets. */
void hx_random_bytes(void *out, size_t n);

/* Writes prefix + 24 lowercase hex characters (96 random bits) to out,
 * e.g. "chatcmpl-3f2a...", truncated to outlen. */
void hx_random_id(char *out, size_t outlen, const char *prefix);

#endif
