/* What every inbound API reads the same way. */
#include <string.h>

#include "gateway/inbound.h"
#include "util/fail.h"

int hx_in_read_model(json_object *body, bool required, hx_in_info *info, char *err, size_t errlen)
{
    json_object *m = NULL;
    info->model[0] = '\0';
    if (!json_object_object_get_ex(body, "model", &m) || json_object_is_type(m, json_type_null))
        return required ? hx_fail(err, errlen, "model: is required") : 0;
    if (!json_object_is_type(m, json_type_string))
        return hx_fail(err, errlen, "model: expected a %sstring", required ? "non-empty " : "");
    size_t n = (size_t)json_object_get_string_len(m);
    if (required && n == 0)
        return hx_fail(err, errlen, "model: expected a non-empty string");
    /* Auth and routing see exactly what the upstream gets: never cut short,
     * and no NUL where a C string would end early. */
    if (n >= sizeof info->model)
        return hx_fail(err, errlen, "model: name too long");
    if (memchr(json_object_get_string(m), '\0', n))
        return hx_fail(err, errlen, "model: must not contain NUL characters");
    memcpy(info->model, json_object_get_string(m), n + 1);
    return 0;
}
