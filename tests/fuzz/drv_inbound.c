/* Inbound target: a client body through each inbound parser (OpenAI chat
 * with its scan, completions, Anthropic messages, Responses) into the canonical
 * request, then through each provider's request builder (openai,
 * anthropic, ollama; streamed and not) and their native builds.
 * Also the embeddings and count_tokens checks with Ollama's embeddings
 * translation and the token estimate.
 * Invariant: every upstream body built is one valid JSON value. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gateway/inbound.h"
#include "gateway/responses.h"
#include "provider/adapter.h"
#include "provider/provider.h"
#include "util/json.h"

static void build_all(json_object *canon, const char *body, size_t len)
{
    static const hx_adapter *const ads[3] = {&hx_adapter_openai, &hx_adapter_anthropic, &hx_adapter_ollama};
    /* hx_provider's strings are mutable (it owns them): so are these. */
    static char *const names[3] = {"openai", "anthropic", "ollama"};
    static char *const urls[3] = {"https://api.openai.com/v1", "https://api.anthropic.com",
                                  "http://localhost:11434"};
    /* The request's body buffer is mutable: the native builds get a copy. */
    char *own = malloc(len + 1);
    if (own == NULL)
        return;
    memcpy(own, body, len);
    own[len] = '\0';
    for (int i = 0; i < 3; i++) {
        hx_provider p;
        memset(&p, 0, sizeof p);
        p.name = names[i];
        p.ad = ads[i];
        p.model = "fuzz-up";
        p.api_key = "sk-fuzz-secret";
        p.base_url = urls[i];
        p.usable = true;
        for (int stream = 0; canon && stream < 2; stream++) {
            hx_up_request req;
            hx_up_request_init(&req);
            char err[256];
            err[0] = '\0';
            if (ads[i]->build_chat(&p, canon, stream, &req, err, sizeof err) == 0) {
                FUZZ_CHECK(hx_json_valid(req.body.data, req.body.len));
                /* the provider key never goes into a body (unless the client wrote it) */
                FUZZ_CHECK(memmem(body, len, "sk-fuzz-secret", 14) != NULL ||
                           memmem(req.body.data, req.body.len, "sk-fuzz-secret", 14) == NULL);
            } else {
                FUZZ_CHECK(strlen(err) < sizeof err);
            }
            hx_up_request_free(&req);
        }
        /* the native builds: the client's body with the model replaced */
        hx_req r;
        memset(&r, 0, sizeof r);
        r.body.data = own;
        r.body.len = len;
        for (int api = 0; api < HX_API__COUNT; api++) {
            const hx_native *nv = ads[i]->native[api];
            for (int stream = 0; nv && nv->build && stream < 2; stream++) {
                hx_up_request req;
                hx_up_request_init(&req);
                char err[256];
                if (nv->build(&p, "fuzz-up", &r, stream, &req, err, sizeof err) == 0)
                    FUZZ_CHECK(hx_json_valid(req.body.data, req.body.len));
                hx_up_request_free(&req);
            }
        }
    }
    free(own);
}

typedef int (*inbound_fn)(json_object *, json_object **, hx_in_info *, char *, size_t);

/* The APIs without a canonical form: the embeddings check, Ollama's
 * /api/embed build (valid JSON) and the same text as its answer (a
 * conversion is valid JSON or refused with a reason); the count_tokens
 * check and the local estimate (at least 1). */
static void fuzz_uncanonical(json_object *o, const char *body, size_t size)
{
    json_object *canon = NULL;
    hx_in_info info = {0};
    char err[256] = "";
    if (hx_in_embeddings(o, &canon, &info, err, sizeof err) == 0) {
        hx_provider p;
        memset(&p, 0, sizeof p);
        p.name = "ollama";
        p.ad = &hx_adapter_ollama;
        p.model = "fuzz-up";
        p.api_key = "";
        p.base_url = "http://localhost:11434";
        const hx_translated *tr = hx_adapter_ollama.translated[HX_API_EMBEDDINGS];
        hx_up_request req;
        hx_up_request_init(&req);
        if (tr->build(&p, canon, &req, err, sizeof err) == 0)
            FUZZ_CHECK(hx_json_valid(req.body.data, req.body.len));
        hx_up_request_free(&req);
        hx_buf out;
        hx_buf_init(&out, (size_t)1 << 26);
        hx_relay rl = {0};
        if (tr->convert(&p, canon, body, size, &out, &rl) == 0)
            FUZZ_CHECK(hx_json_valid(out.data, out.len));
        else
            FUZZ_CHECK(rl.err[0] != '\0');
        hx_buf_free(&out);
    } else {
        FUZZ_CHECK(canon == NULL && err[0] != '\0');
    }
    json_object_put(canon);
    canon = NULL;
    if (hx_in_count_tokens(o, &canon, &info, err, sizeof err) == 0) {
        int64_t t = 0;
        FUZZ_CHECK(hx_count_estimate_tokens(canon, &t) == 0 && t >= 1);
    }
    json_object_put(canon);
}

int hx_fuzz_inbound(const uint8_t *data, size_t size)
{
    hx_fuzz_setup();
    const char *body = (const char *)data;
    hx_in_info sinfo = {0};
    (void)hx_in_openai_chat_scan(body, size, &sinfo);
    json_object *o = hx_json_parse(body, size);
    if (o == NULL)
        return 0;
    static const inbound_fn fns[3] = {hx_in_openai_chat, hx_in_completions, hx_in_anthropic};
    for (int i = 0; i < 3; i++) {
        json_object *canon = NULL;
        hx_in_info info = {0};
        char err[256];
        err[0] = '\0';
        if (fns[i](o, &canon, &info, err, sizeof err) == 0) {
            FUZZ_CHECK(canon != NULL);
            FUZZ_CHECK(info.render != NULL);
            FUZZ_CHECK(strlen(info.model) < sizeof info.model);
            build_all(canon, body, size);
        } else {
            FUZZ_CHECK(canon == NULL);
            FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof err);
        }
        json_object_put(canon);
    }
    fuzz_uncanonical(o, body, size);
    /* Responses: 0 with no canonical form when only a native provider
     * could carry the body (the reason is then in err). */
    json_object *canon = NULL;
    hx_in_info info = {0};
    char err[256];
    err[0] = '\0';
    if (hx_in_responses(o, &canon, &info, err, sizeof err) == 0) {
        FUZZ_CHECK(info.ctx != NULL && info.render != NULL);
        FUZZ_CHECK(canon != NULL || (err[0] != '\0' && strlen(err) < sizeof err));
        if (canon)
            build_all(canon, body, size);
        hx_resp_ctx_free(info.ctx);
    } else {
        FUZZ_CHECK(canon == NULL && info.ctx == NULL);
        FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof err);
    }
    json_object_put(canon);
    json_object_put(o);
    return 0;
}
