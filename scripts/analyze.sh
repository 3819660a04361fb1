#!/bin/sh
# Static analysis of src/ with a zero-finding baseline: clang's analyzer
# (`clang --analyze`, one run per src/ entry of BUILD/compile_commands.json,
# with that entry's own flags) and cppcheck. Any finding, or a file that does
# not compile under clang, fails the run (exit 1; 2: no compile database or
# no analyzer installed). `make analyze` runs it;
# `make test` runs that. scripts/check-analyze-test.sh proves it can fail.
#
#   scripts/analyze.sh BUILD_DIR [ROOT]   (ROOT: the tree holding src/)
#   ANALYZERS="clang cppcheck" (default) picks which to run; JOBS=2 (default)
#   is how many clang runs at once (cppcheck runs beside them).
#
# clang is the slow part (about 3.5 CPU minutes for src/), so a file found
# clean is remembered in BUILD/analyze-cache under a hash of its
# preprocessed text, the flags, the checkers and clang's version: the next
# run analyses only what changed. Findings are never cached.
# ANALYZE_CACHE=none turns the cache off.
#
# A false positive is silenced where it is, with the reason beside it:
#   cppcheck: `// cppcheck-suppress id` on the line before, or an entry with
#             a reason in scripts/cppcheck-suppressions.txt;
#   clang:    a small local change the analyzer can follow (the reason in
#             the commit); there is no clang baseline.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:?usage: $0 BUILD_DIR [ROOT]}
ROOT=$(cd "${2:-$HERE/..}" && pwd)
ANALYZERS=${ANALYZERS:-clang cppcheck}
JOBS=${JOBS:-2}
CLANG=${CLANG:-clang}
CPPCHECK=${CPPCHECK:-cppcheck}
DB=$BUILD/compile_commands.json
[ -f "$DB" ] || { echo "analyze: $DB missing (run meson setup first)" >&2; exit 2; }
for tool in $ANALYZERS; do
  case $tool in clang) bin=$CLANG ;; cppcheck) bin=$CPPCHECK ;; *) echo "analyze: unknown analyzer $tool" >&2; exit 2 ;; esac
  command -v "$bin" >/dev/null 2>&1 ||
    { echo "analyze: $bin not found (scripts/install-deps.sh test installs it)" >&2; exit 2; }
done
BUILD=$(cd "$BUILD" && pwd)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hapax-analyze.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

# Beyond clang's defaults (core, unix, deadcode, security.insecureAPI's
# default set): va_list misuse, float loop counters, strcpy-like calls and
# POSIX API misuse. Left out as noise: insecureAPI.DeprecatedOrUnsafeBuffer-
# Handling (flags every memcpy/snprintf) and nullability (no annotations).
CHECKERS="valist,security.FloatLoopCounter,security.insecureAPI.strcpy,optin.portability.UnixAPI"

# One line per src/ file: its directory, then the compile flags without the
# output, dependency and optimisation ones (-O changes nothing analysed).
"${PYTHON:-python3}" - "$DB" "$ROOT/src/" >"$TMP/cmds" <<'EOF'
import json, os, shlex, sys
db, src = sys.argv[1], sys.argv[2]
drop_next = {'-o', '-MF', '-MQ', '-MT'}
drop = {'-c', '-MD', '-MMD', '-Winvalid-pch', '-fdiagnostics-color=always'}
for e in json.load(open(db)):
    path = os.path.normpath(os.path.join(e['directory'], e['file']))
    if not path.startswith(src) or not path.endswith('.c'):
        continue
    args = e['arguments'] if 'arguments' in e else shlex.split(e['command'])
    out, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in drop_next:
            skip = True
        elif a not in drop and not a.startswith('-O') and a != e['file']:
            out.append(a)
    print(shlex.quote(e['directory']), shlex.quote(path), ' '.join(shlex.quote(a) for a in out))
EOF
[ -s "$TMP/cmds" ] || { echo "analyze: no src/ files in $DB" >&2; exit 2; }

rc=0
case " $ANALYZERS " in
*" cppcheck "*)
  # Include paths: the tree's own; system headers stay out (cppcheck's
  # library files model libc/POSIX). One configuration, as compiled.
  "$CPPCHECK" --quiet --std=c11 --enable=warning,performance,portability --library=posix \
    --inline-suppr --suppressions-list="$HERE/cppcheck-suppressions.txt" --error-exitcode=1 \
    -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DHX_VERSION='"0"' -I"$ROOT/src" -I"$ROOT" \
    --relative-paths="$ROOT" "$ROOT/src" >"$TMP/cppcheck.out" 2>&1 &
  cppcheck_pid=$!
  ;;
esac

case " $ANALYZERS " in
*" clang "*)
  i=0
  while read -r line; do
    i=$((i + 1))
    printf '%s\n' "$line" >"$TMP/c$i.cmd"
  done <"$TMP/cmds"
  CACHE=${ANALYZE_CACHE:-$BUILD/analyze-cache}
  NEWCACHE=$TMP/cache
  mkdir -p "$NEWCACHE"
  CLANG_ID=$("$CLANG" --version | head -n 1)
  # Each run: cd to the entry's directory; a file whose key is cached was
  # clean; otherwise analyse it and print what clang said (a non-zero exit,
  # a compile error, is a finding too).
  export CLANG CHECKERS CACHE NEWCACHE CLANG_ID
  ls "$TMP"/c*.cmd | xargs -P "$JOBS" -n 1 sh -c '
    eval "set -- $(cat "$1")"
    dir=$1 file=$2; shift 2
    cd "$dir" || exit 0
    key=none
    if [ "$CACHE" != none ]; then
      key=$({ echo "$CLANG_ID $CHECKERS $*"; "$CLANG" -E "$@" "$file" 2>&1; } | sha256sum | cut -c1-64)
      if [ -e "$CACHE/$key" ]; then touch "$NEWCACHE/$key"; exit 0; fi
    fi
    out=$("$CLANG" --analyze -Xanalyzer -analyzer-output=text \
          -Xanalyzer -analyzer-checker="$CHECKERS" -o /dev/null "$@" "$file" 2>&1) ||
      out="$out
analyze: clang failed on $file"
    if [ -n "$out" ]; then printf "%s\n" "$out"; else touch "$NEWCACHE/$key"; fi' sh \
    >"$TMP/clang.out" 2>&1 || true
  # Only this tree's clean files stay remembered.
  if [ "$CACHE" != none ]; then
    rm -rf "$CACHE" && mkdir -p "$CACHE" && rm -f "$NEWCACHE/none" &&
      find "$NEWCACHE" -type f -exec mv {} "$CACHE"/ \; 2>/dev/null || true
  fi
  if [ -s "$TMP/clang.out" ]; then
    cat "$TMP/clang.out"
    n=$(grep -c ": warning: " "$TMP/clang.out" || true)
    echo "analyze: clang --analyze: $n finding(s)" >&2
    rc=1
  else
    echo "analyze: clang --analyze: 0 findings in $(wc -l <"$TMP/cmds") files"
  fi
  ;;
esac

if [ -n "${cppcheck_pid:-}" ]; then
  if wait "$cppcheck_pid" && [ ! -s "$TMP/cppcheck.out" ]; then
    echo "analyze: cppcheck: 0 findings"
  else
    cat "$TMP/cppcheck.out"
    echo "analyze: cppcheck: findings above" >&2
    rc=1
  fi
fi
exit "$rc"
