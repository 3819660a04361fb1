#!/bin/bash
# Side-by-side benchmark on this machine: the mock upstream direct, nginx
# proxy_pass to it, and hapax to it. Processes are pinned: the proxy under
# test on CPU 0, the mock and the load generator on CPU 1.
#
#   bench/run.sh            # every scenario, 10 s each
#   DURATION=5 bench/run.sh
#   SCENARIOS=h2c bench/run.sh   # only the HTTP/2 cleartext one (h1 = the two wrk ones)
#   SCENARIOS=state bench/run.sh # rate limiting on: in-process store vs Redis (state.backend)
#
# Prints req/s, p50/p99 latency, added latency versus direct, peak RSS of
# the serving processes and the hapax/nginx ratio. Needs wrk and nginx (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-1000}
CHUNKS=${CHUNKS:-100}
MOCK_PORT=${MOCK_PORT:-19501}
NGINX_PORT=${NGINX_PORT:-19502}
HAPAX_PORT=${HAPAX_PORT:-19503}
NGINX_H2_PORT=${NGINX_H2_PORT:-19504}
H2_CONNS=${H2_CONNS:-10}
H2_STREAMS=${H2_STREAMS:-100}   # concurrent streams per connection (h2load -m)
SCENARIOS=${SCENARIOS:-h1 h2c}
WORK=$(mktemp -d /tmp/hapax-bench.XXXXXX)
HAPAX=${HAPAX:-build/hapax}     # e.g. HAPAX=build-asan/hapax to hunt a crash

need_tools wrk nginx h2load
case " $SCENARIOS " in *" state "*) need_tools redis-server redis-cli ;; esac
REDIS_PORT=${REDIS_PORT:-19505}
make -s build >/dev/null
MOCK=build/mock-provider

cleanup() {
  stop_pids
  cp "$WORK/hapax.log" /tmp/hapax-bench-last.log 2>/dev/null || true  # kept for a look after a run
  rm -rf "$WORK"
}
trap cleanup EXIT

start_mock() { # $1 = chunks
  start_mock_on 1 "$MOCK_PORT" "$1" "$WORK/mock.out"
}

start_nginx() {
  start_nginx_on 0 "$WORK" "$MOCK_PORT" 4096 "\
  server { listen 127.0.0.1:$NGINX_PORT; $NGINX_PROXY }
  # HTTP/2 on cleartext with prior knowledge (h2c), as hapax's http2.h2c;
  # nginx ends an HTTP/2 connection after 1000 requests by default and
  # h2load does not reconnect: the limit is lifted as in tls.sh.
  server { listen 127.0.0.1:$NGINX_H2_PORT http2; http2_max_concurrent_streams 128; keepalive_requests 100000; $NGINX_PROXY }"
  sleep 0.5
}

start_hapax() { # $1: extra YAML (the state scenario's rate_limit and state sections)
  cat > "$WORK/hapax.yaml" <<YML
server: {host: 127.0.0.1, port: $HAPAX_PORT, workers: 1, max_connections: 20000, http2: {h2c: true, max_concurrent_streams: 128}}
logging: {level: warn}
$(llm_yaml "$MOCK_PORT")
${1:-}
YML
  taskset -c 0 "$HAPAX" --config "$WORK/hapax.yaml" 2> "$WORK/hapax.log" &
  HAPAX_PID=$!
  pids+=($HAPAX_PID)
  wait_up "http://127.0.0.1:$HAPAX_PORT/health" && return
  echo "hapax did not start" >&2; cat "$WORK/hapax.log" >&2; exit 1
}

# run_wrk NAME PORT CONNS STREAM → prints "NAME rps p50 p99 errors"
run_wrk() {
  local out
  out=$(STREAM=$4 taskset -c 1 wrk -t1 -c"$3" -d"${DURATION}s" --timeout 30s -s bench/chat.lua \
        "http://127.0.0.1:$2" 2>&1 | grep '^RESULT') || true
  echo "$1 $out"
}

scenario() { # $1 title, $2 conns, $3 stream, $4 chunks
  start_mock "$4"
  start_nginx
  start_hapax
  # warm-up
  STREAM=$3 taskset -c 1 wrk -t1 -c"$2" -d2s -s bench/chat.lua "http://127.0.0.1:$HAPAX_PORT" >/dev/null 2>&1 || true
  local d n h
  d=$(run_wrk direct "$MOCK_PORT" "$2" "$3")
  n=$(run_wrk nginx "$NGINX_PORT" "$2" "$3")
  h=$(run_wrk hapax "$HAPAX_PORT" "$2" "$3")
  local mrss nrss hrss; mrss=$(peak_rss_kb "$MOCK_PID"); nrss=$(workers_rss_kb "$NGINX_PID"); hrss=$(peak_rss_kb "$HAPAX_PID")
  echo
  echo "== $1 (${DURATION}s, $2 connections) =="
  printf "%-8s %10s %10s %10s %12s %10s %8s\n" target req/s p50_ms p99_ms added_p50_ms peak_rss errors
  local dp50; dp50=$(field "$d" p50_ms)
  for row in "$d" "$n" "$h"; do
    local name rps p50 p99 err rss added
    name=${row%% *}; rps=$(field "$row" rps); p50=$(field "$row" p50_ms); p99=$(field "$row" p99_ms); err=$(field "$row" errors)
    added=$(awk -v a="$p50" -v b="$dp50" 'BEGIN{printf "%.3f", a-b}')
    rss="${mrss}kB"; [ "$name" = nginx ] && rss="${nrss}kB"; [ "$name" = hapax ] && rss="${hrss}kB"
    printf "%-8s %10s %10s %10s %12s %10s %8s\n" "$name" "$rps" "$p50" "$p99" "$added" "$rss" "$err"
  done
  echo "hapax/nginx req/s ratio: $(ratio "$(field "$h" rps)" "$(field "$n" rps)")"
  echo "peak_rss: direct = the mock (it served all three runs), nginx = its worker(s), hapax = its process"
  cleanup_round
}

# run_h2load NAME PORT STREAM → prints "NAME rps=… errors=…" (h2load, prior knowledge)
run_h2load() {
  local body="$WORK/body.json" out rps ok total
  chat_body "$body" "$3"
  out=$(taskset -c 1 h2load -D "$DURATION" -c "$H2_CONNS" -m "$H2_STREAMS" -d "$body" \
        -H 'content-type: application/json' -H 'authorization: Bearer sk-bench' \
        "http://127.0.0.1:$2/v1/chat/completions" 2>&1) || true
  rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' <<< "$out")
  ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<< "$out")
  total=$(sed -n 's/^requests: \([0-9]*\) total.*/\1/p' <<< "$out")
  echo "$1 rps=${rps:-0} errors=$(( ${total:-0} - ${ok:-0} ))"
}

scenario_h2c() { # $1 title, $2 stream, $3 chunks
  start_mock "$3"
  start_nginx
  start_hapax
  local n h
  n=$(run_h2load nginx "$NGINX_H2_PORT" "$2")
  h=$(run_h2load hapax "$HAPAX_PORT" "$2")
  echo
  echo "== $1 (${DURATION}s, h2load: $H2_CONNS connections x $H2_STREAMS streams, h2c prior knowledge) =="
  printf "%-8s %10s %10s %8s\n" target req/s peak_rss errors
  printf "%-8s %10s %10s %8s\n" nginx "$(field "$n" rps)" "$(workers_rss_kb "$NGINX_PID")kB" "$(field "$n" errors)"
  printf "%-8s %10s %10s %8s\n" hapax "$(field "$h" rps)" "$(peak_rss_kb "$HAPAX_PID")kB" "$(field "$h" errors)"
  echo "hapax/nginx req/s ratio: $(ratio "$(field "$h" rps)" "$(field "$n" rps)")"
  cleanup_round
}

# Rate limiting on every request, its buckets in process and then in Redis
# (redis-server on CPU 1 with the mock and wrk): what sharing state costs.
scenario_state() {
  local limits='rate_limit: {enabled: true, requests_per_minute: 100000000, burst: 100000000, tokens_per_minute: 100000000}'
  start_mock 8
  start_hapax "$limits"
  STREAM=0 taskset -c 1 wrk -t1 -c"$CONNS" -d2s -s bench/chat.lua "http://127.0.0.1:$HAPAX_PORT" >/dev/null 2>&1 || true
  local m; m=$(run_wrk memory "$HAPAX_PORT" "$CONNS" 0)
  local mrss; mrss=$(peak_rss_kb "$HAPAX_PID")
  stop_pids
  taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --loglevel warning > "$WORK/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  start_mock 8
  start_hapax "$limits
state: {backend: redis, redis: {address: \"127.0.0.1:$REDIS_PORT\"}}"
  STREAM=0 taskset -c 1 wrk -t1 -c"$CONNS" -d2s -s bench/chat.lua "http://127.0.0.1:$HAPAX_PORT" >/dev/null 2>&1 || true
  local r; r=$(run_wrk redis "$HAPAX_PORT" "$CONNS" 0)
  local rrss; rrss=$(peak_rss_kb "$HAPAX_PID")
  echo
  echo "== rate limiting on, non-streaming chat (${DURATION}s, $CONNS connections): state in process vs Redis =="
  printf "%-8s %10s %10s %10s %10s %8s\n" store req/s p50_ms p99_ms peak_rss errors
  printf "%-8s %10s %10s %10s %10s %8s\n" memory "$(field "$m" rps)" "$(field "$m" p50_ms)" "$(field "$m" p99_ms)" "${mrss}kB" "$(field "$m" errors)"
  printf "%-8s %10s %10s %10s %10s %8s\n" redis "$(field "$r" rps)" "$(field "$r" p50_ms)" "$(field "$r" p99_ms)" "${rrss}kB" "$(field "$r" errors)"
  echo "redis/memory req/s ratio: $(ratio "$(field "$r" rps)" "$(field "$m" rps)")"
  echo "added p99: $(awk -v a="$(field "$r" p99_ms)" -v b="$(field "$m" p99_ms)" 'BEGIN{printf "%.3f ms", a-b}')"
  cleanup_round
}

cleanup_round() {
  stop_pids
  grep -v '"msg":"request"' "$WORK/hapax.log" >> /tmp/hapax-bench-last.log 2>/dev/null || true
}

echo "machine: $(nproc) CPUs, $(uname -r); hapax workers=1 on CPU 0, nginx worker_processes=1 on CPU 0, mock + wrk on CPU 1"
case " $SCENARIOS " in *" h1 "*)
  scenario "non-streaming chat completion" "$CONNS" 0 8
  scenario "streaming: $STREAMS concurrent streams of $CHUNKS chunks" "$STREAMS" 1 "$CHUNKS"
esac
case " $SCENARIOS " in *" state "*)
  scenario_state
esac
case " $SCENARIOS " in *" h2c "*)
  scenario_h2c "HTTP/2 cleartext: non-streaming chat completion" 0 8
  scenario_h2c "HTTP/2 cleartext: streaming chat completion of $CHUNKS chunks" 1 "$CHUNKS"
esac
