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

extern int hx_fuzz_torture;

/* An invariant that holds whenever no allocation was made to fail. */
#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!hx_fuzz_torture && !(cond)) {                                            \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

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

#endif
