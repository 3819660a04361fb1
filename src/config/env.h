/* ${VAR} expansion of configuration values.
 *
 * Runs on one YAML scalar value at a time (never on keys or raw file text).
 *
 *   ${NAME}          value of NAME; an unset variable gives ""
 *   ${NAME:-text}    value of NAME, or `text` when NAME is unset OR empty;
 *                    `text` is expanded too and may contain ${...} and
 *                    balanced braces
 *   $$               a literal '$'
 *   $ + anything     kept as is: "$HOME", "$%", a trailing "$".
 *                    Bare $NAME is deliberately NOT expanded.
 *
 * NAME is [A-Za-z_][A-Za-z0-9_]*, case-sensitive. A variable's value is
 * itself expanded for ${...} references (FULL_URL="${HOST}/${VER}"), at
 * most HX_ENV_MAX_DEPTH levels deep; a cycle (A -> B -> A, X="a${X}") is an
 * error. Inside a variable's value "$$" stays "$$", and text that is not a
 * well-formed ${NAME} / ${NAME:-text} reference is kept literally, so a
 * secret such as "pa$$w0rd" or "sk-!@#$%^&*()" survives unchanged.
 *
 * Errors in the scalar itself: an unterminated "${" ("invalid syntax:
 * unterminated ${"), a bad name ("${}", "${1A}"), junk after the name. */
#ifndef HX_CONFIG_ENV_H
#define HX_CONFIG_ENV_H

#include <stdbool.h>
#include <stddef.h>

#define HX_ENV_MAX_DEPTH 10
/* Longest expanded value; longer is an error, not a truncation. */
#define HX_ENV_MAX_VALUE (1024 * 1024)

/* Returns the value of `name` or NULL when unset. */
typedef const char *(*hx_env_lookup_fn)(const char *name, void *ud);
/* Told the name of every variable looked up (for logging names only). */
typedef void (*hx_env_note_fn)(const char *name, void *ud);

typedef struct {
    hx_env_lookup_fn lookup; /* NULL: getenv */
    void *lookup_ud;
    hx_env_note_fn note;     /* optional */
    void *note_ud;
} hx_env;

typedef struct {
    size_t offset;  /* byte offset in the input of the offending "${" */
    bool nomem;     /* out of memory rather than a problem in the text */
    char msg[224];
} hx_env_error;

/* Expands in[0..len). On success returns 0 and sets *out (NUL-terminated,
 * free with hx_free), *out_len and *had_ref (true when the text held at
 * least one ${...} reference). On failure returns -1 and fills err; *out is
 * left NULL. env may be NULL (getenv, no note). */
int hx_env_expand(const char *in, size_t len, const hx_env *env, char **out, size_t *out_len,
                  bool *had_ref, hx_env_error *err);

/* True when the text contains something expansion could change ('$'). */
bool hx_env_needs_expand(const char *in, size_t len);

#endif
