/* Helpers shared by the Anthropic unit tests (test_anthropic.c,
 * test_anthropic_in.c). */
#ifndef ANTH_TEST_H
#define ANTH_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/inbound.h"
#include "gateway/render.h"
#include "provider/adapter.h"
#include "provider/provider.h"
#include "provider/sse.h"
#include "util/alloc.h"
#include "rec_sink.h"

static inline hx_provider test_provider(void)
{
    hx_provider p;
    memset(&p, 0, sizeof p);
    p.name = "anthropic";
    p.ad = &hx_adapter_anthropic;
    p.model = "claude-up";
    p.api_key = "sk-ant-test";
    p.base_url = "https://api.anthropic.com/v1/";
    return p;
}

static inline json_object *jparse(const char *s)
{
    json_object *o = json_tokener_parse(s);
    assert_non_null(o);
    return o;
}

/* Value at a dotted path ("messages.0.content"); array indexes are numbers. */
static inline json_object *at(json_object *o, const char *path)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(o, json_type_array)) {
            size_t i = (size_t)strtoul(tok, NULL, 10);
            if (i >= json_object_array_length(o))
                return NULL;
            o = json_object_array_get_idx(o, i);
        } else if (!json_object_object_get_ex(o, tok, &o)) {
            return NULL;
        }
    }
    return o;
}

static inline const char *str_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    if (v == NULL || !json_object_is_type(v, json_type_string))
        fail_msg("no string at %s", path);
    return json_object_get_string(v);
}

static inline int64_t int_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    if (v == NULL || !json_object_is_type(v, json_type_int))
        fail_msg("no integer at %s", path);
    return json_object_get_int64(v);
}

static inline size_t len_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    if (v == NULL || !json_object_is_type(v, json_type_array))
        fail_msg("no array at %s", path);
    return json_object_array_length(v);
}

static inline const char *compact(json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Runs the parser over body, fed in pieces of `step` bytes (0 = whole).
 * Returns the parser's final result; events go to r, the error to err. */
static inline int run_parser(bool stream, const char *body, size_t step, rec *r, char *err, size_t errlen)
{
    void *ps = hx_adapter_anthropic.parser_new(stream);
    assert_non_null(ps);
    size_t len = strlen(body);
    int rc = 0;
    if (step == 0)
        step = len ? len : 1;
    for (size_t i = 0; rc == 0 && i < len; i += step)
        rc = hx_adapter_anthropic.parser_feed(ps, body + i, len - i < step ? len - i : step, rec_sink, r);
    if (rc == 0)
        rc = hx_adapter_anthropic.parser_end(ps, rec_sink, r);
    snprintf(err, errlen, "%s", hx_adapter_anthropic.parser_error(ps));
    hx_adapter_anthropic.parser_free(ps);
    return rc;
}


/* Runs fn with the nth allocation failing, for every n it makes; fn must
 * cope (ASan reports leaks and bad frees). */
static inline void each_failure(void (*fn)(void))
{
    unsigned long before = hx_alloc_count();
    fn();
    unsigned long total = hx_alloc_count() - before;
    assert_true(total > 0);
    for (unsigned long n = 1; n <= total; n++) {
        hx_alloc_fail_at(n, 1);
        fn();
        hx_alloc_fail_at(0, 0);
    }
}

static inline int null_sink(void *ud, const hx_event *ev)
{
    (void)ud;
    (void)ev;
    return 0;
}

#endif
