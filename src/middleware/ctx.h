/* The per-request context slots (http/request.h: hx_req_ctx) the
 * application uses, one per module, and the accessors through which other
 * modules read what a module learnt about a request. Only the owning module
 * writes its slot; its struct stays private to its .c file. */
#ifndef HX_MIDDLEWARE_CTX_H
#define HX_MIDDLEWARE_CTX_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "http/request.h"

enum {
    HX_CTX_APP = HX_REQ_CTX_APP, /* the worker's hx_gw_worker (set by the adapter) */
    HX_CTX_CLIENTIP,             /* clientip.c: the resolved client address */
    HX_CTX_AUTH,                 /* auth.c: the key that authenticated */
    HX_CTX_QUEUE,                /* queue.c: slot held, time waited */
    HX_CTX_GATEWAY,              /* gateway/: provider, model, attempts, tokens (access log) */
    HX_CTX_COUNT
};
_Static_assert(HX_CTX_COUNT <= HX_REQ_CTX_SLOTS, "more modules than request context slots");

/* Each module's share of the request's context area (hx_req_ctx_alloc):
 * its .c file asserts its struct fits, and the shares together fit the
 * area, so carving a slot never fails at run time. */
#define HX_CTX_ROUND(n) (((n) + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t))
#define HX_CTX_CLIENTIP_BYTES 48
#define HX_CTX_AUTH_BYTES 80
#define HX_CTX_QUEUE_BYTES 16
#define HX_CTX_GATEWAY_BYTES 736
_Static_assert(HX_CTX_ROUND(HX_CTX_CLIENTIP_BYTES) + HX_CTX_ROUND(HX_CTX_AUTH_BYTES) + HX_CTX_ROUND(HX_CTX_QUEUE_BYTES) +
                       HX_CTX_ROUND(HX_CTX_GATEWAY_BYTES) <=
                   HX_REQ_CTX_BYTES,
               "the modules' request contexts do not fit hx_req's area");

/* The client's address (clientip.h): the one hx_client_ip_resolve found, or
 * the peer's until it ran. */
const char *hx_client_ip(const hx_req *r);

/* The configured key (in r->cfg) that authenticated the request, or NULL;
 * and its name ("" when none). Set by hx_auth_identify. */
const hx_cfg_auth_key *hx_auth_key(const hx_req *r);
const char *hx_auth_key_name(const hx_req *r);

/* Whether the request went through the queue, and how long it waited. */
bool hx_queue_admitted(const hx_req *r);
uint64_t hx_queue_wait_ns(const hx_req *r);
/* Whether it holds a queue slot now. */
bool hx_queue_holds_slot(const hx_req *r);

#endif
