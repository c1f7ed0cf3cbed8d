#!/usr/bin/env bash
# Certificate reloads under a flood of new TLS connections, each installing the other of two certificates: lb
# re-reads its certificate files on SIGHUP (a new listener on the port, the old one retired); HAProxy is given the
# certificate through its runtime API (set ssl cert + commit: the same socket). UNCHANGED=1 leaves lb's files as they
# are (a reload that changes no certificate keeps the listener). A reload every RELOAD_EVERY seconds for DURATION
# seconds while bench/new-connections.ts opens a connection per request (CONCURRENCY at once); prints what each
# client saw. Loopback, unpinned, about 40 s.
#   bash bench/cert-swap.sh
#   sysctl -w net.ipv4.tcp_migrate_req=1 && bash bench/cert-swap.sh    # Linux moves the old listener's queue
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-8}
CONCURRENCY=${CONCURRENCY:-20}
RELOAD_EVERY=${RELOAD_EVERY:-0.2}
LOG_TAG=cert-swap
source bench/lib.sh
for tool in openssl curl haproxy; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
scratch_dir cert-swap

# Two certificates, A and B: each reload installs the other one (lb keeps its listener when nothing changed).
for name in a b; do
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key-$name.pem" -out "$WORK/cert-$name.pem" -days 2 \
    -subj "/CN=localhost-$name" 2>/dev/null
  cat "$WORK/cert-$name.pem" "$WORK/key-$name.pem" >"$WORK/haproxy-$name.pem"
done
cp "$WORK/cert-a.pem" "$WORK/cert.pem"
cp "$WORK/key-a.pem" "$WORK/key.pem"
cp "$WORK/haproxy-a.pem" "$WORK/haproxy.pem"
NEXT=b
# The other certificate: in lb's files, and what haproxy_renew gives HAProxy.
swap_files() {
  cp "$WORK/cert-$NEXT.pem" "$WORK/cert.pem"
  cp "$WORK/key-$NEXT.pem" "$WORK/key.pem"
  NEXT_PEM=$WORK/haproxy-$NEXT.pem
  if [[ $NEXT == a ]]; then NEXT=b; else NEXT=a; fi
}
lb_renew() {
  [[ ${UNCHANGED:-0} == 1 ]] || swap_files
  kill -HUP "$LB"
}
read -r BACKEND LB_PORT HAPROXY_PORT API_PORT <<<"$(free_ports 4)"
bun bench/backend.ts "$BACKEND" >/dev/null 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$BACKEND/" backend "$!"
log "kernel: net.ipv4.tcp_migrate_req = $(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || echo absent)"

# Reloads every RELOAD_EVERY seconds with the command given, while the client runs; prints the client's line.
flood() { # name url reload-command...
  local name=$1 url=$2 reloads=0
  shift 2
  bun bench/new-connections.ts "$url" "$DURATION" "$CONCURRENCY" >"$WORK/$name.json" &
  local client=$!
  while kill -0 "$client" 2>/dev/null; do
    sleep "$RELOAD_EVERY"
    "$@" && reloads=$((reloads + 1))
  done
  wait "$client"
  echo "$name: $reloads reloads: $(cat "$WORK/$name.json")"
}

bun src/main.ts --port "$LB_PORT" --host 127.0.0.1 --admin off --no-access-log --tls-cert "$WORK/cert.pem" \
  --tls-key "$WORK/key.pem" "http://127.0.0.1:$BACKEND" >"$WORK/lb.log" 2>&1 &
LB=$!
PIDS+=($LB)
until curl -sk -o /dev/null "https://127.0.0.1:$LB_PORT/"; do kill -0 $LB || die "lb exited"; sleep 0.1; done
flood lb "https://127.0.0.1:$LB_PORT/" lb_renew

cat >"$WORK/haproxy.cfg" <<CFG
global
  stats socket ipv4@127.0.0.1:$API_PORT level admin
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend tls
  bind 127.0.0.1:$HAPROXY_PORT ssl crt $WORK/haproxy.pem
  default_backend app
backend app
  server b1 127.0.0.1:$BACKEND
CFG
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
until curl -sk -o /dev/null "https://127.0.0.1:$HAPROXY_PORT/"; do sleep 0.1; done
# The runtime API: a new certificate for the file, then commit (one command per connection).
haproxy_api() { exec 3<>"/dev/tcp/127.0.0.1/$API_PORT"; printf '%s\n' "$1" >&3; cat <&3 >>"$WORK/api.log"; exec 3<&-; }
haproxy_renew() {
  swap_files
  haproxy_api "set ssl cert $WORK/haproxy.pem <<
$(cat "$NEXT_PEM")
" && haproxy_api "commit ssl cert $WORK/haproxy.pem"
}
flood haproxy "https://127.0.0.1:$HAPROXY_PORT/" haproxy_renew
log "HAProxy's API answered $(grep -c Success "$WORK/api.log") of its set/commit commands with Success"
