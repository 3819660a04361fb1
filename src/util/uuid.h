/* Random identifiers. */
#ifndef HX_UTIL_UUID_H
#define HX_UTIL_UUID_H

/* Writes a lowercase UUIDv4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") and a
 * NUL into out, which must hold 37 bytes. Uses the kernel's CSPRNG. */
void hx_uuid4(char out[37]);

#endif
