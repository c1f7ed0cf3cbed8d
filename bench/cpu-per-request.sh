#!/usr/bin/env bash
# What one request costs lb in CPU time, lb at BASE against lb as it is, interleaved: a figure that a busy machine
# skews far less than requests/s (other processes take the time, not lb's CPU per request). Pinned as bench/run.sh:
# lb on CPU 0, wrk and the backends on CPU 1. Requests/s and p99 are printed beside it, for the same runs.
#
#   BASE=6b6eb3c bash bench/cpu-per-request.sh            # REPS=8 × DURATION=3s at c=50, about two minutes
#   BASE=6b6eb3c HTTP2=on bash bench/cpu-per-request.sh   # with --http2 on (every request waits the rapid-reset turn)
#   BASE=6b6eb3c H2LOAD=1 BARE=1 bash bench/cpu-per-request.sh  # HTTP/2 to clients: h2load -c50 -m10 over h2c against
#                                                         # --http2 on (and bare-upstream.ts --http2); REQUESTS per run
#   BASE=6b6eb3c BACKENDS=1 bash bench/cpu-per-request.sh # lb in front of one backend instead of two
#   BASE=6b6eb3c BARE=1 bash bench/cpu-per-request.sh     # also the ceiling, bench/prototypes/bare-upstream.ts
#   BASE=6b6eb3c LB_ARGS="--access-log-format json" bash bench/cpu-per-request.sh   # more flags for both sides
#
# Per run: lb's user+system CPU ticks (/proc/PID/stat) across one wrk run, divided by the requests wrk completed.
# Each repetition runs every variant in turn, the first one alternating.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-8}
DURATION=${DURATION:-3s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-50}
HTTP2=${HTTP2:-off}
BACKENDS=${BACKENDS:-2}
BARE=${BARE:-0}
H2LOAD=${H2LOAD:-0}
REQUESTS=${REQUESTS:-40000}
STREAMS=${STREAMS:-10}
read -r -a LB_EXTRA <<<"${LB_ARGS:-}"
LOG_TAG=cpu-per-request
source bench/lib.sh
[[ -n ${BASE:-} ]] || die "BASE=<commit> is required"
[[ $BACKENDS == 1 || $BACKENDS == 2 ]] || die "BACKENDS is 1 or 2"
for tool in wrk curl taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
BARE_ARGS=()
if [[ $H2LOAD == 1 ]]; then
  command -v h2load >/dev/null || die "h2load is not installed (apt-get install -y nghttp2-client)"
  HTTP2=on
  BARE_ARGS=(--http2)
fi
# The latency column: wrk's p99; h2load gives no percentiles, so its mean time per request.
LATENCY=p99
[[ $H2LOAD == 1 ]] && LATENCY="mean latency"

WORK=$(mktemp -d /tmp/lb-cpu.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git worktree remove --force "$WORK/base" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

checkout_base
read -r B1 B2 PORT <<<"$(free_ports 3)"
start_bench_backends "$B1" "$B2"
URLS=("http://127.0.0.1:$B1" "http://127.0.0.1:$B2")
URLS=("${URLS[@]:0:BACKENDS}")

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
to_us() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); printf "%d", v } else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%d", v * 1000 } else if (v ~ /s$/) { sub(/s$/, "", v); printf "%d", v * 1000000 } }'; }

# One run of a variant: starts it, warms it up, and prints "ns-per-request req/s p99-µs" over one measured wrk run.
measure() {
  local variant=$1
  case $variant in
    bare) (exec taskset -c 0 bun bench/prototypes/bare-upstream.ts "${BARE_ARGS[@]}" --port "$PORT" "${URLS[@]}") >"$WORK/lb.log" 2>&1 & ;;
    *)
      local tree=.
      [[ $variant == base ]] && tree=$WORK/base
      (cd "$tree" && exec taskset -c 0 bun src/main.ts --port "$PORT" --host 127.0.0.1 --admin off --no-access-log \
        --http2 "$HTTP2" "${LB_EXTRA[@]}" "${URLS[@]}") >"$WORK/lb.log" 2>&1 &
      ;;
  esac
  local pid=$!
  wait_http "http://127.0.0.1:$PORT/" "$variant" "$pid"
  local before after out requests
  if [[ $H2LOAD == 1 ]]; then
    taskset -c 1 h2load -n $((REQUESTS / 4)) -c "$CONNS" -m "$STREAMS" "http://127.0.0.1:$PORT/" >/dev/null
    before=$(ticks "$pid")
    out=$(taskset -c 1 h2load -n "$REQUESTS" -c "$CONNS" -m "$STREAMS" "http://127.0.0.1:$PORT/")
    after=$(ticks "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    requests=$(awk '/^requests:/ { print $8 }' <<<"$out")
    echo "$(((after - before) * TICK_US * 1000 / requests)) $(awk '/^finished in/ { printf "%d", $4 }' <<<"$out") $(to_us "$(awk '/^time for request:/ { print $6 }' <<<"$out")")"
    return
  fi
  taskset -c 1 wrk -t2 -c50 -d"$WARMUP" "http://127.0.0.1:$PORT/" >/dev/null
  before=$(ticks "$pid")
  out=$(taskset -c 1 wrk -t"$((CONNS < 2 ? 1 : 2))" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/")
  after=$(ticks "$pid")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  echo "$(((after - before) * TICK_US * 1000 / requests)) $(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out") $(to_us "$(awk '$1 == "99%" { print $2 }' <<<"$out")")"
}

VARIANTS=(base now)
[[ $BARE == 1 ]] && VARIANTS+=(bare)
declare -A NS=() RPS=() P99=()
for rep in $(seq "$REPS"); do
  for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
    variant=${VARIANTS[(i + rep - 1) % ${#VARIANTS[@]}]}
    read -r ns rps p99 <<<"$(measure "$variant")"
    NS[$variant]+="$ns "
    RPS[$variant]+="$rps "
    P99[$variant]+="$p99 "
    log "rep $rep $variant: $((ns / 1000)).$(printf '%03d' $((ns % 1000))) µs CPU per request, $rps req/s, $LATENCY $p99 µs"
  done
done
log "c=$CONNS, $BACKENDS backend(s), ${LB_ARGS:-no extra flags}, HTTP2=$HTTP2, H2LOAD=$H2LOAD, $REPS reps of $DURATION (h2load: $REQUESTS requests); load $(cut -d' ' -f1-3 /proc/loadavg)"
for variant in "${VARIANTS[@]}"; do
  echo "$variant: median $(median <<<"${NS[$variant]}") ns of CPU per request, $(median <<<"${RPS[$variant]}") req/s, $LATENCY $(median <<<"${P99[$variant]}") µs; runs (ns): ${NS[$variant]}; (req/s): ${RPS[$variant]}"
done
ratio() { awk -v a="$(median <<<"$1")" -v b="$(median <<<"$2")" 'BEGIN { printf "%.3f", a / b }'; }
# The median of each repetition's own ratio: the two ran a few seconds apart, so a drift of the machine's speed over
# the run cancels out of it.
paired() { paste -d' ' <(tr -s ' ' '\n' <<<"$1" | grep .) <(tr -s ' ' '\n' <<<"$2" | grep .) | awk '{ print $1 / $2 }' | median | awk '{ printf "%.3f", $1 }'; }
echo "now ÷ base: CPU per request $(ratio "${NS[now]}" "${NS[base]}") (paired: $(paired "${NS[now]}" "${NS[base]}")), req/s $(ratio "${RPS[now]}" "${RPS[base]}"), $LATENCY $(ratio "${P99[now]}" "${P99[base]}")"
if [[ $BARE == 1 ]]; then
  echo "now ÷ bare: CPU per request $(ratio "${NS[now]}" "${NS[bare]}"), req/s $(ratio "${RPS[now]}" "${RPS[bare]}"), $LATENCY $(ratio "${P99[now]}" "${P99[bare]}")"
fi
