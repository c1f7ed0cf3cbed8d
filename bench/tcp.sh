#!/usr/bin/env bash
# Layer 4 ([[tcp]]): lb against HAProxy `mode tcp` (1 thread) and nginx `stream` (1 worker), each pinned to CPU 0;
# the Bun backend and load (bench/tcp-peers.ts) share CPU 1. Two figures per proxy, runs interleaved:
#   stream: MB/s that 4 connections read from a backend streaming as fast as they take it
#   connect: connections/s, 50 clients each opening a connection, reading a 3-byte answer, closing, again
# "direct" is the backend without a proxy: the ceiling of the load generator and backend on CPU 1.
#   bash bench/tcp.sh                    SECONDS=5 REPS=2 by default; writes a Markdown table to stdout
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=tcp
source bench/lib.sh
SECONDS_EACH=${SECONDS_EACH:-5}
REPS=${REPS:-2}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

[[ -x dist/lb ]] || die "build dist/lb first (bun run build)"
read -r BACKEND LB HAPROXY NGINX LB_HTTP <<<"$(free_ports 5)"
taskset -c 1 bun bench/tcp-peers.ts backend "$BACKEND" & PIDS+=($!)

cat >"$WORK/lb.toml" <<TOML
[pools.bench]
backends = ["tcp://127.0.0.1:$BACKEND"]
health-interval = "1h"
[[tcp]]
listen = "127.0.0.1:$LB"
pool = "bench"
TOML
# With its access log, one line per connection, as an operator would run it (HAProxy and nginx log nothing here).
taskset -c 0 dist/lb --config "$WORK/lb.toml" --port "$LB_HTTP" --host 127.0.0.1 --admin off --log-level warn >"$WORK/lb.log" 2>&1 & PIDS+=($!)

cat >"$WORK/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 3s
  timeout client 60s
  timeout server 60s
listen bench
  bind 127.0.0.1:$HAPROXY
  server b 127.0.0.1:$BACKEND
CFG
taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 & PIDS+=($!)

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<CFG
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
stream {
  server {
    listen 127.0.0.1:$NGINX;
    proxy_pass 127.0.0.1:$BACKEND;
  }
}
CFG
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" -e "$WORK/nginx/error.log" >"$WORK/nginx.log" 2>&1 & PIDS+=($!)

# Each proxy answers a connection before the runs start.
for port in "$BACKEND" "$LB" "$HAPROXY" "$NGINX"; do
  for _ in $(seq 100); do
    [[ $(bun bench/tcp-peers.ts connect "$port" 0.2 1 | cut -d' ' -f1) -gt 0 ]] && break
    sleep 0.1
  done
done

declare -A STREAM CONNECT
for rep in $(seq "$REPS"); do
  for proxy in direct lb haproxy nginx; do
    case $proxy in direct) port=$BACKEND ;; lb) port=$LB ;; haproxy) port=$HAPROXY ;; nginx) port=$NGINX ;; esac
    mb=$(taskset -c 1 bun bench/tcp-peers.ts stream "$port" "$SECONDS_EACH" 4)
    read -r rate failed < <(taskset -c 1 bun bench/tcp-peers.ts connect "$port" "$SECONDS_EACH" 50)
    log "rep $rep $proxy: $mb MB/s, $rate connections/s ($failed failed)"
    STREAM[$proxy]+="$mb "
    CONNECT[$proxy]+="$rate "
  done
done

echo "| proxy (CPU 0) | stream MB/s (4 connections), median | connections/s (50 clients), median | runs (MB/s / connections/s) |"
echo "|---|---|---|---|"
for proxy in direct lb haproxy nginx; do
  echo "| $proxy | $(echo "${STREAM[$proxy]}" | median) | $(echo "${CONNECT[$proxy]}" | median) | ${STREAM[$proxy]}/ ${CONNECT[$proxy]} |"
done
