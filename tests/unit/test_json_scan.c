/* The object-free JSON walk (util/json.c) and the OpenAI chat scan built on
 * it (gateway/openai_in.c): whatever the scan accepts, the full parse must
 * accept with the same routing facts; whatever is unusual, the scan must
 * leave to the full parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gateway/inbound.h"
#include "util/json.h"

static void test_members_and_elements(void **state)
{
    (void)state;
    const char *s = " { \"a\" : 1 , \"b\\u0041\":{\"x\":[1,2]}, \"c\":[ ] ,\"d\":\"s,}\" } ";
    size_t pos = 0;
    hx_json_member m;
    assert_int_equal(hx_json_next_member(s, strlen(s), &pos, &m), 1);
    assert_int_equal(m.klen, 1);
    assert_memory_equal(m.key, "a", 1);
    assert_false(m.key_escaped);
    assert_int_equal(m.vlen, 1);
    assert_int_equal(hx_json_next_member(s, strlen(s), &pos, &m), 1);
    assert_true(m.key_escaped);
    assert_int_equal(m.vlen, strlen("{\"x\":[1,2]}"));
    assert_int_equal(hx_json_next_member(s, strlen(s), &pos, &m), 1);
    const char *arr = m.val;
    size_t alen = m.vlen, apos = 0, elen;
    const char *e;
    assert_int_equal(hx_json_next_element(arr, alen, &apos, &e, &elen), 0); /* [ ] is empty */
    assert_int_equal(hx_json_next_member(s, strlen(s), &pos, &m), 1);
    assert_int_equal(m.vlen, strlen("\"s,}\""));
    assert_int_equal(hx_json_next_member(s, strlen(s), &pos, &m), 0);

    const char *a = "[1, {\"k\":[true]} ,\"x\"]";
    apos = 0;
    int n = 0;
    while (hx_json_next_element(a, strlen(a), &apos, &e, &elen) == 1)
        n++;
    assert_int_equal(n, 3);
    pos = 0;
    assert_int_equal(hx_json_next_member("[1]", 3, &pos, &m), -1); /* not an object */
    pos = 0;
    assert_int_equal(hx_json_next_member("{}", 2, &pos, &m), 0);
}

/* The full path the handler takes when the scan declines. */
static int full_parse(const char *body, hx_in_info *info)
{
    json_object *o = hx_json_parse(body, strlen(body));
    if (o == NULL)
        return -1;
    json_object *canon = NULL;
    char err[256];
    int rc = hx_in_openai_chat(o, &canon, info, err, sizeof err);
    json_object_put(o);
    json_object_put(canon);
    return rc;
}

static char *replaced(const char *s)
{
    static char out[256];
    hx_buf b;
    hx_buf_init(&b, 1024);
    int rc = hx_json_replace_member(s, strlen(s), "model", "\"m2\"", 4, &b);
    snprintf(out, sizeof out, "%s", rc == 0 ? (b.data ? b.data : "") : "(refused)");
    hx_buf_free(&b);
    return out;
}

/* The model of a relayed body is replaced at text level: everything else
 * byte for byte; ambiguous bodies are refused (then rebuilt). */
static void test_replace_member(void **state)
{
    (void)state;
    assert_string_equal(replaced("{\"model\":\"a\",\"t\":1.50}"), "{\"model\":\"m2\",\"t\":1.50}");
    assert_string_equal(replaced("{ \"x\":{\"model\":1}, \"model\" : \"a\" }"),
                        "{ \"x\":{\"model\":1}, \"model\" : \"m2\" }");
    assert_string_equal(replaced("{\"t\":1e5}"), "{\"model\":\"m2\",\"t\":1e5}");
    assert_string_equal(replaced(" { } "), " {\"model\":\"m2\" } ");
    assert_string_equal(replaced("{\"model\":\"a\",\"model\":\"b\"}"), "(refused)");
    assert_string_equal(replaced("{\"mod\\u0065l\":\"a\"}"), "(refused)");
    assert_string_equal(replaced("[1]"), "(refused)");
}

static void test_scan_agrees_with_the_parse(void **state)
{
    (void)state;
    static const char *const accepted[] = {
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"y\"}]}],\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
        "{\"model\":null,\"stream\":null,\"messages\":[{\"content\":\"a\",\"role\":\"developer\"}],\"temperature\":0.70}",
        "{\"messages\":[{\"role\":\"tool\",\"content\":\"r\",\"tool_call_id\":\"c\"}],\"stream\":false,\"stream_options\":{\"include_usage\":false}}",
        /* duplicates: the last one counts, as in json-c */
        "{\"model\":\"a\",\"model\":\"b\",\"messages\":[{\"role\":\"user\",\"role\":\"assistant\"}]}",
        "{\"stream_options\":7,\"messages\":[{\"role\":\"user\"}]}",
    };
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        hx_in_info a = {0}, b = {0};
        assert_int_equal(hx_in_openai_chat_scan(accepted[i], strlen(accepted[i]), &a), 1);
        assert_int_equal(full_parse(accepted[i], &b), 0);
        assert_string_equal(a.model, b.model);
        assert_int_equal(a.stream, b.stream);
        assert_int_equal(a.include_usage, b.include_usage);
        assert_ptr_equal(a.render, b.render);
    }
}

static void test_scan_leaves_the_unusual_to_the_parse(void **state)
{
    (void)state;
    static const char *const declined[] = {
        "",
        "[]",
        "{\"messages\":[]}",
        "{\"messages\":[{\"role\":\"wizard\"}]}",
        "{\"messages\":[{\"content\":\"no role\"}]}",
        "{\"messages\":[\"text\"]}",
        "{\"messages\":[{\"role\":\"user\"}],\"model\":42}",
        "{\"messages\":[{\"role\":\"user\"}],\"stream\":\"yes\"}",
        "{\"messages\":[{\"role\":\"user\"}],\"stream_options\":{\"include_usage\":1}}",
        "{\"mess\\u0061ges\":[{\"role\":\"user\"}]}",             /* escaped key */
        "{\"messages\":[{\"role\":\"us\\u0065r\"}]}",               /* escaped role */
        "{\"messages\":[{\"role\":\"user\"}],\"model\":\"a\\\"b\"}", /* escaped model */
        "{\"messages\":[{\"role\":\"user\"}],\"messages\":[]}",    /* last duplicate is empty */
        "{\"messages\":[{\"role\":\"user\"}]} x",                  /* trailing data */
        "{\"messages\":[{\"role\":\"user\"}],}",                   /* not JSON */
    };
    for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++) {
        hx_in_info a = {0};
        assert_int_equal(hx_in_openai_chat_scan(declined[i], strlen(declined[i]), &a), 0);
    }
    hx_in_info a = {0};
    assert_int_equal(hx_in_openai_chat_scan(NULL, 0, &a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_and_elements),
        cmocka_unit_test(test_replace_member),
        cmocka_unit_test(test_scan_agrees_with_the_parse),
        cmocka_unit_test(test_scan_leaves_the_unusual_to_the_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
