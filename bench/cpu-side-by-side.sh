#!/usr/bin/env bash
# CPU per request of lb at BASE against lb as it is, both running AT ONCE: the two proxies share CPU 0, each driven by
# its own client on CPU 1 (wrk, or h2load with H2=1; with two Bun backends), and each one's CPU ticks (/proc/PID/stat)
# are divided by the requests it completed in the same seconds. Whatever the machine does meanwhile (another VM on the
# host, a busy neighbour) hits both alike, so each round's ratio is steady where interleaved runs are not: the same code
# against itself gave 0.986-1.016 per round (median 1.004) here, where interleaved runs of one commit differed by
# 15-30 % (cpu-per-request.sh).
#
#   BASE=c69c9fb bash bench/cpu-side-by-side.sh          # REPS=8 rounds of DURATION=5s at CONNS=50, about 2.5 minutes
#   BARE=1 bash bench/cpu-side-by-side.sh                # the bare ceiling (prototypes/bare-upstream.ts), not BASE
#   BASE=c69c9fb URL_PATH=/chunked bash bench/cpu-side-by-side.sh
#   BASE=c69c9fb LB_ARGS="--access-log-format json" bash bench/cpu-side-by-side.sh
#   H2=1 BARE=1 bash bench/cpu-side-by-side.sh            # HTTP/2 to clients: h2load over h2c (-m STREAMS=10 per
#                                                         # connection), lb with --http2 on, bare with --http2
#
# Read the paired ratio (now ÷ the other, median of the rounds' own ratios) and whether every round agrees. Sharing a
# core costs both sides context switches and cache: the µs are higher than either alone, and a larger working set
# pays more of it (lb ÷ bare reads 1.39x here against about 1.3x in cpu-per-request.sh), so this is for before/after
# comparisons of lb, not for absolute figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-8}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-50}
URL_PATH=${URL_PATH:-/}
STREAMS=${STREAMS:-10}
read -r -a LB_EXTRA <<<"${LB_ARGS:-}"
BARE_EXTRA=()
if [[ ${H2:-0} == 1 ]]; then
  LB_EXTRA+=(--http2 on)
  BARE_EXTRA=(--http2)
fi
LOG_TAG=side-by-side
source bench/lib.sh
[[ -n ${BASE:-} || ${BARE:-0} == 1 ]] || die "BASE=<commit> or BARE=1 is required"
LOAD_TOOL=wrk
[[ ${H2:-0} == 1 ]] && LOAD_TOOL=h2load
for tool in "$LOAD_TOOL" curl taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
scratch_dir side-by-side
[[ -n ${BASE:-} ]] && checkout_base
start_two_backends
read -r PORT_OTHER PORT_NOW <<<"$(free_ports 2)"

# Starts one side pinned to CPU 0 (in the background, its pid in STARTED): "other" (BASE or bare) or "now".
start_side() { # side, port
  local side=$1 port=$2 tree=.
  local lb=(src/main.ts --port "$port" --host 127.0.0.1 --admin off --no-access-log "${LB_EXTRA[@]}" "${URLS[@]}")
  if [[ $side == other && ${BARE:-0} == 1 ]]; then
    taskset -c 0 bun bench/prototypes/bare-upstream.ts "${BARE_EXTRA[@]}" --port "$port" "${URLS[@]}" >/dev/null 2>&1 &
  else
    [[ $side == other ]] && tree=$WORK/base
    (cd "$tree" && exec taskset -c 0 bun "${lb[@]}") >/dev/null 2>&1 &
  fi
  STARTED=$!
  PIDS+=("$STARTED")
}

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One client's load on a port for a duration (CPU 1), its output to a file.
load_one() { # port, duration, output
  if [[ ${H2:-0} == 1 ]]; then
    taskset -c 1 h2load -c"$CONNS" -m"$STREAMS" -D"${2%s}" "http://127.0.0.1:$1$URL_PATH" >"$3"
  else
    taskset -c 1 wrk -t1 -c"$CONNS" -d"$2" "http://127.0.0.1:$1$URL_PATH" >"$3"
  fi
}

# Both ports loaded at once; the outputs in $WORK/load-other.txt and load-now.txt.
load_both() { # duration
  load_one "$PORT_OTHER" "$1" "$WORK/load-other.txt" &
  local other=$!
  load_one "$PORT_NOW" "$1" "$WORK/load-now.txt"
  wait "$other"
}

# The requests completed: wrk's "N requests in", h2load's "requests: ... N succeeded".
completed() { # output file
  awk '/requests in/ { print $1 } /^requests:/ { print $(NF-7) }' "$1"
}

per_request() { # ticks, load output file: µs of CPU per request
  awk -v t="$1" -v n="$(completed "$2")" 'BEGIN { printf "%.1f", t * 1e6 / '"$(getconf CLK_TCK)"' / n }'
}

OTHER_NAME=${BASE:-bare}
[[ ${BARE:-0} == 1 ]] && OTHER_NAME=bare
NOW_NAME=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo -dirty)
log "lb at $NOW_NAME against $OTHER_NAME, side by side on CPU 0: $REPS rounds of $DURATION" \
  "at c=$CONNS on $URL_PATH ($LOAD_TOOL)"
RATIOS=() OTHERS=() NOWS=()
for rep in $(seq "$REPS"); do
  start_side other "$PORT_OTHER"
  other=$STARTED
  start_side now "$PORT_NOW"
  now=$STARTED
  wait_http "http://127.0.0.1:$PORT_OTHER/" "$OTHER_NAME" "$other"
  wait_http "http://127.0.0.1:$PORT_NOW/" now "$now"
  load_both 2s # warm-up
  other_before=$(ticks "$other") now_before=$(ticks "$now")
  load_both "$DURATION"
  other_us=$(per_request $(($(ticks "$other") - other_before)) "$WORK/load-other.txt")
  now_us=$(per_request $(($(ticks "$now") - now_before)) "$WORK/load-now.txt")
  kill "$other" "$now"
  wait "$other" "$now" 2>/dev/null || true
  ratio=$(awk -v a="$other_us" -v b="$now_us" 'BEGIN { printf "%.3f", b / a }')
  log "round $rep: $OTHER_NAME $other_us µs, now $now_us µs of CPU per request: now ÷ $OTHER_NAME $ratio"
  RATIOS+=("$ratio") OTHERS+=("$other_us") NOWS+=("$now_us")
done
below=$(printf '%s\n' "${RATIOS[@]}" | awk '$1 < 1' | wc -l)
echo "$OTHER_NAME: median $(median <<<"${OTHERS[*]}") µs; now: median $(median <<<"${NOWS[*]}") µs of CPU per request"
echo "now ÷ $OTHER_NAME: paired $(median <<<"${RATIOS[*]}") (rounds: ${RATIOS[*]}; $below of $REPS below 1)"
