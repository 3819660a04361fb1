/* 0-RTT anti-replay (RFC 8446 section 8; the HTTP/3 issue's single-use
 * register): TLS 1.3 early data is accepted at most once per resumption
 * ticket. GnuTLS checks the ticket's age against a window and asks a
 * register whether the ticket was seen; the register belongs to the
 * application (the state store: in memory now, shared across instances
 * later), reached through a callback so that src/tls/ depends on nothing
 * above it. Any failure of the register refuses the early data (the
 * handshake goes on as 1-RTT): early data is never accepted twice, at
 * worst not at all.
 *
 * The same object serves every TLS 1.3 stack of the process (the TCP
 * listener if it accepts early data, the QUIC listener): GnuTLS does the
 * TLS part of QUIC too. */
#ifndef HX_TLS_ANTIREPLAY_H
#define HX_TLS_ANTIREPLAY_H

#include <gnutls/gnutls.h>
#include <stdint.h>

typedef enum {
    HX_REPLAY_NEW = 0,    /* registered now: the early data may be used */
    HX_REPLAY_SEEN = 1,   /* already registered: a replay */
    HX_REPLAY_ERROR = -1, /* the register could not answer: refuse */
} hx_replay_rc;

/* Registers key (NUL-terminated, at most 80 bytes) for ttl_ms; called on
 * the handshake's thread, synchronously. */
typedef hx_replay_rc (*hx_replay_add_fn)(void *ud, const char *key, int64_t ttl_ms);

/* A second, shared register (instances sharing state): asked after the
 * local one said NEW, answering later through done(arg, rc) on the
 * caller's loop (possibly before it returns). Returns 0 when done will be
 * called, -1 when there is no shared register to ask. */
typedef void (*hx_replay_done_fn)(void *arg, hx_replay_rc rc);
typedef int (*hx_replay_shared_fn)(void *ud, const char *key, int64_t ttl_ms, hx_replay_done_fn done, void *arg);

typedef struct hx_antireplay hx_antireplay;

typedef struct {
    uint64_t registered; /* tickets whose early data was let through */
    uint64_t replays;    /* a ticket's early data seen again: refused */
    uint64_t errors;     /* the register failed: refused */
} hx_antireplay_stats;

/* window_ms: how far a client's idea of the ticket's age may be off
 * (GnuTLS's anti-replay window). NULL when out of memory. */
hx_antireplay *hx_antireplay_new(unsigned window_ms, hx_replay_add_fn add, void *ud);
void hx_antireplay_free(hx_antireplay *a);
/* On a server session made with GNUTLS_ENABLE_EARLY_DATA. */
void hx_antireplay_enable(hx_antireplay *a, gnutls_session_t s);
void hx_antireplay_get_stats(hx_antireplay *a, hx_antireplay_stats *st);

#endif
