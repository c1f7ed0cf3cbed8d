#!/usr/bin/env bash
# Backend cross-talk (bench/cross-talk.ts) through lb at one or more commits and HAProxy 2.6, and what lb's defence
# (a backend connection per client connection, none reused after HEAD/204/304) costs in throughput.
#
#   bash bench/cross-talk.sh matrix|cost [proxy ...]      # default proxies: lb=. haproxy
#   e.g. git worktree add /tmp/lb-old b328b11 && ln -s "$PWD/node_modules" /tmp/lb-old/
#        bash bench/cross-talk.sh matrix b328b11=/tmp/lb-old HEAD=. haproxy
#
# A proxy is label=checkout (lb from that checkout, named label), haproxy (HAProxy with its defaults, among them
# `http-reuse safe`) or haproxy:MODE (the same with `http-reuse MODE`: never, aggressive, always).
#
# matrix: one hostile backend (`bun bench/cross-talk.ts backend`); for every case (4 misbehaviours × clients that close
#   after each request or keep-alive × an attack once or every 100 ms), each proxy in turn is started afresh, driven for CASE_SECONDS with 40 innocent clients + 1 attacker, and stopped.
# cost: two `bun bench/backend.ts` backends; REPS times, for each load — / (keep-alive), / with `Connection: close`,
#   /304 (keep-alive, every answer a 304) — each proxy in turn (the order reversed every other repetition) is started,
#   warmed up with the same load for WARMUP, measured with `wrk -t2 -c50 -dDURATION --latency`, and stopped.
# Both: the proxy on CPU 0 (`taskset -c 0`), backends, driver and wrk on CPU 1; everything on 127.0.0.1, free ports.
# lb runs as `bun src/main.ts --port P --host 127.0.0.1 --admin off --no-access-log --health-interval 1m <backends>`
# (matrix: plus --health-path /health); HAProxy with `nbthread 1`, mode http, timeouts, balance roundrobin.
# Environment: CASE_SECONDS (10), CASES (a grep -E pattern over "<case> <clients> <attack>"; all by default),
# DURATION (5s), WARMUP (2s), REPS (2), RAW_DIR (keep the raw output there). Prints Markdown tables.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=${1:-}
[[ $MODE == matrix || $MODE == cost ]] || {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  exit 2
}
shift
CASE_SECONDS=${CASE_SECONDS:-10}
CASES=${CASES:-.}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
REPS=${REPS:-2}

LOG_TAG=cross-talk
source bench/lib.sh
for tool in wrk haproxy taskset curl ss; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
(($(nproc) >= 2)) || die "needs 2 CPUs: the proxy on one, the load on the other"

# The proxies in the order given; for lb, label → checkout directory; for HAProxy, name → http-reuse mode.
((${#@})) || set -- lb=. haproxy
PROXIES=()
declare -A CHECKOUT REUSE
for arg in "$@"; do
  case $arg in
    haproxy) REUSE[haproxy]="" ;;
    haproxy:never | haproxy:aggressive | haproxy:always) REUSE[$arg]=${arg#haproxy:} ;;
    *=*)
      dir=$(cd "${arg#*=}" && pwd) || die "no directory ${arg#*=}"
      [[ -f $dir/src/main.ts && -d $dir/node_modules ]] || die "$dir is not an lb checkout with node_modules"
      CHECKOUT[${arg%%=*}]=$dir
      arg=${arg%%=*}
      ;;
    *) die "expected label=checkout, haproxy or haproxy:never|aggressive|always, got $arg" ;;
  esac
  PROXIES+=("$arg")
done

WORK=$(mktemp -d /tmp/lb-cross-talk.XXXXXX)
PIDS=()
cleanup() {
  local status=$? pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n ${RAW_DIR:-} ]]; then mkdir -p "$RAW_DIR" && cp -r "$WORK"/. "$RAW_DIR"/ && log "raw output kept in $RAW_DIR"; fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r -a PORTS <<<"$(free_ports 3)"
PROXY_PORT=${PORTS[2]}
PROXY=http://127.0.0.1:$PROXY_PORT

start_backend() { # name, command words...
  local name=$1
  shift
  taskset -c 1 "$@" 2>"$WORK/$name.log" &
  PIDS+=($!)
}

write_haproxy_confs() { # backend urls...: one config for each HAProxy among the proxies
  local i name url
  for name in "${!REUSE[@]}"; do
    i=0
    {
      printf 'global\n  nbthread 1\n  maxconn 4096\n'
      printf 'defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n'
      [[ -n ${REUSE[$name]} ]] && printf '  http-reuse %s\n' "${REUSE[$name]}"
      printf 'frontend fe\n  bind 127.0.0.1:%s\n  default_backend be\n' "$PROXY_PORT"
      printf 'backend be\n  balance roundrobin\n'
      for url in "$@"; do printf '  server b%s %s\n' "$((i += 1))" "${url#http://}"; done
    } >"$WORK/$name.cfg"
    haproxy -c -q -f "$WORK/$name.cfg" || die "haproxy rejected $WORK/$name.cfg"
  done
}

PROXY_PID=""
start_proxy() { # name, ready path, extra lb args... (then --, backend urls)
  local name=$1 ready=$2 extra=() urls
  shift 2
  while [[ $1 != -- ]]; do extra+=("$1"); shift; done
  shift
  urls=("$@")
  if [[ -v REUSE[$name] ]]; then
    taskset -c 0 haproxy -db -f "$WORK/$name.cfg" 2>>"$WORK/$name.stderr.log" &
  else
    (cd "${CHECKOUT[$name]}" && exec taskset -c 0 bun src/main.ts --port "$PROXY_PORT" --host 127.0.0.1 --admin off \
      --no-access-log --health-interval 1m "${extra[@]}" "${urls[@]}") >/dev/null 2>>"$WORK/$name.stderr.log" &
  fi
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  wait_http "$PROXY$ready" "$name" "$PROXY_PID"
}

stop_proxy() {
  local pid kept=()
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do [[ $pid == "$PROXY_PID" ]] || kept+=("$pid"); done
  PIDS=("${kept[@]}") # never signal a pid the system may have given to another process since
  # the port is free again before the next proxy binds it
  for _ in $(seq 50); do curl -s -o /dev/null --max-time 0.2 "$PROXY/" || break; sleep 0.1; done
}

machine_note() {
  echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr)," \
    "bun $(bun --version), $(haproxy -v | head -1 | sed 's/ - https.*//'); load average before $1, after $(cut -d' ' -f1-3 /proc/loadavg)."
}

if [[ $MODE == matrix ]]; then
  BACKEND=http://127.0.0.1:${PORTS[0]}
  start_backend hostile bun bench/cross-talk.ts backend --port "${PORTS[0]}"
  wait_http "$BACKEND/health" "hostile backend" "${PIDS[-1]}"
  write_haproxy_confs "$BACKEND"
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  while read -r request; do
    for clients in close keep-alive; do
      for attack in once every; do
        grep -qE -- "$CASES" <<<"$request $clients $attack" || continue
        for name in "${PROXIES[@]}"; do
          start_proxy "$name" /ok/ready --health-path /health -- "$BACKEND"
          taskset -c 1 bun bench/cross-talk.ts drive --url "$PROXY" --backend "$BACKEND" --label "$name" --case "$request" \
            --clients "$clients" --attack "$attack" --seconds "$CASE_SECONDS" | tee -a "$WORK/matrix.jsonl" >&2
          stop_proxy
        done
      done
    done
  done < <(bun bench/cross-talk.ts cases)
  bun bench/cross-talk.ts report-matrix "$WORK/matrix.jsonl"
else
  BACKENDS=("http://127.0.0.1:${PORTS[0]}" "http://127.0.0.1:${PORTS[1]}")
  for url in "${BACKENDS[@]}"; do
    start_backend "backend-${url##*:}" bun bench/backend.ts "${url##*:}"
    wait_http "$url/" "backend $url" "${PIDS[-1]}"
  done
  [[ $(curl -s -o /dev/null -w '%{http_code}' "${BACKENDS[0]}/304") == 304 ]] || die "bench/backend.ts does not answer /304 with a 304"
  write_haproxy_confs "${BACKENDS[@]}"
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  for ((rep = 1; rep <= REPS; rep++)); do
    order=("${PROXIES[@]}")
    if ((rep % 2 == 0)); then order=(); for ((i = ${#PROXIES[@]} - 1; i >= 0; i--)); do order+=("${PROXIES[i]}"); done; fi
    for load in keepalive close 304; do
      header=()
      path=/
      [[ $load == close ]] && header=(-H "Connection: close")
      [[ $load == 304 ]] && path=/304
      for name in "${order[@]}"; do
        # A fresh proxy for each load: what one load leaves behind (idle backend connections) does not weigh on the next.
        start_proxy "$name" / -- "${BACKENDS[@]}"
        taskset -c 1 wrk -t2 -c50 -d"$WARMUP" "${header[@]}" "$PROXY$path" >/dev/null
        out=$WORK/cost-$name-$load-r$rep.txt
        taskset -c 1 wrk -t2 -c50 -d"$DURATION" --latency "${header[@]}" "$PROXY$path" >"$out" &
        wrk_pid=$!
        # The proxy's connections to the backends halfway through: open, and closed by it and waiting (TIME-WAIT).
        sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 2 }')"
        upstream="( dport = :${PORTS[0]} or dport = :${PORTS[1]} )"
        printf 'Upstream connections: established %s, time-wait %s\n' "$(ss -Htn state established "$upstream" | wc -l)" \
          "$(ss -Htn state time-wait "$upstream" | wc -l)" >"$WORK/upstream-$name-$load-r$rep.txt"
        wait "$wrk_pid" || die "wrk failed: $(cat "$out")"
        log "$name $load rep $rep: $(awk '/^Requests\/sec/ { print $2 }' "$out") req/s; $(cat "$WORK/upstream-$name-$load-r$rep.txt")"
        stop_proxy
      done
    done
  done
  bun bench/cross-talk.ts report-cost "$WORK"
fi
echo
machine_note "$load_before"
