#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <string.h>

#include "http/error.h"
#include "util/alloc.h"

static const char *field(json_object *err, const char *k)
{
    json_object *v;
    assert_true(json_object_object_get_ex(err, k, &v));
    return json_object_get_string(v);
}

static void test_envelope_shape(void **state)
{
    (void)state;
    hx_buf b;
    hx_buf_init(&b, 0);
    assert_int_equal(hx_err_render(&b, HX_ERR_BODY_TOO_LARGE, NULL, "req-1"), 0);
    assert_int_equal(b.data[b.len - 1], '\n');
    json_object *root = json_tokener_parse(b.data);
    assert_non_null(root);
    json_object *err;
    assert_true(json_object_object_get_ex(root, "error", &err));
    assert_string_equal(field(err, "type"), "invalid_request_error");
    assert_string_equal(field(err, "code"), "body_too_large");
    assert_string_equal(field(err, "request_id"), "req-1");
    assert_true(strlen(field(err, "message")) > 0);
    json_object_put(root);
    hx_buf_free(&b);
}

static void test_message_is_escaped(void **state)
{
    (void)state;
    hx_buf b;
    hx_buf_init(&b, 0);
    assert_int_equal(hx_err_render(&b, HX_ERR_INVALID_REQUEST, "bad \"field\"\n<x>", NULL), 0);
    json_object *root = json_tokener_parse(b.data);
    assert_non_null(root);
    json_object *err;
    assert_true(json_object_object_get_ex(root, "error", &err));
    assert_string_equal(field(err, "message"), "bad \"field\"\n<x>");
    assert_string_equal(field(err, "request_id"), "");
    json_object_put(root);
    hx_buf_free(&b);
}

static void test_table_complete(void **state)
{
    (void)state;
    for (int e = 0; e < HX_ERR__COUNT; e++) {
        const hx_err_info *i = hx_err_get((hx_err)e);
        assert_true(i->status >= 400 && i->status < 600);
        assert_non_null(i->type);
        assert_non_null(i->code);
        assert_non_null(i->message);
    }
    assert_int_equal(hx_err_get(HX_ERR_HEADERS_TOO_LARGE)->status, 431);
    assert_int_equal(hx_err_get(HX_ERR_REQUEST_TIMEOUT)->status, 408);
    assert_int_equal(hx_err_get(HX_ERR_METHOD_NOT_ALLOWED)->status, 405);
    assert_int_equal(hx_err_get((hx_err)999)->status, 500); /* out of range → internal */
    assert_int_equal(hx_err_get(HX_ERR_INSUFFICIENT_QUOTA)->status, 429);
    assert_string_equal(hx_err_get(HX_ERR_INSUFFICIENT_QUOTA)->code, "insufficient_quota");
    assert_string_equal(hx_err_get(HX_ERR_CONTEXT_LENGTH)->code, "context_length_exceeded");
    assert_string_equal(hx_err_get(HX_ERR_CONTENT_POLICY)->code, "content_policy_violation");
    assert_string_equal(hx_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(hx_http_reason(404), "Not Found");
}

static void test_render_out_of_memory(void **state)
{
    (void)state;
    hx_buf b;
    hx_buf_init(&b, 8); /* too small for any envelope */
    assert_int_equal(hx_err_render(&b, HX_ERR_NOT_FOUND, NULL, "x"), -1);
    hx_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_shape),
        cmocka_unit_test(test_message_is_escaped),
        cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_render_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
