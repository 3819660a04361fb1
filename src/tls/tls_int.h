/* Shared by src/tls/ files only. */
#ifndef HX_TLS_TLS_INT_H
#define HX_TLS_TLS_INT_H

#include <gnutls/gnutls.h>

/* 0 when the peer sent no certificate or one that client_ca_file signed,
 * in its validity dates and with the TLS client purpose; -1 otherwise. */
int hx__tls_verify_client(gnutls_session_t s);

#endif
