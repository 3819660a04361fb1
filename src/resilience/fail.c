/* The failure vocabulary's tables (src/resilience/fail.h). */
#include "resilience/fail.h"

#include <stddef.h>
#include <string.h>

static const struct {
    const char *name;
    hx_fail_class retry; /* the retry class it counts as */
    hx_fail_label label; /* hapax_provider_failures_total, below an error status */
    hx_leave_label leave;
    bool unreachable;
} fails[HX_FAIL__COUNT] = {
    [HX_FAIL_NONE] = {"none", HX_FAIL_NONE, HX_FAIL_LABEL_OTHER, HX_LEAVE_OTHER, false},
    [HX_FAIL_RATE_LIMIT] = {"rate_limit", HX_FAIL_RATE_LIMIT, HX_FAIL_LABEL_RATE_LIMIT, HX_LEAVE_RATE_LIMIT, false},
    [HX_FAIL_TIMEOUT] = {"timeout", HX_FAIL_TIMEOUT, HX_FAIL_LABEL_TIMEOUT, HX_LEAVE_TIMEOUT, true},
    [HX_FAIL_SERVER_ERROR] = {"server_error", HX_FAIL_SERVER_ERROR, HX_FAIL_LABEL_SERVER_ERROR,
                              HX_LEAVE_SERVER_ERROR, false},
    [HX_FAIL_CONNECTION] = {"connection", HX_FAIL_CONNECTION, HX_FAIL_LABEL_CONNECTION, HX_LEAVE_CONNECTION, true},
    [HX_FAIL_UNANSWERED] = {"unanswered", HX_FAIL_UNANSWERED, HX_FAIL_LABEL_TIMEOUT, HX_LEAVE_UNANSWERED, false},
    [HX_FAIL_RESET] = {"reset", HX_FAIL_CONNECTION, HX_FAIL_LABEL_CONNECTION, HX_LEAVE_CONNECTION, false},
    [HX_FAIL_DROPPED] = {"dropped", HX_FAIL_UNANSWERED, HX_FAIL_LABEL_CONNECTION, HX_LEAVE_UNANSWERED, false},
    [HX_FAIL_BROKEN] = {"broken", HX_FAIL_UNANSWERED, HX_FAIL_LABEL_OTHER, HX_LEAVE_UNANSWERED, false},
    [HX_FAIL_MALFORMED] = {"malformed", HX_FAIL_UNANSWERED, HX_FAIL_LABEL_OTHER, HX_LEAVE_UNANSWERED, false},
    [HX_FAIL_MID_STREAM] = {"mid_stream", HX_FAIL_NONE, HX_FAIL_LABEL_OTHER, HX_LEAVE_OTHER, false},
    [HX_FAIL_QUOTA] = {"quota", HX_FAIL_NONE, HX_FAIL_LABEL_CLIENT_ERROR, HX_LEAVE_QUOTA, false},
    [HX_FAIL_CONTEXT_LENGTH] = {"context_length", HX_FAIL_NONE, HX_FAIL_LABEL_CLIENT_ERROR, HX_LEAVE_CONTEXT_LENGTH,
                                false},
    [HX_FAIL_AUTH] = {"auth", HX_FAIL_NONE, HX_FAIL_LABEL_AUTH, HX_LEAVE_AUTH, false},
    [HX_FAIL_REDIRECT] = {"redirect", HX_FAIL_NONE, HX_FAIL_LABEL_OTHER, HX_LEAVE_REDIRECT, false},
    [HX_FAIL_CLIENT] = {"client_error", HX_FAIL_NONE, HX_FAIL_LABEL_CLIENT_ERROR, HX_LEAVE_OTHER, false},
    [HX_FAIL_OTHER] = {"other", HX_FAIL_NONE, HX_FAIL_LABEL_OTHER, HX_LEAVE_OTHER, false},
};

static const char *const label_names[HX_FAIL_LABEL__COUNT] = {
    "rate_limit", "timeout", "server_error", "connection", "client_error", "auth", "other",
};

static const char *const leave_names[HX_LEAVE__COUNT] = {
    "rate_limit", "timeout", "server_error", "connection", "unanswered",
    "quota", "context_length", "auth", "redirect", "other",
};

static bool valid(hx_fail_class c)
{
    return (unsigned)c < HX_FAIL__COUNT;
}

const char *hx_fail_name(hx_fail_class c)
{
    return valid(c) ? fails[c].name : "none";
}

hx_fail_class hx_fail_from_name(const char *name, size_t len)
{
    for (int c = 0; name && c < HX_FAIL__COUNT; c++)
        if (strlen(fails[c].name) == len && memcmp(fails[c].name, name, len) == 0)
            return (hx_fail_class)c;
    return HX_FAIL_NONE;
}

hx_fail_class hx_fail_retry_class(hx_fail_class c)
{
    return valid(c) ? fails[c].retry : HX_FAIL_NONE;
}

bool hx_fail_unreachable(hx_fail_class c)
{
    return valid(c) && fails[c].unreachable;
}

hx_fail_label hx_fail_label_of(hx_fail_class c, int status)
{
    if (status == 429)
        return HX_FAIL_LABEL_RATE_LIMIT;
    if (status == 401 || status == 403)
        return HX_FAIL_LABEL_AUTH;
    if (status >= 500)
        return HX_FAIL_LABEL_SERVER_ERROR;
    if (status >= 400)
        return HX_FAIL_LABEL_CLIENT_ERROR;
    return valid(c) ? fails[c].label : HX_FAIL_LABEL_OTHER;
}

const char *hx_fail_label_name(hx_fail_label l)
{
    return (unsigned)l < HX_FAIL_LABEL__COUNT ? label_names[l] : "other";
}

hx_leave_label hx_fail_leave_label(hx_fail_class c)
{
    return valid(c) ? fails[c].leave : HX_LEAVE_OTHER;
}

const char *hx_leave_label_name(hx_leave_label l)
{
    return (unsigned)l < HX_LEAVE__COUNT ? leave_names[l] : "other";
}
