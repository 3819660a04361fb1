#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "obs/log.h"
#include "util/alloc.h"

/* ---- helpers ---- */

static hx_config *load(const char *yaml, hx_config_errors *e)
{
    *e = (hx_config_errors){0};
    return hx_config_load_string(yaml, strlen(yaml), "test.yaml", e);
}

static bool has_error(const hx_config_errors *e, const char *needle)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->items[i], needle))
            return true;
    return false;
}

static void dump(const hx_config_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        print_message("  error: %s\n", e->items[i]);
}

/* Loads yaml, expects it to succeed; caller unrefs. */
static hx_config *load_ok(const char *yaml)
{
    hx_config_errors e;
    hx_config *c = load(yaml, &e);
    if (c == NULL || e.n != 0) {
        dump(&e);
        fail_msg("config was rejected:\n%s", yaml);
    }
    hx_config_errors_free(&e);
    return c;
}

/* Loads yaml, expects failure with an error containing each needle. */
static void load_bad(const char *yaml, const char *needle)
{
    hx_config_errors e;
    hx_config *c = load(yaml, &e);
    if (c != NULL || !has_error(&e, needle)) {
        dump(&e);
        hx_config_unref(c);
        hx_config_errors_free(&e);
        fail_msg("expected an error containing \"%s\" for:\n%s", needle, yaml);
    }
    hx_config_errors_free(&e);
}

static char *print_to_string(const hx_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(hx_config_print(c, f), 0);
    fclose(f);
    return text;
}

/* ---- defaults ---- */

static void test_default_values(void **state)
{
    (void)state;
    hx_config *c = hx_config_default();
    assert_non_null(c);
    assert_int_equal(c->server.port, 8080);
    assert_int_equal(c->server.read_timeout, 30000);
    assert_int_equal(c->server.write_timeout, 45000);
    assert_int_equal(c->server.idle_timeout, 60000);
    assert_int_equal(c->server.max_header_bytes, 2 * 1024 * 1024);
    assert_int_equal(c->server.max_body_bytes, 10 * 1024 * 1024);
    assert_int_equal(c->server.shutdown_timeout, 30000);
    assert_int_equal(c->server.max_connections, 10000);
    assert_string_equal(c->server.host, "127.0.0.1");
    assert_int_equal(c->server.middleware.n, 8);
    assert_string_equal(c->server.middleware.items[0], "request_id");
    assert_false(c->server.http3.enabled);
    assert_int_equal(c->server.http3.port, 443);
    assert_int_equal(c->server.http3.idle_timeout, 30000);
    assert_int_equal(c->server.http3.max_bi_streams_concurrent, 100);
    assert_int_equal(c->server.http3.max_uni_streams_concurrent, 100);
    assert_int_equal(c->server.http3.max_stream_receive_window, 6291456);
    assert_int_equal(c->server.http3.max_connection_receive_window, 15728640);
    assert_true(c->server.http3.enable_0rtt);
    assert_false(c->server.http3.allow_0rtt_replay);
    assert_true(c->auth.metrics_require_auth);
    assert_false(c->auth.enabled);
    assert_string_equal(c->llm.provider, "ollama");
    assert_string_equal(c->llm.model, "llama2");
    assert_string_equal(c->llm.api_key, "");
    assert_int_equal(c->llm.retry.max_retries, 5);
    assert_true(c->llm.retry.multiplier == 1.5);
    assert_int_equal(c->llm.n_backup_providers, 0);
    assert_string_equal(c->logging.level, "info");
    assert_string_equal(c->logging.format, "json");
    assert_int_equal(c->rate_limit.limits.requests_per_minute, 60);
    /* The original's 3 routes plus the OpenAI and Anthropic APIs, one
     * model by id, the per-provider health route, the Responses API,
     * embeddings and count_tokens. */
    assert_int_equal(c->n_routes, 12);
    assert_string_equal(c->routes[0].path, "/v1/chat/completions");
    assert_string_equal(c->routes[0].handler, "chat");
    assert_string_equal(c->routes[1].path, "/v1/completions");
    assert_string_equal(c->routes[1].handler, "completion");
    assert_string_equal(c->routes[1].methods.items[0], "POST");
    assert_string_equal(c->routes[2].path, "/v1/messages");
    assert_string_equal(c->routes[3].path, "/v1/models");
    assert_string_equal(c->routes[4].path, "/v1/models/{id...}");
    assert_string_equal(c->routes[4].handler, "model");
    assert_string_equal(c->routes[5].path, "/health");
    assert_int_equal(c->routes[5].methods.n, 2);
    assert_string_equal(c->routes[6].path, "/health/providers/{name}");
    assert_string_equal(c->routes[7].path, "/metrics");
    assert_string_equal(c->routes[8].path, "/v1/responses");
    assert_string_equal(c->routes[8].handler, "responses");
    assert_string_equal(c->routes[8].methods.items[0], "POST");
    assert_string_equal(c->routes[9].path, "/v1/responses/{id}");
    assert_int_equal(c->routes[9].methods.n, 2);
    assert_int_equal(c->llm.responses.max_stored, 10000);
    assert_int_equal(c->llm.responses.max_bytes, 64 << 20);
    assert_int_equal(c->llm.responses.ttl, 24 * 3600 * 1000);
    assert_string_equal(c->routes[10].path, "/v1/embeddings");
    assert_string_equal(c->routes[10].handler, "embeddings");
    assert_string_equal(c->routes[10].methods.items[0], "POST");
    assert_string_equal(c->routes[11].path, "/v1/messages/count_tokens");
    assert_string_equal(c->routes[11].handler, "count_tokens");
    hx_config_errors e = {0};
    assert_int_equal(hx_config_validate(c, &e), 0);
    hx_config_unref(c);
}

static void test_ref_unref(void **state)
{
    (void)state;
    hx_config *c = hx_config_default();
    assert_ptr_equal(hx_config_ref(c), c);
    hx_config_unref(c);
    assert_int_equal(c->server.port, 8080); /* still alive: one ref left */
    hx_config_unref(c);
    hx_config_unref(NULL);
}

/* ---- the original's checks (17.1) ---- */

static void test_load_full_yaml(void **state)
{
    (void)state;
    hx_config *c = load_ok("server:\n"
                           "  port: 9090\n"
                           "  read_timeout: 45s\n"
                           "  write_timeout: 30s\n"
                           "  max_header_bytes: 1048576\n"
                           "  shutdown_timeout: 30s\n"
                           "llm:\n"
                           "  provider: openai\n"
                           "  model: gpt-4\n"
                           "  endpoint: https://api.openai.com/v1\n"
                           "logging:\n"
                           "  level: debug\n"
                           "  format: json\n"
                           "routes:\n"
                           "  - path: /v1/completions\n"
                           "    handler: completion\n"
                           "    version: v1\n"
                           "  - path: /health\n"
                           "    handler: health\n"
                           "    version: v1\n");
    assert_int_equal(c->server.port, 9090);
    assert_int_equal(c->server.read_timeout, 45000);
    assert_int_equal(c->server.write_timeout, 30000);
    assert_int_equal(c->server.max_header_bytes, 1048576);
    assert_int_equal(c->server.idle_timeout, 60000); /* merged default */
    assert_string_equal(c->llm.provider, "openai");
    assert_string_equal(c->llm.model, "gpt-4");
    assert_string_equal(c->logging.level, "debug");
    assert_int_equal(c->n_routes, 2); /* replaces the defaults */
    assert_string_equal(c->routes[1].path, "/health");
    /* methods follow the handler when left out */
    assert_int_equal(c->routes[0].methods.n, 1);
    assert_string_equal(c->routes[0].methods.items[0], "POST");
    assert_int_equal(c->routes[1].methods.n, 2);
    assert_string_equal(c->routes[1].methods.items[1], "HEAD");
    assert_null(c->marks);
    hx_config_unref(c);
}

static void test_invalid_port(void **state)
{
    (void)state;
    load_bad("server:\n  port: -1\n", "test.yaml:2:9: server.port: invalid port: -1");
    load_bad("server:\n  port: 65536\n", "invalid port");
}

static void test_invalid_log_level_and_format(void **state)
{
    (void)state;
    load_bad("logging:\n  level: invalid\n", "invalid log level: invalid");
    load_bad("logging:\n  format: xml\n", "invalid log format: xml");
}

static void test_empty_provider_and_model(void **state)
{
    (void)state;
    load_bad("llm:\n  provider: \"\"\n", "llm.provider: empty LLM provider");
    load_bad("llm:\n  model: ''\n", "empty LLM model");
    load_bad("llm:\n  provider: groq\n", "invalid LLM provider: groq (allowed: openai, anthropic, ollama)");
}

/* llm.responses (the store's bounds) and responses_api per provider. */
static void test_responses_keys(void **state)
{
    (void)state;
    hx_config *c = load_ok("llm:\n  provider: openai\n  responses_api: native\n  responses:\n    max_stored: 5\n"
                           "    max_bytes: 1MB\n    ttl: 10m\n  backup_providers:\n    - provider: openai\n"
                           "      model: m\n      responses_api: translate\n");
    assert_int_equal(c->llm.responses.max_stored, 5);
    assert_int_equal(c->llm.responses.max_bytes, 1 << 20);
    assert_int_equal(c->llm.responses.ttl, 600000);
    assert_string_equal(c->llm.responses_api, "native");
    assert_string_equal(c->llm.backup_providers[0].responses_api, "translate");
    hx_config_unref(c);
    load_bad("llm:\n  responses_api: sometimes\n", "invalid responses_api (auto, native or translate)");
    load_bad("llm:\n  provider: ollama\n  responses_api: native\n", "llm.responses_api: native needs provider openai");
    load_bad("llm:\n  backup_providers:\n    - provider: anthropic\n      model: m\n      responses_api: native\n",
             "llm.backup_providers[0].responses_api: native needs provider openai");
    load_bad("llm:\n  responses:\n    ttl: 0s\n", "llm.responses.ttl");
    /* a /v1/responses route spends provider keys like the others */
    load_bad("server:\n  host: 0.0.0.0\nauth:\n  enabled: true\n  keys:\n    - {name: a, key: sk-abcdefgh-1}\n"
             "routes:\n  - {path: /v1/responses, handler: responses, middleware: [logging]}\n",
             "for a completion route (its middleware lacks auth)");
    load_bad("llm:\n  responses:\n    max_stored: -1\n", "llm.responses.max_stored");
}

static void test_empty_route_path(void **state)
{
    (void)state;
    load_bad("routes:\n  - path: \"\"\n    handler: test\n", "empty path in route 0");
    load_bad("routes:\n  - path: /x\n    handler: \"\"\n", "empty handler in route 0");
    load_bad("routes:\n  - path: x\n    handler: chat\n", "routes[0].path: must start with '/'");
    load_bad("routes:\n  - {path: /a, handler: chat}\n  - {path: /a, handler: models}\n",
             "test.yaml:3:12: routes[1].path: duplicate path /a (also routes[0])");
    load_bad("routes: []\n", "at least one route is required");
    load_bad("routes:\n  - {path: /a, handler: chat, methods: [GET, FETCH]}\n",
             "routes[0].methods[1]: invalid HTTP method: FETCH");
}

/* ---- environment variables ---- */

static void test_env_port(void **state)
{
    (void)state;
    setenv("SERVER_PORT", "8080", 1);
    hx_config *c = load_ok("server:\n  port: ${SERVER_PORT}\n");
    assert_int_equal(c->server.port, 8080);
    hx_config_unref(c);
    setenv("SERVER_PORT", "-1", 1);
    load_bad("server:\n  port: ${SERVER_PORT}\n", "invalid port");
    setenv("SERVER_PORT", "80a", 1);
    load_bad("server:\n  port: ${SERVER_PORT}\n", "expected an integer, but \"${SERVER_PORT}\"");
    unsetenv("SERVER_PORT");
}

static void test_env_unset_keeps_default(void **state)
{
    (void)state;
    unsetenv("MODEL");
    setenv("PROVIDER", "anthropic", 1);
    hx_config *c = load_ok("llm:\n  provider: ${PROVIDER}\n  model: ${MODEL}\n");
    assert_string_equal(c->llm.provider, "anthropic");
    assert_string_equal(c->llm.model, "llama2");
    hx_config_unref(c);
    unsetenv("PROVIDER");
}

static void test_env_defaults_and_reload(void **state)
{
    (void)state;
    const char *yaml = "llm:\n  provider: ${PROVIDER:-anthropic}\n  model: ${MODEL:-claude-3}\n"
                       "  api_key: ${API_KEY:-default-key}\n";
    unsetenv("MODEL");
    hx_config *c = load_ok(yaml);
    assert_string_equal(c->llm.provider, "anthropic");
    assert_string_equal(c->llm.model, "claude-3");
    assert_string_equal(c->llm.api_key, "default-key");
    hx_config_unref(c);
    setenv("MODEL", "claude-3-opus", 1);
    c = load_ok(yaml); /* a second load sees the new value */
    assert_string_equal(c->llm.model, "claude-3-opus");
    hx_config_unref(c);
    unsetenv("MODEL");
}

static void test_env_everywhere(void **state)
{
    (void)state;
    setenv("OPENAI_API_KEY", "sk-ant-!@#$%^&*()_+=", 1);
    setenv("API_HOST", "api.anthropic.com", 1);
    setenv("API_VERSION", "v1", 1);
    setenv("FULL_URL", "${API_HOST}/${API_VERSION}", 1);
    setenv("HANDLER", "chat", 1);
    hx_config *c = load_ok("llm:\n"
                           "  endpoint: https://${FULL_URL}\n"
                           "  system_prompt: \"costs $$5, ${NOPE_UNSET}.\"\n"
                           "  backup_providers:\n"
                           "    - provider: openai\n"
                           "      model: gpt-4o-mini\n"
                           "      api_key: ${OPENAI_API_KEY}\n"
                           "routes:\n"
                           "  - path: /v1/${API_VERSION}/chat\n"
                           "    handler: ${HANDLER}\n");
    assert_string_equal(c->llm.endpoint, "https://api.anthropic.com/v1");
    assert_string_equal(c->llm.system_prompt, "costs $5, .");
    assert_string_equal(c->llm.backup_providers[0].api_key, "sk-ant-!@#$%^&*()_+=");
    assert_string_equal(c->llm.backup_providers[0].name, "openai");
    assert_string_equal(c->routes[0].path, "/v1/v1/chat");
    assert_string_equal(c->routes[0].handler, "chat");
    assert_string_equal(c->routes[0].methods.items[0], "POST");
    hx_config_unref(c);
    unsetenv("OPENAI_API_KEY");
    unsetenv("API_HOST");
    unsetenv("API_VERSION");
    unsetenv("FULL_URL");
    unsetenv("HANDLER");
}

static void test_env_names_logged_not_values(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    hx_log_set_fd(fileno(f));
    hx_log_set_level(HX_LOG_DEBUG);
    setenv("HX_SECRET_KEY", "sk-very-secret", 1);
    hx_config *c = load_ok("llm:\n  api_key: ${HX_SECRET_KEY}\n  model: ${HX_MODEL:-m}\n");
    hx_log_set_level(HX_LOG_INFO);
    hx_log_set_fd(-1);
    char text[4096] = {0};
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    assert_true(n > 0);
    assert_non_null(strstr(text, "config variables used"));
    assert_non_null(strstr(text, "HX_SECRET_KEY,HX_MODEL"));
    assert_null(strstr(text, "sk-very-secret"));
    assert_string_equal(c->llm.api_key, "sk-very-secret");
    hx_config_unref(c);
    unsetenv("HX_SECRET_KEY");
}

static void test_env_not_in_keys_or_comments(void **state)
{
    (void)state;
    hx_config *c = load_ok("# ${UNTERMINATED in a comment is fine\nserver:\n  port: 81\n");
    assert_int_equal(c->server.port, 81);
    hx_config_unref(c);
    load_bad("server:\n  ${PORT_KEY}: 81\n", "unknown key");
}

static void test_env_unterminated_has_position(void **state)
{
    (void)state;
    load_bad("llm:\n  api_key: ${VALID_KEY\n", "test.yaml:2:12: llm.api_key: invalid syntax: unterminated ${");
    load_bad("llm:\n  endpoint: http://${HOST\n", "test.yaml:2:20: llm.endpoint: invalid syntax");
    load_bad("llm:\n  model: ${1A}\n", "invalid variable name");
    setenv("CYCLE_A", "${CYCLE_B}", 1);
    setenv("CYCLE_B", "${CYCLE_A}", 1);
    load_bad("llm:\n  model: ${CYCLE_A}\n", "cycle in environment variables: CYCLE_A -> CYCLE_B -> CYCLE_A");
    unsetenv("CYCLE_A");
    unsetenv("CYCLE_B");
}

/* ---- strictness ---- */

static void test_unknown_key_with_position(void **state)
{
    (void)state;
    load_bad("server:\n  port: 8080\n  http3:\n    allow_0rtt_replayy: true\n",
             "test.yaml:4:5: server.http3.allow_0rtt_replayy: unknown key (did you mean allow_0rtt_replay?)");
    load_bad("circuitBreaker:\n  timeout: 5s\n", "test.yaml:1:1: circuitBreaker: unknown key (did you mean circuit_breaker?)");
    load_bad("processing:\n  x: 1\n", "test.yaml:1:1: processing: unknown key");
    load_bad("routes:\n  - path: /a\n    handler: chat\n    metods: [GET]\n",
             "test.yaml:4:5: routes[0].metods: unknown key (did you mean methods?)");
}

static void test_all_errors_reported(void **state)
{
    (void)state;
    hx_config_errors e;
    hx_config *c = load("server:\n"
                        "  port: 70000\n"
                        "  bogus: 1\n"
                        "  read_timeout: -1s\n"
                        "llm:\n"
                        "  provider: \"\"\n"
                        "logging:\n"
                        "  level: loud\n",
                        &e);
    assert_null(c);
    assert_int_equal(e.n, 5);
    /* sorted by position */
    assert_non_null(strstr(e.items[0], "test.yaml:2:9: server.port: invalid port: 70000"));
    assert_non_null(strstr(e.items[1], "test.yaml:3:3: server.bogus: unknown key"));
    assert_non_null(strstr(e.items[2], "test.yaml:4:17: server.read_timeout: negative read timeout: -1s"));
    assert_non_null(strstr(e.items[3], "test.yaml:6:13: llm.provider: empty LLM provider"));
    assert_non_null(strstr(e.items[4], "test.yaml:8:10: logging.level: invalid log level: loud"));
    hx_config_errors_free(&e);
}

static void test_wrong_types(void **state)
{
    (void)state;
    load_bad("server:\n  port: abc\n", "test.yaml:2:9: server.port: expected an integer, got \"abc\"");
    load_bad("server:\n  port: 1.5\n", "expected an integer, got \"1.5\"");
    load_bad("server:\n  port: 99999999999999999999\n", "is out of range");
    load_bad("server:\n  port: {a: 1}\n", "server.port: expected an integer, got a mapping");
    load_bad("server:\n  port: [1]\n", "expected an integer, got a list");
    load_bad("server: 8080\n", "test.yaml:1:9: server: expected a mapping, got a scalar");
    load_bad("server:\n  read_timeout: 10x\n", "expected a duration");
    load_bad("server:\n  read_timeout: [1]\n", "expected a duration");
    load_bad("server:\n  max_body_bytes: 1.3B\n", "expected a size");
    load_bad("server:\n  http3:\n    enabled: maybe\n", "expected a boolean");
    load_bad("server:\n  middleware: request_id\n", "expected a list of strings, got a scalar");
    load_bad("server:\n  middleware: [[a]]\n", "server.middleware[0]: expected a string, got a list");
    load_bad("server:\n  middleware: [~]\n", "expected a string, got null");
    load_bad("llm:\n  options: [1]\n", "expected a mapping of names to values");
    load_bad("llm:\n  options:\n    stop: [a]\n", "llm.options.stop: expected a scalar value, got a list");
    load_bad("llm:\n  backup_providers: {a: 1}\n", "expected a list, got a mapping");
    load_bad("llm:\n  backup_providers: [1]\n", "llm.backup_providers[0]: expected a mapping, got a scalar");
    load_bad("llm:\n  retry:\n    multiplier: fast\n", "expected a number");
    load_bad("server:\n  health_check:\n    cpu_threshold: ninety\n", "expected a percentage");
    load_bad("[1, 2]\n", "the top level must be a mapping");
    load_bad("{[a]: 1}\n", "keys must be scalars");
}

static void test_lenient_scalar_forms(void **state)
{
    (void)state;
    hx_config *c = load_ok("server:\n"
                           "  port: \"8081\"\n"
                           "  workers: '4'\n"
                           "  read_timeout: 10\n"
                           "  write_timeout: 1m30s\n"
                           "  max_header_bytes: \"64KB\"\n"
                           "  health_check:\n"
                           "    memory_threshold: 75%\n"
                           "    cpu_threshold: 12.5\n"
                           "  http3:\n"
                           "    enable_0rtt: no\n"
                           "    allow_0rtt_replay: yes\n"
                           "    max_stream_receive_window: 6MB\n"
                           "    max_connection_receive_window: 15MB\n"
                           "    max_0rtt_size: 16KB\n"
                           "    udp_receive_buffer_size: 8mb\n"
                           "logging:\n"
                           "  access_log: Off\n");
    assert_int_equal(c->server.port, 8081);
    assert_int_equal(c->server.workers, 4);
    assert_int_equal(c->server.read_timeout, 10000);
    assert_int_equal(c->server.write_timeout, 90000);
    assert_int_equal(c->server.max_header_bytes, 65536);
    assert_true(c->server.health_check.memory_threshold == 75);
    assert_true(c->server.health_check.cpu_threshold == 12.5);
    assert_false(c->server.http3.enable_0rtt);
    assert_true(c->server.http3.allow_0rtt_replay);
    assert_int_equal(c->server.http3.max_stream_receive_window, 6291456);
    assert_int_equal(c->server.http3.max_connection_receive_window, 15728640);
    assert_int_equal(c->server.http3.max_0rtt_size, 16384);
    assert_int_equal(c->server.http3.udp_receive_buffer_size, 8388608);
    assert_false(c->logging.access_log);
    hx_config_unref(c);
}

static void test_merge_replace_values(void **state)
{
    (void)state;
    hx_config *c = load_ok("server:\n"
                           "  port:\n"
                           "  host: ~\n"
                           "  middleware: [request_id, logging]\n"
                           "llm:\n"
                           "  retry:\n"
                           "    max_retries: 2\n"
                           "    retryable_errors: [timeout, unanswered]\n"
                           "  options:\n"
                           "    temperature: 0.7\n"
                           "    stream: true\n"
                           "    label: hello\n"
                           "    quoted_number: \"42\"\n"
                           "cors:\n"
                           "  allow_origins: []\n"
                           "routes:\n"
                           "  - path: /x\n"
                           "    handler: models\n"
                           "    methods: []\n");
    assert_int_equal(c->server.port, 8080);
    assert_string_equal(c->server.host, "127.0.0.1");
    assert_int_equal(c->server.middleware.n, 2);
    assert_string_equal(c->server.middleware.items[1], "logging");
    assert_int_equal(c->llm.retry.max_retries, 2);
    assert_int_equal(c->llm.retry.initial_delay, 100);
    assert_int_equal(c->llm.retry.retryable_errors.n, 2); /* "unanswered" is a valid class */
    assert_int_equal(c->llm.options.n, 4);
    assert_string_equal(c->llm.options.items[0].key, "temperature");
    assert_string_equal(c->llm.options.items[0].value, "0.7");
    assert_false(c->llm.options.items[0].is_string);
    assert_false(c->llm.options.items[1].is_string);
    assert_true(c->llm.options.items[2].is_string);
    assert_true(c->llm.options.items[3].is_string);
    assert_int_equal(c->cors.allow_origins.n, 0);
    assert_int_equal(c->n_routes, 1);
    assert_string_equal(c->routes[0].version, ""); /* unversioned unless set */
    assert_int_equal(c->routes[0].methods.n, 2); /* [] -> from the handler */
    assert_int_equal(c->routes[0].health_check.interval, 30000);
    hx_config_unref(c);
}

static void test_middleware_names(void **state)
{
    (void)state;
    hx_config *c = load_ok("server:\n  middleware: [request_id, rate-limit]\n");
    assert_string_equal(c->server.middleware.items[1], "rate_limit");
    hx_config_unref(c);
    load_bad("server:\n  middleware: [gzip]\n", "server.middleware[0]: unknown middleware: gzip");
    load_bad("routes:\n  - {path: /a, handler: chat, version: \"v1/x\"}\n",
             "routes[0].version: must be letters, digits");
    load_bad("server:\n  middleware: [logging, logging]\n", "middleware logging is listed twice");
    /* An enabled section that no chain lists would be ignored: an error. */
    load_bad("server:\n  middleware: [request_id]\nqueue:\n  enabled: true\n",
             "queue.enabled: queue is enabled but neither server.middleware nor any route's middleware lists it");
    load_bad("server:\n  middleware: [logging]\ncors:\n  enabled: true\n  allow_origins: [\"https://a.example\"]\n",
             "cors.enabled: cors is enabled but neither");
    c = load_ok("server:\n  middleware: [logging]\nauth:\n  enabled: true\n  keys:\n    - {name: a, key: k}\n"
                "routes:\n  - {path: /a, handler: chat, middleware: [auth]}\n");
    assert_true(c->auth.enabled);
    hx_config_unref(c);
    load_bad("auth:\n  enabled: true\n", "auth.keys: at least one key is required when auth is enabled");
    load_bad("rate_limit:\n  enabled: true\n  requests_per_minute: 0\n",
             "rate_limit: set requests_per_minute or tokens_per_minute when enabled");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    load_bad("server:\n  port: 1\n  port: 2\n", "test.yaml:3:3: server.port: duplicate key \"port\"");
    load_bad("llm:\n  options:\n    a: 1\n    a: 2\n", "duplicate key \"a\"");
    load_bad("server: {}\nserver: {}\n", "duplicate key \"server\"");
}

static void test_empty_and_malformed_documents(void **state)
{
    (void)state;
    load_bad("", "test.yaml: configuration is empty");
    load_bad("# only a comment\n\n", "configuration is empty");
    load_bad("---\n", "configuration is empty");
    load_bad("server: {}\n---\nllm: {}\n", "test.yaml:3:1: more than one YAML document");
    load_bad("server:\n  port: [8080\n", "test.yaml:3:1: YAML syntax error");
    load_bad("a: b: c\n", "YAML syntax error");
}

static void test_not_supported_yet(void **state)
{
    (void)state;
    /* HTTP/3 is served (docs/http3.md); what it cannot work with is refused by name. */
    load_bad("server:\n  http3:\n    enabled: true\n",
             "server.http3.tls_cert_file: HTTP/3 enabled but TLS certificate file not specified");
    load_bad("server:\n  http3:\n    enabled: true\n    max_uni_streams_concurrent: 2\n",
             "server.http3.max_uni_streams_concurrent: HTTP/3 needs at least 3 unidirectional streams");
    load_bad("server:\n  http3:\n    enabled: true\n    max_bi_streams_concurrent: 0\n",
             "server.http3.max_bi_streams_concurrent: 0 bidirectional streams would serve no request");
    load_bad("server:\n  http3:\n    enabled: true\n    port: 0\n",
             "server.http3.port: HTTP/3 needs a fixed port");
    load_bad("server:\n  http3:\n    enabled: true\n    address_validation: sometimes\n",
             "server.http3.address_validation: must be auto, always or never, not 'sometimes'");
    load_bad("server:\n  workers: 300\n  http3:\n    enabled: true\n",
             "server.workers: HTTP/3 serves at most 256 workers");
    load_bad("server:\n  health_check:\n    enabled: true\n    memory_threshold: 0\n    cpu_threshold: 0\n"
             "    disk_threshold: 0\n    latency_threshold: 0s\n",
             "server.health_check: enabled but no threshold set");
    load_bad("server:\n  health_check:\n    checks: {gpu: x}\n", "server.health_check.checks.gpu: unknown check");
    /* state.backend: redis is served (docs/scale-out.md); its connection is checked by name. */
    load_bad("state:\n  backend: redis\n  redis:\n    address: \"host:\"\n",
             "state.redis.address: invalid Redis address (host:port or [v6]:port)");
    load_bad("state:\n  backend: redis\n  redis:\n    tls: true\n    tls_cert_file: /etc/hostname\n",
             "state.redis.tls_cert_file: a client certificate needs both tls_cert_file and tls_key_file");
    load_bad("state:\n  backend: redis\n  redis:\n    tls_ca_file: /etc/hostname\n",
             "state.redis.tls: tls_* settings are given but tls is false");
    load_bad("state:\n  backend: redis\n  redis:\n    tls: true\n    tls_ca_file: /nonexistent/ca.pem\n",
             "state.redis.tls_ca_file: cannot read /nonexistent/ca.pem");
    load_bad("state:\n  backend: redis\n  redis:\n    username: gw\n", "state.redis.username: an ACL user needs a password");
    load_bad("state:\n  backend: redis\n  redis:\n    prefix: "
             "\"0123456789012345678901234567890123456789012345678901234567890123456789\"\n",
             "state.redis.prefix: longer than 64 bytes");
    load_bad("state:\n  redis:\n    on_failure: maybe\n", "state.redis.on_failure: invalid on_failure (local or deny)");
    /* llm.cache (docs/cache.md): accepted with its defaults; checked when on */
    hx_config *cc = load_ok("llm:\n  cache:\n    enable: true\n");
    assert_string_equal(cc->llm.cache.type, "memory");
    assert_string_equal(cc->llm.cache.scope, "key");
    assert_int_equal(cc->llm.cache.ttl, 60 * 60 * 1000);
    hx_config_unref(cc);
    load_bad("llm:\n  cache:\n    enable: true\n    max_size: 0\n", "llm.cache.max_size: must be at least 1");
    load_bad("llm:\n  cache:\n    enable: true\n    ttl: 0s\n", "llm.cache.ttl: must be greater than 0");
    load_bad("llm:\n  cache:\n    enable: true\n    scope: team\n", "invalid cache scope");
    load_bad("llm:\n  cache:\n    enable: true\n    type: file\n", "llm.cache.dir: type file needs a directory");
    load_bad("llm:\n  cache:\n    enable: true\n    type: file\n    dir: /proc/version\n",
             "llm.cache.dir: not a writable directory");
    load_bad("llm:\n  cache:\n    enable: true\n    type: redis\n    redis:\n      tls: true\n      tls_key_file: /etc/hostname\n",
             "llm.cache.redis.tls_cert_file: a client certificate needs both tls_cert_file and tls_key_file");
    load_bad("llm:\n  cache:\n    enable: true\n    type: redis\n    redis:\n      on_failure: deny\n",
             "llm.cache.redis.on_failure: deny means nothing for a cache");
    load_bad("llm:\n  cache:\n    enable: true\n    type: redis\n    redis:\n      address: 'a:b:c'\n",
             "llm.cache.redis.address: invalid Redis address");
    load_bad("providers:\n  main:\n    type: openai\n", "providers: not supported; use llm and llm.backup_providers");
    load_bad("provider_preference: [ollama]\n", "provider_preference: not supported");
}

/* routes[].health_check (gateway/route_health.h): accepted, and what it
 * cannot check refused at its line. */
static void test_route_health_check(void **state)
{
    (void)state;
    hx_config *c = load_ok("routes:\n  - path: /a\n    handler: chat\n    health_check:\n      enabled: true\n"
                           "      interval: 2s\n      threshold: 2\n      checks: {api: http, conn: tcp, latency: 300ms}\n");
    assert_true(c->routes[0].health_check.enabled);
    assert_int_equal(c->routes[0].health_check.interval, 2000);
    assert_int_equal(c->routes[0].health_check.checks.n, 3);
    hx_config_unref(c);
    c = load_ok("routes:\n  - path: /a\n    handler: completion\n    health_check:\n      enabled: true\n"
                "      checks: {api: http, latency: threshold}\n");
    hx_config_unref(c);
    load_bad("routes:\n  - path: /a\n    handler: chat\n    health_check:\n      enabled: true\n"
             "      checks:\n        api: ftp\n",
             "test.yaml:7:14: routes[0].health_check.checks.api: unknown check type 'ftp'");
    load_bad("routes:\n  - path: /a\n    handler: chat\n    health_check:\n      enabled: true\n"
             "      checks:\n        latency: 0s\n",
             "routes[0].health_check.checks.latency: unknown check type '0s'");
    load_bad("routes:\n  - path: /h\n    handler: health\n    health_check:\n      enabled: true\n",
             "routes[0].health_check.enabled: handler health is served by hapax itself");
    load_bad("routes:\n  - path: /m/{id}\n    handler: model\n    health_check:\n      enabled: true\n",
             "routes[0].health_check.enabled: a path with a {parameter} has no single <path>/health");
    load_bad("routes:\n  - path: /a\n    handler: chat\n    health_check:\n      enabled: true\n      threshold: 0\n",
             "routes[0].health_check.threshold");
    load_bad("routes:\n  - path: /a\n    handler: chat\n    health_check:\n      enabled: true\n      interval: 0s\n",
             "routes[0].health_check.interval");
}

static void test_cors_wildcard_with_credentials(void **state)
{
    (void)state;
    load_bad("cors:\n  allow_credentials: true\n", "cors.allow_credentials: cannot be true when allow_origins contains \"*\"");
    hx_config *c = load_ok("cors:\n  allow_credentials: true\n  allow_origins: [\"https://app.example\"]\n");
    assert_true(c->cors.allow_credentials);
    hx_config_unref(c);
}

/* server.http2: defaults and the ranges HTTP/2 itself imposes. */
static void test_http2(void **state)
{
    (void)state;
    hx_config *c = load_ok("server:\n  port: 8080\n");
    const hx_cfg_http2 *h = &c->server.http2;
    assert_true(h->enabled);
    assert_false(h->h2c);
    assert_int_equal(h->max_concurrent_streams, 100);
    assert_int_equal(h->initial_window_size, 65535);
    assert_int_equal(h->max_frame_size, 16384);
    assert_int_equal(h->max_continuations, 8);
    assert_int_equal(h->max_resets_per_second, 100);
    assert_int_equal(h->slow_read_timeout, 30000);
    hx_config_unref(c);
    c = load_ok("server:\n  http2:\n    h2c: true\n    max_frame_size: 1MB\n    idle_timeout: 0\n");
    assert_true(c->server.http2.h2c);
    assert_int_equal(c->server.http2.max_frame_size, 1048576);
    hx_config_unref(c);
    load_bad("server:\n  http2:\n    max_frame_size: 1000\n", "server.http2.max_frame_size: must be between");
    load_bad("server:\n  http2:\n    max_frame_size: 32MB\n", "server.http2.max_frame_size: must be between");
    load_bad("server:\n  http2:\n    initial_window_size: 4GB\n", "server.http2.initial_window_size");
    load_bad("server:\n  http2:\n    max_concurrent_streams: 0\n", "server.http2.max_concurrent_streams");
    load_bad("server:\n  http2:\n    max_pings_per_second: 0\n", "server.http2.max_pings_per_second");
    load_bad("server:\n  http2:\n    h2cc: true\n", "h2cc");
}

static void test_ranges(void **state)
{
    (void)state;
    load_bad("server:\n  max_header_bytes: 512\n", "server.max_header_bytes: must be between 1KB and 64MB (got 512)");
    load_bad("server:\n  max_header_bytes: -1\n", "negative max header bytes: -1");
    load_bad("server:\n  max_body_bytes: 2GB\n", "must be between 1KB and 1GB (got 2GB)");
    load_bad("server:\n  write_timeout: -1s\n", "negative write timeout: -1s");
    load_bad("server:\n  idle_timeout: -1s\n", "negative idle timeout");
    load_bad("server:\n  shutdown_timeout: -1s\n", "negative shutdown timeout");
    load_bad("server:\n  workers: 300\n", "server.workers: must be between 0 and 256 (got 300)");
    load_bad("server:\n  max_connections: 0\n", "must be between 1 and 1000000");
    load_bad("server:\n  health_check:\n    disk_threshold: 101\n", "must be between 0 and 100 (got 101)");
    load_bad("llm:\n  max_context_tokens: -1\n", "negative max context tokens: -1");
    load_bad("llm:\n  retry:\n    max_retries: 101\n", "must be between 0 and 100");
    load_bad("llm:\n  retry:\n    multiplier: 0.5\n", "llm.retry.multiplier: must be between 1 and 100 (got 0.5)");
    load_bad("llm:\n  retry:\n    max_delay: 10ms\n", "llm.retry.max_delay: must not be less than initial_delay (100ms)");
    load_bad("llm:\n  retry:\n    retryable_errors: [boom]\n", "unknown retryable error: boom");
    load_bad("llm:\n  retry:\n    retryable_errors: [rate_limit, timeout_after_send]\n",
             "unknown retryable error: timeout_after_send");
    load_bad("llm:\n  retry:\n    budget_percent: 150%\n", "must be between 0 and 100");
    load_bad("llm:\n  health_check:\n    interval: 0s\n", "llm.health_check.interval: must be greater than 0");
    load_bad("llm:\n  health_check:\n    failure_threshold: 0\n", "must be at least 1 when health checks");
    load_bad("llm:\n  connect_timeout: 0\n", "llm.connect_timeout: must be greater than 0 (got 0s)");
    load_bad("circuit_breaker:\n  failure_threshold: 0\n", "must be between 1 and");
    load_bad("circuit_breaker:\n  timeout: 0s\n", "circuit_breaker.timeout: must be greater than 0");
    load_bad("llm:\n  cache:\n    type: disk\n", "invalid cache type: disk");
    load_bad("metrics:\n  path: metrics\n", "metrics.path: must start with '/'");
    hx_config *c = load_ok("llm:\n  health_check:\n    enabled: false\n    interval: 0s\n"
                           "server:\n  read_timeout: 0\n");
    assert_int_equal(c->server.read_timeout, 0); /* 0 = no timeout */
    hx_config_unref(c);
}

/* Browsers expand no patterns in Access-Control-Expose-Headers. */
static void test_cors_expose_patterns_refused(void **state)
{
    (void)state;
    load_bad("cors:\n  expose_headers: [X-Request-ID, 'RateLimit-*']\n",
             "cors.expose_headers[1]: browsers take no patterns here");
    hx_config_unref(load_ok("cors:\n  allow_headers: ['X-Stainless-*']\n  expose_headers: ['*']\n"));
}

static void test_backups_and_auth_keys(void **state)
{
    (void)state;
    load_bad("llm:\n  backup_providers:\n    - model: x\n", "llm.backup_providers[0].provider: empty provider");
    load_bad("llm:\n  backup_providers:\n    - provider: mistral\n      model: m\n",
             "test.yaml:3:17: llm.backup_providers[0].provider: invalid provider: mistral");
    load_bad("llm:\n  backup_providers:\n    - {provider: openai, model: a}\n    - {provider: openai, model: b}\n",
             "duplicate backup provider name \"openai\"");
    load_bad("auth:\n  keys:\n    - name: a\n", "test.yaml:3:7: auth.keys[0]: one of key, key_sha256 or client_cert is required");
    load_bad("auth:\n  keys:\n    - {name: a, key: k, key_sha256: abc}\n", "set only one of key, key_sha256 and client_cert");
    load_bad("auth:\n  keys:\n    - {name: a, key: k, client_cert: \"sha256:00\"}\n",
             "set only one of key, key_sha256 and client_cert");
    load_bad("auth:\n  keys:\n    - {name: a, client_cert: \"sha256:00\"}\n",
             "auth.keys[0].client_cert: must be \"sha256:\" and 64 hexadecimal characters");
    load_bad("auth:\n  keys:\n    - {name: a, client_cert: \"CN=x\"}\n", "auth.keys[0].client_cert: must be");
    load_bad("auth:\n  keys:\n    - {name: a, client_cert: \"subject:\"}\n", "auth.keys[0].client_cert: must be");
    load_bad("auth:\n  keys:\n    - {name: a, key_sha256: abc}\n", "auth.keys[0].key_sha256: must be 64 hexadecimal characters");
    hx_config_unref(load_ok("auth:\n  keys:\n    - {name: a, client_cert: \"subject:CN=a,O=b\"}\n"
                            "    - {name: b, client_cert: \"sha256:"
                            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\"}\n"));
    load_bad("auth:\n  keys:\n    - {key: k}\n", "auth.keys[0].name: empty key name");
    load_bad("auth:\n  keys:\n    - {name: a, key: k}\n    - {name: a, key: j}\n", "duplicate key name \"a\"");
    hx_config *c = load_ok("auth:\n  keys:\n    - name: ci\n      key_sha256: "
                           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                           "      models: [gpt-4o-mini]\n      rate_limit:\n        burst: 5\n");
    assert_int_equal(c->auth.n_keys, 1);
    assert_int_equal(c->auth.keys[0].rate_limit.burst, 5);
    assert_int_equal(c->auth.keys[0].rate_limit.requests_per_minute, 0);
    assert_string_equal(c->auth.keys[0].key, "");
    hx_config_unref(c);
}

static void test_http3_validation(void **state)
{
    (void)state;
    hx_config *c = hx_config_default();
    hx_config_errors e = {0};
    c->server.http3.enabled = true;
    c->server.http3.port = -1;
    c->server.http3.idle_timeout = -1000;
    c->server.http3.max_bi_streams_concurrent = -1;
    c->server.http3.max_uni_streams_concurrent = -1;
    c->server.http3.max_stream_receive_window = 0;
    c->server.http3.max_connection_receive_window = 0;
    c->server.http3.max_0rtt_size = 0;
    assert_int_equal(hx_config_validate(c, &e), 9);
    assert_true(has_error(&e, "invalid HTTP/3 port: -1"));
    assert_true(has_error(&e, "HTTP/3 enabled but TLS certificate file not specified"));
    assert_true(has_error(&e, "HTTP/3 enabled but TLS key file not specified"));
    assert_true(has_error(&e, "negative HTTP/3 idle timeout: -1s"));
    assert_true(has_error(&e, "negative HTTP/3 max bidirectional streams: -1"));
    assert_true(has_error(&e, "negative HTTP/3 max unidirectional streams: -1"));
    assert_true(has_error(&e, "HTTP/3 max stream receive window must be positive"));
    assert_true(has_error(&e, "HTTP/3 max connection receive window must be positive"));
    assert_true(has_error(&e, "HTTP/3 max 0-RTT size must be positive when 0-RTT is enabled"));
    hx_config_errors_free(&e);
    hx_free(c->server.http3.tls_cert_file);
    c->server.http3.tls_cert_file = hx_strdup("/nonexistent/cert.pem");
    hx_free(c->server.http3.tls_key_file);
    c->server.http3.tls_key_file = hx_strdup("/nonexistent/key.pem");
    c->server.http3.max_0rtt_size = 2 * 1024 * 1024;
    hx_config_validate(c, &e);
    assert_true(has_error(&e, "server.http3.tls_cert_file: HTTP/3 TLS certificate file not accessible"));
    assert_true(has_error(&e, "HTTP/3 TLS key file not accessible"));
    assert_true(has_error(&e, "HTTP/3 max 0-RTT size exceeds maximum allowed (1MB)"));
    hx_config_errors_free(&e);
    c->server.http3.enabled = false; /* disabled: nothing but defaults checked */
    assert_int_equal(hx_config_validate(c, &e), 0);
    hx_config_unref(c);
}

static void test_validate_built_config_has_no_position(void **state)
{
    (void)state;
    hx_config *c = hx_config_default();
    hx_config_errors e = {0};
    c->server.port = 70000;
    assert_int_equal(hx_config_validate(c, &e), 1);
    assert_string_equal(e.items[0], "server.port: invalid port: 70000");
    hx_config_errors_free(&e);
    hx_config_unref(c);
}

static char *repeat_yaml(const char *head, const char *line, int n)
{
    size_t hl = strlen(head), ll = strlen(line);
    char *s = malloc(hl + ll * (size_t)n + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    for (int i = 0; i < n; i++)
        memcpy(s + hl + ll * (size_t)i, line, ll);
    s[hl + ll * (size_t)n] = '\0';
    return s;
}

static void test_limits_and_aliases(void **state)
{
    (void)state;
    /* anchors and aliases work */
    hx_config *c = load_ok("routes:\n  - {path: /a, handler: chat, methods: &m [POST, OPTIONS]}\n"
                           "  - {path: /b, handler: chat, methods: *m}\n");
    assert_int_equal(c->routes[1].methods.n, 2);
    assert_string_equal(c->routes[1].methods.items[1], "OPTIONS");
    hx_config_unref(c);
    /* an alias that refers to itself stops at the schema */
    load_bad("server: &s\n  http3: *s\n", "server.http3.http3: unknown key");

    char *yaml = repeat_yaml("server:\n  middleware:\n", "    - logging\n", 5000);
    load_bad(yaml, "test.yaml:3:5: server.middleware: too many items (at most 4096)");
    free(yaml);

    /* 4000 aliases of a 4000-item list: stops at the node limit */
    yaml = repeat_yaml("llm:\n  backup_providers:\n    - &b {provider: openai, model: m, aliases: &a [",
                       "x,", 4000);
    char *tail = repeat_yaml("x]}\n", "    - *b\n", 4000);
    char *all = malloc(strlen(yaml) + strlen(tail) + 1);
    strcpy(all, yaml);
    strcat(all, tail);
    load_bad(all, "too many YAML nodes");
    free(all);
    free(tail);
    free(yaml);

    hx_config_errors e;
    yaml = repeat_yaml("server:\n", "  bogus_key_name: 1\n", 300);
    assert_null(load(yaml, &e));
    assert_int_equal(e.n, HX_CONFIG_MAX_ERRORS + 1);
    assert_non_null(strstr(e.items[HX_CONFIG_MAX_ERRORS], "too many errors"));
    hx_config_errors_free(&e);
    free(yaml);
}

/* ---- print ---- */

static const char *const print_yaml =
    "server:\n"
    "  port: 9000\n"
    "  write_timeout: 1m30s\n"
    "  max_header_bytes: 1536\n"
    "llm:\n"
    "  provider: anthropic\n"
    "  model: \"claude \\\"3\\\"\\n\\ttab\"\n"
    "  api_key: sk-secret-123\n"
    "  system_prompt: 'It''s: #not a comment'\n"
    "  options: {temperature: 0.2, stream: false, stop: \"--\", n: \"3\"}\n"
    "  backup_providers:\n"
    "    - provider: openai\n"
    "      model: gpt-4o-mini\n"
    "      api_key: \"\"\n"
    "      aliases: [fast, \"cheap model\"]\n"
    "  retry:\n"
    "    multiplier: 2.25\n"
    "routes:\n"
    "  - path: /v1/chat/completions\n"
    "    handler: chat\n"
    "    headers: {X-Custom: \"a: b\"}\n"
    "    health_check:\n"
    "      checks: {api: http}\n"
    "  - path: /health\n"
    "    handler: health\n";

static void test_print_redacts_and_round_trips(void **state)
{
    (void)state;
    hx_config *c = load_ok(print_yaml);
    char *first = print_to_string(c);
    assert_null(strstr(first, "sk-secret-123"));
    assert_non_null(strstr(first, "  api_key: \"[redacted]\"\n"));
    assert_non_null(strstr(first, "      api_key: \"\"\n")); /* empty secret stays empty */
    assert_non_null(strstr(first, "  write_timeout: 1m30s\n"));
    assert_non_null(strstr(first, "  max_header_bytes: 1536\n"));
    assert_non_null(strstr(first, "  max_body_bytes: 10MB\n"));
    assert_non_null(strstr(first, "    max_0rtt_size: 16KB\n"));
    assert_non_null(strstr(first, "  model: \"claude \\\"3\\\"\\n\\ttab\"\n"));
    assert_non_null(strstr(first, "    \"temperature\": 0.2\n"));
    assert_non_null(strstr(first, "    \"n\": \"3\"\n"));
    hx_config *again = load_ok(first);
    char *second = print_to_string(again);
    assert_string_equal(first, second);
    assert_string_equal(again->llm.model, "claude \"3\"\n\ttab");
    assert_string_equal(again->llm.system_prompt, "It's: #not a comment");
    assert_int_equal(again->server.write_timeout, 90000);
    assert_true(again->llm.retry.multiplier == 2.25);
    assert_int_equal(again->routes[0].headers.n, 1);
    assert_false(again->llm.options.items[1].is_string);
    assert_string_equal(again->llm.options.items[1].value, "false");
    free(first);
    free(second);
    hx_config_unref(again);
    hx_config_unref(c);
}

static void test_print_defaults_round_trip(void **state)
{
    (void)state;
    hx_config *c = hx_config_default();
    char *first = print_to_string(c);
    hx_config *again = load_ok(first);
    char *second = print_to_string(again);
    assert_string_equal(first, second);
    free(first);
    free(second);
    hx_config_unref(again);
    hx_config_unref(c);
}

static void test_print_write_error(void **state)
{
    (void)state;
    hx_config *c = hx_config_default();
    FILE *f = fopen("/dev/full", "w");
    if (f != NULL) {
        assert_int_equal(hx_config_print(c, f), -1);
        fclose(f);
    }
    hx_config_unref(c);
}

/* ---- files ---- */

static void test_example_config_loads(void **state)
{
    (void)state;
    unsetenv("OLLAMA_ENDPOINT");
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("OPENAI_API_KEY");
    hx_config_errors e = {0};
    hx_config *c = hx_config_load_file("config/hapax.yaml", &e);
    dump(&e);
    assert_non_null(c);
    assert_int_equal(e.n, 0);
    assert_string_equal(c->source_path, "config/hapax.yaml");
    assert_int_equal(c->server.port, 8080);
    assert_string_equal(c->llm.provider, "ollama");
    assert_string_equal(c->llm.model, "llama3.2");
    assert_string_equal(c->llm.endpoint, "http://localhost:11434");
    assert_int_equal(c->llm.n_backup_providers, 2);
    assert_string_equal(c->llm.backup_providers[0].provider, "anthropic");
    assert_string_equal(c->llm.backup_providers[0].model, "claude-3-5-haiku-latest");
    assert_string_equal(c->llm.backup_providers[0].api_key, "");
    assert_string_equal(c->llm.backup_providers[1].model, "gpt-4o-mini");
    assert_false(c->queue.enabled);
    assert_string_equal(c->logging.level, "info");
    assert_int_equal(c->n_routes, 12);
    hx_config_unref(c);
    hx_config_errors_free(&e);

    setenv("OLLAMA_ENDPOINT", "http://gpu:11434", 1);
    c = hx_config_load_file("config/hapax.yaml", &e);
    assert_non_null(c);
    assert_string_equal(c->llm.endpoint, "http://gpu:11434");
    hx_config_unref(c);
    unsetenv("OLLAMA_ENDPOINT");
}

static void test_load_file_errors(void **state)
{
    (void)state;
    hx_config_errors e = {0};
    assert_null(hx_config_load_file("/nonexistent/hapax.yaml", &e));
    assert_true(has_error(&e, "/nonexistent/hapax.yaml: cannot open"));
    hx_config_errors_free(&e);

    char path[] = "/tmp/hx_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("server:\n  port: 1\n", f);
    for (int i = 0; i < 5 * 1024 * 1024 / 16; i++)
        fputs("# padding.......\n", f);
    fclose(f);
    assert_null(hx_config_load_file(path, &e));
    assert_true(has_error(&e, "file is larger than 4 MiB"));
    hx_config_errors_free(&e);

    f = fopen(path, "w");
    fputs("server:\n  port: x\n", f);
    fclose(f);
    assert_null(hx_config_load_file(path, &e));
    char want[128];
    snprintf(want, sizeof want, "%s:2:9: server.port: expected an integer", path);
    assert_true(has_error(&e, want));
    hx_config_errors_free(&e);
    unlink(path);
}

/* ---- hardening (issue 9) ---- */

/* Deep nesting is rejected at the 65th level with a position, in linear
 * time: 100k levels took 23 s before the depth pass. */
static void test_deep_nesting_rejected_fast(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *yaml = malloc(2 * depth + 16);
    assert_non_null(yaml);
    size_t n = (size_t)sprintf(yaml, "server: ");
    memset(yaml + n, '[', depth);
    memset(yaml + n + depth, ']', depth);
    strcpy(yaml + n + 2 * depth, "\n");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* The top-level mapping is level 1: the 64th "[" is level 65. */
    load_bad(yaml, "test.yaml:1:72: nesting deeper than 64 levels");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs < 3.0); /* generous: milliseconds in practice */
    free(yaml);

    /* Block style too; 64 levels are still fine as far as depth goes. */
    char block[16384];
    n = (size_t)sprintf(block, "llm:\n  options:\n");
    for (int i = 0; i < 70; i++)
        n += (size_t)sprintf(block + n, "%*sk%d:\n", 4 + 2 * i, "", i);
    sprintf(block + n, "%*sv: 1\n", 4 + 2 * 70, "");
    load_bad(block, "nesting deeper than 64 levels");
    load_bad("server: [[[[[[[[[[]]]]]]]]]]\n", "server: expected a mapping");
}

static void test_load_file_fifo_does_not_block(void **state)
{
    (void)state;
    char path[] = "/tmp/hx_test_fifo_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    hx_config_errors e = {0};
    alarm(10); /* a blocking open would hang the suite: fail it instead */
    assert_null(hx_config_load_file(path, &e));
    alarm(0);
    assert_true(has_error(&e, "not a regular file"));
    hx_config_errors_free(&e);
    unlink(path);
}

static void test_print_redacts_urls(void **state)
{
    (void)state;
    hx_config *c = load_ok(
        "llm:\n"
        "  endpoint: https://bob:hunter2@api.example.com/v1?key=AIzaSECRET1&alt=sse#frag\n"
        "  options: {api_key: optsecret, note: \"http://x/?token=TOK2&sig=SIG3&a=1\"}\n"
        "  backup_providers:\n"
        "    - provider: openai\n"
        "      model: m\n"
        "      endpoint: \"http://TOKENONLY4@h:1/p?access_token=AT5&Signature=S6&api_key=K7&x=keep\"\n"
        "    - provider: openai\n"
        "      model: m2\n"
        "      name: second\n"
        "      endpoint: \"https://u:raw/SLASH8@h2/v1\"\n");
    char *out = print_to_string(c);
    static const char *const secrets[] = {"hunter2", "AIzaSECRET1", "optsecret", "TOK2", "SIG3",
                                          "TOKENONLY4", "AT5", "S6", "K7", "SLASH8"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (strstr(out, secrets[i]) != NULL)
            fail_msg("--print-config shows %s:\n%s", secrets[i], out);
    assert_non_null(strstr(out, "\"https://bob:[redacted]@api.example.com/v1?key=[redacted]&alt=sse#frag\""));
    assert_non_null(strstr(out, "\"http://[redacted]@h:1/p?access_token=[redacted]&Signature=[redacted]"
                                "&api_key=[redacted]&x=keep\""));
    assert_non_null(strstr(out, "\"http://x/?token=[redacted]&sig=[redacted]&a=1\""));
    assert_non_null(strstr(out, "\"https://u:[redacted]@h2/v1\""));
    assert_non_null(strstr(out, "    \"api_key\": \"[redacted]\"\n"));
    /* Nothing else changes: the output still loads. */
    hx_config *again = load_ok(out);
    hx_config_unref(again);
    free(out);
    hx_config_unref(c);
}

/* ---- allocation failures ---- */

static const char *const oom_yaml =
    "server:\n"
    "  port: ${HX_OOM_PORT:-8081}\n"
    "  middleware: [request_id, logging]\n"
    "llm:\n"
    "  options: {temperature: 0.5, stop: x}\n"
    "  backup_providers:\n"
    "    - {provider: openai, model: gpt-4o-mini, api_key: \"${HX_OOM_KEY}\"}\n"
    "routes:\n"
    "  - {path: /a, handler: chat}\n"
    "  - {path: /b, handler: health, headers: {X-A: b}}\n";

static void run_oom(const char *yaml, bool want_ok)
{
    hx_config_errors e = {0};
    unsigned long before = hx_alloc_count();
    hx_config *c = hx_config_load_string(yaml, strlen(yaml), "oom.yaml", &e);
    unsigned long total = hx_alloc_count() - before;
    assert_true(want_ok ? c != NULL : c == NULL);
    hx_config_unref(c);
    hx_config_errors_free(&e);
    for (int sticky = 0; sticky <= 1; sticky++) {
        for (unsigned long n = 1; n <= total + 1; n++) {
            e = (hx_config_errors){0};
            hx_alloc_fail_at(n, sticky);
            c = hx_config_load_string(yaml, strlen(yaml), "oom.yaml", &e);
            hx_alloc_fail_at(0, 0);
            if (c != NULL) {
                assert_true(want_ok);
                assert_int_equal(c->server.port, 8081);
                assert_int_equal(e.n, 0);
            }
            hx_config_unref(c);
            hx_config_errors_free(&e);
        }
    }
    for (unsigned long n = 1; n <= 400; n++) {
        hx_alloc_fail_at(n, 1);
        c = hx_config_default();
        hx_alloc_fail_at(0, 0);
        hx_config_unref(c);
    }
}

static void test_allocation_failures(void **state)
{
    (void)state;
    run_oom(oom_yaml, true);
    run_oom("server:\n  port: -1\n  bogus: 2\nllm: {model: ''}\n", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_values),
        cmocka_unit_test(test_deep_nesting_rejected_fast),
        cmocka_unit_test(test_load_file_fifo_does_not_block),
        cmocka_unit_test(test_print_redacts_urls),
        cmocka_unit_test(test_ref_unref),
        cmocka_unit_test(test_load_full_yaml),
        cmocka_unit_test(test_invalid_port),
        cmocka_unit_test(test_invalid_log_level_and_format),
        cmocka_unit_test(test_empty_provider_and_model),
        cmocka_unit_test(test_responses_keys),
        cmocka_unit_test(test_empty_route_path),
        cmocka_unit_test(test_env_port),
        cmocka_unit_test(test_env_unset_keeps_default),
        cmocka_unit_test(test_env_defaults_and_reload),
        cmocka_unit_test(test_env_everywhere),
        cmocka_unit_test(test_env_names_logged_not_values),
        cmocka_unit_test(test_env_not_in_keys_or_comments),
        cmocka_unit_test(test_env_unterminated_has_position),
        cmocka_unit_test(test_unknown_key_with_position),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_lenient_scalar_forms),
        cmocka_unit_test(test_merge_replace_values),
        cmocka_unit_test(test_middleware_names),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_empty_and_malformed_documents),
        cmocka_unit_test(test_not_supported_yet),
        cmocka_unit_test(test_route_health_check),
        cmocka_unit_test(test_limits_and_aliases),
        cmocka_unit_test(test_cors_wildcard_with_credentials),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_http2),
        cmocka_unit_test(test_backups_and_auth_keys),
        cmocka_unit_test(test_cors_expose_patterns_refused),
        cmocka_unit_test(test_http3_validation),
        cmocka_unit_test(test_validate_built_config_has_no_position),
        cmocka_unit_test(test_print_redacts_and_round_trips),
        cmocka_unit_test(test_print_defaults_round_trip),
        cmocka_unit_test(test_print_write_error),
        cmocka_unit_test(test_example_config_loads),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
