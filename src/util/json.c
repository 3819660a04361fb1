#include "util/json.h"

#include <stdio.h>
#include <string.h>

int hx_json_str(hx_buf *out, const char *s, size_t len)
{
    if (hx_buf_append(out, "\"", 1) != 0)
        return -1;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            esc = tmp;
        }
        if (esc == NULL)
            continue;
        if (hx_buf_append(out, s + start, i - start) != 0 || hx_buf_append_str(out, esc) != 0)
            return -1;
        start = i + 1;
    }
    if (hx_buf_append(out, s + start, len - start) != 0)
        return -1;
    return hx_buf_append(out, "\"", 1);
}

int hx_json_cstr(hx_buf *out, const char *s)
{
    if (s == NULL)
        return hx_buf_append(out, "null", 4);
    return hx_json_str(out, s, strlen(s));
}

json_object *hx_json_parse(const char *s, size_t len)
{
    if (s == NULL || len > (size_t)0x7fffffff)
        return NULL;
    json_tokener *tok = json_tokener_new_ex(HX_JSON_MAX_DEPTH);
    if (tok == NULL)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, s, (int)len);
    if (o != NULL) {
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
            if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
                json_object_put(o);
                o = NULL;
                break;
            }
    } else if (json_tokener_get_error(tok) == json_tokener_continue) {
        o = json_tokener_parse_ex(tok, "", 1); /* ends a trailing number or literal */
    }
    json_tokener_free(tok);
    return o;
}
