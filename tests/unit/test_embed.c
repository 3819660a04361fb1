/* Embeddings and count_tokens pieces without a server: the inbound check
 * (gateway/embeddings_in.c), Ollama's /api/embed translation both ways
 * (provider/ollama_embed.c) and the local token estimate
 * (provider/count_estimate.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "gateway/inbound.h"
#include "provider/adapter.h"
#include "provider/provider.h"

static hx_provider oll(void)
{
    hx_provider p;
    memset(&p, 0, sizeof p);
    p.name = (char *)"local";
    p.ad = &hx_adapter_ollama;
    p.model = (char *)"nomic-embed-text";
    p.api_key = (char *)"";
    p.base_url = (char *)"http://localhost:11434";
    p.usable = true;
    return p;
}

static const hx_translated *tr(void) { return hx_adapter_ollama.translated[HX_API_EMBEDDINGS]; }

/* Builds the /api/embed request for a client body; returns rc. */
static int build(const char *client, hx_up_request *req, char *err, size_t errlen)
{
    hx_provider p = oll();
    json_object *body = json_tokener_parse(client);
    assert_non_null(body);
    hx_up_request_init(req);
    int rc = tr()->build(&p, body, req, err, errlen);
    json_object_put(body);
    return rc;
}

static void test_build_maps_members(void **state)
{
    (void)state;
    hx_up_request req;
    char err[256] = "";
    assert_int_equal(build("{\"model\":\"emb\",\"input\":[\"a\",\"b\"],\"dimensions\":256,\"encoding_format\":\"base64\","
                           "\"user\":\"u\",\"truncate\":false,\"options\":{\"num_ctx\":512},\"keep_alive\":\"5m\"}",
                           &req, err, sizeof err),
                     0);
    assert_string_equal(req.url, "http://localhost:11434/api/embed");
    assert_string_equal(req.method, "POST");
    assert_string_equal(hx_headers_get(&req.headers, "content-type"), "application/json");
    json_object *b = json_tokener_parse(req.body.data);
    assert_non_null(b);
    json_object *want = json_tokener_parse("{\"model\":\"nomic-embed-text\",\"input\":[\"a\",\"b\"],\"dimensions\":256,"
                                           "\"truncate\":false,\"options\":{\"num_ctx\":512},\"keep_alive\":\"5m\"}");
    assert_true(json_object_equal(b, want));
    json_object_put(b);
    json_object_put(want);
    hx_up_request_free(&req);
}

static void test_build_refuses(void **state)
{
    (void)state;
    const struct {
        const char *body, *needle;
    } cases[] = {
        {"{\"input\":[1,2,3]}", "input: token ids"},
        {"{\"input\":[[1],[2]]}", "input: token ids"},
        {"{\"input\":\"x\",\"service_tier\":\"flex\"}", "service_tier"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hx_up_request req;
        char err[256] = "";
        assert_int_equal(build(cases[i].body, &req, err, sizeof err), -1);
        if (strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].needle);
        hx_up_request_free(&req);
    }
}

/* Converts an Ollama answer for a client body; returns rc, out filled. */
static int convert(const char *client, const char *answer, hx_buf *out, hx_relay *rl)
{
    hx_provider p = oll();
    json_object *body = json_tokener_parse(client);
    assert_non_null(body);
    hx_buf_init(out, 1 << 20);
    memset(rl, 0, sizeof *rl);
    int rc = tr()->convert(&p, body, answer, strlen(answer), out, rl);
    json_object_put(body);
    return rc;
}

static void test_convert_float(void **state)
{
    (void)state;
    hx_buf out;
    hx_relay rl;
    assert_int_equal(convert("{\"input\":[\"a\",\"b\"]}",
                             "{\"model\":\"nomic-embed-text\",\"embeddings\":[[0.10,-2],[3.5e-1,0]],"
                             "\"prompt_eval_count\":7}",
                             &out, &rl),
                     0);
    /* the numbers keep the upstream's text */
    assert_string_equal(out.data, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":"
                                  "[0.10,-2]},{\"object\":\"embedding\",\"index\":1,\"embedding\":[3.5e-1,0]}],"
                                  "\"model\":\"nomic-embed-text\",\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7}}");
    assert_true(rl.usage_seen);
    assert_int_equal(rl.prompt_tokens, 7);
    assert_int_equal(rl.completion_tokens, 0);
    hx_buf_free(&out);
}

static void test_convert_base64(void **state)
{
    (void)state;
    hx_buf out;
    hx_relay rl;
    /* 1.0f = 00 00 80 3f, -2.0f = 00 00 00 c0, 0.5f = 00 00 00 3f, 0 = 00 00 00 00 (little-endian) */
    assert_int_equal(convert("{\"input\":\"a\",\"encoding_format\":\"base64\"}",
                             "{\"embeddings\":[[1.0,-2,0.5,0]]}", &out, &rl),
                     0);
    assert_non_null(strstr(out.data, "\"embedding\":\"AACAPwAAAMAAAAA/AAAAAA==\""));
    assert_non_null(strstr(out.data, "\"model\":\"nomic-embed-text\"")); /* no model in the answer */
    hx_buf_free(&out);
    assert_int_equal(convert("{\"input\":\"a\",\"encoding_format\":\"base64\"}", "{\"embeddings\":[[1.0]]}", &out,
                             &rl),
                     0);
    assert_non_null(strstr(out.data, "\"embedding\":\"AACAPw==\""));
    hx_buf_free(&out);
}

static void test_convert_malformed(void **state)
{
    (void)state;
    const char *answers[] = {
        "not json",
        "{\"embedding\":[1]}",                /* the old /api/embeddings shape */
        "{\"embeddings\":[[1],[2]]}",         /* two vectors for one input */
        "{\"embeddings\":[[1,\"x\"]]}",       /* not numbers */
        "{\"embeddings\":[{\"a\":1}]}",
    };
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        hx_buf out;
        hx_relay rl;
        assert_int_equal(convert("{\"input\":\"a\"}", answers[i], &out, &rl), -1);
        assert_true(rl.err[0] != '\0');
        hx_buf_free(&out);
    }
}

static int in_embeddings(const char *text, char *err, size_t errlen)
{
    json_object *body = json_tokener_parse(text), *canon = NULL;
    assert_non_null(body);
    hx_in_info info = {0};
    int rc = hx_in_embeddings(body, &canon, &info, err, errlen);
    if (rc == 0) {
        assert_ptr_equal(canon, body);
        assert_false(info.stream);
    }
    json_object_put(canon);
    json_object_put(body);
    return rc;
}

static void test_inbound_embeddings(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(in_embeddings("{\"input\":\"x\",\"model\":\"m\"}", err, sizeof err), 0);
    assert_int_equal(in_embeddings("{\"input\":\"x\"}", err, sizeof err), -1);
    assert_non_null(strstr(err, "model: is required"));
    assert_int_equal(in_embeddings("{\"input\":[1,2],\"model\":\"m\",\"encoding_format\":\"float\"}", err, sizeof err),
                     0);
    assert_int_equal(in_embeddings("{\"input\":[[1],[2,3]],\"model\":\"m\",\"dimensions\":3,\"user\":\"u\"}", err,
                                   sizeof err),
                     0);
    const struct {
        const char *body, *needle;
    } bad[] = {
        {"{\"model\":\"m\"}", "input: is required"},
        {"{\"model\":\"m\",\"input\":[[1],\"a\"]}", "input[1]"},
        {"{\"model\":\"m\",\"input\":[1,[1]]}", "input[1]"},
        {"{\"model\":\"m\",\"input\":[2147483648]}", "input[0]"},
        {"{\"model\":\"m\",\"input\":\"x\",\"dimensions\":1.5}", "dimensions"},
        {"{\"input\":\"x\",\"model\":\"\"}", "model"},
        {"[1]", "JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(in_embeddings(bad[i].body, err, sizeof err), -1);
        if (strstr(err, bad[i].needle) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].needle);
    }
}

static int64_t estimate(const char *text)
{
    json_object *body = json_tokener_parse(text);
    assert_non_null(body);
    int64_t t = -1;
    assert_int_equal(hx_count_estimate_tokens(body, &t), 0);
    json_object_put(body);
    return t;
}

static void test_estimate(void **state)
{
    (void)state;
    assert_int_equal(estimate("{\"messages\":[]}"), 1);
    /* 8 characters / 4 + 4 for the message */
    assert_int_equal(estimate("{\"messages\":[{\"role\":\"user\",\"content\":\"abcdefgh\"}]}"), 6);
    /* system blocks, a text block, an image and a PDF at a fixed cost; type/id/signature do not count */
    assert_int_equal(estimate("{\"system\":[{\"type\":\"text\",\"text\":\"abcd\"}],\"messages\":[{\"role\":\"user\","
                              "\"content\":[{\"type\":\"text\",\"text\":\"abcd\"},{\"type\":\"image\",\"source\":{}},"
                              "{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"data\":\"AAAA\"}}]}]}"),
                     2 + 3200 + 4);
    /* a text document counts its text; tool_use input as JSON text */
    assert_int_equal(estimate("{\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\","
                              "\"name\":\"f\",\"input\":{\"a\":1}}]},{\"role\":\"user\",\"content\":[{\"type\":"
                              "\"document\",\"source\":{\"type\":\"text\",\"data\":\"abcdefgh\"}}]}]}"),
                     /* "f" + {"a":1} (7) + "abcdefgh" = 16 → 4; 2 messages */ 4 + 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_maps_members), cmocka_unit_test(test_build_refuses),
        cmocka_unit_test(test_convert_float),      cmocka_unit_test(test_convert_base64),
        cmocka_unit_test(test_convert_malformed),  cmocka_unit_test(test_inbound_embeddings),
        cmocka_unit_test(test_estimate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
