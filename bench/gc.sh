#!/usr/bin/env bash
# What JavaScriptCore's collector does per request in lb, against the bare ceiling (bench/prototypes/bare-upstream.ts)
# and optionally lb at BASE: bytes allocated per request, collections (eden and full) per 1,000 requests, the live
# heap after a full collection, and the collector's cycle time per 1,000 requests. Read from the engine's own log
# (BUN_JSC_logGC=1), so the machine's noise moves these far less than requests/s: what a request allocates does not
# depend on how busy the machine is. Pinned as bench/run.sh: the proxy on CPU 0, wrk and the backends on CPU 1.
#
#   bash bench/gc.sh                     # lb and bare, 2 repetitions of 4 s at c=50
#   BASE=c206f12 bash bench/gc.sh        # lb at BASE too
#   CONNS=200 REPS=3 bash bench/gc.sh
#
# Bytes allocated: the heap's size when a collection starts less its size when the one before ended is what was
# allocated between them; their mean, times the collections, divided by the requests wrk completed in the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-2}
DURATION=${DURATION:-4s}
CONNS=${CONNS:-50}
LOG_TAG=gc
source bench/lib.sh
for tool in wrk curl taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
scratch_dir gc
if [[ -n ${BASE:-} ]]; then
  checkout_base
fi
start_two_backends

# The collections in a log, one line each: "eden|full <heap before, KB> <heap after, KB> <cycle ms>".
collections() {
  tr -d '\0' <"$1" | grep -ao 'START M [0-9]*kb => [A-Za-z]*\|=> [0-9]*kb, p=[0-9.]*ms (max [0-9.]*), cycle [0-9.]*ms' |
    awk '/^START/ { before = $3 + 0; kind = ($5 == "FullCollection") ? "full" : "eden"; next }
         kind != "" { sub(/ms$/, "", $NF); print kind, before, $2 + 0, $NF; kind = "" }'
}

# One run: prints "requests KB-allocated-per-request eden full KB-after-full cycle-ms".
measure() {
  local variant=$1 tree=.
  [[ $variant == base ]] && tree=$WORK/base
  case $variant in
    bare) (BUN_JSC_logGC=1 exec taskset -c 0 bun bench/prototypes/bare-upstream.ts --port "$PORT" "${URLS[@]}") >"$WORK/gc.log" 2>&1 & ;;
    *) (cd "$tree" && BUN_JSC_logGC=1 exec taskset -c 0 bun src/main.ts --port "$PORT" --host 127.0.0.1 --admin off \
      --no-access-log "${URLS[@]}") >"$WORK/gc.log" 2>&1 & ;;
  esac
  local pid=$!
  wait_http "http://127.0.0.1:$PORT/" "$variant" "$pid"
  taskset -c 1 wrk -t2 -c50 -d2s "http://127.0.0.1:$PORT/" >/dev/null
  : >"$WORK/gc.log" # the warm-up's collections are not counted
  local out requests
  out=$(taskset -c 1 wrk -t2 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$PORT/")
  cp "$WORK/gc.log" "$WORK/measured.log"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  collections "$WORK/measured.log" | awk -v n="$requests" '
    { if (seen) { allocated += $2 - after; intervals++ } after = $3; seen = 1; cycle += $4
      if ($1 == "full") { full++; afterFull += $3 } else eden++ }
    END { printf "%d %.2f %d %d %d %.0f\n", n, intervals ? allocated / intervals * (eden + full) / n : 0, eden, full, full ? afterFull / full : 0, cycle }'
}

VARIANTS=(now bare)
[[ -n ${BASE:-} ]] && VARIANTS=(base now bare)
declare -A ROWS=()
for rep in $(seq "$REPS"); do
  for variant in "${VARIANTS[@]}"; do
    read -r requests kb eden full after cycle <<<"$(measure "$variant")"
    line=$(awk -v n="$requests" -v kb="$kb" -v e="$eden" -v f="$full" -v a="$after" -v c="$cycle" \
      'BEGIN { printf "%d requests, %.2f KB allocated per request, %.1f eden + %.1f full collections per 1,000 requests, %.1f MB live after a full one, cycles %.1f ms per 1,000 requests", n, kb, e * 1000 / n, f * 1000 / n, a / 1024, c * 1000 / n }')
    log "rep $rep $variant: $line"
    ROWS[$variant]+="  $line"$'\n'
  done
done
log "c=$CONNS, $REPS reps of $DURATION; load $(cut -d' ' -f1-3 /proc/loadavg)"
for variant in "${VARIANTS[@]}"; do printf '%s:\n%s' "$variant" "${ROWS[$variant]}"; done
