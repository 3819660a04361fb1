/* See fdread.h. */
#include "util/fdread.h"

#include <errno.h>
#include <unistd.h>

size_t hx_read_upto(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}
