#!/usr/bin/env bash
# HTTP/2 to clients: lb next to HAProxy and nginx, each serving h2c (HTTP/2 by prior knowledge) in front of the same
# two Bun backends (spoken to in HTTP/1.1), with h2load (Debian's nghttp2-client) as the client, on loopback.
#
#   bash bench/h2.sh                       # REPS=3, REQUESTS=100000, CONNS=50, STREAMS=10 (streams per connection)
#
# Pinned like bench/run.sh: the proxy on CPU 0, h2load and the backends on CPU 1, one proxy process/thread each. Each
# repetition runs lb, HAProxy and nginx in turn (rotating the order); the report gives median req/s and the ratios,
# written to bench/results/<YYYY-MM-DD>-h2.md and printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-3}
REQUESTS=${REQUESTS:-100000}
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-10}
BACKEND_PORTS=(9301 9302)
declare -A PORT=([lb]=8301 [haproxy]=8302 [nginx]=8303)
PROXIES=(lb haproxy nginx)

log() { printf '[h2 %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for tool in h2load haproxy nginx; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
    { log "missing $tool: apt-get install -y nghttp2-client haproxy nginx-light"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for port in "${BACKEND_PORTS[@]}"; do
  taskset -c 1 bun bench/backend.ts "$port" >/dev/null 2>&1 &
  PIDS+=($!)
done

mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  upstream backends {
    server 127.0.0.1:${BACKEND_PORTS[0]};
    server 127.0.0.1:${BACKEND_PORTS[1]};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]} http2;
    location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse safe
frontend fe
  bind 127.0.0.1:${PORT[haproxy]} proto h2
  default_backend be
backend be
  balance roundrobin
  server b1 127.0.0.1:${BACKEND_PORTS[0]}
  server b2 127.0.0.1:${BACKEND_PORTS[1]}
EOF

start_proxy() {
  case $1 in
    lb) taskset -c 0 bun src/main.ts --port "${PORT[lb]}" --host 127.0.0.1 --admin off --no-access-log --http2 on \
          "http://127.0.0.1:${BACKEND_PORTS[0]}" "http://127.0.0.1:${BACKEND_PORTS[1]}" >"$WORK/lb.log" 2>&1 & ;;
    haproxy) taskset -c 0 "$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 & ;;
    nginx) taskset -c 0 "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" >/dev/null 2>&1 & ;;
  esac
  PROXY_PID=$!
  for _ in $(seq 100); do
    curl -sf --http2-prior-knowledge "http://127.0.0.1:${PORT[$1]}/" >/dev/null && return 0
    sleep 0.1
  done
  log "$1 did not answer over HTTP/2: $(cat "$WORK/$1.log" 2>/dev/null | tail -3)"; exit 1
}

declare -A RESULTS=()
for rep in $(seq "$REPS"); do
  for i in "${!PROXIES[@]}"; do
    proxy=${PROXIES[$(((i + rep) % ${#PROXIES[@]}))]}
    start_proxy "$proxy"
    taskset -c 1 h2load -n 5000 -c "$CONNS" -m "$STREAMS" "http://127.0.0.1:${PORT[$proxy]}/" >/dev/null 2>&1 # warm-up
    out=$(taskset -c 1 h2load -n "$REQUESTS" -c "$CONNS" -m "$STREAMS" "http://127.0.0.1:${PORT[$proxy]}/")
    rps=$(awk '/^finished in/ { print $4 }' <<<"$out")
    failed=$(awk '/^requests:/ { print $10 }' <<<"$out")
    log "rep $rep $proxy: $rps req/s, $failed failed"
    RESULTS[$proxy]+="$rps "
    kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null || true
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
lb=$(median "${RESULTS[lb]}"); haproxy=$(median "${RESULTS[haproxy]}"); nginx=$(median "${RESULTS[nginx]}")
report=$(cat <<EOF
# HTTP/2 (h2c) to clients, $(date +%Y-%m-%d)

h2load -n $REQUESTS -c $CONNS -m $STREAMS (HTTP/2 by prior knowledge) against each proxy in front of two Bun backends
(HTTP/1.1 to them); the proxy pinned to CPU 0 (one process / one thread), h2load and the backends to CPU 1; $REPS
repetitions, medians. Commit $(git rev-parse --short HEAD), $(haproxy -v | head -1 | sed 's/ - https.*//'), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //').

| proxy | req/s (median) | every run |
|---|---|---|
| lb | $lb | ${RESULTS[lb]} |
| HAProxy | $haproxy | ${RESULTS[haproxy]} |
| nginx | $nginx | ${RESULTS[nginx]} |

lb ÷ HAProxy: $(awk -v a="$lb" -v b="$haproxy" 'BEGIN { printf "%.2f", a / b }')×, lb ÷ nginx: $(awk -v a="$lb" -v b="$nginx" 'BEGIN { printf "%.2f", a / b }')×
EOF
)
mkdir -p bench/results
printf '%s\n' "$report" >"bench/results/$(date +%Y-%m-%d)-h2.md"
printf '%s\n' "$report"
