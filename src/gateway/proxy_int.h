/* Internals shared by proxy.c (a request's answer: relaying, rendering,
 * errors) and chain.c (which provider to try next: admission, retries,
 * failover). Not for use outside src/gateway/. */
#ifndef HX_GATEWAY_PROXY_INT_H
#define HX_GATEWAY_PROXY_INT_H

#include "gateway/cache_gw.h"
#include "gateway/gateway.h"
#include "provider/sse.h"
#include "util/scrub.h"

#define HX_ERRBODY_MAX (64 * 1024)
/* Bound of the "name: why; ..." list of providers that did not serve. */
#define HX_STATES_MAX 4096
/* Bound of a rendered non-streamed answer sent to the client. */
#define HX_RENDER_BODY_MAX (64 * 1024 * 1024)
/* Tokens-per-minute reservation when the request names no max_tokens. */
#define HX_TPM_DEFAULT_COMPLETION 256
/* Largest non-streamed answer relayed as it is. */
#define HX_RELAY_BODY_MAX (64 * 1024 * 1024)
/* An upstream's error body re-written for the client: its message escaped
 * again (at most 6 bytes per byte) and the framing. */
#define HX_RELAY_ERROR_MAX (6 * HX_ERRBODY_MAX + 1024)

/* Where a request is on its way through the chain. It changes only
 * through px_set_state, which checks the transition against the table in
 * proxy_state.c (docs/internals/state-machines.md): asserted in debug
 * builds, refused and logged at debug level in release. */
typedef enum {
    PX_CHOOSING = 0, /* picking the next provider (admission, building); nothing in flight */
    PX_SENDING,      /* an upstream call runs; the client has seen nothing */
    PX_RELAYING,     /* the answer's first byte went to the client: no retry, no failover */
    PX_PAUSED,       /* relaying, the client is full: the upstream is paused */
    PX_BACKOFF,      /* the retry timer runs (in gw->waiting) before asking the same provider */
    PX_DONE,         /* answered or abandoned: every callback returns early */
    PX__COUNT
} px_state;

typedef struct proxy {
    int refs;
    px_state state;
    hx_req *req;
    hx_gw_worker *gw;
    hx_gateway *g;             /* reference: the gateway the request started with */
    json_object *canon;
    hx_in_info info;
    int *chain;                /* provider indexes, in order */
    const char **chain_model;  /* the model name to ask chain[i] for */
    size_t nchain;
    size_t pos;
    const hx_provider *prov;
    const char *prov_model;    /* chain_model of prov */
    void *parser;
    const hx_adapter *parser_ad; /* the adapter that made `parser` */
    hx_up_call *call;
    hx_render render;
    hx_buf out;
    hx_buf errbody;
    int up_status;
    char retry_after[32];      /* the attempt's Retry-After, sane integer seconds ("" = none) */
    uint64_t retry_after_ms;   /* the same, as parsed (0 = none) */
    hx_fail_class fail;        /* why the last attempt failed (metrics labels by table) */
    bool has_kept;             /* a provider error with its own meaning (quota, context length) */
    hx_err kept_err;           /* ... answered when no later provider serves */
    char kept_msg[384];
    uint64_t health_noted;     /* providers 0..63 (bit = index) already reported unreachable by this request */
    uint8_t *health_noted_more; /* the same for index 64 and up, one byte each (made when first needed) */
    struct proxy *wait_prev, *wait_next; /* in gw->waiting while a retry timer runs */
    struct proxy *live_prev, *live_next; /* in gw->live until finished */
    bool live;
    bool any_answered;         /* some upstream produced an HTTP answer */
    const hx_native *native;   /* the provider speaks the client's API: its answer is relayed */
    const hx_translated *translated; /* the provider serves the client's API by translation */
    bool relay_raw;            /* native or translated, not streamed: hold the whole body */
    bool relay_sse;            /* native, streamed: relay each event as it is */
    hx_relay relay;            /* what the relayed answer told us */
    char *answer_tool;         /* the attempt's answer text becomes a call of this tool (hx_up_request) */
    bool tool_opened;          /* its TOOL_CALL event was sent */
    hx_sse sse;
    hx_scrub_stream scrub;     /* the config's secrets, out of the upstream's bytes */
    size_t buffered;           /* bytes held against llm.upstream_buffer_budget */
    bool over_budget;          /* this answer did not fit in the budget */
    int64_t tpm_reserved;      /* tokens taken from tokens_per_minute up front */
    int64_t prompt_estimate;   /* prompt tokens guessed from the body size */
    uint64_t text_bytes;       /* answer text relayed to the client */
    bool usage_seen;           /* the upstream reported its usage */
    bool billable;             /* a provider accepted the request (2xx) */
    char rate_limited[32];     /* Retry-After of a provider that answered 429 ("" = none) */
    bool saw_429;
    hx_err last_err;
    char last_msg[384];
    hx_buf states;             /* "name: why; ..." for the final message */
    uint64_t attempt_ns;       /* when the current attempt started */
    uint64_t breaker_gen;      /* generation of the breaker admission held */
    bool breaker_held;         /* the request holds an admission of prov's breaker */
    int breaker_pending;       /* prov's verdict so far: 1 success, 0 failure, -1 none */
    int panic_pos;             /* chain position of the least-bad provider skipped as down (-1 none) */
    uint64_t panic_badness;    /* how bad it looked (lower is better) */
    bool panicked;             /* the request went to a provider marked down */
    int tries;                 /* attempts on the current provider */
    uv_timer_t *retry_timer;   /* backoff before retrying the same provider */
    uint64_t open_wait_ms;     /* shortest wait until a skipped breaker admits */
    size_t unserved;           /* providers of the chain without the client's API */
    hx_gw_cache_fill *fill;    /* a cache miss: the answer is collected for llm.cache (NULL = not) */
} proxy;

/* proxy_state.c */
/* Is from -> to in the transition table? */
bool px_state_legal(px_state from, px_state to);
const char *px_state_name(px_state s);
/* The one way to change p->state: 0, or -1 (state unchanged) when the
 * transition is not in the table. */
int px_set_state(proxy *p, px_state to);
/* Called on an illegal transition instead of the debug build's assert
 * (tests set it to see refusals). NULL by default. */
extern void (*px_state_illegal_hook)(px_state from, px_state to);
/* The client has seen the answer's first byte. */
static inline bool px_head_sent(const proxy *p)
{
    return p->state == PX_RELAYING || p->state == PX_PAUSED;
}

/* proxy.c */
extern const hx_up_callbacks px_up_cb;
proxy *px_proxy_ref(proxy *p);
void px_proxy_unref(proxy *p);
void px_wait_unlink(proxy *p);
void px_live_link(proxy *p);
/* The request is done with prov: gives its breaker admission back with
 * one verdict for the whole request (retries included). v 1 success or 0
 * failure is this attempt's; -1 keeps what earlier attempts recorded (the
 * client's own error, an abort, a request that was never sent). */
void px_breaker_verdict(proxy *p, int v);
/* The request is answered (or gone): stop everything, drop the ref. */
void px_finish(proxy *p);
/* Why a provider did not serve, for the final message and the access log. */
void px_note_state(proxy *p, const char *name, const char *why);
/* The provider was tried and failed with `cls`; `why` is the text. */
void px_note_failure(proxy *p, hx_fail_class cls, const char *why);
void px_answer_error(proxy *p, hx_err e, const char *msg);
void px_log_failures(proxy *p);
void px_set_provider_headers(proxy *p);
/* Answers with what the translation makes without an upstream call. */
void px_answer_local(proxy *p, const hx_translated *tr);
void px_on_client_drain(hx_req *r, void *ud);
void px_on_client_abort(hx_req *r, void *ud);
/* Passive evidence (health, breaker, metrics) of the current attempt:
 * decided by `cls`; `why` is only the text health shows. */
void px_record(proxy *p, bool ok, hx_fail_class cls, const char *why);

/* Gives back the bytes this request held against the buffer budget. */
void px_budget_release(proxy *p);
/* Settles the tokens-per-minute reservation when usage never arrived. */
void px_tpm_settle(proxy *p);

/* proxy_err.c */
/* Keeps an upstream Retry-After as sane integer seconds (p->retry_after,
 * 1..3600, "" when absent or invalid) and as parsed (p->retry_after_ms). */
void px_take_retry_after(proxy *p, const char *value);
/* A failed upstream status: the client's error in *e/msg, the failure
 * class in *cls; true when the next provider may be tried. */
bool px_classify_status(proxy *p, hx_err *e, char *msg, size_t msglen, hx_fail_class *cls);
hx_err px_transport_err(hx_up_result res);

/* chain.c */
void px_reset_attempt(proxy *p);
/* Tries the next provider of the chain, or gives up with the best error. */
void px_next_attempt(proxy *p);
/* After a failure before the first byte: retry or move on. */
void px_after_failure(proxy *p, hx_fail_class cls);

#endif
