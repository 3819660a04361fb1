#!/bin/sh
# Runs the libFuzzer targets of a fuzz build (see `make fuzz`):
#   tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
#   tests/fuzz/run.sh BUILD_DIR runs=N TARGET...
# For each target: every committed corpus input once (regressions), then
# SECONDS of fuzzing from that corpus, or N inputs from a fixed seed: the
# same inputs on every run, so `make test` is a repeatable gate while
# `make fuzz` explores. New inputs go to BUILD_DIR/fuzz-work
# (kept between runs, never committed); a crash leaves its input in
# BUILD_DIR/fuzz-artifacts/TARGET/ and fails the run. Exit status: 0 when
# every target stayed clean.
set -u
build=$1; secs=$2; shift 2
root=$(cd "$(dirname "$0")" && pwd)
failed=""
for t in "$@"; do
    bin="$build/tests/fuzz/fuzz_$t"
    corpus="$root/corpus/$t"
    work="$build/fuzz-work/$t"
    art="$build/fuzz-artifacts/$t"
    mkdir -p "$work" "$art"
    log="$build/fuzz-$t.log"
    case $t in
        http|request|upstream) dict="$root/dict/http.dict" ;;
        h2) dict="$root/dict/h2.dict" ;;
        h3) dict="$root/dict/h3.dict" ;;
        config) dict="$root/dict/config.dict" ;;
        *) dict="$root/dict/json.dict" ;;
    esac
    # 1. the committed corpus, each input once
    if ! "$bin" -runs=0 "$corpus" > "$log" 2>&1; then
        echo "fuzz $t: a committed corpus input fails (log: $log)"; tail -30 "$log"
        failed="$failed $t"; continue
    fi
    # 2. fuzzing, bounded in time, memory and per-input time
    case $secs in
        runs=*) bound="-runs=${secs#runs=} -seed=1" ;;
        *) bound="-max_total_time=$secs" ;;
    esac
    # shellcheck disable=SC2086
    if nice -n 10 "$bin" $bound -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="$art/" -print_final_stats=1 -dict="$dict" "$work" "$corpus" > "$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz $t: clean, ${runs:-?} inputs ($secs)"
    else
        echo "fuzz $t: FAILED (log: $log; the input is in $art/:" \
             "fix, then commit it to tests/fuzz/corpus/$t/ as a regression seed)"
        grep -E "ERROR|runtime error|fuzz check failed|Test unit written" "$log" | head -5
        failed="$failed $t"
    fi
done
[ -z "$failed" ] || { echo "fuzz: failed:$failed"; exit 1; }
