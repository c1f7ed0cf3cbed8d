#!/usr/bin/env bash
# lb's memory, lb at BASE against lb as it is (and the bare ceiling), interleaved: RSS idle and at its peak under load.
# Pinned as bench/run.sh: lb on CPU 0, wrk and the backends on CPU 1.
#
#   bash bench/memory.sh                      # lb as it is and bench/prototypes/bare-upstream.ts, REPS=3
#   BASE=cd70c6d bash bench/memory.sh         # also lb at that commit
#   BARE=0 BASE=cd70c6d bash bench/memory.sh  # without the bare ceiling
#   WORKERS=2 bash bench/memory.sh            # lb --workers 2 (unpinned): RSS of the primary and of each worker
#
# Per run: lb starts (`bun src/main.ts --admin off --no-access-log`, two Bun backends), answers 3 requests, and its
# VmRSS 1 s later is "idle"; then wrk runs the session bench/run.sh does before its c=1000 run (c=1 2 s, c=50 3 s,
# c=200 3 s) and "peak" is the highest VmRSS sampled every 100 ms over 5 s at c=1000. With WORKERS, each process of
# lb is sampled on its own: the primary (health checks, no traffic) and every worker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-3}
BARE=${BARE:-1}
WORKERS=${WORKERS:-1}
LOG_TAG=memory
source bench/lib.sh
for tool in wrk curl taskset pgrep; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
ulimit -n 20000 2>/dev/null || (($(ulimit -n) >= 2400)) || die "c=1000 needs an open-file limit of at least 2400"

scratch_dir memory

VARIANTS=(now)
if [[ -n ${BASE:-} ]]; then
  checkout_base
  VARIANTS=(base now)
fi
[[ $BARE == 1 && $WORKERS == 1 ]] && VARIANTS+=(bare)
read -r B1 B2 PORT <<<"$(free_ports 3)"
start_bench_backends "$B1" "$B2"
URLS=("http://127.0.0.1:$B1" "http://127.0.0.1:$B2")
PIN=(taskset -c 0)
((WORKERS > 1)) && PIN=()

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# One run of a variant; prints "idle-KiB peak-KiB req/s" (with WORKERS: per process, the primary first).
measure() {
  local variant=$1 tree=.
  [[ $variant == base ]] && tree=$WORK/base
  if [[ $variant == bare ]]; then
    (exec "${PIN[@]}" bun bench/prototypes/bare-upstream.ts --port "$PORT" "${URLS[@]}") >"$WORK/lb.log" 2>&1 &
  else
    (cd "$tree" && exec "${PIN[@]}" bun src/main.ts --port "$PORT" --host 127.0.0.1 --admin off --no-access-log \
      --workers "$WORKERS" "${URLS[@]}") >"$WORK/lb.log" 2>&1 &
  fi
  local pid=$! p
  wait_http "http://127.0.0.1:$PORT/" "$variant" "$pid"
  for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$PORT/"; done
  sleep 1
  local procs=("$pid")
  ((WORKERS > 1)) && read -r -a procs <<<"$pid $(pgrep -P "$pid" | tr '\n' ' ')"
  local -A idle=() peak=()
  for p in "${procs[@]}"; do idle[$p]=$(rss_kib "$p"); done
  taskset -c 1 wrk -t1 -c1 -d2s "http://127.0.0.1:$PORT/" >/dev/null
  taskset -c 1 wrk -t2 -c50 -d3s "http://127.0.0.1:$PORT/" >/dev/null
  taskset -c 1 wrk -t2 -c200 -d3s "http://127.0.0.1:$PORT/" >/dev/null
  taskset -c 1 wrk -t2 -c1000 -d5s "http://127.0.0.1:$PORT/" >"$WORK/wrk.txt" 2>&1 &
  local wrk=$! kib
  while kill -0 "$wrk" 2>/dev/null; do
    for p in "${procs[@]}"; do
      kib=$(rss_kib "$p")
      ((kib > ${peak[$p]:-0})) && peak[$p]=$kib
    done
    sleep 0.1
  done
  wait "$wrk" || die "wrk failed: $(cat "$WORK/wrk.txt")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  for p in "${procs[@]}"; do printf '%s %s ' "${idle[$p]}" "${peak[$p]:-0}"; done
  awk '/^Requests\/sec:/ { printf "%d\n", $2 }' "$WORK/wrk.txt"
}

declare -A IDLE=() PEAK=()
for rep in $(seq "$REPS"); do
  for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
    variant=${VARIANTS[(i + rep - 1) % ${#VARIANTS[@]}]}
    read -r -a out <<<"$(measure "$variant")"
    line="rep $rep $variant:"
    for ((k = 0; k + 1 < ${#out[@]}; k += 2)); do
      IDLE[$variant.$((k / 2))]+="${out[k]} "
      PEAK[$variant.$((k / 2))]+="${out[k + 1]} "
      line+=" idle $(mib "${out[k]}") peak $(mib "${out[k + 1]}") MiB;"
    done
    log "$line ${out[-1]} req/s at c=1000"
    sleep 1
  done
done
log "$REPS reps, --workers $WORKERS; load $(cut -d' ' -f1-3 /proc/loadavg)"
for key in $(printf '%s\n' "${!IDLE[@]}" | sort); do
  variant=${key%.*} proc=${key#*.} name=$variant
  ((WORKERS > 1)) && name="$variant $([[ $proc == 0 ]] && echo primary || echo "worker $proc")"
  echo "$name: idle median $(mib "$(median <<<"${IDLE[$key]}")") MiB, peak at c=1000 median $(mib "$(median <<<"${PEAK[$key]}")") MiB (KiB idle: ${IDLE[$key]}; peak: ${PEAK[$key]})"
done
