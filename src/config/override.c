/* --host / --port and HAPAX_HOST / HAPAX_PORT: set once by main before
 * the first load, then applied to every loaded config (reloads too, so a
 * flag keeps winning over the file). Also the loopback test the secure
 * defaults rest on. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "config/schema.h"
#include "util/alloc.h"

#define HOST_MAX 255 /* a DNS name's limit; longer cannot be valid */

static struct {
    char *host;
    const char *host_from; /* "--host" or "HAPAX_HOST" */
    int64_t port;          /* -1 = not overridden */
    const char *port_from;
} ov = {.port = -1};

bool hx_config_host_is_loopback(const char *host)
{
    if (host == NULL)
        return false;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) != 1)
        return false;
    static const unsigned char v6_loop[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    return memcmp(a, v6_loop, 16) == 0 || (memcmp(a, v4_mapped, 12) == 0 && a[12] == 127);
}

/* A flag's value, else the variable's when set and non-empty. */
static const char *pick(const char *flag, const char *flag_name, const char *var, const char **from)
{
    if (flag) {
        *from = flag_name;
        return flag;
    }
    const char *v = getenv(var);
    if (v && *v) {
        *from = var;
        return v;
    }
    *from = NULL;
    return NULL;
}

/* Strict decimal 0..65535: no sign, no spaces, no suffix. */
static int parse_port(const char *s, int64_t *out)
{
    if (*s < '0' || *s > '9' || strlen(s) > 5)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 65535)
        return -1;
    *out = v;
    return 0;
}

int hx_config_overrides_set(const char *host_flag, const char *port_flag, hx_config_errors *errs)
{
    hx_config_overrides_clear();
    const char *host_from, *port_from;
    const char *host = pick(host_flag, "--host", "HAPAX_HOST", &host_from);
    const char *port = pick(port_flag, "--port", "HAPAX_PORT", &port_from);
    int rc = 0;
    if (port && parse_port(port, &ov.port) != 0) {
        /* The value is the operator's own, and short: shown bounded. */
        hx_config_errors_add(errs, "%s: invalid port: \"%.16s%s\" (0..65535)", port_from, port,
                             strlen(port) > 16 ? "..." : "");
        rc = -1;
    } else if (port) {
        ov.port_from = port_from;
    }
    if (host && (*host == '\0' || strlen(host) > HOST_MAX)) {
        hx_config_errors_add(errs, "%s: %s", host_from, *host ? "host is longer than 255 characters"
                                                              : "empty host");
        rc = -1;
    } else if (host) {
        if ((ov.host = hx_strdup(host)) == NULL) {
            hx_config_errors_add(errs, "%s: out of memory", host_from);
            rc = -1;
        }
        ov.host_from = host_from;
    }
    if (rc != 0)
        hx_config_overrides_clear();
    return rc;
}

void hx_config_overrides_clear(void)
{
    hx_free(ov.host);
    ov.host = NULL;
    ov.host_from = NULL;
    ov.port = -1;
    ov.port_from = NULL;
}

const char *hx_config_override_host_source(void)
{
    return ov.host ? ov.host_from : NULL;
}

int hx__config_apply_overrides(hx_config *cfg)
{
    if (ov.port >= 0)
        cfg->server.port = ov.port;
    if (ov.host == NULL)
        return 0;
    char *h = hx_strdup(ov.host);
    if (h == NULL)
        return -1;
    hx_free(cfg->server.host);
    cfg->server.host = h;
    return 0;
}
