#!/usr/bin/env bash
# What tracing costs on the request path: lb with tracing off, on at 100% and at 1% (spans to a local OTLP/HTTP
# sink), and (BASE=<git ref>) lb before tracing existed, interleaved in one run, pinned like bench/run.sh (lb on CPU 0;
# wrk, the two Bun backends and the sink on CPU 1).
#
#   bash bench/tracing.sh                      # REPS=8 × DURATION=3s at c=50, about 4 minutes
#   BASE=9cb8ffe bash bench/tracing.sh         # also lb at that commit: "off costs nothing" is base against off
#
# Variants (each in front of the same two Bun backends, GET /, no access log):
#   base   lb at BASE, when given
#   off    lb as it is, no --otlp-endpoint: the path the "costs nothing when off" claim is about
#   on100  --otlp-endpoint to the sink, --trace-sample 100%: two spans a request (server and client)
#   on1    the same at --trace-sample 1%: every request still gets a trace id and a traceparent, 1% are recorded
# Each repetition runs every variant once (the order rotates); the report gives medians of requests/s and of lb's CPU
# time per request (its user+system ticks in /proc/PID/stat from the start of the measured wrk run until its last
# batch of spans has left, over the requests wrk completed: a busy machine skews this far less than requests/s), each
# variant's ratio to `off`, and the spans each traced variant exported or dropped (from its /metrics). Written to
# bench/results/<YYYY-MM-DD>-tracing.md (or OUT=file) and printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-8}
DURATION=${DURATION:-3s}
CONNS=${CONNS:-50}
LOG_TAG=tracing
source bench/lib.sh
for tool in wrk curl taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
(($(nproc) >= 2)) || die "needs 2 CPUs (lb on one, wrk and backends on the other)"

scratch_dir tracing

read -r B1 B2 SINK PORT ADMIN <<<"$(free_ports 5)"
start_bench_backends "$B1" "$B2"
taskset -c 1 bun bench/otlp-sink.ts "$SINK" >/dev/null 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$SINK/" "the OTLP sink" "$!"

read -r -a VARIANTS <<<"${VARIANTS:-off on100 on1}"
if [[ -n ${BASE:-} ]]; then
  checkout_base
  VARIANTS=(base "${VARIANTS[@]}")
fi

start_variant() {
  local variant=$1 tree=. args=()
  case $variant in
    base) tree=$WORK/base ;;
    on100) args=(--otlp-endpoint "http://127.0.0.1:$SINK" --trace-sample 100%) ;;
    on1) args=(--otlp-endpoint "http://127.0.0.1:$SINK" --trace-sample 1%) ;;
  esac
  (cd "$tree" && exec taskset -c 0 bun src/main.ts --host 127.0.0.1 --port "$PORT" --admin "127.0.0.1:$ADMIN" \
    --no-access-log "${args[@]}" "http://127.0.0.1:$B1" "http://127.0.0.1:$B2") >"$WORK/$variant.log" 2>&1 &
  LB_PID=$!
  wait_http "http://127.0.0.1:$PORT/" "lb ($variant)" "$LB_PID"
}

# "exported/dropped" spans of the running lb, from its /metrics.
span_counts() {
  curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '
    /^lb_trace_spans_exported_total/ { e = $2 }
    /^lb_trace_spans_dropped_total/ { d += $2 }
    END { printf "%d/%d", e, d }'
}

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

declare -A RESULTS SPANS CPU
for rep in $(seq "$REPS"); do
  n=${#VARIANTS[@]}
  for i in $(seq 0 $((n - 1))); do
    variant=${VARIANTS[$(((i + rep) % n))]}
    start_variant "$variant"
    taskset -c 1 wrk -t2 -c"$CONNS" -d1s "http://127.0.0.1:$PORT/" >/dev/null # warm-up
    before=$(ticks "$LB_PID")
    out=$(taskset -c 1 wrk -t2 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$PORT/")
    sleep 1.5 # the last batch leaves (the exporter sends every second)
    after=$(ticks "$LB_PID")
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    RESULTS[$variant]+="$rps "
    CPU[$variant]+="$(echo "($after - $before) * $TICK_US / $requests" | bc -l | xargs printf '%.1f') "
    [[ $variant == on* ]] && SPANS[$variant]+="$(span_counts) "
    log "rep $rep $variant c=$CONNS: $rps req/s, CPU µs/request ${CPU[$variant]} ${SPANS[$variant]:-}"
    kill "$LB_PID"
    wait "$LB_PID" 2>/dev/null || true
  done
done

OUT=${OUT:-bench/results/$(date +%F)-tracing.md}
ref=$(echo "${RESULTS[off]}" | median)
cpu_ref=$(echo "${CPU[off]}" | median)
{
  echo "# Tracing on the request path ($(date +%F))"
  echo
  echo "\`bash bench/tracing.sh\` at $(git rev-parse --short HEAD)${BASE:+, base $BASE}: $REPS interleaved repetitions × $DURATION at c=$CONNS, lb (\`bun src/main.ts\`) pinned to CPU 0; wrk, two Bun backends and the OTLP sink on CPU 1. Medians; ratio to \`off\` in brackets."
  echo
  echo "| variant | req/s at c=$CONNS | lb CPU µs per request |"
  echo "|---|---|---|"
  for variant in "${VARIANTS[@]}"; do
    m=$(echo "${RESULTS[$variant]}" | median)
    c=$(echo "${CPU[$variant]}" | median)
    echo "| $variant | $(printf '%.0f (%.3f×)' "$m" "$(echo "$m / $ref" | bc -l)") | $(printf '%.1f (%.3f×)' "$c" "$(echo "$c / $cpu_ref" | bc -l)") |"
  done
  echo
  echo "Every run (req/s; CPU µs per request; for traced variants, spans exported/dropped by that lb):"
  for variant in "${VARIANTS[@]}"; do echo "- $variant: ${RESULTS[$variant]}; ${CPU[$variant]}${SPANS[$variant]:+; spans ${SPANS[$variant]}}"; done
} >"$OUT"
cat "$OUT"
