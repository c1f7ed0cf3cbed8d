#!/usr/bin/env bash
# lb and HAProxy in front of many backends, one after the other, pinned as bench/run.sh: the proxy on CPU 0, wrk and
# the backends on CPU 1. The backends are two bench/backend.ts processes listening on 0.0.0.0, each reached through
# N/2 loopback addresses (127.0.0.1, 127.0.0.2, …), so the proxies see N backends. Reports req/s, latency, the
# proxy's open file descriptors and RSS at the end of the load (bench/results/2026-12-07-many-backends.md).
#
#   bash bench/many-backends.sh                    # N=40 backends, C=1000 keep-alive clients, D=10 s each
#   N=100 C=50 bash bench/many-backends.sh
#   LB_ARGS="--policy hash --hash-key ip" bash bench/many-backends.sh
#
# A backend connection of lb's carries one client connection's requests only, so lb holds up to C × N of them;
# HAProxy (`balance roundrobin`, its default `http-reuse safe`) shares idle ones between clients.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-40}
C=${C:-1000}
D=${D:-10}
read -r -a LB_EXTRA <<<"${LB_ARGS:-}"
LOG_TAG=many-backends
source bench/lib.sh
for tool in wrk haproxy curl taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
((N >= 2 && N % 2 == 0 && N <= 508)) || die "N is an even number of backends from 2 to 508"
ulimit -n 65536 2>/dev/null || ulimit -n 20000 2>/dev/null || true
scratch_dir many-backends
read -r B1 B2 LP HP <<<"$(free_ports 4)"
for port in "$B1" "$B2"; do
  BACKEND_HOST=0.0.0.0 taskset -c 1 bun bench/backend.ts "$port" >/dev/null 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/" "backend $port" "$!"
done
URLS=()
SERVERS=""
for ((i = 1; i <= N / 2; i++)); do
  URLS+=("http://127.0.0.$i:$B1" "http://127.0.0.$i:$B2")
  SERVERS+="  server a$i 127.0.0.$i:$B1"$'\n'"  server b$i 127.0.0.$i:$B2"$'\n'
done

# The load against one proxy, then its fds and RSS as the load ends.
measure() { # name, pid, port
  log "$1: $N backends, $C clients, ${D}s"
  taskset -c 1 wrk -t2 -c"$C" -d"${D}s" "http://127.0.0.1:$3/" | grep -E "Latency|Requests/sec|Non-2xx|Socket errors"
  echo "$1 open fds: $(find "/proc/$2/fd" -mindepth 1 | wc -l), RSS $(awk '/^VmRSS/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$2/status")"
}

taskset -c 0 bun src/main.ts --port "$LP" --host 127.0.0.1 --admin off --no-access-log "${LB_EXTRA[@]}" "${URLS[@]}" \
  >"$WORK/lb.log" 2>&1 &
lb=$!
PIDS+=("$lb")
wait_http "http://127.0.0.1:$LP/" lb "$lb"
measure lb "$lb" "$LP"
kill "$lb"

cat >"$WORK/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend in
  bind 127.0.0.1:$HP
  default_backend pool
backend pool
  balance roundrobin
$SERVERS
CFG
taskset -c 0 haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
haproxy=$!
PIDS+=("$haproxy")
wait_http "http://127.0.0.1:$HP/" haproxy "$haproxy"
measure HAProxy "$haproxy" "$HP"
