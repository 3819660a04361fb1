#include "config/model_names.h"

#include <string.h>

#define LATEST_TAG ":latest"
#define LATEST_LEN (sizeof LATEST_TAG - 1)

/* Length of s without a trailing ":latest". */
static size_t untagged_len(const char *s)
{
    size_t n = strlen(s);
    if (n > LATEST_LEN && strcmp(s + n - LATEST_LEN, LATEST_TAG) == 0)
        return n - LATEST_LEN;
    return n;
}

bool hx_model_same(const char *configured, const char *asked, bool ollama)
{
    if (configured == NULL || asked == NULL || hx_model_is_wildcard(configured))
        return false;
    if (strcmp(configured, asked) == 0)
        return true;
    if (!ollama)
        return false;
    size_t a = untagged_len(configured), b = untagged_len(asked);
    return a == b && a > 0 && memcmp(configured, asked, a) == 0;
}

bool hx_model_is_wildcard(const char *alias)
{
    size_t n = alias ? strlen(alias) : 0;
    return n > 0 && alias[n - 1] == '*';
}

size_t hx_model_wildcard_match(const char *alias, const char *asked)
{
    if (!hx_model_is_wildcard(alias) || asked == NULL)
        return 0;
    size_t n = strlen(alias) - 1;
    return strncmp(alias, asked, n) == 0 ? n + 1 : 0;
}
