/* The messages instances send each other through Redis (gateway/shared.c):
 * any bytes parse or are refused, and a parsed one points inside the input
 * with bounded numbers. */
#include <string.h>

#include "fuzz.h"
#include "gateway/gateway.h"

int hx_fuzz_peer(const uint8_t *data, size_t size)
{
    char *msg = malloc(size ? size : 1); /* an exact-size copy: ASan sees any read past it */
    if (msg == NULL)
        return 0;
    if (size)
        memcpy(msg, data, size);
    hx_peer_msg m;
    if (hx_gateway_peer_parse(msg, size, &m) == 0) {
        FUZZ_CHECK(m.kind == 'e' || m.kind == 'b' || m.kind == 'h');
        FUZZ_CHECK(m.a >= 0 && m.a < 1000000000 && m.b >= 0 && m.b < 1000000000);
        FUZZ_CHECK(m.name >= msg && m.name + m.name_len == msg + size && m.name_len > 0);
    }
    free(msg);
    return 0;
}
