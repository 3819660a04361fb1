#!/bin/sh
# Proves scripts/analyze.sh can fail: a planted bug in a scratch tree (its
# own src/ and compile_commands.json) must make each analyzer exit 1 and
# name the line; a clean file, and a finding suppressed inline with a
# reason, must pass. `make analyze` runs it before the real analysis.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hapax-analyze-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
mkdir -p "$TMP/src/x" "$TMP/build"
cat >"$TMP/build/compile_commands.json" <<EOF
[{"directory": "$TMP/build", "file": "../src/x/planted.c",
  "command": "cc -I../src -std=c17 -Wall -Wextra -O2 -MD -MQ p.o -MF p.o.d -o p.o -c ../src/x/planted.c"}]
EOF
fails=0

# expect 0|1 ANALYZER 'C body from line 4 on' [LINE the finding names]
expect() {
  want=$1 tool=$2 body=$3 line=${4:-}
  printf '#include <stdlib.h>\n#include <string.h>\n\n%s\n' "$body" >"$TMP/src/x/planted.c"
  set +e
  out=$(ANALYZERS=$tool JOBS=1 "$HERE/analyze.sh" "$TMP/build" "$TMP" 2>&1)
  rc=$?
  set -e
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: $tool: expected exit $want, got $rc, for: $body" >&2
    printf '%s\n' "$out" >&2
    fails=$((fails + 1))
  elif [ -n "$line" ] && ! printf '%s\n' "$out" | grep -q "src/x/planted.c:$line:"; then
    echo "FAIL: $tool: finding not reported at planted.c:$line for: $body" >&2
    printf '%s\n' "$out" >&2
    fails=$((fails + 1))
  fi
}

NULLDEREF='int f(int *p);
int f(int *p)
{
    if (p == NULL)
        return *p;
    return 0;
}'
LEAK='void f(size_t n);
void f(size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        return;
    memset(p, 0, n + 1);
}'
CLEAN='int f(const int *p);
int f(const int *p)
{
    return p == NULL ? 0 : *p;
}'
SUPPRESSED='int f(void);
int f(void)
{
    int a[4] = {0};
    // cppcheck-suppress arrayIndexOutOfBounds ; planted: proves inline suppression works
    return a[4];
}'

# Planted findings.
expect 1 clang "$NULLDEREF" 8
expect 1 cppcheck "$NULLDEREF" 8
expect 1 clang "$LEAK" 11
expect 1 cppcheck "$LEAK" 11
expect 1 clang 'int f(void) { return undeclared; }'
# Clean code, and a finding suppressed inline.
expect 0 clang "$CLEAN"
expect 0 cppcheck "$CLEAN"
expect 0 cppcheck "$SUPPRESSED"
# A file found clean is cached; once changed it is analysed again.
expect 0 clang "$CLEAN"
expect 1 clang "$NULLDEREF" 8

if [ "$fails" -ne 0 ]; then
  echo "check-analyze-test: $fails case(s) failed" >&2
  exit 1
fi
echo "check-analyze-test: all cases pass"
