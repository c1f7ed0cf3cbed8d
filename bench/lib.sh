# Helpers the bench scripts share; sourced, after the script sets LOG_TAG (the word its log lines start with).
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"        (bench/prototypes: .../../lib.sh)

log() { printf '[%s %s] %s\n' "${LOG_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# N free ports on 127.0.0.1, all held open at once so they are distinct; printed on one line.
free_ports() {
  bun -e '
    const n = Number(process.argv[1]);
    const held = Array.from({ length: n }, () => Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }));
    console.log(held.map((s) => s.port).join(" "));
    for (const s of held) s.stop(true);
  ' "$1"
}

# Until the url answers 200 (at most 15 s); dies if the process with that pid exits first.
wait_http() { # url, name, pid
  local url=$1 name=$2 pid=$3
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]]; then return 0; fi
    sleep 0.1
  done
  die "$name did not answer 200 on $url within 15 s"
}

# Until file $1 has been written (at most 5 s), as a process does on a signal; dies otherwise.
wait_file() {
  for _ in $(seq 50); do [[ -s $1 ]] && return 0; sleep 0.1; done
  die "$1 was not written within 5 s"
}

# The median of the numbers on standard input (separated by spaces or new lines).
median() {
  tr -s ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# bench/backend.ts on each port, pinned to CPU 1 (where the load runs; the proxy gets CPU 0), added to the caller's
# PIDS for its cleanup; returns once each answers.
start_bench_backends() { # port...
  local port
  for port in "$@"; do
    taskset -c 1 bun bench/backend.ts "$port" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$port/" "backend $port" "$!"
  done
}

# Two bench backends (B1, B2, in URLS) and a free port for the proxy (PORT).
start_two_backends() {
  read -r B1 B2 PORT <<<"$(free_ports 3)"
  start_bench_backends "$B1" "$B2"
  URLS=("http://127.0.0.1:$B1" "http://127.0.0.1:$B2")
}

# lb at BASE in $WORK/base, its packages installed: the other side of an A/B (removed at exit by remove_scratch_dir,
# or by the script's own cleanup).
checkout_base() {
  git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1 || die "cannot check out $BASE"
  (cd "$WORK/base" && bun install --frozen-lockfile >/dev/null 2>&1)
}

# A scratch directory in WORK (/tmp/lb-NAME.XXXXXX), removed at exit with the processes in PIDS and the worktree of
# BASE at $WORK/base, if any.
scratch_dir() { # name
  WORK=$(mktemp -d "/tmp/lb-$1.XXXXXX")
  PIDS=()
  trap remove_scratch_dir EXIT
}
remove_scratch_dir() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${BASE:-} ]] && git worktree remove --force "$WORK/base" 2>/dev/null
  rm -rf "$WORK"
}
