#!/usr/bin/env bash
# Objects each proxied request allocates, by JavaScriptCore's object type (strings, arrays, closures, promises, …),
# lb against the bare ceiling (bench/prototypes/bare-upstream.ts) and optionally lb at BASE: a count, not a time, so a
# busy machine does not blur it, and every one of them is work for the allocator and the collector. The collector is
# held off (BUN_JSC_largeHeapSize, BUN_GC_TIMER_DISABLE) while a batch of N requests runs after a warm-up, and the
# heap's objects are counted before and after it (bench/live-objects.ts, SIGUSR1): the difference divided by N.
#
#   bash bench/allocations.sh                   # N=1000 requests at c=50, after 20,000 to warm up
#   BASE=c206f12 bash bench/allocations.sh      # lb at BASE too
#   LB_ARGS="--access-log-format json" bash bench/allocations.sh
#   H2=1 bash bench/allocations.sh              # HTTP/2 to clients: h2load over h2c (-m 10) against --http2 on
#                                               # and bare-upstream.ts --http2
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${N:-1000}
TRIES=${TRIES:-8}
WARMUP=${WARMUP:-20000}
read -r -a LB_EXTRA <<<"${LB_ARGS:-}"
H2LOAD_ARGS=(--h1)
BARE_EXTRA=()
if [[ ${H2:-0} == 1 ]]; then
  H2LOAD_ARGS=(-m 10)
  LB_EXTRA+=(--http2 on)
  BARE_EXTRA=(--http2)
fi
LOG_TAG=allocations
source bench/lib.sh
command -v h2load >/dev/null || die "h2load is not installed (apt-get install -y nghttp2-client)"
scratch_dir allocations
if [[ -n ${BASE:-} ]]; then
  checkout_base
fi
start_two_backends

count() { # name, tree, entry, arguments...
  local name=$1 tree=$2 entry=$3
  shift 3
  (cd "$tree" && BUN_JSC_largeHeapSize=4000000000 BUN_GC_TIMER_DISABLE=1 LIVE_ENTRY=$entry LIVE_OUT="$WORK/$name" \
    exec taskset -c 0 bun "$OLDPWD/bench/live-objects.ts" "$@" "${URLS[@]}") >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$PORT/" "$name" "$pid"
  taskset -c 1 h2load "${H2LOAD_ARGS[@]}" -n "$WARMUP" -c 50 "http://127.0.0.1:$PORT/" >/dev/null
  kill -USR2 "$pid" # a full collection first: the batch starts on a clean heap
  wait_file "$WORK/$name.1"
  # The collector is held off, not stopped: it still runs now and then (once per 2,000 to 4,000 requests here), and a
  # collection during the batch frees most of it, so object-counts.ts voids that count and the batch runs again.
  local snapshot=1 try done
  for try in $(seq "$TRIES"); do
    kill -USR1 "$pid"
    wait_file "$WORK/$name.$((snapshot + 1))"
    done=$(taskset -c 1 h2load "${H2LOAD_ARGS[@]}" -n "$N" -c 50 "http://127.0.0.1:$PORT/" | awk '/^requests:/ { print $8 }')
    [[ $done == "$N" ]] || die "$name: $done of $N requests succeeded"
    kill -USR1 "$pid"
    wait_file "$WORK/$name.$((snapshot + 2))"
    local before="$WORK/$name.$((snapshot + 1))" after="$WORK/$name.$((snapshot + 2))"
    if bun bench/object-counts.ts "$before" "$after" "$N" "$name" "" 0.05 --no-negative 2>/dev/null; then
      kill "$pid"
      return 0
    fi
    log "$name: the collector ran during batch $try; again"
    snapshot=$((snapshot + 2))
  done
  kill "$pid"
  die "$name: the collector ran during each of $TRIES batches"
}

LB=(src/main.ts --port "$PORT" --host 127.0.0.1 --admin off --no-access-log "${LB_EXTRA[@]}")
log "lb at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo -dirty), $N requests at c=50 after $WARMUP, h2load ${H2LOAD_ARGS[*]}"
[[ -n ${BASE:-} ]] && count "base ($BASE)" "$WORK/base" "${LB[@]}"
count lb . "${LB[@]}"
count bare . bench/prototypes/bare-upstream.ts "${BARE_EXTRA[@]}" --port "$PORT"
