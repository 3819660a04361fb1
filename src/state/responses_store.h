/* Stored Responses API answers (`store: true`), for previous_response_id
 * and GET/DELETE /v1/responses/{id}.
 *
 * A small interface, asynchronous by contract like every state-store
 * interface (shared DESIGN section 4): a shared backend (Redis) answers
 * later on the caller's loop. The in-process backend calls back
 * synchronously, before the call returns, and never while it holds its
 * lock (the callback may call the store again). A call that returns -1
 * never calls back.
 *
 * An entry belongs to the client key that stored it: get and delete with
 * another owner answer "not found", so ids of other keys are not even
 * revealed. */
#ifndef HX_STATE_RESPONSES_STORE_H
#define HX_STATE_RESPONSES_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct hx_resp_store hx_resp_store;

/* What one stored response keeps: the Response object shown by GET, and
 * the conversation up to and including its output as a canonical
 * (Chat Completions) messages array, prepended by previous_response_id. */
typedef struct {
    const char *response;
    size_t response_len;
    const char *conversation;
    size_t conversation_len;
} hx_resp_entry;

/* status: 0 done / found, 1 not found (unknown, expired, another owner's),
 * -1 failed (no memory, backend down). For get, e is valid during the
 * call only (NULL unless status is 0). */
typedef void (*hx_resp_get_cb)(void *ud, int status, const hx_resp_entry *e);
typedef void (*hx_resp_done_cb)(void *ud, int status);

typedef struct {
    /* Stores (or replaces) id. put's cb may be NULL (fire and forget). An
     * entry larger than the store's byte bound is not kept (status -1). */
    int (*put)(hx_resp_store *s, const char *id, const char *owner, const hx_resp_entry *e, hx_resp_done_cb cb,
               void *ud);
    int (*get)(hx_resp_store *s, const char *id, const char *owner, hx_resp_get_cb cb, void *ud);
    int (*del)(hx_resp_store *s, const char *id, const char *owner, hx_resp_done_cb cb, void *ud);
    void (*destroy)(hx_resp_store *s);
} hx_resp_store_vt;

struct hx_resp_store {
    const hx_resp_store_vt *vt;
};

/* Limits of a store (llm.responses): entries, total bytes (ids, owners,
 * responses and conversations) and age. The oldest entries make room. */
typedef struct {
    size_t max_stored;
    size_t max_bytes;
    int64_t ttl_ms;
} hx_resp_store_limits;

/* The in-process backend (thread-safe: one mutex, short sections). */
hx_resp_store *hx_resp_store_memory_new(const hx_resp_store_limits *lim);
/* New limits (a reload); entries beyond them go at the next put. */
void hx_resp_store_memory_limits(hx_resp_store *s, const hx_resp_store_limits *lim);
/* Tests: the clock (monotonic milliseconds) the store reads. */
void hx_resp_store_memory_clock(hx_resp_store *s, int64_t (*now_ms)(void));
/* Entries and bytes held now (metrics and tests). */
void hx_resp_store_memory_usage(hx_resp_store *s, size_t *count, size_t *bytes);

/* The shared backend (state.backend: redis): entries in the calling
 * worker's cluster store (state/cluster.h), expiring after ttl_ms; an
 * entry above max_bytes is not kept; max_stored does not apply (Redis
 * bounds them by their expiry). Calls answer on the caller's loop. */
hx_resp_store *hx_resp_store_shared_new(const hx_resp_store_limits *lim);
void hx_resp_store_shared_limits(hx_resp_store *s, const hx_resp_store_limits *lim);

#endif
