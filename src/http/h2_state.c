/* The HTTP/2 connection's and stream's states and the one function that
 * changes each (as h1_state.c): a move not in a table is a bug, so debug
 * builds abort on it and release builds refuse and log it.
 * docs/internals/state-machines.md draws the same tables. */
#include <stdio.h>
#include <stdlib.h>

#include "http/h2_int.h"
#include "obs/log.h"

#define TO(s) (1u << (s))

static const unsigned conn_legal[H2C__COUNT] = {
    /* Shutdown drains; abuse or a fatal protocol error flushes a GOAWAY
     * and closes; EOF, a read error or close_all closes now. */
    [H2C_OPEN] = TO(H2C_DRAINING) | TO(H2C_CLOSING) | TO(H2C_CLOSED),
    /* Abuse while draining still gets its GOAWAY; the last stream ends. */
    [H2C_DRAINING] = TO(H2C_CLOSING) | TO(H2C_CLOSED),
    [H2C_CLOSING] = TO(H2C_CLOSED),
    [H2C_CLOSED] = 0,
};

static const unsigned stream_legal[H2S__COUNT] = {
    /* END_STREAM with the head dispatches; a body follows; a 431 or 413
     * answers at once; we reset it; the client resets it. */
    [H2S_HEADERS] = TO(H2S_BODY) | TO(H2S_HANDLING) | TO(H2S_ANSWERING) | TO(H2S_DONE) | TO(H2S_CLOSED),
    [H2S_BODY] = TO(H2S_HANDLING) | TO(H2S_ANSWERING) | TO(H2S_DONE) | TO(H2S_CLOSED),
    /* The handler answers, or cuts the stream (abort); the client resets. */
    [H2S_HANDLING] = TO(H2S_ANSWERING) | TO(H2S_DONE) | TO(H2S_CLOSED),
    [H2S_ANSWERING] = TO(H2S_DONE) | TO(H2S_CLOSED),
    [H2S_DONE] = TO(H2S_CLOSED),
    [H2S_CLOSED] = 0,
};

static const char *const conn_names[H2C__COUNT] = {
    [H2C_OPEN] = "open", [H2C_DRAINING] = "draining", [H2C_CLOSING] = "closing", [H2C_CLOSED] = "closed"};

static const char *const stream_names[H2S__COUNT] = {
    [H2S_HEADERS] = "headers",     [H2S_BODY] = "body", [H2S_HANDLING] = "handling",
    [H2S_ANSWERING] = "answering", [H2S_DONE] = "done", [H2S_CLOSED] = "closed"};

hx_h2_state_hook_fn hx_h2_state_hook;

bool hx_h2_conn_state_allowed(enum h2_conn_state from, enum h2_conn_state to)
{
    if ((unsigned)from >= H2C__COUNT || (unsigned)to >= H2C__COUNT)
        return false;
    return (conn_legal[from] & TO(to)) != 0;
}

bool hx_h2_stream_state_allowed(enum h2_stream_state from, enum h2_stream_state to)
{
    if ((unsigned)from >= H2S__COUNT || (unsigned)to >= H2S__COUNT)
        return false;
    return (stream_legal[from] & TO(to)) != 0;
}

const char *hx_h2_conn_state_name(enum h2_conn_state s)
{
    return (unsigned)s < H2C__COUNT ? conn_names[s] : "?";
}

const char *hx_h2_stream_state_name(enum h2_stream_state s)
{
    return (unsigned)s < H2S__COUNT ? stream_names[s] : "?";
}

static bool refuse(const char *what, const char *from, const char *to, const char *why)
{
#ifdef HX_DEBUG_CHECKS
    fprintf(stderr, "h2: illegal %s state change %s -> %s (%s)\n", what, from, to, why);
    abort();
#else
    HX_LOG_DEBUG("h2: illegal state change refused", HX_F_STR("of", what), HX_F_STR("from", from),
                 HX_F_STR("to", to), HX_F_STR("why", why));
    return false;
#endif
}

bool hx_h2_set_conn_state(h2_conn *c, enum h2_conn_state to, const char *why)
{
    if (!hx_h2_conn_state_allowed(c->state, to))
        return refuse("connection", hx_h2_conn_state_name(c->state), hx_h2_conn_state_name(to), why);
    if (hx_h2_state_hook)
        hx_h2_state_hook(false, (int)c->state, (int)to, why);
    c->state = to;
    return true;
}

bool hx_h2_set_stream_state(h2_stream *s, enum h2_stream_state to, const char *why)
{
    if (!hx_h2_stream_state_allowed(s->state, to))
        return refuse("stream", hx_h2_stream_state_name(s->state), hx_h2_stream_state_name(to), why);
    if (hx_h2_state_hook)
        hx_h2_state_hook(true, (int)s->state, (int)to, why);
    s->state = to;
    return true;
}
