#include "provider/adapter.h"

#include <string.h>

#include "util/alloc.h"
#include "util/json.h"

void hx_up_request_init(hx_up_request *r)
{
    memset(r, 0, sizeof *r);
    r->method = "POST";
    hx_buf_init(&r->body, HX_UP_REQUEST_BODY_MAX);
}

void hx_up_request_free(hx_up_request *r)
{
    hx_free(r->url);
    r->url = NULL;
    hx_headers_free(&r->headers);
    hx_buf_free(&r->body);
}

const char *hx_api_name(hx_api api)
{
    static const char *const names[HX_API__COUNT] = {
        [HX_API_CHAT] = "chat completions", [HX_API_COMPLETIONS] = "completions",
        [HX_API_MESSAGES] = "messages", [HX_API_RESPONSES] = "responses",
        [HX_API_EMBEDDINGS] = "embeddings", [HX_API_COUNT_TOKENS] = "count_tokens",
    };
    return (unsigned)api < HX_API__COUNT ? names[api] : "unknown";
}

int hx_native_body(const hx_req *r, const char *model, hx_buf *out)
{
    hx_buf v;
    hx_buf_init(&v, HX_UP_REQUEST_BODY_MAX);
    int rc = hx_json_str(&v, model, strlen(model)) == 0 && r->body.len > 0
                 ? hx_json_replace_member(r->body.data, r->body.len, "model", v.data, v.len, out)
                 : -1;
    hx_buf_free(&v);
    return rc;
}

const hx_adapter *hx_adapter_find(const char *name)
{
    static const hx_adapter *const all[] = {&hx_adapter_openai, &hx_adapter_anthropic, &hx_adapter_ollama};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

char *hx_url_join(const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    while (*path == '/')
        path++;
    size_t pl = strlen(path);
    char *u = hx_malloc(bl + 1 + pl + 1);
    if (u == NULL)
        return NULL;
    memcpy(u, base, bl);
    u[bl] = '/';
    memcpy(u + bl + 1, path, pl + 1);
    return u;
}

int hx_content_text(json_object *content, hx_buf *out)
{
    if (content == NULL || json_object_is_type(content, json_type_null))
        return 0;
    if (json_object_is_type(content, json_type_string))
        return hx_buf_append(out, json_object_get_string(content), (size_t)json_object_get_string_len(content));
    if (!json_object_is_type(content, json_type_array))
        return 0;
    size_t n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++) {
        json_object *part = json_object_array_get_idx(content, i), *t, *txt;
        if (json_object_object_get_ex(part, "type", &t) && strcmp(json_object_get_string(t), "text") == 0 &&
            json_object_object_get_ex(part, "text", &txt)) {
            if (hx_buf_append(out, json_object_get_string(txt), (size_t)json_object_get_string_len(txt)) != 0)
                return -1;
        }
    }
    return 0;
}

int hx_json_append(hx_buf *out, json_object *o)
{
    size_t len = 0;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    return s ? hx_buf_append(out, s, len) : -1;
}
