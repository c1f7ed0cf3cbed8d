#!/usr/bin/env bash
# Objects each request in flight keeps alive, lb against the bare ceiling, by JavaScriptCore's object type: a count,
# not a time, so a busy machine does not blur it. A backend that answers after 3 s holds HELD requests (wrk) while
# each proxy's heap is counted after a full collection, and once idle before; prints the difference per request.
#
#   bash bench/live-objects.sh            # HELD=400
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
HELD=${HELD:-400}
LOG_TAG=live-objects
source bench/lib.sh
command -v wrk >/dev/null || die "wrk is not installed"
scratch_dir live
read -r BACKEND PORT <<<"$(free_ports 2)"
bun bench/backend.ts "$BACKEND" 3000 >/dev/null 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$BACKEND/health" backend "$!"

count() { # name, entry, arguments...
  local name=$1 entry=$2
  shift 2
  LIVE_ENTRY=$entry LIVE_OUT="$WORK/$name" bun bench/live-objects.ts "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  # /health answers at once: the slow backend would make the first request wait 3 s.
  for _ in $(seq 150); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
  kill -USR2 "$pid"
  wait_file "$WORK/$name.1"
  wrk -t1 -c"$HELD" -d3s --timeout 10s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 &
  local load=$!
  sleep 1.5 # the requests are held for 3 s; half way, all are in flight
  kill -USR2 "$pid"
  wait_file "$WORK/$name.2"
  wait "$load" || true
  kill "$pid"
  bun bench/object-counts.ts "$WORK/$name.1" "$WORK/$name.2" "$HELD" "$name" " in flight" 0.5
}

log "lb at $(git rev-parse --short HEAD), $HELD requests held by a backend answering after 3 s"
count lb src/main.ts --port "$PORT" --host 127.0.0.1 --admin off --no-access-log --health-path /health "http://127.0.0.1:$BACKEND"
count bare bench/prototypes/bare-upstream.ts --port "$PORT" "http://127.0.0.1:$BACKEND"
