/* One failure vocabulary (issue 12): why an attempt on a provider failed,
 * recorded as an enum where the failure is known (the upstream's status,
 * the transport's result, the relay's check) and mapped by tables, never
 * through strings, to:
 *  - the retry decision: llm.retry.retryable_errors names five retry
 *    classes; every failure maps to one of them or to none;
 *  - the metric labels: hapax_provider_failures_total{class} and
 *    hapax_retries_by_class_total / hapax_failovers_by_class_total{class};
 *  - passive health: whether a probe would also see it (unreachable).
 * Pure data; no I/O. */
#ifndef HX_RESILIENCE_FAIL_H
#define HX_RESILIENCE_FAIL_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    HX_FAIL_NONE = 0,
    /* the five retry classes (their config names are the same words) */
    HX_FAIL_RATE_LIMIT,   /* 429 (throttling, not quota) */
    HX_FAIL_TIMEOUT,      /* connect timeout: the request was not sent */
    HX_FAIL_SERVER_ERROR, /* 5xx answered (an error head, no generation) */
    HX_FAIL_CONNECTION,   /* refused, DNS, TLS: the provider cannot be reached */
    HX_FAIL_UNANSWERED,   /* sent, then no answer in time (first byte, idle,
                           * deadline). May be billed: off by default */
    /* finer failures; each retries as one of the five (or never) */
    HX_FAIL_RESET,          /* reset before the request was sent (as connection) */
    HX_FAIL_DROPPED,        /* sent, then the connection broke before any answer
                             * (as unanswered) */
    HX_FAIL_BROKEN,         /* a 2xx answer broke off before the client saw a byte
                             * (as unanswered) */
    HX_FAIL_MALFORMED,      /* a 2xx answer that could not be read (as unanswered) */
    HX_FAIL_MID_STREAM,     /* failed after the client saw bytes: never retried */
    HX_FAIL_QUOTA,          /* billing: another provider may serve, this one not */
    HX_FAIL_CONTEXT_LENGTH, /* the model's window: as quota */
    HX_FAIL_AUTH,           /* 401/403: the gateway's credentials */
    HX_FAIL_REDIRECT,       /* 3xx, never followed */
    HX_FAIL_CLIENT,         /* another 4xx (404, or the client's own error) */
    HX_FAIL_OTHER,
    HX_FAIL__COUNT
} hx_fail_class;

/* Labels of hapax_provider_failures_total{class}. */
typedef enum {
    HX_FAIL_LABEL_RATE_LIMIT = 0,
    HX_FAIL_LABEL_TIMEOUT,
    HX_FAIL_LABEL_SERVER_ERROR,
    HX_FAIL_LABEL_CONNECTION,
    HX_FAIL_LABEL_CLIENT_ERROR,
    HX_FAIL_LABEL_AUTH,
    HX_FAIL_LABEL_OTHER,
    HX_FAIL_LABEL__COUNT
} hx_fail_label;

/* Labels of hapax_retries_by_class_total and hapax_failovers_by_class_total. */
typedef enum {
    HX_LEAVE_RATE_LIMIT = 0,
    HX_LEAVE_TIMEOUT,
    HX_LEAVE_SERVER_ERROR,
    HX_LEAVE_CONNECTION,
    HX_LEAVE_UNANSWERED,
    HX_LEAVE_QUOTA,
    HX_LEAVE_CONTEXT_LENGTH,
    HX_LEAVE_AUTH,
    HX_LEAVE_REDIRECT,
    HX_LEAVE_OTHER,
    HX_LEAVE__COUNT
} hx_leave_label;

/* The failure's own name ("none" for HX_FAIL_NONE or out of range); for
 * the five retry classes the retryable_errors word. */
const char *hx_fail_name(hx_fail_class c);
/* The class of a name hx_fail_name gave (the state file keeps it):
 * HX_FAIL_NONE for an unknown one. `len` bytes of `name`. */
hx_fail_class hx_fail_from_name(const char *name, size_t len);
/* The retry class it counts as: one of the five, or HX_FAIL_NONE (never
 * asked again). */
hx_fail_class hx_fail_retry_class(hx_fail_class c);
/* A probe would see it too: the provider cannot be reached at all. */
bool hx_fail_unreachable(hx_fail_class c);
/* hapax_provider_failures_total's class: an upstream error status (400 and
 * above) decides by itself; otherwise the failure's. */
hx_fail_label hx_fail_label_of(hx_fail_class c, int status);
const char *hx_fail_label_name(hx_fail_label l);
/* The class label of retries and failovers. */
hx_leave_label hx_fail_leave_label(hx_fail_class c);
const char *hx_leave_label_name(hx_leave_label l);

#endif
