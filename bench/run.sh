#!/usr/bin/env bash
# Throughput, latency and memory of lb next to nginx and HAProxy, all in front of the same Bun backends, on loopback.
#
#   bun run bench                          # = bash bench/run.sh: pinned cores, REPS=3 × DURATION=5s, about 7 minutes
#   bash bench/run.sh --multi              # unpinned: nginx worker_processes auto, HAProxy nbthread 2, lb as it is
#   DURATION=10s REPS=5 WARMUP=3s bash bench/run.sh
#   RAW_DIR=/tmp/lb-bench bash bench/run.sh     # also keep every raw wrk output, config and log there
#
# Environment: DURATION (5s) and WARMUP (2s) in whole seconds, REPS (3), THREADS (wrk threads, 2), BACKENDS (2),
# ACCESS_LOG (/dev/null: where the lb+log variant writes its access lines), DIRECT (1: also measure wrk straight to
# one backend, once, as the baseline; 0 skips it), RAW_DIR (unset: raw files are deleted at exit).
#
# Pinned mode (the default): the proxy under test runs on CPU 0, wrk and the backends on CPU 1. Each repetition
# runs every proxy in turn (lb, lb+log, bare, nginx, HAProxy; the order rotates by one each repetition), each at
# c=1, 50, 200 and 1000 on / and c=50 on /big and /chunked. The report gives medians over the repetitions and is
# written to bench/results/<YYYY-MM-DD>.md (--multi: <YYYY-MM-DD>-multi.md) and printed. See bench/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=pinned
for arg in "$@"; do
  case $arg in
    --multi) MODE=multi ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      echo "bench/run.sh: unknown argument $arg (try --multi or --help)" >&2
      exit 2
      ;;
  esac
done

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
BACKENDS=${BACKENDS:-2}
ACCESS_LOG=${ACCESS_LOG:-/dev/null}
DIRECT=${DIRECT:-1}
# (conns path) pairs, measured in this order in every session
RUNS=("1 /" "50 /" "200 /" "1000 /" "50 /big" "50 /chunked")
# bare: lb's ceiling, bench/prototypes/bare-upstream.ts (Bun.serve + lb's own upstream client, no lb logic)
PROXIES=(lb lb+log bare nginx haproxy)

LOG_TAG=bench
source bench/lib.sh
[[ $DURATION =~ ^[1-9][0-9]*s$ && $WARMUP =~ ^[0-9]+s$ ]] || die "DURATION and WARMUP are whole seconds, e.g. 5s"
[[ $REPS =~ ^[1-9][0-9]*$ && $THREADS =~ ^[1-9][0-9]*$ && $BACKENDS =~ ^[1-9][0-9]*$ ]] ||
  die "REPS, THREADS and BACKENDS are positive integers"

# ---------------------------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || need+=(haproxy)
if ((${#need[@]})); then
  log "installing ${need[*]} (the packaged services are not used; this script runs its own instances)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v bun >/dev/null || die "bun is not installed (npm install -g bun@1.4.5)"
for tool in curl ss taskset pgrep; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[[ -d node_modules ]] || bun install --frozen-lockfile
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

# Pinned: proxy on CPU 0, load generator + backends on CPU 1 (needs two cores; otherwise nothing is pinned).
# Multi: nothing is pinned, the multi-core proxies use every core.
PIN_PROXY=()
PIN_LOAD=()
LOAD_CPU=""
if [[ $MODE == pinned ]]; then
  if (($(nproc) >= 2)); then
    PIN_PROXY=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
    LOAD_CPU=1
    PINNING="proxy on CPU 0 (\`taskset -c 0\`), wrk + backends on CPU 1 (\`taskset -c 1\`)"
  else
    log "warning: fewer than 2 CPUs, running unpinned"
    PINNING="nothing pinned (fewer than 2 CPUs)"
  fi
  NGINX_WORKERS=1
  HAPROXY_THREADS=1
  LB_WORKERS=1
else
  PINNING="nothing pinned: proxies, wrk and backends share all $(nproc) CPUs"
  NGINX_WORKERS=auto
  HAPROXY_THREADS=2
  LB_WORKERS=2
  PROXIES=(lb lb+log nginx haproxy) # the bare handler is one process: no ceiling for lb --workers 2
  log "--multi: nginx worker_processes auto, HAProxy nbthread 2, lb --workers 2"
fi

# Open files: c=1000 needs about 2000 per proxy (clients + upstream), HAProxy reserves 2 per maxconn.
hard=$(ulimit -Hn)
target=65536
[[ $hard != unlimited ]] && ((hard < target)) && target=$hard
soft=$(ulimit -Sn)
if [[ $soft != unlimited ]] && ((soft < target)); then ulimit -n "$target" 2>/dev/null || true; fi
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
HAPROXY_MAXCONN=$(((NOFILE - 200) / 2 < 4096 ? (NOFILE - 200) / 2 : 4096))
NGINX_WORKER_CONNECTIONS=$((NOFILE - 100 < 4096 ? NOFILE - 100 : 4096))
((HAPROXY_MAXCONN >= 1100 && NGINX_WORKER_CONNECTIONS >= 2100)) ||
  die "the open-file limit is $NOFILE (hard $hard); c=1000 needs at least 2400: raise the hard limit (ulimit -Hn)"

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
  if [[ -n ${RAW_DIR:-} ]]; then
    mkdir -p "$RAW_DIR" && cp -r "$WORK"/. "$RAW_DIR"/ && log "raw output kept in $RAW_DIR"
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Checks that a proxy really forwards: / and /chunked are the backend's 100-byte greeting, /big is exactly 64 KiB.
check_proxy() { # base url, name
  local base=$1 name=$2 body size
  body=$(curl -s --max-time 2 "$base/")
  [[ $body == "hello from "* && ${#body} == 99 ]] || die "$name: unexpected body from $base/: ${body:0:80}"
  body=$(curl -s --max-time 2 "$base/chunked")
  [[ $body == "hello from "* && ${#body} == 99 ]] || die "$name: unexpected body from $base/chunked: ${body:0:80}"
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

# Peak resident memory of a set of processes: sums VmRSS over the pids every 100 ms until the stop file appears,
# then writes the highest sum (KiB) to the out file. Shell builtins only, apart from sleep.
rss_sampler() { # out file, stop file, pids...
  local out=$1 stop=$2 peak=0 kb key value _ p
  shift 2
  while [[ ! -e $stop ]]; do
    kb=0
    for p in "$@"; do
      while read -r key value _; do
        if [[ $key == VmRSS: ]]; then kb=$((kb + value)); break; fi
      done 2>/dev/null <"/proc/$p/status" || true
    done
    ((kb > peak)) && peak=$kb
    sleep 0.1
  done
  echo "$peak" >"$out"
}

declare -A CMDS   # label → the exact command line, for the report
record_cmd() { # label, command words...
  local label=$1
  shift
  [[ -n ${CMDS[$label]:-} ]] || CMDS[$label]="$*"
}

# ---------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------
for p in "${BACKEND_PORTS[@]}"; do
  cmd=("${PIN_LOAD[@]}" bun bench/backend.ts "$p")
  record_cmd "backend $p" "${cmd[@]}"
  "${cmd[@]}" >"$WORK/backend-$p.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$p/" "backend $p" "$!"
done
log "backends on ports ${BACKEND_PORTS[*]}, proxies on port $PROXY_PORT; $MODE; REPS=$REPS, runs of $DURATION"

# ---------------------------------------------------------------------------------------------------------------
# Proxies: each start_* starts one proxy in the foreground (as a background job) and sets PROXY_PID.
# ---------------------------------------------------------------------------------------------------------------
PROXY_PID=""
SESSION=""   # name of the current proxy session's log files

start_lb() { # label, extra lb args...
  local label=$1
  shift
  local cmd=("${PIN_PROXY[@]}" bun src/main.ts --port "$PROXY_PORT" --host 127.0.0.1 --admin off --workers "$LB_WORKERS" "$@" "${BACKEND_URLS[@]}")
  if [[ $label == lb ]]; then
    record_cmd lb "${cmd[@]}" ">/dev/null"
    "${cmd[@]}" >/dev/null 2>"$WORK/$SESSION.stderr.log" &
  else
    record_cmd "$label" "${cmd[@]}" ">>$ACCESS_LOG"
    "${cmd[@]}" >>"$ACCESS_LOG" 2>"$WORK/$SESSION.stderr.log" &
  fi
  PROXY_PID=$!
}

start_proxy() { # name
  case $1 in
    lb) start_lb lb --no-access-log ;;
    lb+log) start_lb lb+log --access-log-format json ;;
    bare)
      local cmd=("${PIN_PROXY[@]}" bun bench/prototypes/bare-upstream.ts --port "$PROXY_PORT" "${BACKEND_URLS[@]}")
      record_cmd bare "${cmd[@]}"
      "${cmd[@]}" 2>"$WORK/$SESSION.stderr.log" &
      PROXY_PID=$!
      ;;
    nginx)
      local cmd=("${PIN_PROXY[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log")
      record_cmd nginx "${cmd[@]}"
      "${cmd[@]}" 2>"$WORK/$SESSION.stderr.log" &
      PROXY_PID=$!
      ;;
    haproxy)
      local cmd=("${PIN_PROXY[@]}" "$HAPROXY" -db -f "$WORK/haproxy/haproxy.cfg")
      record_cmd haproxy "${cmd[@]}"
      "${cmd[@]}" 2>"$WORK/$SESSION.stderr.log" &
      PROXY_PID=$!
      ;;
    *) die "unknown proxy $1" ;;
  esac
}

write_nginx_conf() {
  local dir=$WORK/nginx servers="" p
  mkdir -p "$dir/tmp" && chmod 1777 "$dir/tmp"
  for p in "${BACKEND_PORTS[@]}"; do servers+="    server 127.0.0.1:$p;"$'\n'; done
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $NGINX_WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $NGINX_WORKER_CONNECTIONS; }  # clients + upstream connections, per worker
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;      # default 1000: would make wrk reconnect every 1000 requests
  upstream backends {
$servers    keepalive 64;                  # idle upstream connections kept per worker
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
  "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || die "nginx rejected $dir/nginx.conf"
}

write_haproxy_conf() {
  local dir=$WORK/haproxy i=0 p
  mkdir -p "$dir"
  {
    echo "global"
    echo "  nbthread $HAPROXY_THREADS"
    echo "  maxconn $HAPROXY_MAXCONN"
    echo "  pidfile $dir/haproxy.pid"
    echo "defaults"
    echo "  mode http"
    echo "  timeout connect 5s"
    echo "  timeout client 30s"
    echo "  timeout server 30s"
    echo "  http-reuse safe"
    echo "frontend fe"
    echo "  bind 127.0.0.1:$PROXY_PORT"
    echo "  default_backend be"
    echo "backend be"
    echo "  balance roundrobin"
    for p in "${BACKEND_PORTS[@]}"; do echo "  server b$((i += 1)) 127.0.0.1:$p"; done
  } >"$dir/haproxy.cfg"
  "$HAPROXY" -c -q -f "$dir/haproxy.cfg" || die "haproxy rejected $dir/haproxy.cfg"
}

write_nginx_conf
write_haproxy_conf

# ---------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------
RESULTS=$WORK/results.tsv
printf 'proxy\tconns\tpath\trep\trps\tp50_ms\tp99_ms\tnon2xx\tsock_connect\tsock_read\tsock_write\tsock_timeout\tpeak_rss_kb\tcpu0_pct\tcpu1_pct\tupstream_conns\tupstream_tw_delta\n' >"$RESULTS"
[[ -f $ACCESS_LOG ]] && : >"$ACCESS_LOG"

# wrk's latency figures come as 1.23ms / 456.00us / 1.02s / 1.10m; print them in ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.0f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.0f", v * 1000 }
    else printf "%s", (v == "" ? "-" : v) }'
}

measure() { # proxy name, base url, conns, path, rep
  local name=$1 base=$2 conns=$3 path=$4 rep=$5
  local tag="$name-c$conns-${path//\//_}-r$rep"
  local out="$WORK/wrk-$tag.txt" stop="$WORK/stop-$tag" rss_file="$WORK/rss-$tag.txt"
  local threads=$((conns < THREADS ? conns : THREADS))
  local tw_before tw_after upstream rps p50 p99 non2xx sock cpu_before cpu_after cpu0 cpu1 rss="-" sampler=""
  local pids=()
  record_cmd wrk "${PIN_LOAD[@]}" wrk "-t$THREADS" "-c<conns>" "-d$DURATION" --latency "http://127.0.0.1:$PROXY_PORT<path>" \
    "  (-t1 at c=1; keep-alive, wrk's default)"
  if [[ -n $PROXY_PID ]]; then
    # The proxy and its children (nginx's workers); the sampler runs on the load CPU when pinned.
    read -r -a pids <<<"$PROXY_PID $(pgrep -P "$PROXY_PID" | tr '\n' ' ' || true)"
    (
      [[ -n $LOAD_CPU ]] && taskset -pc "$LOAD_CPU" "$BASHPID" >/dev/null
      rss_sampler "$rss_file" "$stop" "${pids[@]}"
    ) &
    sampler=$!
    PIDS+=("$sampler")
  fi
  tw_before=$(upstream_time_wait)
  cpu_before=$(cpu_ticks)
  "${PIN_LOAD[@]}" wrk -t"$threads" -c"$conns" -d"$DURATION" --latency "$base$path" >"$out" 2>&1 &
  local wrk_pid=$!
  PIDS+=("$wrk_pid")
  # Upstream connections halfway through the run: how many sockets the proxy holds open to the backends.
  sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 2 }')"
  upstream=$(upstream_established)
  wait "$wrk_pid" || die "wrk failed: $(cat "$out")"
  forget "$wrk_pid"
  cpu_after=$(cpu_ticks)
  if [[ -n $sampler ]]; then
    touch "$stop"
    wait "$sampler" || true
    forget "$sampler"
    rss=$(cat "$rss_file" 2>/dev/null || echo -)
  fi
  cpu0=$(busy_pct "$cpu_before" "$cpu_after" 0)
  cpu1=$(busy_pct "$cpu_before" "$cpu_after" 1)
  tw_after=$(upstream_time_wait)
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  [[ -n $rps ]] || die "no Requests/sec in wrk's output: $(cat "$out")"
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  sock=$(awk -F'[ ,]+' '/Socket errors:/ { printf "%d\t%d\t%d\t%d", $5, $7, $9, $11 }' "$out")
  [[ -n $sock ]] || sock=$'0\t0\t0\t0'
  [[ -n $non2xx ]] || non2xx=0
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$path" "$rep" "$rps" "$p50" "$p99" \
    "$non2xx" "$sock" "$rss" "$cpu0" "$cpu1" "$upstream" "$((tw_after - tw_before))" >>"$RESULTS"
  log "$(printf '%-8s c=%-4s %-5s rep %s: %7s req/s  p50 %s ms  p99 %s ms  non-2xx %s  socket errors %s  peak RSS %s KiB' \
    "$name" "$conns" "$path" "$rep" "$rps" "$p50" "$p99" "$non2xx" "$sock" "$rss" | tr '\t' /)"
}

measure_all() { # name, base url, rep
  local name=$1 base=$2 rep=$3 run conns path
  check_proxy "$base" "$name"
  # Warm-up (JIT, connection pools), not measured.
  if [[ $WARMUP != 0s ]]; then
    "${PIN_LOAD[@]}" wrk -t"$THREADS" -c50 -d"$WARMUP" "$base/" >"$WORK/warmup-$name-r$rep.txt" 2>&1 || true
  fi
  for run in "${RUNS[@]}"; do
    read -r conns path <<<"$run"
    measure "$name" "$base" "$conns" "$path" "$rep"
  done
}

bench_proxy() { # name, rep
  local name=$1 rep=$2
  SESSION="$name-r$rep"
  log "rep $rep/$REPS: starting $name"
  start_proxy "$name"
  PIDS+=("$PROXY_PID")
  wait_http "http://127.0.0.1:$PROXY_PORT/" "$name" "$PROXY_PID"
  measure_all "$name" "http://127.0.0.1:$PROXY_PORT" "$rep"
  ss -s >"$WORK/ss-after-$SESSION.txt"
  stop_pid "$PROXY_PID"
  PROXY_PID=""
  # Let the next proxy bind the same port, and give the closed connections a moment.
  sleep 1
}

START=$SECONDS
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ $DIRECT == 1 ]]; then
  log "direct to one backend (baseline, measured once)"
  measure_all direct "${BACKEND_URLS[0]}" 1
fi
for ((rep = 1; rep <= REPS; rep++)); do
  # Interleaved: every proxy once per repetition; the starting proxy rotates so none always runs first.
  for ((i = 0; i < ${#PROXIES[@]}; i++)); do
    bench_proxy "${PROXIES[(i + rep - 1) % ${#PROXIES[@]}]}" "$rep"
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------------------------
# Report: bench/report.ts turns the raw figures into Markdown (medians, ratios, access-log cost).
# ---------------------------------------------------------------------------------------------------------------
first_line() { "$@" 2>&1 | head -1 || true; }
{
  printf 'mode\t%s\n' "$MODE"
  printf 'date\t%s\n' "$(date +%F)"
  printf 'started\t%s\n' "$STARTED"
  printf 'total_seconds\t%s\n' "$((SECONDS - START))"
  printf 'duration\t%s\n' "$DURATION"
  printf 'warmup\t%s\n' "$WARMUP"
  printf 'reps\t%s\n' "$REPS"
  printf 'threads\t%s\n' "$THREADS"
  printf 'backends\t%s\n' "$BACKENDS"
  printf 'direct\t%s\n' "$DIRECT"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'cpu_model\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  printf 'kernel\t%s\n' "$(uname -sr)"
  printf 'os\t%s\n' "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}")"
  printf 'load_before\t%s\n' "$LOAD_BEFORE"
  printf 'load_after\t%s\n' "$LOAD_AFTER"
  printf 'bun\t%s\n' "$(bun --version)"
  printf 'nginx\t%s\n' "$(first_line "$NGINX" -v | sed 's/^nginx version: //')"
  printf 'haproxy\t%s\n' "$(first_line "$HAPROXY" -v | sed 's/ - https.*//')"
  printf 'wrk\t%s\n' "$(first_line wrk -v | sed 's/ *Copyright.*//')"
  printf 'lb_commit\t%s\n' "$(git describe --always --dirty 2>/dev/null || echo unknown)"
  printf 'pinning\t%s\n' "$PINNING"
  printf 'nofile\t%s\n' "$NOFILE"
  printf 'haproxy_maxconn\t%s\n' "$HAPROXY_MAXCONN"
  printf 'access_log\t%s\n' "$ACCESS_LOG"
} >"$WORK/meta.tsv"
{
  for p in "${BACKEND_PORTS[@]}"; do printf 'backend\t%s\n' "${CMDS[backend $p]}"; done
  for label in lb lb+log bare nginx haproxy wrk; do printf '%s\t%s\n' "$label" "${CMDS[$label]:-}"; done
} >"$WORK/commands.tsv"
grep -iHE 'warn|error|emerg|alert|crit|down' "$WORK"/*.stderr.log "$WORK"/nginx/error.log 2>/dev/null |
  sed -e "s|$WORK/||" -e 's/-r[0-9]*\.stderr\.log:/:/' | sort | uniq -c | sort -rn | head -20 >"$WORK/warnings.txt" || true
if [[ -f $ACCESS_LOG ]]; then
  echo "$ACCESS_LOG holds $(wc -l <"$ACCESS_LOG") access lines ($(du -h "$ACCESS_LOG" | cut -f1))" >"$WORK/access-log.txt"
fi

mkdir -p bench/results
OUT="bench/results/$(date +%F).md"
[[ $MODE == multi ]] && OUT="bench/results/$(date +%F)-multi.md"
bun bench/report.ts "$WORK" >"$WORK/report.md"
cp "$WORK/report.md" "$OUT"
echo
cat "$OUT"
log "written to $OUT ($((SECONDS - START)) s)"
