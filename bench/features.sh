#!/usr/bin/env bash
# What routes and hooks cost on the hot path: lb as it is, with routes, with a hook, and (BASE=<git ref>) the code
# before them, interleaved in one run, pinned like bench/run.sh (lb on CPU 0, wrk + backends on CPU 1).
#
#   bash bench/features.sh                       # REPS=5 × DURATION=4s at c=50 and c=200, about 5 minutes
#   BASE=b24d9fd bash bench/features.sh          # also lb at that commit (a git worktree in a temp dir)
#   VARIANTS="lb h2" BASE=bce0d0e bash bench/features.sh   # only these variants (and base, base-h2 at BASE)
#
# Variants (each in front of the same two Bun backends, GET /, no access log, no admin API):
#   base     lb at BASE, when given
#   lb       lb without routes or hooks: the path the "no cost when unused" claim is about
#   routes   3 pools and 4 routes (host, path prefix, header, then a default); requests match the last one
#   hook     lb with a synchronous onRequest hook that reads a header and sets nothing
#   h2       lb with --http2 on (still HTTP/1.1 from wrk): the listener offers h2c, so every request waits one
#            event-loop turn for a cancel (rapid reset); not run unless named in VARIANTS
#   base-h2  h2 at BASE, when given and h2 is named
# Each repetition runs every variant once (the order rotates); the report gives medians, and each variant's ratio
# to lb. Written to bench/results/<YYYY-MM-DD>-features.md (or OUT=file) and printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-5}
DURATION=${DURATION:-4s}
CONNS=(50 200)
LOG_TAG=features
source bench/lib.sh
for tool in wrk curl taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
(($(nproc) >= 2)) || die "needs 2 CPUs (lb on one, wrk and backends on the other)"

scratch_dir features


read -r B1 B2 PORT <<<"$(free_ports 3)"
start_bench_backends "$B1" "$B2"
BACKENDS="\"http://127.0.0.1:$B1\", \"http://127.0.0.1:$B2\""

cat >"$WORK/plain.toml" <<EOF
host = "127.0.0.1"
admin = "off"
access-log = false
backends = [$BACKENDS]
EOF
cat >"$WORK/routes.toml" <<EOF
host = "127.0.0.1"
admin = "off"
access-log = false
backends = [$BACKENDS]
[pools.api]
backends = ["http://127.0.0.1:1"]
[pools.canary]
backends = ["http://127.0.0.1:2"]
[[routes]]
host = "api.example.com"
pool = "api"
[[routes]]
path-prefix = "/api/"
strip-prefix = true
pool = "api"
[[routes]]
header = { "x-canary" = "1" }
pool = "canary"
[[routes]]
pool = "default"
EOF
cat >"$WORK/hooks.ts" <<'EOF'
export function onRequest(ctx) {
  if (ctx.request.headers.get("x-canary") === "1") ctx.pool = "canary";
}
EOF
cp "$WORK/plain.toml" "$WORK/hook.toml"
echo "hooks = \"$WORK/hooks.ts\"" >>"$WORK/hook.toml"
cp "$WORK/plain.toml" "$WORK/h2.toml"
echo 'http2 = "on"' >>"$WORK/h2.toml"

read -r -a VARIANTS <<<"${VARIANTS:-lb routes hook}"
if [[ -n ${BASE:-} ]]; then
  checkout_base
  [[ " ${VARIANTS[*]} " == *" h2 "* ]] && VARIANTS=(base-h2 "${VARIANTS[@]}")
  VARIANTS=(base "${VARIANTS[@]}")
fi

start_variant() {
  local variant=$1 tree=. config=$WORK/${1#base-}.toml
  [[ $variant == lb || $variant == base ]] && config=$WORK/plain.toml
  [[ $variant == base* ]] && tree=$WORK/base
  (cd "$tree" && exec taskset -c 0 bun src/main.ts --config "$config" --port "$PORT") >"$WORK/$variant.log" 2>&1 &
  LB_PID=$!
  wait_http "http://127.0.0.1:$PORT/" "lb ($variant)" "$LB_PID"
}

declare -A RESULTS
for rep in $(seq "$REPS"); do
  n=${#VARIANTS[@]}
  for i in $(seq 0 $((n - 1))); do
    variant=${VARIANTS[$(((i + rep) % n))]}
    start_variant "$variant"
    taskset -c 1 wrk -t2 -c50 -d2s "http://127.0.0.1:$PORT/" >/dev/null # warm-up
    for c in "${CONNS[@]}"; do
      rps=$(taskset -c 1 wrk -t2 -c"$c" -d"$DURATION" "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ { print $2 }')
      RESULTS[$variant,$c]+="$rps "
      log "rep $rep $variant c=$c: $rps req/s"
    done
    kill "$LB_PID"
    wait "$LB_PID" 2>/dev/null || true
  done
done

OUT=${OUT:-bench/results/$(date +%F)-features.md}
{
  echo "# Routes and hooks on the hot path ($(date +%F))"
  echo
  echo "\`bash bench/features.sh\` at $(git rev-parse --short HEAD)${BASE:+, base $BASE}: $REPS interleaved repetitions × $DURATION, lb pinned to CPU 0, wrk and two Bun backends on CPU 1. Medians in requests/s; ratio to \`lb\` (no routes, no hooks) in brackets."
  echo
  echo "| variant |$(printf ' c=%s |' "${CONNS[@]}")"
  echo "|---|$(printf -- '---|%.0s' "${CONNS[@]}")"
  for variant in "${VARIANTS[@]}"; do
    row="| $variant |"
    for c in "${CONNS[@]}"; do
      m=$(echo "${RESULTS[$variant,$c]}" | median)
      ref=$(echo "${RESULTS[lb,$c]}" | median)
      row+=" $(printf '%.0f (%.2f×)' "$m" "$(echo "$m / $ref" | bc -l)") |"
    done
    echo "$row"
  done
  echo
  echo "Every run per variant and connection count:"
  for variant in "${VARIANTS[@]}"; do for c in "${CONNS[@]}"; do echo "- $variant c=$c: ${RESULTS[$variant,$c]}"; done; done
} >"$OUT"
cat "$OUT"
