# Shared by the benchmark scripts (run.sh, tls.sh, instructions.sh), which
# source it after `cd` to the repository root: the tools, the request body,
# hapax's llm block, the mock and nginx pinned to a CPU, waiting for a
# server, stopping what was started, peak RSS and the result arithmetic.
# Every process a script starts goes into `pids`, which stop_pids ends.
pids=()

# need_tools TOOL... : installs the benchmark tools when one is missing.
need_tools() {
  local p
  for p in "$@"; do
    command -v "$p" >/dev/null && continue
    scripts/install-deps.sh build
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light nghttp2-client openssl >/dev/null
    return
  done
}

# chat_body FILE STREAM(0|1): the benchmark's chat request into FILE.
chat_body() {
  printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]%s}' \
    "$([ "$2" = 1 ] && echo ',"stream":true')" > "$1"
}

# llm_yaml MOCK_PORT: hapax's llm block, the mock as an OpenAI provider.
llm_yaml() {
  printf 'llm: {provider: openai, model: gpt-4o-mini, api_key: sk-bench, endpoint: "http://127.0.0.1:%s/v1"}\n' "$1"
}

# start_mock_on CPU PORT CHUNKS OUT: the mock on CPU, output to OUT; sets
# MOCK_PID once it listens.
start_mock_on() {
  taskset -c "$1" "$MOCK" --port "$2" --chunks "$3" > "$4" &
  MOCK_PID=$!
  pids+=("$MOCK_PID")
  for _ in $(seq 50); do grep -q listening "$4" 2>/dev/null && return; sleep 0.1; done
  echo "mock did not start" >&2; exit 1
}

# The location every nginx server block uses: proxy to the mock, unbuffered.
NGINX_PROXY='location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }'

# start_nginx_on CPU DIR MOCK_PORT WORKER_CONNS SERVERS: one nginx worker on
# CPU with its files in DIR, upstream `mock`, and the SERVERS blocks; sets
# NGINX_PID (the master; its children serve).
start_nginx_on() {
  cat > "$2/nginx.conf" <<NGX
worker_processes 1;
daemon off;
error_log $2/nginx-error.log warn;
pid $2/nginx.pid;
events { worker_connections $4; }
http {
  access_log off;
  upstream mock { server 127.0.0.1:$3; keepalive 256; }
$5
}
NGX
  taskset -c "$1" nginx -c "$2/nginx.conf" -p "$2" &
  NGINX_PID=$!
  pids+=("$NGINX_PID")
}

# wait_up URL...: 0 once every URL answers (curl -k, any status for
# a URL prefixed with "any:", 2xx otherwise), 1 after 5 s.
wait_up() {
  local u ok
  for _ in $(seq 50); do
    ok=1
    for u in "$@"; do
      case $u in
      any:*) curl -sk "${u#any:}" >/dev/null || ok=0 ;;
      *) curl -skf "$u" >/dev/null || ok=0 ;;
      esac
    done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  return 1
}

# Ends every process started so far.
stop_pids() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

# Peak RSS (VmHWM, kB) of the processes that serve: a process's threads
# share one RSS, so hapax (its workers are threads) and the mock are one
# process each; nginx's master only forks and watches, its worker(s) serve,
# so nginx's figure is the sum over the master's children.
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
child_pids() { # the processes whose parent is $1
  cat /proc/"$1"/task/*/children 2>/dev/null || pgrep -P "$1" || true
}
workers_rss_kb() {
  local sum=0 w
  for w in $(child_pids "$1"); do sum=$((sum + $(peak_rss_kb "$w"))); done
  echo "$sum"
}

# field TEXT NAME: the number after NAME= in TEXT.
field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<< "$1"; }
# ratio A B: A/B to two places, n/a when B is 0.
ratio() { awk -v h="$1" -v n="$2" 'BEGIN{ if (n>0) printf "%.2f", h/n; else print "n/a"}'; }
