#!/usr/bin/env bash
# What compression costs, and that it costs nothing when off: every proxy pinned to CPU 0 (Caddy with GOMAXPROCS=1,
# nginx with one worker), wrk and two Bun backends (bench/backend.ts) on CPU 1, rounds interleaved (the order rotates).
# Each run gives requests/s and the proxy's CPU time per request (/proc/PID/stat, its children included).
#
#   bash bench/compression.sh                 # ROUNDS=8 × DURATION=3s, c=50; about 8 minutes
#   BASE=<ref> bash bench/compression.sh      # the "off" A/B against that commit (default: the one before compression)
#
# Part 1, compression off costs nothing: GET / (100 bytes) through lb at BASE and lb now without --compress.
# Part 2, compression on: GET /text (64 KiB of JSON) with an Accept-Encoding of one coding:
#   lb-identity   lb without --compress (the answer as it is: what compressing adds to)
#   lb-gzip, lb-br, lb-zstd   lb --compress, the client accepting that coding
#   nginx-gzip    nginx 1.22 `gzip on`, gzip_comp_level 4 (lb's level), gzip_types application/json
#   nginx-gzip1   the same at nginx's default gzip_comp_level 1
#   caddy-gzip, caddy-zstd    Caddy 2.6 `encode zstd gzip` (its default levels)
# Written to bench/results/<YYYY-MM-DD>-compression-run.md (or OUT=file) and printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-3s}
CONNS=${CONNS:-50}
LOG_TAG=compression
source bench/lib.sh
for tool in wrk curl taskset nginx caddy; do command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || die "$tool is not installed (apt-get install -y wrk nginx-light caddy)"; done
(($(nproc) >= 2)) || die "needs 2 CPUs (the proxy on one, wrk and backends on the other)"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
BASE=${BASE:-$(git log --reverse --format=%h -S compressAnswer -- src/proxy/forward.ts | head -1)^}

WORK=$(mktemp -d /tmp/lb-compression.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git worktree remove --force "$WORK/base" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r B1 B2 PORT <<<"$(free_ports 3)"
start_bench_backends "$B1" "$B2"
checkout_base

mkdir -p "$WORK/nginx/tmp" "$WORK/caddy"
for level in 4 1; do
  cat >"$WORK/nginx/gzip$level.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  keepalive_requests 1000000;
  gzip on;
  gzip_comp_level $level;
  gzip_types application/json;
  gzip_proxied any;
  upstream backends {
    server 127.0.0.1:$B1;
    server 127.0.0.1:$B2;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$PORT;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
    }
  }
}
EOF
  "$NGINX" -t -q -p "$WORK/nginx" -c "$WORK/nginx/gzip$level.conf" -e "$WORK/nginx/error.log" || die "nginx rejected gzip$level.conf"
done
cat >"$WORK/caddy/Caddyfile" <<EOF
{
  admin off
  auto_https off
}
http://127.0.0.1:$PORT {
  encode zstd gzip
  reverse_proxy 127.0.0.1:$B1 127.0.0.1:$B2
}
EOF

# The proxy of a variant on CPU 0, in the background; LB_PID is its process id.
start_variant() {
  local variant=$1 tree=. flags=()
  case $variant in
    base | off | lb-identity | lb-*)
      [[ $variant == base ]] && tree=$WORK/base
      [[ $variant == lb-gzip || $variant == lb-br || $variant == lb-zstd ]] && flags=(--compress)
      (cd "$tree" && exec taskset -c 0 bun src/main.ts --port "$PORT" --host 127.0.0.1 --admin off --no-access-log \
        "${flags[@]}" "http://127.0.0.1:$B1" "http://127.0.0.1:$B2") >"$WORK/$variant.log" 2>&1 &
      ;;
    nginx-gzip | nginx-gzip1)
      local level=4
      [[ $variant == nginx-gzip1 ]] && level=1
      taskset -c 0 "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/gzip$level.conf" -e "$WORK/nginx/error.log" >/dev/null 2>&1 &
      ;;
    caddy-*)
      XDG_DATA_HOME=$WORK/caddy XDG_CONFIG_HOME=$WORK/caddy GOMAXPROCS=1 \
        taskset -c 0 caddy run --config "$WORK/caddy/Caddyfile" --adapter caddyfile >"$WORK/$variant.log" 2>&1 &
      ;;
  esac
  LB_PID=$!
  wait_http "http://127.0.0.1:$PORT/" "$variant" "$LB_PID"
}

# The coding a variant's client accepts (empty: none).
accepts() {
  case $1 in
    *-gzip | *-gzip1) echo gzip ;;
    *-br) echo br ;;
    *-zstd) echo zstd ;;
    lb-identity) echo gzip ;;
    *) echo "" ;;
  esac
}

# CPU ticks (user + system) used so far by a process and its children (nginx's worker): a figure a busy machine skews
# far less than requests/s, since other processes take the time, not the proxy's CPU per request.
tree_ticks() { # pid
  local pid total=0
  for pid in "$1" $(pgrep -P "$1" || true); do total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
  echo "$total"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

declare -A RESULTS BYTES CPU
run_round() { # round, path, variant...
  local round=$1 path=$2 variants=("${@:3}") n i variant encoding header=() check expected before after out rps us
  n=${#variants[@]}
  for i in $(seq 0 $((n - 1))); do
    variant=${variants[$(((i + round) % n))]}
    encoding=$(accepts "$variant")
    header=()
    [[ -n $encoding ]] && header=(-H "Accept-Encoding: $encoding")
    start_variant "$variant"
    # What one answer is on the wire, and that it is in the coding asked for (lb-identity: none, compression off).
    check=$(curl -s -o /dev/null "${header[@]}" -w '%{size_download} %header{content-encoding}' "http://127.0.0.1:$PORT$path")
    expected=$encoding
    [[ $variant == lb-identity ]] && expected=""
    [[ "${check#* }" == "$expected" ]] || die "$variant answered Content-Encoding '${check#* }', not '$expected'"
    BYTES[$variant]=${check%% *}
    taskset -c 1 wrk -t2 -c"$CONNS" -d1s "${header[@]}" "http://127.0.0.1:$PORT$path" >/dev/null # warm-up
    before=$(tree_ticks "$LB_PID")
    out=$(taskset -c 1 wrk -t2 -c"$CONNS" -d"$DURATION" "${header[@]}" "http://127.0.0.1:$PORT$path")
    after=$(tree_ticks "$LB_PID")
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    us=$(((after - before) * TICK_US / $(awk '/requests in/ { print $1 }' <<<"$out")))
    RESULTS[$variant]+="$rps "
    CPU[$variant]+="$us "
    log "round $round $variant: $rps req/s, $us µs CPU per request (${BYTES[$variant]} bytes an answer)"
    kill "$LB_PID"
    wait "$LB_PID" 2>/dev/null || true
  done
}

OFF=(base off)
ON=(lb-identity lb-gzip lb-br lb-zstd nginx-gzip nginx-gzip1 caddy-gzip caddy-zstd)
for round in $(seq "$ROUNDS"); do run_round "$round" / "${OFF[@]}"; done
for round in $(seq "$ROUNDS"); do run_round "$round" /text "${ON[@]}"; done

row() { # variant, reference variant
  local m ref cpu cpuref
  m=$(echo "${RESULTS[$1]}" | median)
  ref=$(echo "${RESULTS[$2]}" | median)
  cpu=$(echo "${CPU[$1]}" | median)
  cpuref=$(echo "${CPU[$2]}" | median)
  printf '| %s | %.0f | %.2f× | %.0f | %.2f× | %s |\n' "$1" "$m" "$(echo "$m / $ref" | bc -l)" "$cpu" "$(echo "$cpu / $cpuref" | bc -l)" "${BYTES[$1]}"
}
OUT=${OUT:-bench/results/$(date +%F)-compression-run.md}
{
  echo "# Compression: its cost, and none when off ($(date +%F))"
  echo
  echo "\`bash bench/compression.sh\` at $(git rev-parse --short HEAD), base $(git -C "$WORK/base" rev-parse --short HEAD): $ROUNDS interleaved rounds × $DURATION at c=$CONNS; each proxy pinned to CPU 0, wrk and two Bun backends on CPU 1; medians of requests/s and of the proxy's CPU time per request. A shared 2-core machine: other engineers' tests ran meanwhile (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end)."
  echo
  echo "Compression off, GET / (100 bytes):"
  echo
  echo "| variant | req/s | ratio to base | µs CPU per request | ratio to base | bytes an answer |"
  echo "|---|---:|---:|---:|---:|---:|"
  for variant in "${OFF[@]}"; do row "$variant" base; done
  echo
  echo "Compression on, GET /text (64 KiB of JSON), the client accepting one coding:"
  echo
  echo "| variant | req/s | ratio to nginx-gzip | µs CPU per request | ratio to nginx-gzip | bytes an answer |"
  echo "|---|---:|---:|---:|---:|---:|"
  for variant in "${ON[@]}"; do row "$variant" nginx-gzip; done
  echo
  echo "Every run:"
  for variant in "${OFF[@]}" "${ON[@]}"; do echo "- $variant: ${RESULTS[$variant]}req/s; ${CPU[$variant]}µs CPU per request"; done
} >"$OUT"
cat "$OUT"
