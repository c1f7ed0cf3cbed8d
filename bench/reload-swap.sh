#!/usr/bin/env bash
# A reload onto a new backend set under load (issue 24): every second the proxy's config is rewritten to swap its
# backends between set A and set B (two Bun backends each), while wrk -c100 runs. lb reloads the changed file itself;
# HAProxy is restarted with -sf (the new process takes the listener, the old one finishes its requests). Prints the
# requests, non-2xx answers and socket errors of each run. Loopback only, unpinned; 6 runs of DURATION (10 s) each.
#   bash bench/reload-swap.sh
#   LB_DIR=/tmp/lb-old bash bench/reload-swap.sh       lb from another tree (git archive <commit> | tar -x -C /tmp/lb-old,
#                                                      then ln -s "$PWD/node_modules" /tmp/lb-old/)
#   VARIANTS="lb lb-workers haproxy" HEALTH_DELAYS="0 300" DURATION=10s   (the defaults)
# HEALTH_DELAY is how long each backend's GET /health takes to answer, in ms: a new backend's first check is slow.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=$PWD/bench
LB_DIR=${LB_DIR:-$PWD}
DURATION=${DURATION:-10s}
VARIANTS=${VARIANTS:-lb lb-workers haproxy}
HEALTH_DELAYS=${HEALTH_DELAYS:-0 300}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[[ -x $HAPROXY ]] || { apt-get update -qq && apt-get install -y -qq haproxy; HAPROXY=/usr/sbin/haproxy; }

LOG_TAG="reload-swap"
source "$BENCH_DIR/lib.sh"

WORK=$(mktemp -d /tmp/lb-reload-swap.XXXXXX)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  [[ -f $WORK/haproxy.pids ]] && xargs -r kill -9 <"$WORK/haproxy.pids" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r -a ports <<<"$(free_ports 5)"
proxy_port=${ports[4]}
set_a=("${ports[0]}" "${ports[1]}")
set_b=("${ports[2]}" "${ports[3]}")

start_backends() { # health delay in ms
  backend_pids=()
  for port in "${ports[@]:0:4}"; do
    HEALTH_DELAY_MS=$1 bun "$BENCH_DIR/backend.ts" "$port" 2>/dev/null &
    backend_pids+=($!)
    pids+=($!)
    wait_http "http://127.0.0.1:$port/" "backend $port" "$!"
  done
}

lb_config() { # ports of the set
  printf 'host = "127.0.0.1"\nport = %s\nadmin = "off"\naccess-log = false\nhealth-path = "/health"\nhealth-interval = "1s"\n' "$proxy_port"
  printf 'backends = [%s]\n' "$(printf '"http://127.0.0.1:%s", ' "$@" | sed 's/, $//')"
}

haproxy_config() { # ports of the set
  printf 'global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n'
  printf 'frontend fe\n  bind 127.0.0.1:%s\n  default_backend be\n' "$proxy_port"
  printf 'backend be\n  balance roundrobin\n  option httpchk GET /health\n  default-server check inter 1s\n'
  local i=0 port
  for port in "$@"; do printf '  server s%s 127.0.0.1:%s\n' "$((i += 1))" "$port"; done
}

# Writes the proxy's config for a set (atomically: written beside it, then renamed) and, for HAProxy, starts a new
# process that takes over from the running one (-sf). Its pid goes to $WORK/haproxy.pids.
switch_to() { # variant, set name
  local ports_of=("${set_a[@]}")
  [[ $2 == b ]] && ports_of=("${set_b[@]}")
  if [[ $1 == haproxy ]]; then
    haproxy_config "${ports_of[@]}" >"$WORK/haproxy.cfg"
    local old
    old=$(tail -n 1 "$WORK/haproxy.pids" 2>/dev/null || true)
    "$HAPROXY" -q -f "$WORK/haproxy.cfg" ${old:+-sf "$old"} 2>>"$WORK/haproxy.log" &
    echo $! >>"$WORK/haproxy.pids"
  else
    lb_config "${ports_of[@]}" >"$WORK/lb.toml.tmp"
    mv "$WORK/lb.toml.tmp" "$WORK/lb.toml"
  fi
}

run() { # variant, health delay
  local variant=$1 delay=$2 proxy_pid
  rm -f "$WORK/haproxy.pids"
  switch_to "$variant" a
  case $variant in
    haproxy) proxy_pid=$(cat "$WORK/haproxy.pids") ;;
    lb) (cd "$LB_DIR" && exec bun src/main.ts --config "$WORK/lb.toml") 2>"$WORK/lb.log" & proxy_pid=$! ;;
    lb-workers) (cd "$LB_DIR" && exec bun src/main.ts --config "$WORK/lb.toml" --workers 2) 2>"$WORK/lb.log" & proxy_pid=$! ;;
    *) die "unknown variant $variant" ;;
  esac
  pids+=("$proxy_pid")
  wait_http "http://127.0.0.1:$proxy_port/" "$variant" "$proxy_pid"
  # Both sets up before the load starts (lb checks the added set at once; HAProxy presumes it up).
  sleep 1
  (
    set=b
    while :; do
      sleep 1
      switch_to "$variant" "$set"
      echo >>"$WORK/swaps"
      [[ $set == b ]] && set=a || set=b
    done
  ) &
  local swapper=$!
  : >"$WORK/swaps"
  local out
  out=$(wrk -t2 -c100 -d"$DURATION" "http://127.0.0.1:$proxy_port/")
  kill "$swapper" 2>/dev/null || true
  wait "$swapper" 2>/dev/null || true
  if [[ $variant == haproxy ]]; then
    xargs -r kill <"$WORK/haproxy.pids" 2>/dev/null || true
  else
    kill -TERM "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
  fi
  local requests non2xx errors reloads
  requests=$(awk '/requests in/{print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/{print $NF}' <<<"$out")
  errors=$(awk '/Socket errors/{gsub(",", ""); print $4 "/" $6 "/" $8 "/" $10}' <<<"$out")
  reloads=$(wc -l <"$WORK/swaps")
  [[ $variant == haproxy ]] || reloads="$reloads ($(grep -c 'config reloaded' "$WORK/lb.log" || true) applied)"
  printf '%-11s %6s ms %-16s %9s %8s %s\n' "$variant" "$delay" "$reloads" "$requests" "${non2xx:-0}" "${errors:-0/0/0/0}"
}

log "lb from $LB_DIR ($(git -C "$LB_DIR" rev-parse --short HEAD 2>/dev/null || echo "not a git tree")); $("$HAPROXY" -v | head -1)"
printf '%-11s %9s %-16s %9s %8s %s\n' variant "health" reloads requests non-2xx "socket errors (connect/read/write/timeout)"
for delay in $HEALTH_DELAYS; do
  start_backends "$delay"
  for variant in $VARIANTS; do run "$variant" "$delay"; done
  kill "${backend_pids[@]}" 2>/dev/null || true
  wait "${backend_pids[@]}" 2>/dev/null || true
done
