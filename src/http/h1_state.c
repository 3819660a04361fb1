/* The HTTP/1.1 connection's states and the one function that changes
 * them (as curl's mstate()): a transition not in the table is a bug, so
 * debug builds abort on it and release builds refuse it and log it. The
 * check is a table lookup; nothing is formatted unless debug logging is on.
 * docs/internals/state-machines.md draws the same table. */
#include <stdio.h>
#include <stdlib.h>

#include "http/h1_int.h"
#include "obs/log.h"

#define TO(s) (1u << (s))

/* Per state, the states it may move to (a state never moves to itself). */
static const unsigned legal[H1__COUNT] = {
    /* Bytes arrive; over max_connections a 503 goes out; a drain that
     * finds the previous answer still being written lingers once it is
     * out (h1_out.c:wrote). */
    [H1_IDLE] = TO(H1_READING) | TO(H1_DISCARD) | TO(H1_LINGER) | TO(H1_CLOSED),
    /* The message is complete; a parse error, limit or read timeout
     * answers an error; a drain lingers once a 100 Continue is out. */
    [H1_READING] = TO(H1_HANDLING) | TO(H1_DISCARD) | TO(H1_LINGER) | TO(H1_CLOSED),
    /* The answer ended: keep-alive, or the last one (close_after). */
    [H1_HANDLING] = TO(H1_IDLE) | TO(H1_DISCARD) | TO(H1_CLOSED),
    /* The last answer is out: FIN, then linger. */
    [H1_DISCARD] = TO(H1_LINGER) | TO(H1_CLOSED),
    /* The linger timer, EOF or an error ends it. */
    [H1_LINGER] = TO(H1_CLOSED),
    /* Terminal: the handles are closing. */
    [H1_CLOSED] = 0,
};

static const char *const names[H1__COUNT] = {
    [H1_IDLE] = "idle",       [H1_READING] = "reading", [H1_HANDLING] = "handling",
    [H1_DISCARD] = "discard", [H1_LINGER] = "linger",   [H1_CLOSED] = "closed",
};

hx_h1_state_hook_fn hx_h1_state_hook;

bool hx_h1_state_allowed(enum h1_state from, enum h1_state to)
{
    if ((unsigned)from >= H1__COUNT || (unsigned)to >= H1__COUNT)
        return false;
    return (legal[from] & TO(to)) != 0;
}

const char *hx_h1_state_name(enum h1_state s)
{
    return (unsigned)s < H1__COUNT ? names[s] : "?";
}

bool hx_h1_set_state(h1_conn *c, enum h1_state to, const char *why)
{
    enum h1_state from = c->state;
    if (!hx_h1_state_allowed(from, to)) {
#ifdef HX_DEBUG_CHECKS
        fprintf(stderr, "h1: illegal connection state change %s -> %s (%s)\n", hx_h1_state_name(from),
                hx_h1_state_name(to), why);
        abort();
#else
        HX_LOG_DEBUG("h1: illegal connection state change refused", HX_F_STR("from", hx_h1_state_name(from)),
                     HX_F_STR("to", hx_h1_state_name(to)), HX_F_STR("why", why));
        return false;
#endif
    }
    c->state = to;
    if (hx_h1_state_hook)
        hx_h1_state_hook(c, from, to, why);
    return true;
}
