/* The Responses API: the responses store (owner, count, bytes, age,
 * threads), which providers take a body as it is, the openai adapter's
 * native Responses hooks and the route's error dialect. */
#include "anth_test.h"

#include <pthread.h>

#include "config/config.h"
#include "gateway/responses.h"
#include "state/responses_store.h"

/* ---- store ------------------------------------------------------------------------- */

static int64_t fake_now;
static int64_t fake_clock(void) { return fake_now; }

typedef struct {
    int status;
    char response[256];
    char conv[512];
} got;

static void on_got(void *ud, int status, const hx_resp_entry *e)
{
    got *g = ud;
    g->status = status;
    g->response[0] = g->conv[0] = '\0';
    if (e) {
        snprintf(g->response, sizeof g->response, "%.*s", (int)e->response_len, e->response);
        snprintf(g->conv, sizeof g->conv, "%.*s", (int)e->conversation_len, e->conversation);
    }
}

static void on_done(void *ud, int status) { *(int *)ud = status; }

static int put(hx_resp_store *s, const char *id, const char *owner, const char *resp)
{
    hx_resp_entry e = {resp, strlen(resp), "[]", 2};
    int st = 99;
    assert_int_equal(s->vt->put(s, id, owner, &e, on_done, &st), 0);
    return st;
}

static int get(hx_resp_store *s, const char *id, const char *owner, got *g)
{
    g->status = 99;
    assert_int_equal(s->vt->get(s, id, owner, on_got, g), 0);
    return g->status;
}

static void test_store(void **state)
{
    (void)state;
    hx_resp_store_limits lim = {.max_stored = 3, .max_bytes = 1 << 20, .ttl_ms = 1000};
    hx_resp_store *s = hx_resp_store_memory_new(&lim);
    assert_non_null(s);
    hx_resp_store_memory_clock(s, fake_clock);
    fake_now = 5000;
    got g;
    assert_int_equal(put(s, "r1", "a", "{\"id\":\"r1\"}"), 0);
    assert_int_equal(get(s, "r1", "a", &g), 0);
    assert_string_equal(g.response, "{\"id\":\"r1\"}");
    assert_string_equal(g.conv, "[]");
    /* another key's response is not even there */
    assert_int_equal(get(s, "r1", "b", &g), 1);
    int st = 99;
    assert_int_equal(s->vt->del(s, "r1", "b", on_done, &st), 0);
    assert_int_equal(st, 1);
    assert_int_equal(get(s, "r1", "a", &g), 0);
    /* replaced, not duplicated */
    assert_int_equal(put(s, "r1", "a", "{\"v\":2}"), 0);
    size_t count, bytes;
    hx_resp_store_memory_usage(s, &count, &bytes);
    assert_int_equal(count, 1);
    assert_int_equal(get(s, "r1", "a", &g), 0);
    assert_string_equal(g.response, "{\"v\":2}");
    /* count bound: the oldest makes room */
    put(s, "r2", "a", "{}");
    put(s, "r3", "a", "{}");
    put(s, "r4", "a", "{}");
    hx_resp_store_memory_usage(s, &count, &bytes);
    assert_int_equal(count, 3);
    assert_int_equal(get(s, "r1", "a", &g), 1);
    assert_int_equal(get(s, "r4", "a", &g), 0);
    /* age bound */
    fake_now += 999;
    assert_int_equal(get(s, "r2", "a", &g), 0);
    fake_now += 1;
    assert_int_equal(get(s, "r2", "a", &g), 1);
    /* delete */
    st = 99;
    fake_now = 5000;
    put(s, "r5", "a", "{}");
    assert_int_equal(s->vt->del(s, "r5", "a", on_done, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(get(s, "r5", "a", &g), 1);
    s->vt->destroy(s);
}

static void test_store_bytes(void **state)
{
    (void)state;
    hx_resp_store_limits lim = {.max_stored = 100, .max_bytes = 700, .ttl_ms = 60000};
    hx_resp_store *s = hx_resp_store_memory_new(&lim);
    char big[500];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    got g;
    assert_int_equal(put(s, "a", "", "{}"), 0);
    assert_int_equal(put(s, "b", "", "{}"), 0);
    /* room is made from the oldest */
    assert_int_equal(put(s, "c", "", big), 0);
    size_t count, bytes;
    hx_resp_store_memory_usage(s, &count, &bytes);
    assert_true(bytes <= 700);
    assert_int_equal(get(s, "c", "", &g), 0);
    assert_int_equal(get(s, "a", "", &g), 1);
    /* an entry larger than the whole bound is not kept */
    char huge[800];
    memset(huge, 'y', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(put(s, "d", "", huge), -1);
    assert_int_equal(get(s, "d", "", &g), 1);
    /* tighter limits (a reload) apply at the next put */
    hx_resp_store_limits one = {.max_stored = 1, .max_bytes = 700, .ttl_ms = 60000};
    hx_resp_store_memory_limits(s, &one);
    assert_int_equal(put(s, "e", "", "{}"), 0);
    hx_resp_store_memory_usage(s, &count, &bytes);
    assert_int_equal(count, 1);
    s->vt->destroy(s);
}

/* Several workers at once: puts, gets and deletes of overlapping ids
 * with eviction going on; the bounds hold and nothing is lost or freed
 * twice (ASan). */
typedef struct {
    hx_resp_store *s;
    int seed;
} hammer_arg;

static void on_any(void *ud, int status, const hx_resp_entry *e)
{
    (void)status;
    if (e) /* what is found is whole */
        *(size_t *)ud += e->response_len == 2 && e->conversation_len == 2 ? 1 : 1000000;
}

static void *hammer(void *p)
{
    hammer_arg *a = p;
    size_t found = 0;
    for (int i = 0; i < 3000; i++) {
        char id[32];
        snprintf(id, sizeof id, "r%d", (i * 7 + a->seed) % 50);
        hx_resp_entry e = {"{}", 2, "[]", 2};
        if (i % 3 == 0)
            a->s->vt->put(a->s, id, "o", &e, NULL, NULL);
        else if (i % 3 == 1)
            a->s->vt->get(a->s, id, "o", on_any, &found);
        else if (i % 17 == 0)
            a->s->vt->del(a->s, id, "o", NULL, NULL);
    }
    return found < 1000000 ? p : NULL;
}

static void test_store_threads(void **state)
{
    (void)state;
    hx_resp_store_limits lim = {.max_stored = 20, .max_bytes = 1 << 20, .ttl_ms = 60000};
    hx_resp_store *s = hx_resp_store_memory_new(&lim);
    pthread_t t[4];
    hammer_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (hammer_arg){s, i};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_ptr_equal(rv, &a[i]);
    }
    size_t count, bytes;
    hx_resp_store_memory_usage(s, &count, &bytes);
    assert_true(count <= 20);
    s->vt->destroy(s);
}

/* A completed response is stored with the conversation it ends: the
 * stored prefix, this input, the assistant's turn. */
/* ---- which providers take the body as it is ------------------------------------------- */

static void test_responses_native_providers(void **state)
{
    (void)state;
    static const char yaml[] =
        "llm:\n  provider: openai\n  model: a\n  api_key: sk-test-1\n"
        "  backup_providers:\n"
        "    - {provider: openai, name: ob, model: b, api_key: sk-test-2, endpoint: \"http://127.0.0.1:1/v1\"}\n"
        "    - {provider: openai, name: oc, model: c, api_key: sk-test-3, endpoint: \"http://127.0.0.1:1/v1\", "
        "responses_api: native}\n"
        "    - {provider: openai, name: od, model: d, api_key: sk-test-4, responses_api: translate}\n"
        "    - {provider: anthropic, model: e, api_key: sk-test-5}\n";
    hx_config_errors e = {0};
    hx_config *cfg = hx_config_load_string(yaml, strlen(yaml), "t.yaml", &e);
    assert_non_null(cfg);
    hx_providers ps;
    char err[128];
    assert_int_equal(hx_providers_build(cfg, &ps, false, err, sizeof err), 0);
    assert_int_equal(ps.n, 5);
    assert_true(ps.items[0].responses_native);   /* auto: OpenAI itself */
    assert_false(ps.items[1].responses_native);  /* auto: another server may lack /responses */
    assert_true(ps.items[2].responses_native);   /* native */
    assert_false(ps.items[3].responses_native);  /* translate */
    assert_false(ps.items[4].responses_native);  /* not OpenAI */
    hx_providers_free(&ps);
    hx_config_unref(cfg);
    hx_config_errors_free(&e);
}

/* The openai adapter's native Responses hooks: events pass as they are,
 * the final one ends the stream with its usage; bodies are checked. */
static void test_native_hooks(void **state)
{
    (void)state;
    const hx_native *nv = hx_adapter_openai.native[HX_API_RESPONSES];
    assert_non_null(nv);
    assert_null(nv->stream_end);
    hx_relay rl = {0};
    const char *delta = "{\"type\":\"response.output_text.delta\",\"delta\":\"\\\"usage\\\":{\\\"input_tokens\\\":99\"}";
    assert_int_equal(nv->stream_event(&rl, "response.output_text.delta", delta, strlen(delta)), 0);
    assert_false(rl.done);
    assert_false(rl.usage_seen); /* text that looks like usage is not usage */
    const char *done = "{\"type\":\"response.completed\",\"response\":{\"max_output_tokens\":7,\"output\":[],"
                       "\"usage\":{\"input_tokens\":11,\"output_tokens\":3}}}";
    assert_int_equal(nv->stream_event(&rl, "response.completed", done, strlen(done)), 0);
    assert_true(rl.done);
    assert_true(rl.usage_seen);
    assert_int_equal(rl.prompt_tokens, 11);
    assert_int_equal(rl.completion_tokens, 3);
    assert_int_equal(nv->stream_event(&rl, "response.output_text.delta", delta, strlen(delta)), 1); /* after the end */
    hx_relay bad = {0};
    assert_int_equal(nv->stream_event(&bad, "response.output_text.delta", "{nope", 5), -1);
    assert_non_null(strstr(bad.err, "malformed"));
    hx_relay err = {0};
    const char *e = "{\"type\":\"error\",\"code\":\"server_error\",\"message\":\"x\"}";
    assert_int_equal(nv->stream_event(&err, "error", e, strlen(e)), 0); /* relayed: the client reads it */
    assert_true(err.done);
    hx_relay b = {0};
    const char *body = "{\"id\":\"resp_1\",\"object\":\"response\",\"output\":[],\"usage\":{\"input_tokens\":5,"
                       "\"output_tokens\":2}}";
    assert_int_equal(nv->body(&b, body, strlen(body)), 0);
    assert_int_equal(b.prompt_tokens, 5);
    assert_int_equal(b.completion_tokens, 2);
    assert_int_equal(nv->body(&b, "{\"id\":1}", 8), -1);
}

/* Errors of the route: OpenAI's envelope with the member as `param`. */
static void test_error_dialect(void **state)
{
    (void)state;
    hx_buf out;
    hx_buf_init(&out, 0);
    assert_int_equal(hx_resp_err_render(&out, HX_ERR_INVALID_REQUEST, "tools[0].type: web_search is built in", "rid"), 0);
    json_object *o = jparse(out.data);
    assert_string_equal(str_at(o, "error.param"), "tools[0].type");
    assert_string_equal(str_at(o, "error.message"), "tools[0].type: web_search is built in");
    assert_string_equal(str_at(o, "error.type"), "invalid_request_error");
    assert_string_equal(str_at(o, "error.code"), "invalid_request");
    assert_string_equal(str_at(o, "error.request_id"), "rid");
    json_object_put(o);
    hx_buf_reset(&out);
    assert_int_equal(hx_resp_err_render(&out, HX_ERR_UNAUTHORIZED, NULL, NULL), 0);
    o = jparse(out.data);
    assert_true(json_object_object_get_ex(at(o, "error"), "param", NULL));
    assert_null(at(o, "error.param"));
    assert_string_equal(str_at(o, "error.type"), "authentication_error");
    json_object_put(o);
    hx_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_store_bytes),
        cmocka_unit_test(test_store_threads),
        cmocka_unit_test(test_responses_native_providers),
        cmocka_unit_test(test_native_hooks),
        cmocka_unit_test(test_error_dialect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
