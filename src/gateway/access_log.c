/* The gateway's per-request record (its context slot on hx_req) and the
 * access-log line, written through the HTTP layer's done hook so that
 * src/http/ knows no gateway or middleware field. */
#include <string.h>

#include "cache/cache.h"
#include "gateway/gateway.h"
#include "http/router.h"
#include "obs/log.h"
#include "obs/sysload.h"

_Static_assert(sizeof(hx_gw_reqlog) <= HX_CTX_GATEWAY_BYTES, "hx_gw_reqlog outgrew its share");

hx_gw_reqlog *hx_gw_log(hx_req *r)
{
    hx_gw_reqlog *lg = hx_req_ctx_alloc(r, HX_CTX_GATEWAY, sizeof *lg);
    if (lg == NULL) {
        /* Not reachable with today's modules; never a crash if it were. */
        static _Thread_local hx_gw_reqlog scratch;
        memset(&scratch, 0, sizeof scratch);
        return &scratch;
    }
    return lg;
}

const hx_gw_reqlog *hx_gw_log_peek(const hx_req *r)
{
    static const hx_gw_reqlog none;
    const hx_gw_reqlog *lg = hx_req_ctx(r, HX_CTX_GATEWAY);
    return lg ? lg : &none;
}

/* The line's fields and their order are the access log's format
 * (tests/integration check them): keep them as they are. */
static void log_access(const hx_req *r)
{
    const hx_gw_reqlog *lg = hx_gw_log_peek(r);
    const char *key_name = hx_auth_key_name(r);
    bool queued = hx_queue_admitted(r);
    uint64_t dur_us = (hx_now_ns() - r->start_ns) / 1000;
    int status = r->head_sent ? r->status : 499; /* client closed first */
    HX_LOG_INFO("request",
                HX_F_STR("request_id", r->request_id),
                HX_F_STR("client_ip", hx_client_ip(r)),
                key_name[0] ? HX_F_STR("key_name", key_name) : (hx_log_field){0},
                HX_F_STR("method", r->method),
                HX_F_STR("path", r->path ? r->path : ""),
                r->secure ? HX_F_STR("scheme", "https") : (hx_log_field){0},
                r->early_data ? HX_F_BOOL("early_data", true) : (hx_log_field){0}, /* served from 0-RTT */
                HX_F_INT("status", status),
                HX_F_DBL("duration_ms", (double)dur_us / 1000.0),
                HX_F_INT("bytes_in", r->bytes_in),
                HX_F_INT("bytes_out", r->bytes_out),
                queued ? HX_F_DBL("queue_wait_ms", (double)(hx_queue_wait_ns(r) / 1000) / 1000.0)
                       : (hx_log_field){0},
                r->error_code ? HX_F_STR("error", r->error_code) : (hx_log_field){0},
                lg->provider[0] ? HX_F_STR("provider", lg->provider) : (hx_log_field){0},
                lg->model[0] ? HX_F_STR("model", lg->model) : (hx_log_field){0},
                lg->attempts ? HX_F_INT("attempts", lg->attempts) : (hx_log_field){0},
                lg->attempts ? HX_F_INT("prompt_tokens", lg->prompt_tokens) : (hx_log_field){0},
                lg->attempts ? HX_F_INT("completion_tokens", lg->completion_tokens) : (hx_log_field){0},
                lg->failures[0] ? HX_F_STR("failures", lg->failures) : (hx_log_field){0},
                lg->cache ? HX_F_STR("cache", hx_cache_result_name((hx_cache_result)(lg->cache - 1)))
                          : (hx_log_field){0},
                HX_F_BOOL("aborted", r->aborted));
}

void hx_gw_request_done(hx_req *r)
{
    if (hx_gw_log_peek(r)->attempts && r->head_sent)
        hx_sysload_observe_latency(r->head_ns - r->start_ns);
    if ((r->mw & HX_MW_LOGGING) && r->cfg->logging.access_log && r->path)
        log_access(r);
}
