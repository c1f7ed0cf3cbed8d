#!/usr/bin/env bash
# HTTP/2 to clients: lb next to HAProxy and nginx, each serving h2c (HTTP/2 by prior knowledge) in front of the same
# two Bun backends (spoken to in HTTP/1.1), with h2load (Debian's nghttp2-client) as the client, on loopback.
#
#   bash bench/h2.sh                       # REPS=3, REQUESTS=100000, CONNS=50, STREAMS=10 (streams per connection)
#   MODE=rapid-reset bash bench/h2.sh      # the CVE-2023-44487 flood instead (needs Debian's python3-h2), below
#
# Pinned like bench/run.sh: the proxy on CPU 0, h2load and the backends on CPU 1, one proxy process/thread each. Each
# repetition runs lb, HAProxy, nginx and lb's ceiling (bare) in turn (rotating the order); the report gives median req/s and the ratios,
# written to bench/results/<YYYY-MM-DD>-h2.md and printed.
#
# MODE=rapid-reset: backends that take 1 s per answer; against each proxy in turn, bench/rapid_reset.py opens and
# cancels streams on 2 connections for FLOOD_SECONDS (8) while curl asks for / every 0.4 s. Reported: the streams
# sent, how many reached a backend and how many were there at once, the proxy's CPU seconds, and the legitimate
# requests' slowest answer (1 s is the backend's own delay). Written to bench/results/<YYYY-MM-DD>-rapid-reset.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=${MODE:-load}
FLOOD_SECONDS=${FLOOD_SECONDS:-8}
REPS=${REPS:-3}
REQUESTS=${REQUESTS:-100000}
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-10}
PROXIES=(lb haproxy nginx)
LOG_TAG=h2
source bench/lib.sh
read -r -a FREE <<<"$(free_ports 6)"
BACKEND_PORTS=("${FREE[@]:0:2}")
declare -A PORT=([lb]=${FREE[2]} [haproxy]=${FREE[3]} [nginx]=${FREE[4]} [bare]=${FREE[5]})

[[ $MODE == load || $MODE == rapid-reset ]] || die "MODE is load or rapid-reset, not $MODE"
[[ $MODE == load ]] || /usr/bin/python3 -c "import h2" 2>/dev/null || die "missing python3-h2: apt-get install -y python3-h2"
[[ $MODE == rapid-reset ]] || command -v h2load >/dev/null || die "missing h2load: apt-get install -y nghttp2-client"
for tool in haproxy nginx; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || die "missing $tool: apt-get install -y haproxy nginx-light"
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

DELAY_MS=0
[[ $MODE == rapid-reset ]] && DELAY_MS=1000
for port in "${BACKEND_PORTS[@]}"; do
  taskset -c 1 bun bench/backend.ts "$port" "$DELAY_MS" >/dev/null 2>&1 &
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
    bare) taskset -c 0 bun bench/prototypes/bare-upstream.ts --http2 --port "${PORT[bare]}" \
            "http://127.0.0.1:${BACKEND_PORTS[0]}" "http://127.0.0.1:${BACKEND_PORTS[1]}" >"$WORK/bare.log" 2>&1 & ;;
    nginx) taskset -c 0 "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" >/dev/null 2>&1 & ;;
  esac
  PROXY_PID=$!
  for _ in $(seq 100); do
    curl -sf --http2-prior-knowledge "http://127.0.0.1:${PORT[$1]}/" >/dev/null && return 0
    sleep 0.1
  done
  die "$1 did not answer over HTTP/2: $(tail -3 "$WORK/$1.log" 2>/dev/null)"
}

# CPU seconds (user + system) of a process and its children (nginx's worker) so far.
cpu_seconds() {
  local ticks=0 pid
  for pid in "$1" $(pgrep -P "$1"); do ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
# The backends' requests (summed) and most at once (the larger) since the last call.
backend_stats() {
  local port requests=0 most=0 answered at_once
  for port in "${BACKEND_PORTS[@]}"; do
    read -r answered at_once <<<"$(curl -sf "http://127.0.0.1:$port/stats")"
    requests=$((requests + answered))
    ((at_once > most)) && most=$at_once
  done
  echo "$requests $most"
}

if [[ $MODE == rapid-reset ]]; then
  rows=""
  for proxy in "${PROXIES[@]}"; do
    start_proxy "$proxy"
    backend_stats >/dev/null
    cpu_before=$(cpu_seconds "$PROXY_PID")
    # One request every 0.4 s for as long as the flood lasts, each on its own (they take the backends' 1 s); a
    # failed one is written as status 000.
    (for _ in $(seq $((FLOOD_SECONDS * 5 / 2))); do
      curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 10 --http2-prior-knowledge "http://127.0.0.1:${PORT[$proxy]}/" || true &
      sleep 0.4
    done
    wait) >"$WORK/legit" &
    legit_pid=$!
    sent=$(taskset -c 1 /usr/bin/python3 bench/rapid_reset.py 127.0.0.1 "${PORT[$proxy]}" "$FLOOD_SECONDS")
    wait "$legit_pid"
    sleep 1.5 # the backends' last delayed answers
    cpu=$(awk -v a="$cpu_before" -v b="$(cpu_seconds "$PROXY_PID")" 'BEGIN { printf "%.2f", b - a }')
    read -r reached most <<<"$(backend_stats)"
    legit=$(wc -l <"$WORK/legit")
    reached=$((reached - legit))
    failed=$(awk '$1 != 200' "$WORK/legit" | wc -l)
    slowest=$(sort -k2 -n "$WORK/legit" | tail -1 | awk '{ print $2 }')
    log "$proxy: $sent streams sent, $reached reached a backend (at most $most at once), $cpu s CPU, $failed of $legit legitimate requests failed, slowest $slowest s"
    rows+="| $proxy | $sent | $reached | $most | $cpu | $failed of $legit | $slowest |"$'\n'
    kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null || true
  done
  report=$(cat <<EOF
# HTTP/2 rapid reset (CVE-2023-44487), $(date +%Y-%m-%d)

bench/rapid_reset.py for $FLOOD_SECONDS s on 2 h2c connections (GET then RST_STREAM at once, 100 pairs a write,
reconnecting when closed) against each proxy in front of two Bun backends that take 1 s per answer; curl asks for /
every 0.4 s meanwhile. The proxy pinned to CPU 0 (one process / one thread), the rest to CPU 1. Commit
$(git rev-parse --short HEAD), $(haproxy -v | head -1 | sed 's/ - https.*//'), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //').
"Reached" counts the cancelled streams a backend was asked for anyway (legitimate requests taken off); "at once" is
the most one backend held together.

| proxy | streams sent | reached a backend | at once | proxy CPU s | legitimate failed | slowest legitimate s |
|---|---|---|---|---|---|---|
$rows
EOF
)
  mkdir -p bench/results
  printf '%s\n' "$report" >"bench/results/$(date +%Y-%m-%d)-rapid-reset.md"
  printf '%s\n' "$report"
  exit 0
fi

# The load also runs lb's ceiling: a bare Bun.serve h2 handler on lb's own upstream client (bench/prototypes/bare-upstream.ts).
PROXIES+=(bare)
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

lb=$(median <<<"${RESULTS[lb]}"); haproxy=$(median <<<"${RESULTS[haproxy]}"); nginx=$(median <<<"${RESULTS[nginx]}"); bare=$(median <<<"${RESULTS[bare]}")
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
| bare (lb's ceiling: Bun.serve h2 + lb's upstream client, no lb logic) | $bare | ${RESULTS[bare]} |

lb ÷ HAProxy: $(awk -v a="$lb" -v b="$haproxy" 'BEGIN { printf "%.2f", a / b }')×, lb ÷ nginx: $(awk -v a="$lb" -v b="$nginx" 'BEGIN { printf "%.2f", a / b }')×, lb ÷ bare: $(awk -v a="$lb" -v b="$bare" 'BEGIN { printf "%.2f", a / b }')×
EOF
)
mkdir -p bench/results
printf '%s\n' "$report" >"bench/results/$(date +%Y-%m-%d)-h2.md"
printf '%s\n' "$report"
