/* Anthropic messages/count_tokens, natively: the client's body (model
 * replaced) and its anthropic-version/-beta headers go to
 * {base}/messages/count_tokens; the answer ({"input_tokens":N}) is relayed
 * as it is. Counting spends no tokens: the request is not billed. */
#include <stdio.h>
#include <string.h>

#include "provider/anthropic_int.h"
#include "provider/provider.h"
#include "util/json.h"

static int count_build(const hx_provider *p, const char *model, const hx_req *r, bool stream, hx_up_request *out,
                       char *err, size_t errlen)
{
    (void)stream;
    out->method = "POST";
    out->url = hx_url_join(p->base_url ? p->base_url : "", "messages/count_tokens");
    if (out->url == NULL || hx_native_body(r, model, &out->body) != 0 ||
        hx_headers_add(&out->headers, "Content-Type", "application/json") != 0 ||
        hx_anth_native_headers(p, r, &out->headers) != 0) {
        snprintf(err, errlen, "could not build the count_tokens request");
        return -1;
    }
    return 0;
}

static int count_body(hx_relay *rl, const char *data, size_t len)
{
    if (!hx_json_valid(data, len) || hx_json_find_int(data, len, "input_tokens") < 0) {
        snprintf(rl->err, sizeof rl->err, "upstream returned no input_tokens");
        return -1;
    }
    /* Seen, and zero: nothing was spent (the tokens-per-minute
     * reservation is given back). */
    rl->prompt_tokens = rl->completion_tokens = 0;
    rl->usage_seen = true;
    return 0;
}

const hx_native hx_anth_native_count_tokens = {
    .path = "messages/count_tokens",
    .build = count_build,
    .body = count_body,
};
