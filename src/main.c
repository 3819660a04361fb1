/* hapax: command line, configuration, start. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "gateway/gateway.h"
#include "http/server.h"
#include "middleware/middleware.h"
#include "obs/crash.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "state/snapshot.h"
#include "upstream/upstream.h"

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

static void apply_logging(const hx_config *cfg)
{
    int lvl = hx_log_level_parse(cfg->logging.level);
    hx_log_set_level(lvl < 0 ? HX_LOG_INFO : (hx_log_level)lvl);
    hx_log_set_json(strcmp(cfg->logging.format, "text") != 0);
    hx_log_set_file(cfg->logging.file); /* a reload may move the log */
}

/* The operator opted in to serving without client keys beyond loopback:
 * say so at every start, where it cannot be missed. */
static void warn_exposure(const hx_config *cfg)
{
    if (!cfg->server.allow_unauthenticated || hx_config_host_is_loopback(cfg->server.host) ||
        !hx_config_serves_unauthenticated(cfg))
        return;
    HX_LOG_WARN("serving without client authentication on a non-loopback address: anyone who can "
                "connect may spend the provider keys and read /metrics",
                HX_F_STR("event", "security"), HX_F_STR("host", cfg->server.host),
                HX_F_STR("setting", "server.allow_unauthenticated"));
}

/* A reloaded config, on the main thread before workers switch to it. */
static int on_reload(hx_config *cfg, void *ud, char *err, size_t errlen)
{
    /* The listener keeps the address it was started on (server.host needs
     * a restart): a reload that turns auth off while that address is not
     * loopback would expose the providers just as a start would. */
    const char *listening = ud;
    if (!cfg->server.allow_unauthenticated && !hx_config_host_is_loopback(listening) &&
        hx_config_serves_unauthenticated(cfg)) {
        snprintf(err, errlen,
                 "still listening on %.64s (host changes need a restart) with client auth off: configure "
                 "auth keys or set server.allow_unauthenticated: true",
                 listening);
        return -1;
    }
    hx_gateway *prev = hx_gateway_current();
    hx_gateway *gw = hx_gateway_new(cfg, prev, err, errlen);
    hx_gateway_unref(prev);
    if (gw == NULL)
        return -1;
    hx_gateway_publish(gw);
    hx_gateway_unref(gw);
    apply_logging(cfg);
    hx_middleware_reconfigure(cfg);
    return 0;
}

/* The state file lives on the main loop, off the request path. */
static void on_main_start(void *loop, void *ud)
{
    const hx_config *cfg = ud;
    if (*cfg->queue.state_path &&
        hx_snapshot_start(loop, cfg->queue.state_path, cfg->queue.save_interval) != 0)
        HX_LOG_WARN("cannot start saving the state file", HX_F_STR("state_path", cfg->queue.state_path));
}

static void on_main_stop(void *ud)
{
    (void)ud;
    hx_snapshot_stop();
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

    apply_logging(cfg);
    warn_exposure(cfg);
    hx_crash_install();
    char err[256];
    hx_gateway *gw = NULL;
    if (hx_metrics_init() != 0 || hx_gw_metrics_collectors() != 0 || hx_log_metrics_register() != 0) {
        HX_LOG_ERROR("cannot start", HX_F_STR("error", "metrics initialisation failed"));
        hx_config_unref(cfg);
        return 1;
    }
    if (hx_upstream_global_init() != 0 || (gw = hx_gateway_new(cfg, NULL, err, sizeof err)) == NULL) {
        HX_LOG_ERROR("cannot start", HX_F_STR("error", "provider initialisation failed"));
        hx_config_unref(cfg);
        return 1;
    }
    hx_gateway_publish(gw);
    hx_gateway_unref(gw);
    if (hx_middleware_init(cfg) != 0 || hx_gateway_state_register() != 0) {
        hx_gateway_publish(NULL);
        hx_config_unref(cfg);
        return 1;
    }
    if (*cfg->queue.state_path)
        hx_snapshot_restore(cfg->queue.state_path);
    hx_server *srv = hx_server_new(cfg, err, sizeof err);
    if (srv == NULL) {
        HX_LOG_ERROR("cannot start", HX_F_STR("error", err), HX_F_STR("config", o.config));
        hx_middleware_shutdown();
        hx_gateway_publish(NULL);
        hx_config_unref(cfg);
        return 1;
    }
    hx_server_set_app(srv, hx_gateway_worker_init, hx_gateway_worker_fini, NULL);
    hx_req_set_done_hook(hx_gw_request_done); /* the access-log line */
    hx_server_set_reload(srv, on_reload, cfg->server.host); /* cfg outlives the server */
    hx_server_set_drain(srv, hx_gateway_worker_drain);
    hx_server_set_force(srv, hx_gateway_worker_force);
    hx_server_set_worker_reload(srv, hx_gateway_worker_reloaded);
    hx_server_set_main_hooks(srv, on_main_start, on_main_stop, cfg);
    /* From here on no loop writes a log line itself: a writer thread does. */
    if (hx_log_start(cfg->logging.file, err, sizeof err) != 0) {
        HX_LOG_ERROR("cannot start", HX_F_STR("error", err), HX_F_STR("config", o.config));
        hx_server_free(srv);
        hx_middleware_shutdown();
        hx_gateway_publish(NULL);
        hx_config_unref(cfg);
        return 1;
    }
    HX_LOG_INFO("starting hapax", HX_F_STR("version", HX_VERSION), HX_F_STR("config", o.config));
    rc = hx_server_run(srv);
    hx_server_free(srv);
    hx_middleware_shutdown();
    hx_gateway_publish(NULL);
    hx_metrics_shutdown();
    hx_config_unref(cfg);
    hx_config_overrides_clear();
    hx_log_stop(HX_LOG_EXIT_WAIT_MS);
    return rc;
}
