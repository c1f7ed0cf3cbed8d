#!/usr/bin/env bash
# Side-by-side measurement for the "is fetch the wall?" question: the Bun.connect prototype proxy
# (bench/prototypes/connect-proxy.ts), lb (one process) and HAProxy (1 thread), pinned like bench/run.sh: the proxy
# on CPU 0, wrk and the 2 backends (bench/backend.ts, 100-byte body) on CPU 1.
#
#   bash bench/prototypes/compare.sh                    # REPS=3 interleaved, DURATION=10s, CONNS="50 200"
#   REPS=1 DURATION=2s bash bench/prototypes/compare.sh # a quick check
#   OUT=/tmp/x.tsv bash bench/prototypes/compare.sh     # where the raw per-run figures go (default: a temp file)
#   PROXIES="serve-only" bash bench/prototypes/compare.sh   # also: a bare Bun.serve with no upstream (the front's ceiling)
#   PROXIES="serve-front node-front node-adapter lb" bash bench/prototypes/compare.sh   # listeners that could pipeline
#                                                    # (bench/prototypes/relay-fronts.ts; results/2026-11-25-pipelining.md)
#
# Before every proxy session it waits (polling every 10 s, at most 15 min) until no `bun test` and no soak.ts
# run is on the machine. Prints the raw TSV and a table of medians.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
REPS=${REPS:-3}
CONNS=${CONNS:-50 200}
read -r -a PROXIES <<<"${PROXIES:-proto lb haproxy}"
WORK=$(mktemp -d /tmp/lb-proto.XXXXXX)
OUT=${OUT:-$WORK/results.tsv}
PIDS=()

LOG_TAG=compare
source bench/lib.sh
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

wait_quiet() { # the bracket keeps pgrep from matching this script's own command lines
  local i
  for ((i = 0; i < 90; i++)); do
    if ! pgrep -f "bun [t]est" >/dev/null && ! pgrep -f "soak[.]ts" >/dev/null; then return 0; fi
    ((i == 0)) && log "waiting for other test runs to finish: $(pgrep -af 'bun [t]est|soak[.]ts' | head -3 | tr '\n' ';')"
    sleep 10
  done
  die "the machine did not become quiet within 15 min"
}

read -r B1 B2 PORT <<<"$(free_ports 3)"
BACKENDS=("http://127.0.0.1:$B1" "http://127.0.0.1:$B2")

for p in "$B1" "$B2"; do
  taskset -c 1 bun bench/backend.ts "$p" 2>/dev/null &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$p/" "backend $p" "$!"
done

cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse safe
frontend fe
  bind 127.0.0.1:$PORT
  default_backend be
backend be
  balance roundrobin
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
EOF
haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy rejected its config"

start() { # proxy name; sets PROXY
  case $1 in
    proto) taskset -c 0 bun bench/prototypes/connect-proxy.ts --port "$PORT" "${BACKENDS[@]}" 2>"$WORK/$1.log" & ;;
    serve-front | node-front | node-adapter) # bench/prototypes/relay-fronts.ts: the fronts lb could pipeline behind
      taskset -c 0 bun bench/prototypes/relay-fronts.ts "$1" --port "$PORT" "${BACKENDS[@]}" 2>"$WORK/$1.log" & ;;
    lb) taskset -c 0 bun src/main.ts --port "$PORT" --host 127.0.0.1 --admin off --no-access-log "${BACKENDS[@]}" >/dev/null 2>"$WORK/$1.log" & ;;
    haproxy) taskset -c 0 haproxy -db -f "$WORK/haproxy.cfg" 2>"$WORK/$1.log" & ;;
    serve-only) # no upstream at all: Bun.serve answering a fixed 100-byte body, the ceiling of any Bun.serve front
      taskset -c 0 bun -e 'const body = new TextEncoder().encode("hello from serve-only ".padEnd(99, ".") + "\n");
        const headers = { "content-type": "text/plain" };
        Bun.serve({ port: Number(process.argv[1]), hostname: "127.0.0.1", development: false, fetch: () => new Response(body, { headers }) });' \
        "$PORT" 2>"$WORK/$1.log" & ;;
  esac
  PROXY=$!
  PIDS+=("$PROXY")
}

cpu_ticks() { awk '$1 == "cpu0" || $1 == "cpu1" { t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%d %d ", t - $5 - $6, t }' /proc/stat; }
busy() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { split(a, x); split(b, y); i = c * 2 + 1; printf "%.0f", (y[i] - x[i]) * 100 / (y[i + 1] - x[i + 1]) }'; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) sub(/ms$/, "", v);
  else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.2f", v }'; }

printf 'proxy\trep\tconns\trps\tp50_ms\tp99_ms\terrors\tcpu0\tcpu1\tupstream_conns\n' >"$OUT"
for ((rep = 1; rep <= REPS; rep++)); do
  for ((i = 0; i < ${#PROXIES[@]}; i++)); do
    name=${PROXIES[(i + rep - 1) % ${#PROXIES[@]}]}
    wait_quiet
    start "$name"
    wait_http "http://127.0.0.1:$PORT/" "$name" "$PROXY"
    body=$(curl -s "http://127.0.0.1:$PORT/")
    [[ $body == "hello from "* && ${#body} == 99 ]] || die "$name: unexpected body: ${body:0:80}"
    taskset -c 1 wrk -t2 -c50 -d"$WARMUP" "http://127.0.0.1:$PORT/" >/dev/null
    for c in $CONNS; do
      before=$(cpu_ticks)
      taskset -c 1 wrk -t2 -c"$c" -d"$DURATION" --latency "http://127.0.0.1:$PORT/" >"$WORK/wrk-$name-$c-$rep.txt" &
      wrk_pid=$!
      sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 2 }')"
      upstream=$(ss -Htn state established "( dport = :$B1 or dport = :$B2 )" | wc -l)
      wait "$wrk_pid"
      after=$(cpu_ticks)
      f="$WORK/wrk-$name-$c-$rep.txt"
      rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$f")
      p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$f")")
      p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$f")")
      errors=$(awk '/Non-2xx/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$f")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rep" "$c" "$rps" "$p50" "$p99" "$errors" \
        "$(busy "$before" "$after" 0)" "$(busy "$before" "$after" 1)" "$upstream" | tee -a "$OUT" >&2
    done
    kill -TERM "$PROXY"
    wait "$PROXY" 2>/dev/null || true
    sleep 1
  done
done

echo
cat "$OUT"
echo
echo "| proxy | conns | req/s (median) | req/s min–max | p99 ms (median) | errors (Σ) | CPU0 | CPU1 |"
echo "|---|---|---|---|---|---|---|---|"
bun -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").slice(1).map((l) => l.split("\t"));
  const med = (xs) => { const s = xs.map(Number).sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
  const groups = new Map();
  for (const r of rows) { const k = r[0] + " " + r[2]; groups.set(k, [...(groups.get(k) ?? []), r]); }
  for (const [k, rs] of groups) {
    const rps = rs.map((r) => +r[3]);
    console.log(`| ${rs[0][0]} | ${rs[0][2]} | ${Math.round(med(rps)).toLocaleString("en")} | ${Math.min(...rps).toLocaleString("en")}–${Math.max(...rps).toLocaleString("en")} | ${med(rs.map((r) => r[5])).toFixed(2)} | ${rs.reduce((n, r) => n + +r[6], 0)} | ${med(rs.map((r) => r[7]))}% | ${med(rs.map((r) => r[8]))}% |`);
  }' "$OUT"
