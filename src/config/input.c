/* Reading a configuration safely: only a regular file, never a blocking
 * open, at most HX__CONFIG_MAX_BYTES; nesting checked before libyaml builds
 * the document. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config/config.h"
#include "config/schema.h"
#include "util/alloc.h"

/* Pulls events until the end, a syntax error or a node too deep. Linear:
 * the scanner reads at most ~1 KiB past the too-deep node. */
bool hx__config_depth_ok(const char *yaml, size_t len, const char *name, hx_config_errors *errs,
                         bool *oom)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        *oom = true;
        return false;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    int depth = 0;
    bool ok = true, done = false;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev))
            break;
        switch (ev.type) {
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (++depth > HX__CONFIG_MAX_DEPTH) {
                *oom = *oom || hx_config_errors_add(errs, "%s:%zu:%zu: nesting deeper than %d levels", name,
                                                    ev.start_mark.line + 1, ev.start_mark.column + 1,
                                                    HX__CONFIG_MAX_DEPTH) != 0;
                ok = false;
                done = true;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return ok;
}

char *hx__config_read_file(const char *path, size_t *len, hx_config_errors *errs)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it would
     * block the main thread: no reload, no state saves, no SIGTERM). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        hx_config_errors_add(errs, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        hx_config_errors_add(errs, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        hx_config_errors_add(errs, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size > HX__CONFIG_MAX_BYTES) {
        hx_config_errors_add(errs, "%s: file is larger than 4 MiB", path);
        close(fd);
        return NULL;
    }
    char *buf = hx_malloc(HX__CONFIG_MAX_BYTES + 1);
    size_t n = 0;
    while (buf && n <= HX__CONFIG_MAX_BYTES) {
        ssize_t r = read(fd, buf + n, HX__CONFIG_MAX_BYTES + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            hx_config_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (buf == NULL) {
        hx_config_errors_add(errs, "%s: out of memory while loading the configuration", path);
        goto fail;
    }
    if (n > HX__CONFIG_MAX_BYTES) {
        hx_config_errors_add(errs, "%s: file is larger than 4 MiB", path);
        goto fail;
    }
    close(fd);
    *len = n;
    return buf;
fail:
    hx_free(buf);
    close(fd);
    return NULL;
}
