/* hapax: command line and configuration; src/app/ composes and runs it. */
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "config/config.h"

#define DEFAULT_CONFIG "config/hapax.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hapax [--config PATH] [--host ADDR] [--port N] [--validate] [--print-config]\n"
            "             [--version] [--help]\n"
            "\n"
            "  --config PATH    configuration file (default: " DEFAULT_CONFIG ")\n"
            "  --host ADDR      listen address, replaces server.host (also HAPAX_HOST)\n"
            "  --port N         listen port 0..65535, replaces server.port (also HAPAX_PORT)\n"
            "  --validate       check the configuration, print every error, exit\n"
            "  --print-config   print the effective configuration (secrets redacted), exit\n"
            "  --version        print the version, exit\n"
            "  --help           print this help, exit\n");
}

typedef struct {
    const char *config;
    const char *host; /* --host, NULL = HAPAX_HOST or the file */
    const char *port; /* --port, NULL = HAPAX_PORT or the file */
    int validate;
    int print_config;
} options;

/* "-name VALUE" or "-name=VALUE" (a is argv[*i] with one '-' dropped).
 * Returns 1 when matched (*out set), 0 when not, -1 when VALUE is missing. */
static int flag_value(int argc, char **argv, int *i, const char *a, const char *name, const char **out)
{
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *out = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *out = argv[++*i];
    return 1;
}

/* Returns -1 to continue, or an exit code. */
static int parse_args(int argc, char **argv, options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] == '-')
            a++; /* accept both -flag and --flag, as the original did */
        const char *arg0 = argv[i];
        int m = flag_value(argc, argv, &i, a, "-config", &o->config);
        if (m == 0)
            m = flag_value(argc, argv, &i, a, "-c", &o->config);
        if (m == 0)
            m = flag_value(argc, argv, &i, a, "-host", &o->host);
        if (m == 0)
            m = flag_value(argc, argv, &i, a, "-port", &o->port);
        if (m < 0) {
            fprintf(stderr, "hapax: %s needs a value\n", arg0);
            usage(stderr);
            return 2;
        }
        if (m > 0) {
            continue;
        } else if (strcmp(a, "-validate") == 0) {
            o->validate = 1;
        } else if (strcmp(a, "-print-config") == 0) {
            o->print_config = 1;
        } else if (strcmp(a, "-version") == 0) {
            printf("hapax %s\n", HX_VERSION);
            return 0;
        } else if (strcmp(a, "-help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "hapax: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    options o = {.config = DEFAULT_CONFIG};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;

    hx_config_errors errs = {0};
    hx_config *cfg = NULL;
    if (hx_config_overrides_set(o.host, o.port, &errs) == 0)
        cfg = hx_config_load_file(o.config, &errs);
    if (cfg == NULL) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.items[i]);
        fprintf(stderr, "hapax: configuration %s has %zu error%s\n", o.config, errs.n, errs.n == 1 ? "" : "s");
        hx_config_errors_free(&errs);
        return 1;
    }
    hx_config_errors_free(&errs);

    if (o.validate || o.print_config) {
        if (o.print_config && hx_config_print(cfg, stdout) != 0)
            rc = 1;
        else if (o.validate && !o.print_config)
            printf("configuration is valid\n");
        hx_config_unref(cfg);
        return rc < 0 ? 0 : rc;
    }

    rc = hx_app_run(cfg, o.config);
    hx_config_unref(cfg);
    hx_config_overrides_clear();
    return rc;
}
