/* Set-up shared by every fuzz driver. */
#include <fcntl.h>
#include <stdlib.h>

#include "fuzz.h"
#include "obs/log.h"

int hx_fuzz_torture;

void hx_fuzz_setup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    /* Log lines would only slow the fuzzer down; they still get built. */
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
        hx_log_set_fd(fd);
    hx_log_set_level(HX_LOG_DEBUG);
    /* Variables the config target's ${VAR} references can meet. */
    setenv("HXF_A", "alpha", 1);
    setenv("HXF_EMPTY", "", 1);
    setenv("HXF_NEST", "${HXF_A}-${HXF_B:-dflt}", 1);
    setenv("HXF_LOOP", "${HXF_LOOP2}", 1);
    setenv("HXF_LOOP2", "${HXF_LOOP}", 1);
    setenv("HXF_PORT", "8081", 1);
    setenv("HXF_DOLLAR", "pa$$w0rd", 1);
}
