#include "tls/antireplay.h"

#include <gnutls/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "util/alloc.h"

struct hx_antireplay {
    gnutls_anti_replay_t ar;
    hx_replay_add_fn add;
    void *ud;
    atomic_uint_fast64_t registered, replays, errors;
};

/* GnuTLS's key is the start of its current anti-replay window (12 bytes:
 * seconds and nanoseconds, this process's own clock) followed by the
 * ClientHello's PSK binder. Only the binder names the first flight for
 * every instance: the register gets "0rtt:" and the hex SHA-256 of it. A
 * replay later than the window fails GnuTLS's ticket-age check, so the
 * window's start is not needed in the key. */
#define WINDOW_PREFIX 12

static int on_add(void *ptr, time_t exp_time, const gnutls_datum_t *key, const gnutls_datum_t *data)
{
    (void)data;
    hx_antireplay *a = ptr;
    unsigned char dig[32];
    const unsigned char *id = key->data;
    size_t idlen = key->size;
    if (idlen > WINDOW_PREFIX)
        id += WINDOW_PREFIX, idlen -= WINDOW_PREFIX;
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, id, idlen, dig) != 0) {
        atomic_fetch_add(&a->errors, 1);
        return GNUTLS_E_DB_ENTRY_EXISTS;
    }
    char k[5 + 64 + 1] = "0rtt:";
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        k[5 + 2 * i] = hex[dig[i] >> 4];
        k[5 + 2 * i + 1] = hex[dig[i] & 15];
    }
    k[5 + 64] = '\0';
    time_t now = time(NULL);
    int64_t ttl_ms = exp_time > now ? (int64_t)(exp_time - now) * 1000 : 1000;
    hx_replay_rc rc = a->add(a->ud, k, ttl_ms);
    if (rc == HX_REPLAY_NEW) {
        atomic_fetch_add(&a->registered, 1);
        return 0;
    }
    atomic_fetch_add(rc == HX_REPLAY_SEEN ? &a->replays : &a->errors, 1);
    return GNUTLS_E_DB_ENTRY_EXISTS; /* either way: no early data */
}

hx_antireplay *hx_antireplay_new(unsigned window_ms, hx_replay_add_fn add, void *ud)
{
    if (add == NULL)
        return NULL;
    hx_antireplay *a = hx_calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    if (gnutls_anti_replay_init(&a->ar) != 0) {
        hx_free(a);
        return NULL;
    }
    a->add = add;
    a->ud = ud;
    gnutls_anti_replay_set_window(a->ar, window_ms);
    gnutls_anti_replay_set_add_function(a->ar, on_add);
    gnutls_anti_replay_set_ptr(a->ar, a);
    return a;
}

void hx_antireplay_free(hx_antireplay *a)
{
    if (a == NULL)
        return;
    gnutls_anti_replay_deinit(a->ar);
    hx_free(a);
}

void hx_antireplay_enable(hx_antireplay *a, gnutls_session_t s)
{
    gnutls_anti_replay_enable(s, a->ar);
}

void hx_antireplay_get_stats(hx_antireplay *a, hx_antireplay_stats *st)
{
    st->registered = atomic_load(&a->registered);
    st->replays = atomic_load(&a->replays);
    st->errors = atomic_load(&a->errors);
}
