/* Model routing: names on the primary, Ollama's implied :latest tag,
 * wildcard aliases, llm.model_map and its validation, the sample of
 * served names for a 404. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cfg_load.h"
#include "config/config.h"
#include "config/model_names.h"
#include "provider/provider.h"

/* "idx:sent,idx:sent" for the chain of model. */
static void expect_route(const hx_providers *ps, const char *model, const char *want)
{
    int idx[8];
    const char *send[8];
    size_t n = hx_providers_chain(ps, model, idx, send, 8);
    char got[256] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d:%s", i ? "," : "", idx[i], send[i]);
    if (strcmp(got, want) != 0)
        fail_msg("route for \"%s\": got [%s], want [%s]", model ? model : "(null)", got, want);
    int one;
    assert_int_equal(hx_providers_chain(ps, model, &one, NULL, 1), n > 0); /* send may be NULL */
}

static void test_model_names(void **state)
{
    (void)state;
    assert_true(hx_model_same("llama3.2", "llama3.2", false));
    assert_false(hx_model_same("llama3.2", "llama3.2:latest", false)); /* only Ollama implies the tag */
    assert_true(hx_model_same("llama3.2", "llama3.2:latest", true));
    assert_true(hx_model_same("llama3.2:latest", "llama3.2", true));
    assert_false(hx_model_same("llama3.2", "llama3.2:1b", true)); /* no other tag is implied */
    assert_false(hx_model_same("llama3.2:1b", "llama3.2", true));
    assert_false(hx_model_same(":latest", "", true));
    assert_false(hx_model_same("claude-*", "claude-*", false)); /* a wildcard is no name */
    assert_true(hx_model_is_wildcard("gpt-4o*"));
    assert_true(hx_model_is_wildcard("*"));
    assert_false(hx_model_is_wildcard("gpt-4o"));
    assert_false(hx_model_is_wildcard(""));
    assert_int_equal(hx_model_wildcard_match("claude-*", "claude-3-opus"), 8);
    assert_int_equal(hx_model_wildcard_match("gpt-4o*", "gpt-4o"), 7);
    assert_int_equal(hx_model_wildcard_match("gpt-4o*", "gpt-4"), 0);
    assert_int_equal(hx_model_wildcard_match("*", "anything"), 1);
    assert_int_equal(hx_model_wildcard_match("gpt-4o", "gpt-4o"), 0);
}

static const char ROUTES_YAML[] = "llm:\n"
                                  "  name: local\n"
                                  "  provider: ollama\n"
                                  "  model: llama3.2\n"
                                  "  aliases: [small, 'qwen2.5:latest']\n"
                                  "  model_map:\n"
                                  "    gpt-4o-mini: llama3.2\n"
                                  "    gpt-3.5-turbo: small\n"
                                  "    my-sonnet: claude-3-7-sonnet-latest\n"
                                  "  backup_providers:\n"
                                  "    - provider: anthropic\n"
                                  "      model: claude-3-5-haiku-latest\n"
                                  "      api_key: sk-ant\n"
                                  "      aliases: ['claude-*']\n"
                                  "    - provider: openai\n"
                                  "      model: gpt-4o\n"
                                  "      api_key: sk-oai\n"
                                  "      aliases: ['gpt-*', haiku-too]\n"
                                  "    - name: router\n"
                                  "      provider: openai\n"
                                  "      endpoint: http://router:4000/v1\n"
                                  "      model: auto\n"
                                  "      aliases: ['gpt-4o*', '*']\n";

static void test_routes(void **state)
{
    (void)state;
    hx_config *c = load_cfg(ROUTES_YAML);
    hx_providers ps;
    char err[128] = "";
    assert_int_equal(hx_providers_build(c, &ps, false, err, sizeof err), 0);
    assert_int_equal(ps.n, 4);
    assert_string_equal(ps.items[0].name, "local"); /* the primary's own name */
    expect_route(&ps, "default", "0:llama3.2,1:claude-3-5-haiku-latest,2:gpt-4o,3:auto");
    /* exact: the primary's model, name and aliases */
    expect_route(&ps, "llama3.2", "0:llama3.2");
    expect_route(&ps, "local", "0:llama3.2");
    expect_route(&ps, "small", "0:llama3.2");
    /* Ollama: :latest is implied both ways, no other tag */
    expect_route(&ps, "llama3.2:latest", "0:llama3.2");
    expect_route(&ps, "qwen2.5", "0:llama3.2");
    expect_route(&ps, "qwen2.5:latest", "0:llama3.2");
    expect_route(&ps, "llama3.2:1b", "3:llama3.2:1b"); /* only the catch-all takes it */
    /* an exact name wins over every wildcard */
    expect_route(&ps, "claude-3-5-haiku-latest", "1:claude-3-5-haiku-latest");
    expect_route(&ps, "gpt-4o", "2:gpt-4o");
    /* wildcards send the name asked; longest prefix first, then chain order */
    expect_route(&ps, "claude-3-opus-20240229", "1:claude-3-opus-20240229,3:claude-3-opus-20240229");
    expect_route(&ps, "gpt-4o-2024-08-06", "3:gpt-4o-2024-08-06,2:gpt-4o-2024-08-06");
    expect_route(&ps, "gpt-4.1", "2:gpt-4.1,3:gpt-4.1");
    expect_route(&ps, "mistral", "3:mistral");
    /* the model map: exact target, alias target, wildcard target */
    expect_route(&ps, "gpt-4o-mini", "0:llama3.2");
    expect_route(&ps, "gpt-3.5-turbo", "0:llama3.2");
    expect_route(&ps, "my-sonnet", "1:claude-3-7-sonnet-latest,3:claude-3-7-sonnet-latest");
    hx_providers_free(&ps);
    hx_config_unref(c);
}

static void test_routes_unknown_and_sample(void **state)
{
    (void)state;
    hx_config *c = load_cfg("llm:\n"
                            "  provider: ollama\n"
                            "  model: llama3.2\n"
                            "  model_map: {gpt-4o-mini: llama3.2}\n"
                            "  backup_providers:\n"
                            "    - {provider: anthropic, model: claude-3-5-haiku-latest, api_key: k,\n"
                            "       aliases: ['claude-*']}\n");
    hx_providers ps;
    char err[128] = "", some[256];
    assert_int_equal(hx_providers_build(c, &ps, false, err, sizeof err), 0);
    expect_route(&ps, "gpt-4o", "");
    expect_route(&ps, "Claude-3", ""); /* names are case-sensitive */
    expect_route(&ps, "llama3.2:1b", "");
    hx_providers_sample(&ps, some, sizeof some);
    assert_string_equal(some, "llama3.2, claude-3-5-haiku-latest, claude-*, gpt-4o-mini");
    /* a small buffer cuts at a name and says there is more */
    hx_providers_sample(&ps, some, 30);
    assert_string_equal(some, "llama3.2, ...");
    hx_providers_sample(&ps, some, 6);
    assert_string_equal(some, "...");
    hx_providers_free(&ps);
    hx_config_unref(c);
}

static void test_sample_bounded(void **state)
{
    (void)state;
    hx_config *c = load_cfg("llm:\n"
                            "  provider: ollama\n"
                            "  model: m1\n"
                            "  aliases: [m1, m2, m3, m4, m5, m6, m7]\n");
    hx_providers ps;
    char err[128] = "", some[256];
    assert_int_equal(hx_providers_build(c, &ps, false, err, sizeof err), 0);
    hx_providers_sample(&ps, some, sizeof some);
    assert_string_equal(some, "m1, m2, m3, m4, m5, ..."); /* m1 once, five names */
    hx_providers_free(&ps);
    hx_config_unref(c);
}

static void test_model_map_validation(void **state)
{
    (void)state;
    const char *head = "llm:\n  provider: ollama\n  model: llama3.2\n"
                       "  backup_providers:\n    - {provider: anthropic, model: claude-3-5-haiku-latest, "
                       "api_key: k, aliases: ['claude-*']}\n";
    char y[1024];
    snprintf(y, sizeof y, "%s  model_map: {gpt-4o-mini: mistral}\n", head);
    load_bad(y, "test.yaml:6:28: llm.model_map.gpt-4o-mini: maps to \"mistral\", which no provider serves");
    snprintf(y, sizeof y, "%s  model_map: {a: b, b: llama3.2}\n", head);
    load_bad(y, "llm.model_map.a: maps to \"b\", which is mapped too");
    snprintf(y, sizeof y, "%s  model_map: {a: a}\n", head);
    load_bad(y, "llm.model_map.a: maps to \"a\", which is mapped too"); /* a cycle of one */
    snprintf(y, sizeof y, "%s  model_map: {llama3.2:latest: claude-3-opus}\n", head);
    load_bad(y, "\"llama3.2:latest\" is served by provider ollama already");
    snprintf(y, sizeof y, "%s  model_map: {anthropic: llama3.2}\n", head);
    load_bad(y, "\"anthropic\" is served by provider anthropic already");
    snprintf(y, sizeof y, "%s  model_map: {default: llama3.2}\n", head);
    load_bad(y, "\"default\" cannot be mapped");
    snprintf(y, sizeof y, "%s  model_map: {x: ''}\n", head);
    load_bad(y, "llm.model_map.x: empty target model");
    /* a wildcard target and an Ollama tag target are served */
    snprintf(y, sizeof y, "%s  model_map: {gpt-4o: claude-3-opus, gpt-4o-mini: 'llama3.2:latest'}\n", head);
    hx_config_unref(load_cfg(y));
    /* names on the primary: aliases and a name unique across providers */
    load_bad("llm:\n  name: main\n  aliases: ['']\n", "llm.aliases[0]: empty alias");
    load_bad("llm:\n  name: main\n  backup_providers:\n    - {name: main, provider: openai, model: m}\n",
             "llm.backup_providers[0].name: duplicate provider name \"main\" (also the primary's, llm.name)");
    load_bad("llm:\n  name: openai\n  backup_providers:\n    - {provider: openai, model: m}\n",
             "duplicate provider name \"openai\"");
    load_bad("llm:\n  provider: ollama\n  backup_providers:\n    - {name: ollama, provider: openai, model: m}\n",
             "llm.backup_providers[0].name: duplicate provider name \"ollama\"");
    /* two providers of one type, neither named: the backup becomes "openai-2" (test_openai) */
    hx_config_unref(load_cfg("llm:\n  provider: openai\n  model: a\n  backup_providers:\n"
                             "    - {provider: openai, model: b}\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_names),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_routes_unknown_and_sample),
        cmocka_unit_test(test_sample_bounded),
        cmocka_unit_test(test_model_map_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
