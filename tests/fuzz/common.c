/* Set-up shared by every fuzz driver. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz.h"
#include "middleware/middleware.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "util/alloc.h"

int hx_fuzz_torture;
unsigned long hx_fuzz_fail_n;
int hx_fuzz_fail_sticky;
unsigned long hx_fuzz_armed_at;
int hx_fuzz_hung;

void hx_fuzz_arm(void)
{
    if (hx_fuzz_fail_n == 0)
        return;
    hx_fuzz_armed_at = hx_alloc_count();
    hx_alloc_fail_at(hx_fuzz_fail_n, hx_fuzz_fail_sticky);
}

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
    setenv("HXF_KEY", "sk-fuzz-env-secret", 1);
}

/* Small limits so the fuzzer reaches them; every request-side middleware
 * on. Rate limits are high enough never to hide the handler. */
static const char mw_yaml[] =
    "server:\n  max_header_bytes: 4KB\n  max_body_bytes: 16KB\n  read_timeout: 5s\n"
    "  write_timeout: 5s\n  idle_timeout: 5s\n"
    "cors:\n  enabled: true\n  allow_origins: [\"http://a.example\"]\n  allow_credentials: true\n"
    "auth:\n  enabled: true\n  keys:\n    - name: fuzz\n      key: sk-fuzz-client\n"
    "      models: [llama2]\n    - name: all\n      key: sk-fuzz-all\n"
    "rate_limit:\n  enabled: true\n  requests_per_minute: 100000000\n  burst: 100000000\n"
    "  trusted_proxies: [\"0.0.0.0/0\"]\n"
    "queue:\n  enabled: true\n";

hx_config *hx_fuzz_mw_config(void)
{
    static hx_config *cfg;
    if (cfg)
        return cfg;
    hx_fuzz_setup();
    hx_config_errors errs = {0};
    cfg = hx_config_load_string(mw_yaml, sizeof mw_yaml - 1, "fuzz-mw.yaml", &errs);
    hx_config_errors_free(&errs);
    if (cfg == NULL || hx_metrics_init() != 0 || hx_middleware_init(cfg) != 0) {
        fprintf(stderr, "fuzz: middleware set-up failed\n");
        abort();
    }
    return cfg;
}

const hx_handler_def *hx_fuzz_handler_def(hx_handler_fn fn, const char *name)
{
    static hx_handler_def defs[32];
    size_t i = 0;
    while (hx_config_handler_names[i] && strcmp(hx_config_handler_names[i], name) != 0)
        i++;
    if (i >= sizeof defs / sizeof defs[0])
        i = 0;
    defs[i] = (hx_handler_def){fn, NULL, NULL, hx_config_handler_flags(name)};
    return &defs[i];
}
