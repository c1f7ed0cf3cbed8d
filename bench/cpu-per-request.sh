#!/usr/bin/env bash
# What one request costs lb in CPU time, lb at BASE against lb as it is, interleaved: a figure that a busy machine
# skews far less than requests/s (other processes take the time, not lb's CPU per request). Pinned as bench/run.sh:
# lb on CPU 0, wrk and the backends on CPU 1.
#
#   BASE=6b6eb3c bash bench/cpu-per-request.sh            # REPS=5 × DURATION=3s at c=50, about a minute
#   BASE=6b6eb3c HTTP2=on bash bench/cpu-per-request.sh   # with --http2 on (every request waits the rapid-reset turn)
#
# Per run: lb's user+system CPU ticks (/proc/PID/stat) across one wrk run, divided by the requests wrk completed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-5}
DURATION=${DURATION:-3s}
CONNS=${CONNS:-50}
HTTP2=${HTTP2:-off}
LOG_TAG=cpu-per-request
source bench/lib.sh
[[ -n ${BASE:-} ]] || die "BASE=<commit> is required"
for tool in wrk curl taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

WORK=$(mktemp -d /tmp/lb-cpu.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git worktree remove --force "$WORK/base" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1 || die "cannot check out $BASE"
(cd "$WORK/base" && bun install --frozen-lockfile >/dev/null 2>&1)
read -r B1 B2 PORT <<<"$(free_ports 3)"
start_bench_backends "$B1" "$B2"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# One run: starts lb from `tree`, warms it up, and prints its CPU µs per request over one measured wrk run.
measure() {
  local tree=$1
  (cd "$tree" && exec taskset -c 0 bun src/main.ts --port "$PORT" --host 127.0.0.1 --admin off --no-access-log \
    --http2 "$HTTP2" "http://127.0.0.1:$B1" "http://127.0.0.1:$B2") >"$WORK/lb.log" 2>&1 &
  local pid=$!
  wait_http "http://127.0.0.1:$PORT/" "lb" "$pid"
  taskset -c 1 wrk -t2 -c50 -d1s "http://127.0.0.1:$PORT/" >/dev/null
  local before after requests
  before=$(ticks "$pid")
  requests=$(taskset -c 1 wrk -t2 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$PORT/" | awk '/requests in/ { print $1 }')
  after=$(ticks "$pid")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo $(((after - before) * TICK_US * 1000 / requests)) # ns per request, whole
}

declare -A RUNS=([base]="" [now]="")
for rep in $(seq "$REPS"); do
  order=(base now)
  ((rep % 2 == 0)) && order=(now base)
  for variant in "${order[@]}"; do
    tree=.
    [[ $variant == base ]] && tree=$WORK/base
    ns=$(measure "$tree")
    RUNS[$variant]+="$ns "
    log "rep $rep $variant: $((ns / 1000)).$(printf '%03d' $((ns % 1000))) µs CPU per request"
  done
done
for variant in base now; do
  echo "$variant: median $(median <<<"${RUNS[$variant]}") ns of lb CPU per request; runs: ${RUNS[$variant]}"
done
