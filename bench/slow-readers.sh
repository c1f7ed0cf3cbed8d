#!/usr/bin/env bash
# Memory held for slow readers: CLIENTS clients each GET a 4 MiB answer and read it slowly (RATE bytes a second for
# HOLD seconds), then drain it; the proxy's peak RSS meanwhile, lb next to HAProxy 2.6 (1 thread), interleaved, for a
# Content-Length answer (/cl) and a chunked one (/chunked). Loopback only; each proxy × answer run takes HOLD s plus
# the connects and the drain (about 25-40 s); the whole script about 3 minutes with the defaults.
#
#   bash bench/slow-readers.sh                          CLIENTS=2000 HOLD=15 RATE=4096 REPS=1
#   LB="dist/lb" bash bench/slow-readers.sh             lb as a binary instead of `bun src/main.ts`
#   PROXIES="lb" PATHS="/cl" bash bench/slow-readers.sh only these
#   OUT=bench/results/x.md bash bench/slow-readers.sh   write the report there too
#   RAW_DIR=/tmp/sr bash bench/slow-readers.sh          keep the proxies' logs there
#
# The proxy runs on CPU 0, the backend (bench/download-backend.ts: Bun.listen, writes only what the socket takes)
# and the clients (bench/slow_readers.py) on CPU 1. RSS is VmRSS of the proxy's one process, sampled every 100 ms
# by the client while it reads slowly (peak) and VmHWM at the end (which also covers the drain).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CLIENTS=${CLIENTS:-2000}
HOLD=${HOLD:-15}
RATE=${RATE:-4096}
REPS=${REPS:-1}
SIZE=${SIZE:-$((4 * 1024 * 1024))}
read -r -a LB_CMD <<<"${LB:-bun src/main.ts}"
read -r -a PROXIES <<<"${PROXIES:-lb haproxy}"
read -r -a PATHS <<<"${PATHS:-/cl /chunked}"
LOG_TAG=slow-readers
source bench/lib.sh
for tool in haproxy python3 taskset curl; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
# Each client costs the proxy two descriptors (client + backend), the client one.
ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) >= 2 * CLIENTS + 100)) || die "the open-file limit ($(ulimit -n)) is too low for $CLIENTS clients"

WORK=$(mktemp -d /tmp/lb-slow-readers.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${RAW_DIR:-} ]] && mkdir -p "$RAW_DIR" && cp "$WORK"/*.log "$RAW_DIR"/
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r BACKEND PORT <<<"$(free_ports 2)"
taskset -c 1 bun bench/download-backend.ts "$BACKEND" "$SIZE" 2>/dev/null &
PIDS+=($!)
wait_http "http://127.0.0.1:$BACKEND/" "backend" "$!"

cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $((CLIENTS + 500))
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse safe
frontend fe
  bind 127.0.0.1:$PORT
  default_backend be
backend be
  server b1 127.0.0.1:$BACKEND
EOF
haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy rejected its config"

start_proxy() {
  case $1 in
    lb) taskset -c 0 "${LB_CMD[@]}" --port "$PORT" --host 127.0.0.1 --admin off --no-access-log "http://127.0.0.1:$BACKEND" >>"$WORK/lb.log" 2>&1 & ;;
    haproxy) taskset -c 0 haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 & ;;
  esac
  PROXY_PID=$!
  wait_http "http://127.0.0.1:$PORT/" "$1" "$PROXY_PID"
}

declare -A RESULTS
for rep in $(seq "$REPS"); do
  n=${#PROXIES[@]}
  for path in "${PATHS[@]}"; do
    for i in $(seq 0 $((n - 1))); do
      proxy=${PROXIES[$(((i + rep) % n))]}
      start_proxy "$proxy"
      line=$(taskset -c 1 python3 bench/slow_readers.py 127.0.0.1 "$PORT" "$path" "$CLIENTS" "$HOLD" "$RATE" "$PROXY_PID" "$SIZE")
      kill "$PROXY_PID"
      wait "$PROXY_PID" 2>/dev/null || true
      log "rep $rep $proxy $path: $line"
      RESULTS[$proxy,$path]+="$line"$'\n'
    done
  done
done

field() { grep -o "$1=[0-9.]*" | cut -d= -f2; } # the values of one key=value field, one a line
mib() { awk '{ printf "%.0f", $1 / 1024 }'; }
OUT=${OUT:-}
{
  echo "\`bash bench/slow-readers.sh\` at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (with uncommitted changes in src/)'): $CLIENTS clients, each GET of a $((SIZE / 1024)) KiB answer read at $RATE B/s for ${HOLD}s, then drained; lb = \`${LB_CMD[*]}\`; proxy on CPU 0, backend and clients on CPU 1; $REPS repetition(s), medians."
  echo
  echo "| answer | proxy | RSS before MiB | peak RSS (slow phase) MiB | VmHWM MiB | per stream KiB | complete | drain s |"
  echo "|---|---|---|---|---|---|---|---|"
  for path in "${PATHS[@]}"; do
    for proxy in "${PROXIES[@]}"; do
      r=${RESULTS[$proxy,$path]}
      before=$(field rss_before_kib <<<"$r" | median)
      peak=$(field rss_peak_kib <<<"$r" | median)
      per=$(awk -v p="$peak" -v b="$before" -v c="$CLIENTS" 'BEGIN { printf "%.0f", (p - b) / c }')
      echo "| $path | $proxy | $(mib <<<"$before") | $(mib <<<"$peak") | $(field rss_hwm_kib <<<"$r" | median | mib) | $per | $(field complete <<<"$r" | median)/$CLIENTS | $(field drain_s <<<"$r" | median) |"
    done
  done
} | tee ${OUT:+"$OUT"}
