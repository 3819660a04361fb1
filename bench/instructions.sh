#!/bin/bash
# Instructions per request of two hapax builds, counted by callgrind: a
# figure that does not move with the machine's load, for "did this change
# make the hot path dearer?" when wall-clock runs are too noisy. Each build
# serves a warm-up, its counters are zeroed, then exactly N requests are
# counted (hapax's own code plus the libraries it calls: libuv, libcurl,
# json-c).
#   bench/instructions.sh OLD_BIN [NEW_BIN]   # NEW_BIN defaults to build/hapax
#   N=2000 STREAM=1 CHUNKS=100 bench/instructions.sh ../old/build/hapax
#   TLS=1 bench/instructions.sh ...   # HTTP/1.1 over TLS (H2=1: HTTP/2 over TLS)
# KEEP=1 keeps the callgrind files (their directory is printed) for
# callgrind_annotate.
# Needs valgrind and h2load (nghttp2-client; --h1 drives HTTP/1.1).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
OLD=${1:?usage: bench/instructions.sh OLD_BIN [NEW_BIN]}
NEW=${2:-build/hapax}
N=${N:-2000}
MOCK=${MOCK:-build/mock-provider}
MP=${MOCK_PORT:-19511}; HP=${HAPAX_PORT:-19512}
W=$(mktemp -d)
MOCKPID=""; P=""
cleanup() { [ -n "$P" ] && kill "$P" 2>/dev/null; [ -n "$MOCKPID" ] && kill "$MOCKPID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
[ "${KEEP:-0}" = 1 ] && { trap - EXIT; echo "callgrind files in $W"; }
scheme=http; tls=""
if [ "${TLS:-0}" = 1 ] || [ "${H2:-0}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
  chmod 600 "$W/key.pem"
  scheme=https; TP=$((HP + 2))
  tls="  tls: {enabled: true, port: $TP, cert_file: $W/cert.pem, key_file: $W/key.pem}"
fi
"$MOCK" --port "$MP" --chunks "${CHUNKS:-10}" > "$W/mock.out" & MOCKPID=$!
cat > "$W/h.yaml" <<YML
server:
  host: 127.0.0.1
  port: $HP
  workers: 1
  max_connections: 20000
$tls
logging: {level: info}
$(llm_yaml "$MP")
YML
chat_body "$W/body.json" "${STREAM:-0}"
url="http://127.0.0.1:$HP/v1/chat/completions"; proto=--h1
[ $scheme = https ] && url="https://127.0.0.1:$TP/v1/chat/completions"
[ "${H2:-0}" = 1 ] && proto="-m 10"
load() { # $1 = requests
  # shellcheck disable=SC2086
  h2load $proto -n "$1" -c 10 -d "$W/body.json" -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer sk-bench' "$url" 2>&1
}
for b in old new; do
  bin=$OLD; [ $b = new ] && bin=$NEW
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.$b.%p" "$bin" --config "$W/h.yaml" 2>"$W/$b.log" & P=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$HP/health" >/dev/null && break; sleep 0.2; done
  load 500 >/dev/null
  callgrind_control -z "$P" >/dev/null 2>&1
  ok=$(load "$N" | sed -n 's/.* \([0-9]*\) succeeded.*/\1/p')
  callgrind_control -d "$P" >/dev/null 2>&1
  sleep 1
  f=$(ls -t "$W"/cg.$b.$P* | head -1)
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
  echo "$b $bin: $((ir / N)) instructions per request ($ok of $N succeeded)"
  kill "$P"; wait "$P" 2>/dev/null || true; P=""
done
