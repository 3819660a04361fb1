#!/bin/sh
# One phase of `make test`, its output in a log file so that phases running
# at once do not interleave: prints one line when it starts and one when it
# ends (ok, or FAILED with the log's last lines and the log's path), plus
# the log lines matching SUMMARY (an extended regex; '' for none).
#
#   scripts/test-phase.sh LOGDIR NAME SUMMARY COMMAND [ARG]...
#
# A failed phase's name is added to LOGDIR/failed. Exit status: COMMAND's,
# or 0 with PHASE_EXIT0=1 (so that make starts the phases queued behind a
# failed one; `make test` then fails on LOGDIR/failed).
set -u
dir=$1 name=$2 summary=$3
shift 3
mkdir -p "$dir"
log=$dir/$name.log
start=$(date +%s)
echo "test: $name: started ($(date -u +%H:%M:%S); log: $log)"
"$@" >"$log" 2>&1
rc=$?
secs=$(($(date +%s) - start))
took="$((secs / 60))m$((secs % 60))s"
if [ "$rc" -eq 0 ]; then
  echo "test: $name: ok in $took"
  [ -z "$summary" ] || grep -E "$summary" "$log" | sed 's/^/    /'
else
  echo "test: $name: FAILED (exit $rc) after $took; last lines of $log:"
  tail -n 40 "$log" | sed 's/^/    /'
  echo "test: $name: FAILED; whole log: $log"
  echo "$name" >>"$dir/failed"
fi
[ "${PHASE_EXIT0:-}" = 1 ] && exit 0
exit "$rc"
