#!/usr/bin/env bash
# Tail latency with one slow backend: three backends, one answering 10x slower (2 ms vs 20 ms), the same wrk load
# through lb under each policy. Prints requests/s, p50 and p99 per policy. Loopback only, about a minute.
#   bash bench/slow-backend.sh                 DURATION=10s CONNS=30 by default
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-30}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

LOG_TAG="slow-backend"
source bench/lib.sh

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
read -r -a ports <<<"$(free_ports 4)"
lb_port=${ports[3]}

urls=()
delays=(2 2 20)
for i in 0 1 2; do
  port=${ports[$i]}
  taskset -c 1 bun bench/backend.ts "$port" "${delays[$i]}" 2>/dev/null &
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
  wait_http "http://127.0.0.1:$port/" "backend $port" "$!"
done

printf '%-18s %10s %10s %10s %10s %10s\n' policy "req/s" "p50" "p90" "p99" "to slow"
for policy in round-robin least-connections p2c ewma; do
  taskset -c 0 bun src/main.ts --port "$lb_port" --host 127.0.0.1 --admin off --policy "$policy" --log-format json "${urls[@]}" \
    >"/tmp/lb-slow-$policy.log" 2>/dev/null &
  lb=$!
  wait_http "http://127.0.0.1:$lb_port/" "lb ($policy)" "$lb"
  out=$(taskset -c 1 wrk -t2 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$lb_port/")
  kill -TERM "$lb"; wait "$lb" 2>/dev/null || true
  slow=$(grep -c "\"backend\":\"127.0.0.1:${urls[2]##*:}\"" "/tmp/lb-slow-$policy.log" || true)
  total=$(wc -l <"/tmp/lb-slow-$policy.log")
  printf '%-18s %10s %10s %10s %10s %9s%%\n' "$policy" \
    "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    "$(awk '/ 50%/{print $2}' <<<"$out")" \
    "$(awk '/ 90%/{print $2}' <<<"$out")" \
    "$(awk '/ 99%/{print $2}' <<<"$out")" \
    "$(( total > 0 ? 100 * slow / total : 0 ))"
  rm -f "/tmp/lb-slow-$policy.log"
done
