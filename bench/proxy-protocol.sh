#!/usr/bin/env bash
# What --accept-proxy's relay costs (issue 29): the same load through a front HAProxy in `mode tcp` (the L4 balancer,
# pinned to CPU 1 with wrk and the backends) to the proxy under test on CPU 0:
#   lb           front without a header  → lb
#   lb-accept    front with send-proxy-v2 → lb --accept-proxy (the Bun.listen relay, then Bun.serve on loopback)
#   haproxy         front without a header  → HAProxy (mode http, 1 thread)
#   haproxy-accept  front with send-proxy-v2 → HAProxy `bind ... accept-proxy`
# Two loads: keep-alive (one header per client connection, then the relay's bytes) and Connection: close (a header,
# a relay and a loopback connect per request). Variants interleaved, REPS × DURATION each; per run the requests/s
# and, for lb, its CPU per request (/proc/PID/stat), which other load on the machine skews less.
#   bash bench/proxy-protocol.sh                        # REPS=3 DURATION=4s CONNS=50, about 3 minutes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-3}
DURATION=${DURATION:-4s}
CONNS=${CONNS:-50}
VARIANTS=${VARIANTS:-lb lb-accept haproxy haproxy-accept}
LOG_TAG=proxy-protocol
source bench/lib.sh
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
for tool in wrk curl taskset "$HAPROXY"; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

WORK=$(mktemp -d /tmp/lb-proxy-protocol.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r B1 B2 FRONT_PLAIN FRONT_PP PROXY <<<"$(free_ports 5)"
start_bench_backends "$B1" "$B2"

# The L4 balancer in front, on the load's core: one port passes connections as they are, one with a v2 header.
cat >"$WORK/front.cfg" <<EOF
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
listen plain
  bind 127.0.0.1:$FRONT_PLAIN
  server p 127.0.0.1:$PROXY
listen pp
  bind 127.0.0.1:$FRONT_PP
  server p 127.0.0.1:$PROXY send-proxy-v2
EOF
taskset -c 1 "$HAPROXY" -db -f "$WORK/front.cfg" >/dev/null 2>&1 &
PIDS+=($!)

haproxy_under_test() { # accept-proxy or nothing
  cat <<EOF
global
  maxconn 4000
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$PROXY $1
  default_backend be
backend be
  balance roundrobin
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
EOF
}

# Starts the variant on CPU 0 and prints its pid once it answers through the front.
start_variant() {
  local variant=$1
  case $variant in
    lb | lb-accept)
      local flags=()
      [[ $variant == lb-accept ]] && flags=(--accept-proxy)
      taskset -c 0 bun src/main.ts --port "$PROXY" --host 127.0.0.1 --admin off --no-access-log "${flags[@]}" \
        "http://127.0.0.1:$B1" "http://127.0.0.1:$B2" >"$WORK/lb.log" 2>&1 &
      ;;
    haproxy | haproxy-accept)
      haproxy_under_test "$([[ $variant == haproxy-accept ]] && echo accept-proxy)" >"$WORK/haproxy.cfg"
      taskset -c 0 "$HAPROXY" -db -f "$WORK/haproxy.cfg" >/dev/null 2>&1 &
      ;;
  esac
  local pid=$!
  wait_http "$(front_url "$variant")" "$variant" "$pid"
  echo "$pid"
}

front_url() { [[ $1 == *-accept ]] && echo "http://127.0.0.1:$FRONT_PP/" || echo "http://127.0.0.1:$FRONT_PLAIN/"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

declare -A RPS CPU
for rep in $(seq "$REPS"); do
  read -r -a order <<<"$VARIANTS"
  ((rep % 2 == 0)) && mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
  for variant in "${order[@]}"; do
    pid=$(start_variant "$variant")
    PIDS+=("$pid")
    url=$(front_url "$variant")
    taskset -c 1 wrk -t2 -c"$CONNS" -d1s "$url" >/dev/null
    for load in keep-alive close; do
      header=()
      [[ $load == close ]] && header=(-H "Connection: close")
      before=$(ticks "$pid")
      out=$(taskset -c 1 wrk -t2 -c"$CONNS" -d"$DURATION" "${header[@]}" "$url")
      after=$(ticks "$pid")
      requests=$(awk '/requests in/ { print $1 }' <<<"$out")
      rps=$(awk '/Requests\/sec/ { printf "%d", $2 }' <<<"$out")
      errors=$(awk '/Non-2xx|Socket errors/' <<<"$out" | tr '\n' ' ')
      us=$(awk -v t=$((after - before)) -v u="$TICK_US" -v n="$requests" 'BEGIN { printf "%.1f", t * u / n }')
      RPS[$variant/$load]+="$rps "
      CPU[$variant/$load]+="$us "
      log "rep $rep $variant $load: $rps req/s, $us µs CPU per request ${errors}"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done

echo "| variant | load | req/s (median) | CPU µs per request (median) | runs (req/s) |"
echo "|---|---|---|---|---|"
for load in keep-alive close; do
  for variant in $VARIANTS; do
    echo "| $variant | $load | $(median <<<"${RPS[$variant/$load]}") | $(median <<<"${CPU[$variant/$load]}") | ${RPS[$variant/$load]}|"
  done
done
