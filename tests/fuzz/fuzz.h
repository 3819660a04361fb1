/* Fuzz drivers: one function per target, bytes in, nothing out but a crash
 * (abort with a message) when an invariant breaks.
 *
 * The same drivers run under libFuzzer (fuzz_main.c, `make fuzz`) and under
 * the allocation-failure torture (torture.c, `make test`), where every
 * allocation in turn fails: there a driver must cope (no crash, no leak)
 * but cannot insist on results, so semantic checks are skipped while
 * hx_fuzz_torture is set. */
#ifndef HX_FUZZ_FUZZ_H
#define HX_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "http/router.h"

extern int hx_fuzz_torture;

/* A handler definition for a route naming `name` that runs fn, with the
 * flags of that name (config.h's HX_HANDLER_LIST) so that the middleware
 * apply as they do to the real handler. Valid until the next call with the
 * same name. */
const hx_handler_def *hx_fuzz_handler_def(hx_handler_fn fn, const char *name);

/* An invariant that holds whenever no allocation was made to fail. */
#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!hx_fuzz_torture && !(cond)) {                                            \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* Torture of a driver with a part that must not fail (the http target's
 * accept: a failed accept leaves the client in the backlog): the torture
 * sets hx_fuzz_fail_n and the driver arms the failure itself with
 * hx_fuzz_arm() once past that part. hx_fuzz_armed_at is the allocation
 * count when armed (0: never armed); hx_fuzz_hung counts runs that never
 * finished (a connection the server never closed). */
extern unsigned long hx_fuzz_fail_n;
extern int hx_fuzz_fail_sticky;
extern unsigned long hx_fuzz_armed_at;
extern int hx_fuzz_hung;
void hx_fuzz_arm(void);

/* One-time set-up of a driver (idempotent). */
void hx_fuzz_setup(void);
/* The config of the request targets (every middleware on, small limits),
 * loaded once with the middleware's process state. */
struct hx_config;
struct hx_config *hx_fuzz_mw_config(void);

int hx_fuzz_json(const uint8_t *data, size_t size);
int hx_fuzz_stream(const uint8_t *data, size_t size);
int hx_fuzz_inbound(const uint8_t *data, size_t size);
int hx_fuzz_config(const uint8_t *data, size_t size);
int hx_fuzz_http(const uint8_t *data, size_t size);
int hx_fuzz_request(const uint8_t *data, size_t size);
int hx_fuzz_h2(const uint8_t *data, size_t size);
int hx_fuzz_h3(const uint8_t *data, size_t size);
int hx_fuzz_upstream(const uint8_t *data, size_t size);
int hx_fuzz_peer(const uint8_t *data, size_t size);

#endif
