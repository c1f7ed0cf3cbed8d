#!/usr/bin/env bash
# Throughput and latency of lb next to nginx and HAProxy, all in front of the same Bun backends, on loopback.
#
#   bash bench/run.sh                      # the whole comparison, about 3 minutes
#   DURATION=5s bash bench/run.sh          # shorter runs
#   RESULTS_DIR=/tmp/lb-bench bash bench/run.sh   # keep every raw wrk output, config and log there
#
# Each proxy in turn (lb without access log, lb with a JSON access log to /dev/null, nginx 1 worker, HAProxy 1
# thread) is pinned to CPU 0; wrk and the backends share CPU 1. A direct-to-backend row is the baseline.
# See bench/README.md for what the columns mean.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
BACKENDS=${BACKENDS:-3}
ACCESS_LOG=${ACCESS_LOG:-/dev/null}   # where the logging lb run writes its access lines
# (conns path) pairs, measured in this order for every proxy
RUNS=("50 /" "200 /" "50 /big")

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $DURATION =~ ^[0-9]+s$ && $WARMUP =~ ^[0-9]+s$ ]] || die "DURATION and WARMUP are whole seconds, e.g. 10s"

# ---------------------------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || need+=(haproxy)
if ((${#need[@]})); then
  log "installing ${need[*]} (the packaged services are not started; this script runs its own instances)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light haproxy >/dev/null
fi
command -v bun >/dev/null || die "bun is not installed (npm install -g bun@1.4.5)"
for tool in curl ss taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[[ -d node_modules ]] || bun install --frozen-lockfile
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

# Proxy on CPU 0, load generator + backends on CPU 1 (needs two cores; otherwise nothing is pinned).
if (($(nproc) >= 2)); then
  PIN_PROXY=(taskset -c 0)
  PIN_LOAD=(taskset -c 1)
else
  log "warning: fewer than 2 CPUs, running unpinned"
  PIN_PROXY=()
  PIN_LOAD=()
fi

# ---------------------------------------------------------------------------------------------------------------
# Cleanup: every process this script starts is remembered by pid and ended at exit.
# ---------------------------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/lb-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()

# Drops a pid from PIDS once its process has been waited for, so cleanup never signals a recycled pid.
forget() {
  local pid=$1 kept=() p
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; forget "$pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}

cleanup() {
  local status=$?
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
  if [[ -n ${RESULTS_DIR:-} ]]; then
    mkdir -p "$RESULTS_DIR" && cp -r "$WORK"/. "$RESULTS_DIR"/ && log "raw output kept in $RESULTS_DIR"
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free ports on 127.0.0.1, all held open at once so they are distinct.
free_ports() {
  bun -e '
    const n = Number(process.argv[1]);
    const held = Array.from({ length: n }, () => Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }));
    console.log(held.map((s) => s.port).join(" "));
    for (const s of held) s.stop(true);
  ' "$1"
}

wait_http() { # url, name, pid — until the url answers 200 (at most 15 s)
  local url=$1 name=$2 pid=$3
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during startup (logs in $WORK)"
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]]; then return 0; fi
    sleep 0.1
  done
  die "$name did not answer 200 on $url within 15 s"
}

# Checks that a proxy really forwards: the small body names a backend, /big is exactly 64 KiB.
check_proxy() { # base url, name
  local base=$1 name=$2 body size
  body=$(curl -s --max-time 2 "$base/")
  [[ $body == "hello from "* ]] || die "$name: unexpected body from $base/: ${body:0:80}"
  size=$(curl -s --max-time 2 -o /dev/null -w '%{size_download}' "$base/big")
  [[ $size == 65536 ]] || die "$name: /big returned $size bytes, want 65536"
}

read -r -a PORTS <<<"$(free_ports $((BACKENDS + 1)))"
BACKEND_PORTS=("${PORTS[@]:0:BACKENDS}")
PROXY_PORT=${PORTS[BACKENDS]}
BACKEND_URLS=()
DPORT_FILTER=""
for p in "${BACKEND_PORTS[@]}"; do
  BACKEND_URLS+=("http://127.0.0.1:$p")
  DPORT_FILTER+="${DPORT_FILTER:+ or }dport = :$p"
done

# "busy total" per CPU from /proc/stat, for a busy% over an interval: prints "busy0 total0 busy1 total1".
cpu_ticks() {
  awk '$1 == "cpu0" || $1 == "cpu1" { t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%d %d ", t - $5 - $6, t }' /proc/stat
}
busy_pct() { # before, after (cpu_ticks output), cpu index
  awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { split(a, x, " "); split(b, y, " ");
    i = c * 2 + 1; dt = y[i + 1] - x[i + 1]; printf "%.0f", (dt > 0 ? (y[i] - x[i]) * 100 / dt : 0) }'
}

upstream_established() { ss -Htn state established "( $DPORT_FILTER )" | wc -l; }
upstream_time_wait() { ss -Htn state time-wait "( $DPORT_FILTER )" | wc -l; }

# ---------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------
for p in "${BACKEND_PORTS[@]}"; do
  "${PIN_LOAD[@]}" bun bench/backend.ts "$p" >"$WORK/backend-$p.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$p/" "backend $p" "$!"
done
log "backends on ports ${BACKEND_PORTS[*]} (CPU 1), proxies on port $PROXY_PORT (CPU 0), runs of $DURATION"

# ---------------------------------------------------------------------------------------------------------------
# Proxies: each start_* starts one proxy in the foreground (background job) and sets PROXY_PID.
# ---------------------------------------------------------------------------------------------------------------
PROXY_PID=""

start_lb() { # extra lb args...
  "${PIN_PROXY[@]}" bun src/main.ts --port "$PROXY_PORT" --host 127.0.0.1 "$@" "${BACKEND_URLS[@]}" \
    2>"$WORK/$CURRENT.stderr.log" &
  PROXY_PID=$!
}

start_lb_nolog() { start_lb --no-access-log >/dev/null; }
start_lb_log() { start_lb --log-format json >"$ACCESS_LOG"; }

start_nginx() {
  local dir=$WORK/nginx servers="" p
  mkdir -p "$dir/tmp" && chmod 1777 "$dir/tmp"
  for p in "${BACKEND_PORTS[@]}"; do servers+="    server 127.0.0.1:$p;"$'\n'; done
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;      # default 1000: would make wrk reconnect every 1000 requests
  upstream backends {
$servers    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 16k;        # with these a 64 KiB answer is held in memory, never in a temp file
      proxy_buffers 8 16k;
    }
  }
}
EOF
  "${PIN_PROXY[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$WORK/$CURRENT.stderr.log" &
  PROXY_PID=$!
}

start_haproxy() {
  local dir=$WORK/haproxy i=0 p
  mkdir -p "$dir"
  {
    echo "global"
    echo "  nbthread 1"
    echo "  maxconn 8000"
    echo "  pidfile $dir/haproxy.pid"
    echo "defaults"
    echo "  mode http"
    echo "  timeout connect 5s"
    echo "  timeout client 30s"
    echo "  timeout server 30s"
    echo "  http-reuse always"
    echo "frontend fe"
    echo "  bind 127.0.0.1:$PROXY_PORT"
    echo "  default_backend be"
    echo "backend be"
    echo "  balance roundrobin"
    for p in "${BACKEND_PORTS[@]}"; do echo "  server b$((i += 1)) 127.0.0.1:$p"; done
  } >"$dir/haproxy.cfg"
  "$HAPROXY" -c -q -f "$dir/haproxy.cfg" || die "haproxy rejected $dir/haproxy.cfg"
  "${PIN_PROXY[@]}" "$HAPROXY" -db -f "$dir/haproxy.cfg" 2>"$WORK/$CURRENT.stderr.log" &
  PROXY_PID=$!
}

# ---------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------
ROWS=()          # tab-separated result rows
declare -A RPS   # "<proxy>|<conns>|<path>" → requests/s, for the access-log comparison

# wrk's latency figures come as 1.23ms / 456.00us / 1.02s; print them in ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.0f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.0f", v * 1000 }
    else printf "%s", v }'
}

measure() { # proxy name, base url, conns, path
  local name=$1 base=$2 conns=$3 path=$4
  local out="$WORK/wrk-${name}-c${conns}-${path//\//_}.txt"
  local tw_before tw_after upstream rps p50 p99 non2xx sockerr cpu_before cpu_after cpu0 cpu1
  tw_before=$(upstream_time_wait)
  cpu_before=$(cpu_ticks)
  "${PIN_LOAD[@]}" wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency "$base$path" >"$out" 2>&1 &
  local wrk_pid=$!
  PIDS+=("$wrk_pid")
  # Upstream connections halfway through the run: how many sockets the proxy holds open to the backends.
  sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 2 }')"
  upstream=$(upstream_established)
  wait "$wrk_pid" || die "wrk failed: $(cat "$out")"
  forget "$wrk_pid"
  cpu_after=$(cpu_ticks)
  cpu0=$(busy_pct "$cpu_before" "$cpu_after" 0)
  cpu1=$(busy_pct "$cpu_before" "$cpu_after" 1)
  tw_after=$(upstream_time_wait)
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  sockerr=$(awk -F'[ ,]+' '/Socket errors:/ { printf "%d/%d/%d/%d", $5, $7, $9, $11 }' "$out")
  ROWS+=("$name	$conns	$path	$rps	$p50	$p99	${non2xx:-0}	${sockerr:-0/0/0/0}	$upstream	$((tw_after - tw_before))	$cpu0%	$cpu1%")
  RPS["$name|$conns|$path"]=$rps
  log "$(printf '%-10s c=%-4s %-5s %8s req/s  p50 %s ms  p99 %s ms  non-2xx %s  socket errors %s' \
    "$name" "$conns" "$path" "$rps" "$p50" "$p99" "${non2xx:-0}" "${sockerr:-0/0/0/0}")"
}

bench_target() { # name, base url
  local name=$1 base=$2 run conns path
  check_proxy "$base" "$name"
  # Warm-up (JIT, connection pools), not measured.
  "${PIN_LOAD[@]}" wrk -t"$THREADS" -c50 -d"$WARMUP" "$base/" >"$WORK/warmup-$name.txt" 2>&1 || true
  for run in "${RUNS[@]}"; do
    read -r conns path <<<"$run"
    measure "$name" "$base" "$conns" "$path"
  done
  ss -s >"$WORK/ss-after-$name.txt"
}

bench_proxy() { # name, start function
  CURRENT=$1
  log "starting $1"
  "$2"
  PIDS+=("$PROXY_PID")
  wait_http "http://127.0.0.1:$PROXY_PORT/" "$1" "$PROXY_PID"
  bench_target "$1" "http://127.0.0.1:$PROXY_PORT"
  stop_pid "$PROXY_PID"
  # Let the next proxy bind the same port, and give the closed connections a moment.
  sleep 1
}

START=$SECONDS
CURRENT=direct
log "direct to one backend (baseline)"
bench_target direct "${BACKEND_URLS[0]}"
bench_proxy lb start_lb_nolog
bench_proxy lb+log start_lb_log
bench_proxy nginx start_nginx
bench_proxy haproxy start_haproxy

# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------
echo
echo "lb benchmark · $(date -u +%Y-%m-%dT%H:%M:%SZ) · bun $(bun --version) · $(nproc) CPUs · wrk -t$THREADS -d$DURATION --latency · $BACKENDS Bun backends"
echo "proxy pinned to CPU 0, wrk + backends to CPU 1; $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo
{
  printf 'proxy\tconns\tpath\treq/s\tp50 ms\tp99 ms\tnon-2xx\tsock err c/r/w/t\tupstream conns\tupstream TIME_WAIT +\tCPU0 busy\tCPU1 busy\n'
  printf '%s\n' "${ROWS[@]}"
} | column -t -s $'\t'
echo
echo "access log cost (lb with --log-format json > $ACCESS_LOG vs --no-access-log, same run):"
for run in "${RUNS[@]}"; do
  read -r conns path <<<"$run"
  off=${RPS["lb|$conns|$path"]:-0}
  on=${RPS["lb+log|$conns|$path"]:-0}
  awk -v c="$conns" -v p="$path" -v off="$off" -v on="$on" \
    'BEGIN { printf "  c=%-4s %-5s %8d → %8d req/s  (%+.1f%%)\n", c, p, off, on, off ? (on - off) * 100 / off : 0 }'
done
if [[ -f $ACCESS_LOG ]]; then
  echo "  $ACCESS_LOG holds $(wc -l <"$ACCESS_LOG") access lines ($(du -h "$ACCESS_LOG" | cut -f1))"
fi
echo
echo "warnings and errors the proxies logged (stderr):"
grep -iHE 'warn|error|emerg|alert|crit|down' "$WORK"/*.stderr.log "$WORK"/nginx/error.log 2>/dev/null \
  | sed "s|$WORK/||" | head -20 | sed 's/^/  /' || true
echo "ss -s at the end:"
ss -s | sed -n '1,2p' | sed 's/^/  /'
echo "total time: $((SECONDS - START)) s"
