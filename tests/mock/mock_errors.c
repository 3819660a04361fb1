/* Error bodies and model listings of the mock provider, in the OpenAI,
 * Anthropic and Ollama shapes (split from mock_formats.c). */
#include "mock_formats.h"

#include <string.h>

/* ---- errors and listings --------------------------------------------- */

static void error_kind(mf_family fam, int status, const char **type, const char **code)
{
    int anth = fam == FAM_ANTHROPIC;
    *code = NULL;
    switch (status) {
    case 401:
        *type = anth ? "authentication_error" : "invalid_request_error";
        *code = "invalid_api_key";
        break;
    case 403: *type = "permission_error"; break;
    case 404:
        *type = anth ? "not_found_error" : "invalid_request_error";
        *code = "unknown_url";
        break;
    case 413: *type = anth ? "request_too_large" : "invalid_request_error"; break;
    case 429:
        *type = "rate_limit_error";
        *code = "rate_limit_exceeded";
        break;
    case 529: *type = anth ? "overloaded_error" : "server_error"; break;
    default:
        if (status >= 500)
            *type = anth ? "api_error" : "server_error";
        else
            *type = "invalid_request_error";
    }
}

void mf_render_error(mf_family fam, int status, const char *msg, mbuf *out)
{
    const char *type, *code;
    error_kind(fam, status, &type, &code);
    if (fam == FAM_OLLAMA) {
        mbuf_str(out, "{\"error\":");
        mbuf_jstr(out, msg, strlen(msg));
        mbuf_str(out, "}");
    } else if (fam == FAM_ANTHROPIC) {
        mbuf_fmt(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", type);
        mbuf_jstr(out, msg, strlen(msg));
        mbuf_str(out, "}}");
    } else {
        mbuf_str(out, "{\"error\":{\"message\":");
        mbuf_jstr(out, msg, strlen(msg));
        mbuf_fmt(out, ",\"type\":\"%s\",\"param\":null,\"code\":", type);
        if (code)
            mbuf_fmt(out, "\"%s\"}}", code);
        else
            mbuf_str(out, "null}}");
    }
}

void mf_render_models(mf_family fam, mbuf *out)
{
    static const char *oai[] = { "gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "mock-model" };
    static const char *anth[] = { "claude-3-5-sonnet-20241022", "claude-3-5-haiku-20241022",
                                  "claude-3-opus-20240229" };
    if (fam == FAM_ANTHROPIC) {
        mbuf_str(out, "{\"data\":[");
        for (size_t i = 0; i < sizeof anth / sizeof *anth; i++)
            mbuf_fmt(out, "%s{\"type\":\"model\",\"id\":\"%s\",\"display_name\":\"%s\","
                          "\"created_at\":\"2024-10-22T00:00:00Z\"}",
                     i ? "," : "", anth[i], anth[i]);
        mbuf_fmt(out, "],\"has_more\":false,\"first_id\":\"%s\",\"last_id\":\"%s\"}", anth[0],
                 anth[sizeof anth / sizeof *anth - 1]);
        return;
    }
    mbuf_str(out, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < sizeof oai / sizeof *oai; i++)
        mbuf_fmt(out, "%s{\"id\":\"%s\",\"object\":\"model\",\"created\":1700000000,"
                      "\"owned_by\":\"mock\"}",
                 i ? "," : "", oai[i]);
    mbuf_str(out, "]}");
}

void mf_render_tags(mbuf *out)
{
    static const struct {
        const char *name, *family, *size;
        long long bytes;
    } tags[] = { { "llama3.2:latest", "llama", "3.2B", 2019393189LL },
                 { "qwen2.5:0.5b", "qwen2", "494.03M", 397821319LL } };
    mbuf_str(out, "{\"models\":[");
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++)
        mbuf_fmt(out, "%s{\"name\":\"%s\",\"model\":\"%s\",\"modified_at\":"
                      "\"2024-10-01T12:00:00.000000000Z\",\"size\":%lld,\"digest\":"
                      "\"%064zx\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\","
                      "\"family\":\"%s\",\"families\":[\"%s\"],\"parameter_size\":\"%s\","
                      "\"quantization_level\":\"Q4_K_M\"}}",
                 i ? "," : "", tags[i].name, tags[i].name, tags[i].bytes, i + 1, tags[i].family,
                 tags[i].family, tags[i].size);
    mbuf_str(out, "]}");
}
