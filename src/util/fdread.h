/* Bounded reads of a file descriptor. */
#ifndef HX_UTIL_FDREAD_H
#define HX_UTIL_FDREAD_H

#include <stddef.h>

/* Reads into buf until it holds n bytes, the end of the file or an error
 * (EINTR is retried); returns the bytes read. Never reads past n, so a
 * caller that wants to spot an over-long file asks for one byte more. */
size_t hx_read_upto(int fd, void *buf, size_t n);

#endif
