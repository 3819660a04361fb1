/* Server-side TLS on GnuTLS, shared by every transport (TCP now, QUIC
 * later): one reference-counted context per config (certificates chosen
 * by SNI, priorities, ALPN, session ticket key, client CA) and a session
 * that works on memory buffers, so no socket code lives here.
 *
 * Lifetimes (docs/internals/lifetimes.md): a connection holds a reference
 * to the context it started with; a reload builds a new context and
 * publishes it (hx_tls_ctx_publish), new connections take the new one,
 * old ones keep theirs until they end. */
#ifndef HX_TLS_TLS_H
#define HX_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#include "config/config.h"

/* Plaintext handed to the recv callback at once: one TLS record. */
#define HX_TLS_RECORD_MAX 16384
/* The largest handshake message accepted (a client certificate chain
 * fits; GnuTLS's own default is 128 KiB). */
#define HX_TLS_HANDSHAKE_MAX (64 * 1024)
/* Non-fatal events (warning alerts, renegotiation attempts) a connection
 * may carry before the peer counts as abusive. */
#define HX_TLS_WARNINGS_MAX 16
/* Bounded texts of hx_tls_info. */
#define HX_TLS_NAME_MAX 255     /* an SNI host name (RFC 6066 limit) */
#define HX_TLS_SUBJECT_MAX 255  /* a client certificate's subject DN */
#define HX_TLS_ALPN_MAX 15      /* "http/1.1" is the longest we offer */
#define HX_TLS_SHA256_HEX 64
/* The session ticket key file: what gnutls_session_ticket_key_generate makes. */
#define HX_TLS_TICKET_KEY_LEN 64
/* A PEM file read for validation. */
#define HX_TLS_PEM_MAX (1024 * 1024)

typedef struct hx_tls_ctx hx_tls_ctx;
typedef struct hx_tls_conn hx_tls_conn;

typedef enum {
    HX_TLS_OK = 0,
    HX_TLS_CLOSED = 1,         /* the peer sent close_notify */
    HX_TLS_E_HANDSHAKE = -1,   /* no common version, cipher or protocol; bad handshake */
    HX_TLS_E_PEER_CERT = -2,   /* client certificate missing or not trusted */
    HX_TLS_E_PROTOCOL = -3,    /* a malformed or oversized record, an unexpected message */
    HX_TLS_E_IO = -4,          /* the send or recv callback refused */
    HX_TLS_E_NOMEM = -5,
    HX_TLS_E_STATE = -6,       /* send before the handshake, use after close or error */
} hx_tls_rc;

/* What a finished handshake negotiated. Strings are "" when absent. */
typedef struct {
    const char *version;                 /* "TLS1.3" (static) */
    const char *cipher;                  /* "AES-128-GCM" (static) */
    char alpn[HX_TLS_ALPN_MAX + 1];      /* "h2", "http/1.1" or "" */
    char sni[HX_TLS_NAME_MAX + 1];       /* the name the client asked for */
    bool resumed;                        /* by a session ticket */
    bool peer_verified;                  /* a client certificate was presented and verified */
    char peer_sha256[HX_TLS_SHA256_HEX + 1]; /* lower-case hex of its DER */
    char peer_subject[HX_TLS_SUBJECT_MAX + 1]; /* RFC 4514 DN; "" if longer than the bound */
} hx_tls_info;

/* The transport's side. send: ciphertext for the peer (copy it; 0 = ok,
 * -1 = fail). recv: plaintext from the peer, at most HX_TLS_RECORD_MAX at
 * a time, valid only during the call (a per-thread buffer: do not feed
 * another connection from inside it); 0 = ok, -1 = stop with HX_TLS_E_IO.
 * Neither may free the connection: return -1 and free it after the
 * hx_tls_conn_* call returns. */
typedef struct {
    int (*send)(void *ud, const void *data, size_t len);
    int (*recv)(void *ud, const void *data, size_t len);
} hx_tls_io;

/* ---- context ---- */

/* Loads every certificate, key, the CA file and the ticket key of t.
 * NULL on failure with a one-line reason in err (file names, no secrets).
 * Logs an event=security warning for a key file readable by others. */
hx_tls_ctx *hx_tls_ctx_new(const hx_cfg_tls *t, char *err, size_t errlen);
hx_tls_ctx *hx_tls_ctx_ref(hx_tls_ctx *c);
void hx_tls_ctx_unref(hx_tls_ctx *c);

/* Configures a session made by the caller (gnutls_init with GNUTLS_SERVER)
 * from c: credentials, priorities, ALPN, tickets, client certificate
 * request and verification. A QUIC stack calls this on its own session.
 * The session must not outlive c (hold a reference). 0 or a GnuTLS error. */
int hx_tls_ctx_session_setup(hx_tls_ctx *c, gnutls_session_t s);

/* The context new connections take: a reload publishes a new one. */
void hx_tls_ctx_publish(hx_tls_ctx *c);
/* A new reference to the published context, or NULL. */
hx_tls_ctx *hx_tls_ctx_current(void);

/* True when a file the context was built from (certificates, keys, CA,
 * ticket key) was replaced, changed or removed since: a listener polls
 * this to reload on renewal without a signal. Follows symlinks (a
 * certbot-style link swap counts). */
bool hx_tls_ctx_files_changed(const hx_tls_ctx *c);

/* Warns (event=security) about key files readable by group or others.
 * Returns how many it warned about. */
int hx_tls_warn_key_modes(const hx_cfg_tls *t);

/* A session's verified client certificate: lower-case hex SHA-256 of its
 * DER and its RFC 4514 subject ("" when longer than the bound). false
 * (both untouched) when there is none or it does not verify. */
bool hx_tls_session_peer(gnutls_session_t s, char sha256[HX_TLS_SHA256_HEX + 1],
                         char subject[HX_TLS_SUBJECT_MAX + 1]);

/* ---- connection ---- */

/* A server session over memory buffers; holds a reference to ctx. NULL
 * when out of memory. */
hx_tls_conn *hx_tls_conn_new(hx_tls_ctx *ctx, const hx_tls_io *io, void *ud);
void hx_tls_conn_free(hx_tls_conn *c);

/* Ciphertext from the peer: advances the handshake (answers go to
 * io->send) and hands any plaintext to io->recv. Consumes all of data;
 * GnuTLS buffers at most one partial record. HX_TLS_OK while the
 * connection is usable; after an error every call returns it again. */
hx_tls_rc hx_tls_conn_feed(hx_tls_conn *c, const void *data, size_t len);
/* Plaintext for the peer, encrypted into io->send. Only after the
 * handshake. */
hx_tls_rc hx_tls_conn_send(hx_tls_conn *c, const void *data, size_t len);
/* Sends close_notify; later sends fail with HX_TLS_E_STATE. */
hx_tls_rc hx_tls_conn_close(hx_tls_conn *c);

bool hx_tls_conn_ready(const hx_tls_conn *c);        /* handshake complete */
const hx_tls_info *hx_tls_conn_info(const hx_tls_conn *c); /* valid once ready */
/* The GnuTLS reason of the last error ("" if none), for logs. */
const char *hx_tls_conn_error(const hx_tls_conn *c);
const char *hx_tls_rc_text(hx_tls_rc rc);

#endif
