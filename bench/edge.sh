#!/usr/bin/env bash
# What the edge policies cost on the request path (docs/edge.md): lb with none configured against lb before they
# existed (BASE), and with all of them on, interleaved in one run, pinned like bench/run.sh (lb on CPU 0; wrk and the
# two Bun backends on CPU 1).
#
#   BASE=a2bcd22 bash bench/edge.sh        # REPS=8 × DURATION=3s at c=50, about 3 minutes
#
# Variants (each in front of the same two Bun backends, GET /, no access log):
#   base   lb at BASE (before the edge policies), when given
#   off    lb as it is, no policy: the path the "costs nothing when not configured" claim is about
#   on     --trusted-proxies, --allow, --deny, --rate-limit (high enough never to refuse), a request and a response
#          header rule with a placeholder: every policy does its work on every request
# Each repetition runs every variant once, the order rotating. Reported: medians of requests/s and of lb's CPU time
# per request (user+system ticks in /proc/PID/stat over the measured wrk run, over the requests it completed: steadier
# than requests/s on a shared machine), each as a ratio to `off`. Written to bench/results/<date>-edge.md (or OUT).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-8}
DURATION=${DURATION:-3s}
CONNS=${CONNS:-50}
LOG_TAG=edge
source bench/lib.sh
for tool in wrk curl taskset bc; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

WORK=$(mktemp -d /tmp/lb-edge.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [[ -n ${BASE:-} ]] && git worktree remove --force "$WORK/base" 2>/dev/null; rm -rf "$WORK"' EXIT

read -r B1 B2 PORT ADMIN <<<"$(free_ports 4)"
start_bench_backends "$B1" "$B2"
VARIANTS=(off on)
if [[ -n ${BASE:-} ]]; then
  checkout_base
  VARIANTS=(base off on)
fi
POLICIES=(--trusted-proxies 10.0.0.0/8 --allow 127.0.0.0/8,::1 --deny 192.0.2.0/24 --rate-limit 10000000/s
  --request-headers "set X-Real-IP: {client_ip}" --response-headers "set X-Served-By: lb {request_id}")

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
declare -A RPS CPU
for rep in $(seq "$REPS"); do
  for i in "${!VARIANTS[@]}"; do
    variant=${VARIANTS[$(((i + rep) % ${#VARIANTS[@]}))]}
    tree=. extra=()
    [[ $variant == base ]] && tree=$WORK/base
    [[ $variant == on ]] && extra=("${POLICIES[@]}")
    (cd "$tree" && exec taskset -c 0 bun src/main.ts --host 127.0.0.1 --port "$PORT" --admin "127.0.0.1:$ADMIN" --no-access-log \
      "${extra[@]}" "http://127.0.0.1:$B1" "http://127.0.0.1:$B2") >"$WORK/$variant.log" 2>&1 &
    lb=$!
    wait_http "http://127.0.0.1:$PORT/" "lb ($variant)" "$lb"
    taskset -c 1 wrk -t2 -c"$CONNS" -d1s "http://127.0.0.1:$PORT/" >/dev/null # warm-up
    ticks=$(cpu_ticks "$lb")
    out=$(taskset -c 1 wrk -t2 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$PORT/")
    ticks=$(($(cpu_ticks "$lb") - ticks))
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    [[ $(awk '/Non-2xx/ { print $NF }' <<<"$out") == "" ]] || die "$variant: wrk saw non-2xx answers: $out"
    RPS[$variant]+="$rps "
    CPU[$variant]+="$(echo "$ticks * $TICK_US / $(awk '/requests in/ { print $1 }' <<<"$out")" | bc -l | xargs printf '%.1f') "
    log "rep $rep $variant: $rps req/s"
    kill "$lb"
    wait "$lb" 2>/dev/null || true
  done
done

OUT=${OUT:-bench/results/$(date +%F)-edge.md}
ratio() { printf '%.3f' "$(echo "$1 / $2" | bc -l)"; }
rps_off=$(echo "${RPS[off]}" | median)
cpu_off=$(echo "${CPU[off]}" | median)
{
  echo "# Edge policies on the request path ($(date +%F))"
  echo
  echo "\`${BASE:+BASE=$BASE }bash bench/edge.sh\` at $(git rev-parse --short HEAD): $REPS interleaved repetitions × $DURATION at c=$CONNS, lb (\`bun src/main.ts\`) pinned to CPU 0, wrk and two Bun backends on CPU 1, on a 2-core machine other engineers were running tests on. Medians, ratio to \`off\` in brackets."
  echo
  echo "| variant | req/s | lb CPU µs per request |"
  echo "|---|---|---|"
  for variant in "${VARIANTS[@]}"; do
    r=$(echo "${RPS[$variant]}" | median)
    c=$(echo "${CPU[$variant]}" | median)
    echo "| $variant | $(printf '%.0f' "$r") ($(ratio "$r" "$rps_off")×) | $c ($(ratio "$c" "$cpu_off")×) |"
  done
  echo
  echo "Every run (req/s; CPU µs per request):"
  for variant in "${VARIANTS[@]}"; do echo "- $variant: ${RPS[$variant]}; ${CPU[$variant]}"; done
} >"$OUT"
cat "$OUT"
