/* Which step a middleware name gives a route (middleware/middleware.c):
 * the section's `enabled` switches it on; an inherited global chain keeps
 * the queue in front of the LLM handlers only and leaves health and
 * metrics to themselves; a route's own list is applied as written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config/config.h"
#include "middleware/middleware.h"

static void test_lookup(void **state)
{
    (void)state;
    hx_config *c = hx_config_default();
    assert_non_null(c);
    const char *names[] = {"cors", "queue", "rate_limit", "auth"};
    for (size_t i = 0; i < 4; i++) /* all off by default */
        assert_null(hx_middleware_lookup(c, names[i], HX_HANDLER_FLAGS_chat, false));
    assert_null(hx_middleware_lookup(c, "request_id", HX_HANDLER_FLAGS_chat, false)); /* response-side: a flag */
    c->cors.enabled = c->queue.enabled = c->rate_limit.enabled = c->auth.enabled = true;

    assert_ptr_equal(hx_middleware_lookup(c, "cors", HX_HANDLER_FLAGS_health, false), hx_mw_cors);
    assert_ptr_equal(hx_middleware_lookup(c, "queue", HX_HANDLER_FLAGS_chat, false), hx_mw_queue);
    assert_ptr_equal(hx_middleware_lookup(c, "queue", HX_HANDLER_FLAGS_messages, false), hx_mw_queue);
    assert_ptr_equal(hx_middleware_lookup(c, "queue", HX_HANDLER_FLAGS_completion, false), hx_mw_queue);
    assert_null(hx_middleware_lookup(c, "queue", HX_HANDLER_FLAGS_models, false));
    assert_null(hx_middleware_lookup(c, "queue", HX_HANDLER_FLAGS_health, false));
    assert_ptr_equal(hx_middleware_lookup(c, "queue", HX_HANDLER_FLAGS_health, true), hx_mw_queue); /* as written */

    assert_ptr_equal(hx_middleware_lookup(c, "auth", HX_HANDLER_FLAGS_models, false), hx_mw_auth);
    assert_null(hx_middleware_lookup(c, "auth", HX_HANDLER_FLAGS_health, false));
    assert_null(hx_middleware_lookup(c, "auth", HX_HANDLER_FLAGS_provider_health, false));
    assert_null(hx_middleware_lookup(c, "auth", HX_HANDLER_FLAGS_metrics, false));
    assert_ptr_equal(hx_middleware_lookup(c, "auth", HX_HANDLER_FLAGS_metrics, true), hx_mw_auth);
    assert_null(hx_middleware_lookup(c, "rate_limit", HX_HANDLER_FLAGS_health, false));
    assert_ptr_equal(hx_middleware_lookup(c, "rate_limit", HX_HANDLER_FLAGS_chat, false), hx_mw_rate_limit);
    assert_ptr_equal(hx_middleware_lookup(c, "rate_limit", HX_HANDLER_FLAGS_health, true), hx_mw_rate_limit);
    hx_config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
