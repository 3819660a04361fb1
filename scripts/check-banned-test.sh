#!/bin/sh
# Proves scripts/check-banned.sh can fail: each planted line in a scratch
# tree must be found (exit 1, naming the line), and lines that only look
# alike (comments, literals, longer names, members, src/util/alloc.c itself)
# must not. `make test` runs it with the check (make check-banned).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hapax-banned-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
fails=0

# expect 0|1 'line of C' [file under src/]
expect() {
  want=$1 line=$2 file=${3:-src/x/planted.c}
  rm -rf "$TMP/src"
  mkdir -p "$TMP/src/x" "$TMP/src/util" "$(dirname "$TMP/$file")"
  printf '#include <stdlib.h>\nstatic int ok(void)\n{\n    return 0;\n}\n%s\n' "$line" >"$TMP/$file"
  set +e
  out=$("$HERE/check-banned.sh" "$TMP" 2>&1)
  rc=$?
  set -e
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: expected exit $want, got $rc, for $file: $line" >&2
    printf '%s\n' "$out" >&2
    fails=$((fails + 1))
  elif [ "$want" -eq 1 ] && ! printf '%s\n' "$out" | grep -q "^$file:6: "; then
    echo "FAIL: finding not reported as $file:6 for: $line" >&2
    printf '%s\n' "$out" >&2
    fails=$((fails + 1))
  fi
}

# Planted findings.
expect 1 'int f(const char *s) { return atoi(s); }'
expect 1 'long f(const char *s) { return atol (s); }'
expect 1 'void f(char *d) { sprintf(d, "%d", 1); }'
expect 1 'void f(char *d, const char *s) { strcpy(d, s); }'
expect 1 'void f(char *d, const char *s) { strcat(d, s); }'
expect 1 'void f(char *d) { gets(d); }'
expect 1 'char *f(char *s) { return strtok(s, ","); }'
expect 1 'void *f(void) { return malloc(4); }'
expect 1 'void *f(void) { return calloc(1, 4); }'
expect 1 'void *f(void *p) { return realloc(p, 8); }'
expect 1 'void f(void *p) { free(p); }'
expect 1 'char *f(const char *s) { return strdup(s); }'
expect 1 'static void (*const release)(void *) = free;'
expect 1 'void *f(void) { return malloc(4); }' src/util/buf.c
expect 1 'int f(const char *s) { return atoi(s); }' src/util/alloc.c
expect 1 'int x; /* a comment */ int f(const char *s) { return atoi(s); }'
expect 1 '#include "gateway/gateway.h"' src/http/planted.c
expect 1 '#  include "middleware/ctx.h"' src/http/planted.h
# Look-alikes that are fine.
expect 0 'void *f(void) { return malloc(4); }' src/util/alloc.c
expect 0 '/* atoi(s), sprintf(d, ...) and free(p) in a comment */'
expect 0 '// strcpy(d, s) in a line comment'
expect 0 'static const char m[] = "call free(p) or strtok(s)";'
expect 0 'void f(char *d, size_t n) { snprintf(d, n, "%d", 1); hx_free(d); }'
expect 0 'char *f(char *s, char **k) { return strtok_r(s, ",", k); }'
expect 0 'void f(struct vt *v, void *p) { v->free(p); }'
expect 0 'static const struct vt t = {.free = release};'
expect 0 'int f(int freed) { return freed; }'
expect 0 '#include "http/router.h"' src/http/planted.c
expect 0 '#include "middleware/ctx.h"' src/gateway/planted.c
expect 1 '#include "gateway/handlers.h"' src/http/server.c
expect 1 '#include "http/request.h"' src/tls/planted.c
expect 1 '#include "gateway/gateway.h"' src/tls/planted.h
expect 0 '#include "config/config.h"' src/tls/planted.c
expect 0 '#include "tls/tls.h"' src/http/planted.c

if [ "$fails" -ne 0 ]; then
  echo "check-banned-test: $fails case(s) failed" >&2
  exit 1
fi
echo "check-banned-test: all cases pass"
