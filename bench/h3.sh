#!/bin/bash
# HTTP/3 vs HTTP/2 vs HTTP/1.1 over TLS, the same hapax (one worker on CPU
# 0) in front of the mock (CPU 1, with the load generators). Debian's nginx
# 1.22 has no QUIC and its h2load none either, so the comparison is within
# hapax, each protocol driven by its usual tool: wrk (HTTP/1.1), h2load
# (HTTP/2) and tests/tools/h3client (HTTP/3, ngtcp2 + nghttp3).
# Scenarios:
#   chat    the chat path, 10 connections x 10 streams (h1: 100 connections)
#   conns   1000 connections, one request each at a time: req/s and peak RSS
#   zrtt    time to the first answer over a 50 ms round trip (UDP relay):
#           a new connection, a resumed one, a resumed one with 0-RTT
#   DURATION=5 SCENARIOS="chat zrtt" bench/h3.sh
#   ROUNDS=3 bench/h3.sh       # rounds in alternating order, medians
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10}
SCENARIOS=${SCENARIOS:-chat conns zrtt}
ROUNDS=${ROUNDS:-1}
MOCK_PORT=${MOCK_PORT:-19801}; PLAIN=${PLAIN:-19802}; TLS_PORT=${TLS_PORT:-19803}; H3_PORT=${H3_PORT:-19804}
HAPAX=${HAPAX:-build/hapax}; MOCK=build/mock-provider; H3=build/h3client
WORK=$(mktemp -d /tmp/hapax-h3-bench.XXXXXX)
need_tools wrk h2load openssl
make -s build >/dev/null
[ -x "$H3" ] || ninja -C build h3client >/dev/null
cleanup() { stop_pids; rm -rf "$WORK"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
chmod 600 "$WORK/key.pem"
chat_body "$WORK/body.json" 0

start_hapax() {
  start_mock_on 1 "$MOCK_PORT" 8 "$WORK/mock.out"
  cat > "$WORK/h.yaml" <<YML
server:
  host: 127.0.0.1
  port: $PLAIN
  workers: 1
  max_connections: 20000
  http2: {max_concurrent_streams: 128}
  tls: {enabled: true, port: $TLS_PORT, cert_file: $WORK/cert.pem, key_file: $WORK/key.pem}
  http3: {enabled: true, port: $H3_PORT, tls_cert_file: $WORK/cert.pem, tls_key_file: $WORK/key.pem,
          max_bi_streams_concurrent: 128}
logging: {level: warn}
$(llm_yaml "$MOCK_PORT")
YML
  taskset -c 0 "$HAPAX" --config "$WORK/h.yaml" > "$WORK/hapax.log" 2>&1 & HAPAX_PID=$!; pids+=($HAPAX_PID)
  wait_up "https://127.0.0.1:$TLS_PORT/health" && return
  echo "hapax did not start" >&2; cat "$WORK/hapax.log" >&2; exit 1
}

H='content-type: application/json'
h1_run() { # $1 conns
  taskset -c 1 wrk -t1 -c"$1" -d"${DURATION}s" --latency -s bench/chat.lua "https://127.0.0.1:$TLS_PORT" 2>&1 |
    awk '/RESULT/ {print}'
}
h2_run() { # $1 conns, $2 streams
  taskset -c 1 h2load -D "$DURATION" -c "$1" -m "$2" -d "$WORK/body.json" -H "$H" \
    "https://127.0.0.1:$TLS_PORT/v1/chat/completions" 2>&1 |
    awk '/finished in/ {rps=$4} /^requests:/ {ok=$8} /time for request:/ {mean=$6}
         END {printf "rps=%s succeeded=%s mean=%s\n", rps, ok, mean}'
}
h3_run() { # $1 conns, $2 streams
  taskset -c 1 "$H3" --quiet --bench --duration "$DURATION" --timeout $((DURATION + 60)) -n 3000000 \
    -c "$1" -s "$2" -m POST -H "$H" -d "$WORK/body.json" \
    127.0.0.1 "$H3_PORT" "https://localhost:$H3_PORT/v1/chat/completions" |
    python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]);
print("rps=%.0f p50=%.2fms p99=%.2fms ok=%d errors=%d" % (d["rps"], d["p50_ms"], d["p99_ms"], d["ok2xx"], d["errors"]))'
}

scenario_chat() {
  echo "== chat path, one worker (hapax on CPU 0, load on CPU 1)"
  echo "HTTP/1.1+TLS (wrk 100 conns): $(h1_run 100)"
  echo "HTTP/2 (h2load 10x10):        $(h2_run 10 10)"
  echo "HTTP/3 (h3client 10x10):      $(h3_run 10 10)"
}

scenario_conns() {
  echo "== 1000 connections, one stream each"
  local r0; r0=$(peak_rss_kb "$HAPAX_PID")
  echo "HTTP/3 (h3client 1000x1): $(h3_run 1000 1)  peak RSS $(peak_rss_kb "$HAPAX_PID") kB (before: $r0 kB)"
  echo "HTTP/2 (h2load 1000x1):   $(h2_run 1000 1)  peak RSS $(peak_rss_kb "$HAPAX_PID") kB"
}

scenario_zrtt() {
  echo "== time to the first answer over a 50 ms round trip (25 ms each way), GET /health, median of 9"
  python3 - "$H3" "$H3_PORT" "$WORK" <<'PY'
import json, os, statistics, subprocess, sys
sys.path.insert(0, "tests/integration")
from udp_relay import UdpRelay
h3, port, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sess = os.path.join(work, "bench.sess")
def once(args):
    with UdpRelay(port) as relay:
        relay.latency_ms = 25
        out = subprocess.run([h3] + args + ["127.0.0.1", str(relay.port), "https://localhost:%d/health" % port],
                             capture_output=True, text=True, timeout=30).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.strip()]
    return lines[-1]
rows = {"new connection (1-RTT handshake)": [], "resumed, no 0-RTT": [], "resumed, 0-RTT": []}
for _ in range(9):
    if os.path.exists(sess):
        os.unlink(sess)
    rows["new connection (1-RTT handshake)"].append(once(["--session", sess]))
    rows["resumed, no 0-RTT"].append(once(["--session", sess, "--no-early"]))
    rows["resumed, 0-RTT"].append(once(["--session", sess]))
for k, v in rows.items():
    ttfb = statistics.median(x.get("first_response_ms", 0) for x in v)
    hs = statistics.median(x.get("handshake_ms", 0) for x in v)
    early = sorted(set(x.get("early_data") for x in v))
    print("%-34s first answer %.1f ms, handshake %.1f ms, early data %s" % (k, ttfb, hs, ",".join(map(str, early))))
PY
}

start_hapax
for round in $(seq "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && echo "-- round $round"
  for s in $SCENARIOS; do "scenario_$s"; done
done
echo "peak RSS of hapax over the run: $(peak_rss_kb "$HAPAX_PID") kB"
