#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config/env.h"
#include "util/alloc.h"

/* A fake environment: NULL-terminated name/value pairs. */
static const char *const *fake_env;

static const char *fake_lookup(const char *name, void *ud)
{
    (void)ud;
    for (size_t i = 0; fake_env && fake_env[i]; i += 2)
        if (strcmp(fake_env[i], name) == 0)
            return fake_env[i + 1];
    return NULL;
}

static char noted[512];

static void note(const char *name, void *ud)
{
    (void)ud;
    strncat(noted, name, sizeof noted - strlen(noted) - 2);
    strcat(noted, ",");
}

static const hx_env env = {.lookup = fake_lookup, .note = note};

#define ENV(...)                                                          \
    do {                                                                  \
        static const char *const env_[] = {__VA_ARGS__, NULL, NULL};      \
        fake_env = env_;                                                  \
    } while (0)

/* Expands s and checks the result. */
static void ok(const char *s, const char *want)
{
    char *out = NULL;
    size_t len = 99;
    bool ref;
    hx_env_error err;
    if (hx_env_expand(s, strlen(s), &env, &out, &len, &ref, &err) != 0)
        fail_msg("\"%s\" failed: %s", s, err.msg);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    hx_free(out);
}

/* Expands s, expects an error containing `msg` at byte offset `off`. */
static void bad(const char *s, const char *msg, size_t off)
{
    char *out = (char *)"untouched";
    bool ref;
    hx_env_error err;
    assert_int_equal(hx_env_expand(s, strlen(s), &env, &out, NULL, &ref, &err), -1);
    assert_null(out);
    assert_false(err.nomem);
    if (strstr(err.msg, msg) == NULL)
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", s, err.msg, msg);
    assert_int_equal(err.offset, off);
}

static int reset(void **state)
{
    (void)state;
    fake_env = NULL;
    noted[0] = '\0';
    return 0;
}

static void test_expand_plain_variable(void **state)
{
    (void)state;
    ENV("OPENAI_API_KEY", "sk-123", "HOST", "api.openai.com");
    ok("${OPENAI_API_KEY}", "sk-123");
    ok("key=${OPENAI_API_KEY}.", "key=sk-123.");
    ok("no variables here", "no variables here");
    ok("", "");
}

static void test_expand_unset_is_empty(void **state)
{
    (void)state;
    ENV("A", "x");
    char *out;
    size_t len;
    bool ref = false;
    hx_env_error err;
    assert_int_equal(hx_env_expand("${MISSING_API_KEY}", 18, &env, &out, &len, &ref, &err), 0);
    assert_string_equal(out, "");
    assert_int_equal(len, 0);
    assert_true(ref);
    hx_free(out);
    assert_int_equal(hx_env_expand("plain", 5, &env, &out, &len, &ref, &err), 0);
    assert_false(ref);
    hx_free(out);
}

static void test_expand_default_when_unset_or_empty(void **state)
{
    (void)state;
    ENV("EMPTY", "", "SET", "value");
    ok("${PROVIDER:-anthropic}", "anthropic");
    ok("${MODEL:-claude-3}", "claude-3");
    ok("${API_KEY:-default-key}", "default-key");
    ok("${EMPTY:-fallback}", "fallback");
    ok("${SET:-fallback}", "value");
    ok("${EMPTY}", "");
    ok("${UNSET:-}", "");
    ok("${UNSET:-a:-b}", "a:-b");
}

static void test_expand_several_in_one_value(void **state)
{
    (void)state;
    ENV("API_HOST", "api.openai.com", "API_VERSION", "v1");
    ok("https://${API_HOST}/${API_VERSION}", "https://api.openai.com/v1");
    ok("${API_HOST}${API_VERSION}", "api.openai.comv1");
    assert_string_equal(noted, "API_HOST,API_VERSION,API_HOST,API_VERSION,");
}

static void test_expand_nested_variable_values(void **state)
{
    (void)state;
    ENV("API_HOST", "api.anthropic.com", "API_VERSION", "v1", "FULL_URL",
        "${API_HOST}/${API_VERSION}", "OUTER", "<${FULL_URL}>");
    ok("https://${FULL_URL}", "https://api.anthropic.com/v1");
    ok("${OUTER}", "<api.anthropic.com/v1>");
}

static void test_expand_default_containing_reference(void **state)
{
    (void)state;
    ENV("HOST", "example.com");
    ok("${URL:-https://${HOST}/v1}", "https://example.com/v1");
    ok("${URL:-${OTHER:-${HOST}}}", "example.com");
    ok("${URL:-{braces}}", "{braces}");
    ok("${URL:-a{b{c}}d}", "a{b{c}}d");
}

static void test_expand_dollar_escapes(void **state)
{
    (void)state;
    ENV("HOME", "/root");
    ok("$$", "$");
    ok("pa$$w0rd", "pa$w0rd");
    ok("$${HOME}", "${HOME}");
    ok("$HOME", "$HOME"); /* bare $NAME is not expanded */
    ok("$", "$");
    ok("cost: 5$", "cost: 5$");
    ok("$%", "$%");
    ok("a $ b", "a $ b");
    ok("$$$", "$$");
    ok("${UNSET:-$$}", "$");
}

static void test_expand_special_characters_kept(void **state)
{
    (void)state;
    ENV("KEY", "sk-ant-!@#$%^&*()_+=", "PW", "pa$$w0rd", "ODD", "x${y", "BRACE", "a}b{c",
        "LOOKS", "$HOME ${", "BAD", "${1A}");
    ok("${KEY}", "sk-ant-!@#$%^&*()_+=");
    ok("${PW}", "pa$$w0rd");
    ok("${ODD}", "x${y");
    ok("${BRACE}", "a}b{c");
    ok("${LOOKS}", "$HOME ${");
    ok("${BAD}", "${1A}");
}

static void test_expand_cycle_is_error(void **state)
{
    (void)state;
    ENV("A", "${B}", "B", "${A}");
    bad("x ${A}", "cycle in environment variables: A -> B -> A", 2);
}

static void test_expand_self_reference_is_error(void **state)
{
    (void)state;
    ENV("X", "a${X}");
    bad("${X}", "cycle in environment variables: X -> X", 0);
}

static void test_expand_depth_bound(void **state)
{
    (void)state;
    /* V0 -> V1 -> ... -> V10 is 11 levels: one too many. */
    ENV("V0", "${V1}", "V1", "${V2}", "V2", "${V3}", "V3", "${V4}", "V4", "${V5}", "V5", "${V6}",
        "V6", "${V7}", "V7", "${V8}", "V8", "${V9}", "V9", "${V10}", "V10", "end");
    bad("${V0}", "nested more than 10 levels", 0);
    ok("${V1}", "end"); /* exactly 10 levels is fine */
}

static void test_expand_unterminated_reports_offset(void **state)
{
    (void)state;
    bad("${VALID_KEY", "invalid syntax: unterminated ${", 0);
    bad("abc ${VALID_KEY", "invalid syntax: unterminated ${", 4);
    bad("${A:-${B}", "invalid syntax: unterminated ${", 0);
    bad("${A:-x ${B", "invalid syntax: unterminated ${", 0);
}

static void test_expand_invalid_names(void **state)
{
    (void)state;
    bad("${}", "invalid variable name", 0);
    bad("x${1A}", "invalid variable name", 1);
    bad("${A B}", "expected '}' or ':-'", 0);
    bad("${A-b}", "expected '}' or ':-'", 0);
    bad("${A:b}", "expected '}' or ':-'", 0);
    bad("${-}", "invalid variable name", 0);
    bad("${ok} ${:-x}", "invalid variable name", 6);
}

static void test_expand_names_are_case_sensitive(void **state)
{
    (void)state;
    ENV("API_KEY", "upper", "api_key", "lower");
    ok("${API_KEY}/${api_key}/${Api_Key:-none}", "upper/lower/none");
}

static void test_expand_getenv_default(void **state)
{
    (void)state;
    setenv("HX_TEST_ENV_VAR", "from-getenv", 1);
    char *out;
    bool ref;
    hx_env_error err;
    assert_int_equal(hx_env_expand("${HX_TEST_ENV_VAR}", 18, NULL, &out, NULL, &ref, &err), 0);
    assert_string_equal(out, "from-getenv");
    hx_free(out);
    unsetenv("HX_TEST_ENV_VAR");
}

static void test_expand_out_of_memory(void **state)
{
    (void)state;
    ENV("A", "value");
    for (unsigned long n = 1; n <= 4; n++) {
        char *out = NULL;
        bool ref;
        hx_env_error err;
        hx_alloc_fail_at(n, 1);
        int rc = hx_env_expand("x ${A} y", 8, &env, &out, NULL, &ref, &err);
        hx_alloc_fail_at(0, 0);
        if (rc == 0) {
            assert_string_equal(out, "x value y");
            hx_free(out);
        } else {
            assert_true(err.nomem);
            assert_null(out);
        }
    }
}

static void test_expand_needs_expand(void **state)
{
    (void)state;
    assert_true(hx_env_needs_expand("a$b", 3));
    assert_false(hx_env_needs_expand("abc", 3));
    assert_false(hx_env_needs_expand("ab$", 2)); /* length respected */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_expand_plain_variable, reset),
        cmocka_unit_test_setup(test_expand_unset_is_empty, reset),
        cmocka_unit_test_setup(test_expand_default_when_unset_or_empty, reset),
        cmocka_unit_test_setup(test_expand_several_in_one_value, reset),
        cmocka_unit_test_setup(test_expand_nested_variable_values, reset),
        cmocka_unit_test_setup(test_expand_default_containing_reference, reset),
        cmocka_unit_test_setup(test_expand_dollar_escapes, reset),
        cmocka_unit_test_setup(test_expand_special_characters_kept, reset),
        cmocka_unit_test_setup(test_expand_cycle_is_error, reset),
        cmocka_unit_test_setup(test_expand_self_reference_is_error, reset),
        cmocka_unit_test_setup(test_expand_depth_bound, reset),
        cmocka_unit_test_setup(test_expand_unterminated_reports_offset, reset),
        cmocka_unit_test_setup(test_expand_invalid_names, reset),
        cmocka_unit_test_setup(test_expand_names_are_case_sensitive, reset),
        cmocka_unit_test_setup(test_expand_getenv_default, reset),
        cmocka_unit_test_setup(test_expand_out_of_memory, reset),
        cmocka_unit_test_setup(test_expand_needs_expand, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
