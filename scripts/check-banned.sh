#!/bin/sh
# Banned functions in our C code (src/); `make test` runs it (make check-banned).
#  1. no atoi/atol/atoll (no error report), sprintf/vsprintf/strcpy/strcat/gets
#     (no bound), strtok (hidden state): use hx_units_parse_int, snprintf,
#     hx_buf, memchr/strcspn;
#  2. no raw malloc/calloc/realloc/free/strdup/strndup outside
#     src/util/alloc.c: everything goes through hx_malloc etc., which the tests
#     can make fail (json-c's own allocations are its business);
#  3. layering: src/http/ (the protocol-neutral request and its adapters)
#     includes nothing from gateway/ or middleware/: modules keep their
#     per-request state in hx_req's context slots and the application
#     writes the access log through a hook; the application (routes,
#     handlers, middleware) is composed in src/app/.
#     src/http/ may include src/tls/ (the connection I/O layer, io_tls.c);
#     src/tls/ (shared by the TCP listener and later QUIC) includes only
#     config/, obs/, util/ and tls/ of ours: never http/ or anything above.
# Comments, string and character literals and #include lines are not calls:
# they are blanked first, so a comment may name a banned function.
# Usage: scripts/check-banned.sh [ROOT]  (default: this checkout). Exit 1 and
# one "file:line: what: text" per finding, 0 when clean.
set -eu

ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
[ -d "$ROOT/src" ] || { echo "check-banned: no $ROOT/src" >&2; exit 2; }

# Each line as "file:line:text" with comments and literals blanked.
STRIP='
FNR == 1 { incomment = 0 }
{
  out = ""; n = length($0); i = 1
  while (i <= n) {
    c = substr($0, i, 1); d = substr($0, i, 2)
    if (incomment) {
      if (d == "*/") { incomment = 0; i += 2 } else i++
      out = out " "; continue
    }
    if (d == "/*") { incomment = 1; out = out " "; i += 2; continue }
    if (d == "//") break
    if (c == "\"" || c == "\047") {
      q = c; out = out q; i++
      while (i <= n && substr($0, i, 1) != q) {
        if (substr($0, i, 1) == "\\") i++
        i++
      }
      out = out q; i++; continue
    }
    out = out c; i++
  }
  sub(/[ \t]+$/, "", out)
  if (out !~ /^[ \t]*#[ \t]*include/)
    print FILENAME ":" FNR ":" out
}'

ALWAYS='atoi|atol|atoll|sprintf|vsprintf|strcpy|strcat|gets|strtok'
ALLOC='malloc|calloc|realloc|free|strdup|strndup'
# Not a member (->free(, .free =) nor part of a longer name (hx_free, snprintf).
BEFORE='^[^:]*:[0-9]+:(.*[^[:alnum:]_.>])?'

TMP=$(mktemp "${TMPDIR:-/tmp}/hapax-banned.XXXXXX")
trap 'rm -f "$TMP"' EXIT INT TERM
(cd "$ROOT" && find src -type f \( -name '*.c' -o -name '*.h' \) -exec awk "$STRIP" {} +) |
  LC_ALL=C sort -t: -k1,1 -k2,2n >"$TMP"

found=$(
  grep -E "$BEFORE($ALWAYS)[[:space:]]*\(" "$TMP" | sed -E 's/^([^:]*:[0-9]+:)/\1 banned: /' || true
  # A call, or the name taken as a function pointer (`= free;`, `, free)`).
  grep -v '^src/util/alloc\.c:' "$TMP" | grep -E "$BEFORE($ALLOC)([^[:alnum:]_]|\$)" |
    sed -E 's/^([^:]*:[0-9]+:)/\1 raw allocation, use util\/alloc.h: /' || true
  (cd "$ROOT" && grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"(gateway|middleware)/' \
    src/http/*.c src/http/*.h 2>/dev/null) |
    sed -E 's/^([^:]*:[0-9]+:)/\1 layering, src\/http\/ includes no gateway\/ or middleware\/: /' || true
  (cd "$ROOT" && grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z_]+/' src/tls/*.c src/tls/*.h 2>/dev/null |
    grep -vE '#[[:space:]]*include[[:space:]]*"(config|obs|util|tls)/') |
    sed -E 's/^([^:]*:[0-9]+:)/\1 layering, src\/tls\/ includes only config\/, obs\/, util\/: /' || true
)

if [ -n "$found" ]; then
  printf '%s\n' "$found"
  echo "check-banned: $(printf '%s\n' "$found" | wc -l) finding(s); see scripts/check-banned.sh" >&2
  exit 1
fi
echo "check-banned: clean"
