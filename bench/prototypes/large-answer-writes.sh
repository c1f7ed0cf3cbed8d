#!/usr/bin/env bash
# Write system calls per answer for each way of handing Bun.serve a large body (bench/prototypes/large-answer-writes.ts),
# counted with strace over 20 keep-alive requests from curl.
#
#   bash bench/prototypes/large-answer-writes.sh                  # every form, 64 KiB
#   SIZE=12000 bash bench/prototypes/large-answer-writes.sh bytes  # one form, another size
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
LOG_TAG=large-answer
source bench/lib.sh
command -v strace >/dev/null || die "strace is not installed"
FORMS=("$@")
((${#FORMS[@]})) || FORMS=("bytes?sync" bytes "bytes?made" buffer arraybuffer blob file "file?sync" subclass noheaders cl stream directstream)
TRACE=$(mktemp)
trap 'rm -f "$TRACE"' EXIT
for form in "${FORMS[@]}"; do
  read -r port <<<"$(free_ports 1)"
  bun bench/prototypes/large-answer-writes.ts "$port" >/dev/null 2>&1 &
  server=$!
  wait_http "http://127.0.0.1:$port/bytes?sync" "server" "$server"
  curl -s -o /dev/null "http://127.0.0.1:$port/$form"
  strace -f -qq -p "$server" -e trace=sendto,sendmsg,write,writev,sendfile -o "$TRACE" &
  tracer=$!
  sleep 0.5
  args=()
  for _ in $(seq 20); do args+=(-o /dev/null "http://127.0.0.1:$port/$form"); done
  framing=$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/$form" | tr -d '\r' | grep -iE '^(content-length|transfer-encoding):' | tr '\n' ' ')
  curl -s "${args[@]}"
  sleep 0.3
  kill "$tracer"; wait "$tracer" 2>/dev/null || true
  kill "$server"; wait "$server" 2>/dev/null || true
  calls=$(grep -cE 'send|write' "$TRACE" || true)
  printf '%-14s %5.1f write calls per answer   %s\n' "$form" "$(awk -v c="$calls" 'BEGIN { print c / 21 }')" "$framing"
done
