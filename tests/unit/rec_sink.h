/* A recording event sink shared by the adapters' unit tests: each
 * canonical event as one line of r->log (token details and stop
 * sequences only when present). */
#ifndef HX_TEST_REC_SINK_H
#define HX_TEST_REC_SINK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "provider/event.h"
#include "util/buf.h"

typedef struct {
    hx_buf log;
    int stop_after; /* return -1 from the nth event (0: never) */
    int count;
} rec;

static inline int rec_sink(void *ud, const hx_event *ev)
{
    rec *r = ud;
    int rc = 0;
    switch (ev->type) {
    case HX_EV_META:
        rc = hx_buf_printf(&r->log, "META %s %s", ev->id ? ev->id : "-", ev->name ? ev->name : "-");
        if (rc == 0 && (ev->prompt_tokens || ev->cache_read_tokens || ev->cache_write_tokens))
            rc = hx_buf_printf(&r->log, " in=%lld cr=%lld cw=%lld", (long long)ev->prompt_tokens,
                               (long long)ev->cache_read_tokens, (long long)ev->cache_write_tokens);
        if (rc == 0)
            rc = hx_buf_printf(&r->log, "\n");
        break;
    case HX_EV_TEXT:
        rc = hx_buf_printf(&r->log, "TEXT %.*s\n", (int)ev->len, ev->text);
        break;
    case HX_EV_TOOL_CALL:
        rc = hx_buf_printf(&r->log, "CALL %d %s %s\n", ev->index, ev->id ? ev->id : "-", ev->name ? ev->name : "-");
        break;
    case HX_EV_TOOL_ARGS:
        rc = hx_buf_printf(&r->log, "ARGS %d %.*s\n", ev->index, (int)ev->len, ev->text);
        break;
    case HX_EV_FINISH:
        rc = ev->text ? hx_buf_printf(&r->log, "FINISH %s seq=%.*s\n", ev->finish, (int)ev->len, ev->text)
                      : hx_buf_printf(&r->log, "FINISH %s\n", ev->finish ? ev->finish : "(null)");
        break;
    case HX_EV_USAGE:
        rc = hx_buf_printf(&r->log, "USAGE %lld %lld", (long long)ev->prompt_tokens, (long long)ev->completion_tokens);
        if (rc == 0 && (ev->cache_read_tokens || ev->cache_write_tokens || ev->reasoning_tokens))
            rc = hx_buf_printf(&r->log, " cr=%lld cw=%lld rt=%lld", (long long)ev->cache_read_tokens,
                               (long long)ev->cache_write_tokens, (long long)ev->reasoning_tokens);
        if (rc == 0)
            rc = hx_buf_printf(&r->log, "\n");
        break;
    case HX_EV_ERROR:
        rc = hx_buf_printf(&r->log, "ERROR %.*s\n", (int)ev->len, ev->text);
        break;
    case HX_EV_THINKING:
        rc = hx_buf_printf(&r->log, "THINK %.*s\n", (int)ev->len, ev->text);
        break;
    case HX_EV_THINKING_SIGNATURE:
        rc = hx_buf_printf(&r->log, "SIG %.*s\n", (int)ev->len, ev->text);
        break;
    case HX_EV_REDACTED_THINKING:
        rc = hx_buf_printf(&r->log, "REDACTED %.*s\n", (int)ev->len, ev->text);
        break;
    case HX_EV_REFUSAL:
        rc = hx_buf_printf(&r->log, "REFUSAL %.*s\n", (int)ev->len, ev->text);
        break;
    }
    assert_int_equal(rc, 0);
    if (r->stop_after && ++r->count >= r->stop_after)
        return -1;
    return 0;
}

#endif
