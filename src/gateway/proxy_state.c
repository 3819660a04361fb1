/* The attempt's state machine (src/gateway/proxy_int.h px_state): one
 * checked way to change state, as curl's mstate(). The table is the
 * documentation: docs/internals/state-machines.md copies it. */
#include <assert.h>

#include "gateway/proxy_int.h"
#include "obs/log.h"

static const char *const names[PX__COUNT] = {
    [PX_CHOOSING] = "choosing", [PX_SENDING] = "sending", [PX_RELAYING] = "relaying",
    [PX_PAUSED] = "paused",     [PX_BACKOFF] = "backoff", [PX_DONE] = "done",
};

#define TO(s) (1u << (s))
/* legal[from]: the states `from` may move to. */
static const unsigned legal[PX__COUNT] = {
    /* the next provider starts, another is picked (a skip, a failed
     * build), or the request is answered without one */
    [PX_CHOOSING] = TO(PX_CHOOSING) | TO(PX_SENDING) | TO(PX_DONE),
    /* bytes reach the client; the attempt failed before any: retry later
     * or pick again; answered whole, refused, or the client left */
    [PX_SENDING] = TO(PX_RELAYING) | TO(PX_BACKOFF) | TO(PX_CHOOSING) | TO(PX_DONE),
    [PX_RELAYING] = TO(PX_PAUSED) | TO(PX_DONE),
    [PX_PAUSED] = TO(PX_RELAYING) | TO(PX_DONE),
    /* the timer fires (same provider again, or it is not admitted),
     * shutdown ends the wait, or the client left */
    [PX_BACKOFF] = TO(PX_SENDING) | TO(PX_CHOOSING) | TO(PX_DONE),
    [PX_DONE] = 0,
};

bool px_state_legal(px_state from, px_state to)
{
    return (unsigned)from < PX__COUNT && (unsigned)to < PX__COUNT && (legal[from] & TO(to)) != 0;
}

const char *px_state_name(px_state s)
{
    return (unsigned)s < PX__COUNT ? names[s] : "invalid";
}

void (*px_state_illegal_hook)(px_state from, px_state to);

int px_set_state(proxy *p, px_state to)
{
    if (!px_state_legal(p->state, to)) {
        HX_LOG_DEBUG("illegal proxy state transition refused", HX_F_STR("from", px_state_name(p->state)),
                     HX_F_STR("to", px_state_name(to)));
        if (px_state_illegal_hook)
            px_state_illegal_hook(p->state, to);
#ifdef HX_DEBUG_CHECKS
        else
            assert(!"illegal proxy state transition");
#endif
        return -1;
    }
    p->state = to;
    return 0;
}
