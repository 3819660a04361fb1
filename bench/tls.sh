#!/bin/bash
# HTTPS side by side: hapax vs nginx with the same certificate, both
# proxying to the mock (one worker each on CPU 0; the mock and the load
# generators on CPU 1). Scenarios:
#   h1      HTTP/1.1 over TLS, keep-alive (wrk, 50 connections)
#   h2      HTTP/2 over TLS (h2load, 10 connections x 100 streams)
#   hs      a new TLS connection per request (wrk, Connection: close): handshakes/s
#   idle    peak RSS holding 1000 idle TLS connections
#   streams peak RSS and req/s at 1000 concurrent HTTP/2 streams of 100 chunks
#   bench/tls.sh                      # all, 10 s per run
#   DURATION=5 SCENARIOS="h1 h2" bench/tls.sh
#   ROUNDS=5 DURATION=5 SCENARIOS="h1 h2" bench/tls.sh   # on a noisy host
# ROUNDS > 1 runs nginx and hapax that many times in alternating order and
# reports every round's ratio and their median: on a shared VM the speed of
# the machine moves by tens of percent between runs, so only runs taken
# side by side compare.
# Prints req/s, p50/p99 where the tool gives them, peak RSS (VmHWM) of the
# serving processes (hapax's process; nginx's worker) and hapax/nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10}
SCENARIOS=${SCENARIOS:-h1 h2 hs idle streams}
ROUNDS=${ROUNDS:-1}
MOCK_PORT=${MOCK_PORT:-19701}; NGINX_PORT=${NGINX_PORT:-19702}; HAPAX_PORT=${HAPAX_PORT:-19703}
HAPAX_PLAIN=${HAPAX_PLAIN:-19704}
HAPAX=${HAPAX:-build/hapax}; MOCK=build/mock-provider
WORK=$(mktemp -d /tmp/hapax-tls-bench.XXXXXX)
need_tools wrk nginx h2load openssl
make -s build >/dev/null
cleanup() { stop_pids; rm -rf "$WORK"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
chmod 600 "$WORK/key.pem"
chat_body "$WORK/body.json" 0; chat_body "$WORK/sbody.json" 1

start_all() { # $1 = mock chunks
  start_mock_on 1 "$MOCK_PORT" "$1" "$WORK/mock.out"
  start_nginx_on 0 "$WORK" "$MOCK_PORT" 8192 "\
  server {
    listen 127.0.0.1:$NGINX_PORT ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 128;
    keepalive_requests 100000;
    $NGINX_PROXY
  }"
  cat > "$WORK/h.yaml" <<YML
server:
  host: 127.0.0.1
  port: $HAPAX_PLAIN
  workers: 1
  max_connections: 20000
  http2: {max_concurrent_streams: 128}
  tls: {enabled: true, port: $HAPAX_PORT, cert_file: $WORK/cert.pem, key_file: $WORK/key.pem}
logging: {level: warn}
$(llm_yaml "$MOCK_PORT")
YML
  taskset -c 0 "$HAPAX" --config "$WORK/h.yaml" > "$WORK/hapax.log" 2>&1 & HAPAX_PID=$!; pids+=($HAPAX_PID)
  wait_up "https://127.0.0.1:$HAPAX_PORT/health" "any:https://127.0.0.1:$NGINX_PORT/" && return
  echo "servers did not start" >&2; exit 1
}

wrk_run() { # $1 port, $2 conns, extra args...
  local port=$1 conns=$2; shift 2
  taskset -c 1 wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s bench/chat.lua "$@" "https://127.0.0.1:$port" 2>&1 |
    awk '/RESULT/ {print}'
}
h2_run() { # $1 port, $2 body file, $3 conns, $4 streams
  taskset -c 1 h2load -D "$DURATION" -c "$3" -m "$4" -d "$2" -H 'content-type: application/json' \
    -H 'authorization: Bearer sk-bench' "https://127.0.0.1:$1/v1/chat/completions" 2>&1 |
    awk '/finished in/ {rps=$4} /^requests:/ {ok=$8} /time for request:/ {mean=$6} END {printf "rps=%s succeeded=%s mean=%s\n", rps, ok, mean}'
}

# pairs NGINX_CMD HAPAX_CMD: ROUNDS rounds of both, the order alternating;
# n and h get the last round's lines, rounds_out one line per round and
# the median ratio (when ROUNDS > 1).
pairs() {
  local i r rs=()
  rounds_out=""
  for i in $(seq "$ROUNDS"); do
    if (( i % 2 )); then n=$(eval "$1"); h=$(eval "$2"); else h=$(eval "$2"); n=$(eval "$1"); fi
    r=$(ratio "$(field "$h" rps)" "$(field "$n" rps)"); rs+=("$r")
    rounds_out+="  round $i: nginx $(field "$n" rps) hapax $(field "$h" rps) ratio $r"$'\n'
  done
  [ "$ROUNDS" -gt 1 ] || { rounds_out=""; return; }
  rounds_out+="  median ratio of $ROUNDS rounds: $(printf '%s\n' "${rs[@]}" | sort -n |
    awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}')"$'\n'
}

# report TITLE: the nginx and hapax lines ($n, $h) with their peak RSS and
# the req/s ratio (and the rounds), then stops the round.
report() {
  echo "== $1 =="
  echo "nginx $n rss=$(workers_rss_kb $NGINX_PID)kB"; echo "hapax $h rss=$(peak_rss_kb $HAPAX_PID)kB"
  echo "hapax/nginx req/s: $(ratio "$(field "$h" rps)" "$(field "$n" rps)")"
  printf '%s' "$rounds_out"; stop_pids
}

for s in $SCENARIOS; do
  case $s in
  h1)
    start_all 10
    pairs 'STREAM=0 wrk_run $NGINX_PORT 50' 'STREAM=0 wrk_run $HAPAX_PORT 50'
    report "HTTP/1.1 over TLS, keep-alive, 50 connections (${DURATION}s)" ;;
  h2)
    start_all 10
    pairs 'h2_run $NGINX_PORT "$WORK/body.json" 10 100' 'h2_run $HAPAX_PORT "$WORK/body.json" 10 100'
    report "HTTP/2 over TLS, 10 connections x 100 streams (${DURATION}s)" ;;
  hs)
    start_all 10
    pairs 'STREAM=0 wrk_run $NGINX_PORT 20 -H "Connection: close"' 'STREAM=0 wrk_run $HAPAX_PORT 20 -H "Connection: close"'
    echo "== a new TLS connection per request (handshakes), 20 connections (${DURATION}s) =="
    echo "nginx $n"; echo "hapax $h"
    echo "hapax/nginx handshakes/s: $(ratio "$(field "$h" rps)" "$(field "$n" rps)")"
    printf '%s' "$rounds_out"; stop_pids ;;
  idle)
    start_all 10
    for port in $NGINX_PORT $HAPAX_PORT; do
      taskset -c 1 python3 - "$port" <<'PY'
import socket, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
conns = []
for _ in range(1000):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    conns.append(ctx.wrap_socket(s, server_hostname="localhost"))
time.sleep(2)
PY
    done
    echo "== 1000 idle TLS connections (handshake done, no request) =="
    echo "nginx rss=$(workers_rss_kb $NGINX_PID)kB"; echo "hapax rss=$(peak_rss_kb $HAPAX_PID)kB"; stop_pids ;;
  streams)
    start_all 100
    pairs 'h2_run $NGINX_PORT "$WORK/sbody.json" 10 100' 'h2_run $HAPAX_PORT "$WORK/sbody.json" 10 100'
    report "1000 concurrent HTTP/2 streams over TLS (10 x 100), 100 chunks each (${DURATION}s)" ;;
  esac
done
