#!/usr/bin/env bun
/**
 * Soak + chaos run: lb under steady load for a long time while its backends are SIGKILLed and restarted.
 *
 *   bun run soak                                  # 10 minutes, 4 backends, 50 workers, a kill every 3 s
 *   bun run soak --duration 60s --out soak.md     # a short run, the report also written as Markdown
 *   bun run build && bun run soak --binary dist/lb
 *
 * Every process is separate: lb (`bun src/main.ts`, or --binary), N backends (`bun bench/backend.ts <port>`, each
 * its own process so it can be SIGKILLed), and this process, which is the load client and the chaos monkey.
 * Every 10 s it prints one line (requests, failures, p99, lb's RSS and open fds); at the end a summary and a
 * verdict: PASS (exit 0) when no GET failed and lb's RSS and fd count grew at most 10% after warm-up (the window
 * ending at 20 s against the last one, each the median of 1-s samples; the fd count leaves out lb's established
 * connections to backends, which the kills themselves shrink and regrow), else FAIL (exit 1). Bad arguments exit 2, Ctrl-C prints what was measured so far and exits 130. `--help` lists the options.
 *
 * Failures are reported, never hidden: the client does not retry, a non-2xx answer or a thrown error is a failure.
 */
import type { Subprocess } from "bun";
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const WINDOW_MS = 10_000;
/** The RSS/fd baseline is the window ending at this time (the second), after JIT, pools and heap have warmed up. */
const WARMUP_MS = 20_000;
const GROWTH_LIMIT_PERCENT = 10;
/** A request still unanswered after this long is aborted and counted as a failure (lb's own --timeout is 60 s). */
const CLIENT_TIMEOUT_MS = 20_000;
/** Requests slower than this are logged to the events log with the chaos event before them. */
const SLOW_MS = 500;
/** bench/backend.ts answers GET / with exactly this many bytes. */
const GREETING_BYTES = 100;

// ---------------------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------------------

interface Options {
  durationMs: number;
  backends: number;
  concurrency: number;
  chaosEveryMs: number;
  downForMs: number;
  /** Target requests per second over all workers; 0 = closed loop, each worker sends its next request at once. */
  rate: number;
  /** Each backend waits this long before it answers (bench/backend.ts's delay), like a real application. */
  backendDelayMs: number;
  postRatio: number;
  healthInterval: string;
  /** Extra lb flags, everything after `--`. */
  lbFlags: string[];
  binary: string | null;
  out: string | null;
  seed: number;
}

const USAGE = `bun run soak [options]      (= bun bench/soak.ts)

Sustained load on lb while backends are SIGKILLed and restarted; PASS/FAIL at the end.

  --duration D       how long to run (default 10m); 60s, 90s, 10m, 1h, 500ms or bare seconds
  --backends N       backend processes, bun bench/backend.ts (default 4, at least 2)
  --concurrency C    concurrent keep-alive workers in the load client, closed loop (default 50)
  --backend-delay D  each backend answers after this long, like a real application (default 10ms); it keeps
                     C requests in flight through lb at a few thousand req/s instead of saturating both cores;
                     0 = answer at once (then lb runs flat out at ~100% of a core)
  --rate R           cap the total at R requests/s, paced over the workers (default 0 = no cap)
  --post-ratio F     share of requests that are POSTs, counted separately (default 0.02; 0 = none)
  --chaos-every D    SIGKILL a random live backend this often (default 3s; 0 = no chaos)
  --down-for D       restart it on the same port after this long, ±50% at random (default 2s)
  --health-interval D   lb's --health-interval (default 500ms)
  --binary PATH      run this lb executable (e.g. dist/lb) instead of bun src/main.ts
  --out FILE         also write the report as Markdown to FILE
  --seed N           seed for the chaos and POST choices (default: random; printed in the report)
  -- FLAGS...        everything after -- is passed to lb, e.g. -- --retry-budget 100 --policy p2c

Every 10 s: elapsed, requests in the window, total, failed GET and POST (window/total), p99 of the window,
lb's RSS (VmRSS) and open fds (medians of 1-s samples in the window; in brackets its established connections
to backends), lb's and this client's CPU, the whole machine's CPU, backends down. lb's log, the kills and
restarts, every failure and every request slower than ${SLOW_MS} ms go to an events log in /tmp.
PASS: no GET failed, and lb's RSS and fd count (not counting established backend connections, which the kills
shrink and regrow) in the last window are at most ${GROWTH_LIMIT_PERCENT}% above the window ending at 20 s.
Exit 0 on PASS, 1 on FAIL, 2 on bad arguments, 130 when interrupted.
`;

function parseDuration(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) usageError(`${what}: "${text}" is not a duration; write 500ms, 60s, 10m, 1h or a number of seconds`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
  return Math.round(Number(match[1]) * unit);
}

function parseCount(text: string, what: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) usageError(`${what}: "${text}" must be a whole number ≥ ${min}`);
  return n;
}

function usageError(message: string): never {
  process.stderr.write(`soak: ${message} (see --help)\n`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    durationMs: 600_000,
    backends: 4,
    concurrency: 50,
    chaosEveryMs: 3000,
    downForMs: 2000,
    rate: 0,
    backendDelayMs: 10,
    postRatio: 0.02,
    healthInterval: "500ms",
    lbFlags: [],
    binary: null,
    out: null,
    seed: Math.floor(Math.random() * 2 ** 31),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      options.lbFlags = argv.slice(i + 1);
      break;
    }
    if (arg === "-h" || arg === "--help") {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) usageError(`${name} needs a value`);
      return next;
    };
    switch (name) {
      case "--duration":
        options.durationMs = parseDuration(value(), name);
        if (options.durationMs < 1000) usageError("--duration must be at least 1s");
        break;
      case "--backends":
        options.backends = parseCount(value(), name, 2);
        break;
      case "--concurrency":
        options.concurrency = parseCount(value(), name, 1);
        break;
      case "--rate":
        options.rate = parseCount(value(), name, 0);
        break;
      case "--post-ratio": {
        const text = value();
        options.postRatio = Number(text);
        if (!(options.postRatio >= 0 && options.postRatio <= 1)) usageError(`${name}: "${text}" must be between 0 and 1`);
        break;
      }
      case "--backend-delay":
        options.backendDelayMs = parseDuration(value(), name);
        break;
      case "--chaos-every":
        options.chaosEveryMs = parseDuration(value(), name);
        break;
      case "--down-for":
        options.downForMs = parseDuration(value(), name);
        break;
      case "--health-interval":
        options.healthInterval = value();
        parseDuration(options.healthInterval, name);
        break;
      case "--binary":
        options.binary = resolve(value());
        break;
      case "--out":
        options.out = resolve(value());
        break;
      case "--seed":
        options.seed = parseCount(value(), name, 0);
        break;
      default:
        usageError(`unknown argument ${arg}`);
    }
  }
  return options;
}

// ---------------------------------------------------------------------------------------------------------------
// Small tools
// ---------------------------------------------------------------------------------------------------------------

/** mulberry32: a seeded PRNG, so a run's kill order and POST mix can be repeated with --seed. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Latency histogram: log buckets 1% apart from 1 µs, so a quantile is within 1% of the true value at any scale,
 * in a fixed 2,100 counters however many requests there are.
 */
const BUCKET_BASE = Math.log(1.01);
const BUCKETS = 2100; // 1.01^2100 µs ≈ 1.2e9 µs: anything up to 20 minutes
class Histogram {
  readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  max = 0;

  add(ms: number): void {
    const us = Math.max(1, ms * 1000);
    this.counts[Math.min(BUCKETS - 1, Math.ceil(Math.log(us) / BUCKET_BASE))]!++;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.max = Math.max(this.max, other.max);
  }

  /** The q-quantile in ms (the upper edge of its bucket, never above the maximum seen); NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.max, Math.exp(i * BUCKET_BASE) / 1000);
    }
    return this.max;
  }
}

interface Counts {
  get: number;
  getFailed: number;
  post: number;
  postFailed: number;
}

const zeroCounts = (): Counts => ({ get: 0, getFailed: 0, post: 0, postFailed: 0 });

/** lb from /proc, summed over its process and any children (lb --workers forks worker processes). */
interface ProcSample {
  rssKiB: number;
  fds: number;
  /** Of the fds: established connections from clients, established connections to backends, and the rest. */
  clientConns: number;
  upstreamConns: number;
  otherFds: number;
  /** utime + stime, clock ticks. */
  cpuTicks: number;
  processes: number;
}

/** The process and its descendants, from /proc/<pid>/task/<tid>/children. */
function processTree(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      for (const task of readdirSync(`/proc/${pids[i]}/task`)) {
        const children = readFileSync(`/proc/${pids[i]}/task/${task}/children`, "utf8").trim();
        if (children) pids.push(...children.split(/\s+/).map(Number));
      }
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** TCP sockets by inode: local and remote port and state (hex, "01" = ESTABLISHED), from /proc/net/tcp{,6}. */
function tcpSockets(): Map<string, { local: number; remote: number; state: string }> {
  const sockets = new Map<string, { local: number; remote: number; state: string }>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      sockets.set(f[9]!, { local: parseInt(f[1]!.split(":")[1]!, 16), remote: parseInt(f[2]!.split(":")[1]!, 16), state: f[3]! });
    }
  }
  return sockets;
}

/** Where lb's fds go: established connections from clients (to lbPort), to backends, and everything else. */
function sampleProc(pid: number, lbPort: number, backendPorts: ReadonlySet<number>): ProcSample | null {
  const sample: ProcSample = { rssKiB: 0, fds: 0, clientConns: 0, upstreamConns: 0, otherFds: 0, cpuTicks: 0, processes: 0 };
  const sockets = tcpSockets();
  for (const p of processTree(pid)) {
    try {
      const status = readFileSync(`/proc/${p}/status`, "utf8");
      const fds = readdirSync(`/proc/${p}/fd`);
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      // After the command name: field 3 is state, so utime (14) and stime (15) are at 11 and 12.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      sample.rssKiB += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      sample.fds += fds.length;
      for (const fd of fds) {
        let target = "";
        try {
          target = readlinkSync(`/proc/${p}/fd/${fd}`);
        } catch {
          continue; // closed meanwhile
        }
        const socket = sockets.get(/^socket:\[(\d+)\]$/.exec(target)?.[1] ?? "");
        if (socket?.state === "01" && socket.local === lbPort) sample.clientConns++;
        else if (socket?.state === "01" && backendPorts.has(socket.remote)) sample.upstreamConns++;
        else sample.otherFds++;
      }
      sample.cpuTicks += Number(fields[11]) + Number(fields[12]);
      sample.processes++;
    } catch {
      if (p === pid) return null; // lb itself is gone
    }
  }
  return sample;
}

/** The whole machine's busy and total jiffies, from the first line of /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

const fmtInt = (n: number) => Math.round(n).toLocaleString("en-US");
const fmtMs = (ms: number) => (Number.isNaN(ms) ? "—" : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const fmtMiB = (kib: number) => (kib / 1024).toFixed(1);
const fmtPct = (p: number) => `${p >= 0 ? "+" : ""}${p.toFixed(1)}%`;
const seconds = (ms: number) => (ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)}s`);

function describeError(error: unknown): string {
  const e = error as { name?: string; code?: string; message?: string };
  if (e?.name === "AbortError" || e?.name === "TimeoutError") return `client timeout: no answer within ${seconds(CLIENT_TIMEOUT_MS)}`;
  const code = e?.code ? `${e.code}: ` : "";
  return `thrown: ${code}${(e?.message ?? String(error)).slice(0, 120)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------------------------

const children = new Set<Subprocess>();

/** Kills every child still running; safe to call more than once and from the synchronous exit handler. */
function killChildren(signal: NodeJS.Signals = "SIGKILL"): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}

let eventsPath = "";
/** Appends one JSON line to the events log (lb's own log lines go there too), so kills and failures line up. */
function logEvent(fields: Record<string, unknown>): void {
  if (eventsPath) appendFileSync(eventsPath, `${JSON.stringify({ time: new Date().toISOString(), soak: true, ...fields })}\n`);
}

/** Ports free a moment ago: all bound at once (so they differ), then released. */
function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () =>
    Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }),
  );
  const ports = listeners.map((l) => l.port);
  for (const l of listeners) l.stop(true);
  return ports;
}

interface BackendProcess {
  port: number;
  url: string;
  proc: Subprocess | null;
  /** Running and answering: it may be killed. */
  alive: boolean;
  /** We killed it on purpose: its exit is expected. */
  killed: boolean;
  kills: number;
  /** Exits we did not cause (a crash, a failed restart). */
  unexpected: number;
}

function spawnBackend(backend: BackendProcess, delayMs: number): void {
  const proc = Bun.spawn([process.execPath, join(ROOT, "bench/backend.ts"), String(backend.port), String(delayMs)], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  children.add(proc);
  backend.proc = proc;
  backend.killed = false;
  void proc.exited.then((code) => {
    children.delete(proc);
    if (backend.proc !== proc) return;
    backend.alive = false;
    if (!backend.killed && !stopping) {
      backend.unexpected++;
      logEvent({ event: "backend exited unexpectedly", backend: backend.url, code, signal: proc.signalCode });
      // Bring it back (a port still in TIME_WAIT use is the usual cause); chaos does not count on it meanwhile.
      setTimeout(() => {
        if (!stopping && backend.proc === proc) void restartBackend(backend, delayMs);
      }, 200);
    }
  });
}

/** True once the backend answers GET / directly. */
async function waitUntilAnswering(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !stopping) {
    try {
      const response = await fetch(`${url}/`, { signal: AbortSignal.timeout(500), keepalive: false });
      await response.arrayBuffer();
      if (response.ok) return true;
    } catch {
      // not listening yet
    }
    await Bun.sleep(25);
  }
  return false;
}

async function restartBackend(backend: BackendProcess, delayMs: number): Promise<void> {
  if (stopping) return;
  spawnBackend(backend, delayMs);
  const proc = backend.proc;
  if (await waitUntilAnswering(backend.url, 10_000)) {
    if (backend.proc === proc) {
      backend.alive = true;
      logEvent({ event: "backend restarted", backend: backend.url, pid: proc?.pid });
    }
  } else if (!stopping) {
    logEvent({ event: "backend did not come back within 10s", backend: backend.url });
  }
}

/** lb's log lines worth counting in the report, by what they say. */
const LB_EVENTS: [string, RegExp][] = [
  ["backend went down", /went down|is down/],
  ["backend back up", /is back up/],
  ["backend ejected (outlier detection)", /ejected for/],
  ["backend back from ejection", /back in rotation after its ejection/],
  ["ejection refused (limit)", /stays in rotation/],
  ["no healthy backend", /no healthy backends/],
];
const lbEvents = new Map<string, number>();

interface Lb {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  url: string;
  adminUrl: string;
  command: string[];
  /** The last lines of its log, for a report if it dies. */
  tail: string[];
}

async function startLb(options: Options, backends: BackendProcess[]): Promise<Lb> {
  const base = options.binary ? [options.binary] : [process.execPath, join(ROOT, "src/main.ts")];
  const args = [
    "--port", "0", "--host", "127.0.0.1", "--admin", "127.0.0.1:0",
    // No access lines (a million a minute); unless the flags after -- ask for them, e.g. into a file.
    ...(options.lbFlags.some((f) => f.startsWith("--access-log")) ? [] : ["--no-access-log"]),
    "--log-format", "json",
    "--health-interval", options.healthInterval,
    ...options.lbFlags,
    ...backends.map((b) => b.url),
  ];
  const command = [...base, ...args];
  const proc = Bun.spawn(command, { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  children.add(proc);
  void proc.exited.then(() => children.delete(proc));
  const tail: string[] = [];
  const { promise: listeningLine, resolve: listening } = Promise.withResolvers<string>();
  void (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of proc.stderr) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        if (!line) continue;
        if (eventsPath) appendFileSync(eventsPath, `${line}\n`);
        tail.push(line);
        const msg = /"msg":"([^"]*)/.exec(line)?.[1] ?? line;
        const kind = LB_EVENTS.find(([, pattern]) => pattern.test(msg))?.[0] ?? (/"level":"(warn|error)"/.test(line) ? "other warnings and errors" : null);
        if (kind) lbEvents.set(kind, (lbEvents.get(kind) ?? 0) + 1);
        if (tail.length > 40) tail.shift();
        if (line.includes("lb listening on")) listening(line);
      }
    }
  })();
  const line = await Promise.race([
    listeningLine,
    Bun.sleep(15_000).then(() => null),
    proc.exited.then(() => null),
  ]);
  if (!line) throw new Error(`lb did not start (${command.join(" ")}):\n${tail.join("\n")}`);
  const url = /listening on (http:\/\/\S+)/.exec(line)?.[1];
  const adminUrl = /admin (http:\/\/[^\s"]+)/.exec(line)?.[1];
  if (!url || !adminUrl) throw new Error(`cannot read lb's addresses from: ${line}`);
  const shown = [...(options.binary ? [options.binary] : ["bun", "src/main.ts"]), ...args.slice(0, -backends.length), `<${backends.length} backends>`];
  return { proc, url, adminUrl, command: shown, tail };
}

/** Backend URL → lb's state for it (healthy, unhealthy, checking, ejected, ...); empty if the admin API fails. */
async function lbStates(lb: Lb): Promise<Map<string, string>> {
  try {
    const response = await fetch(`${lb.adminUrl}/api/backends`, { signal: AbortSignal.timeout(2000) });
    const body = (await response.json()) as { url: string; state: string }[] | { backends: { url: string; state: string }[] };
    const list = Array.isArray(body) ? body : body.backends;
    return new Map(list.map((b) => [b.url.replace(/\/$/, ""), b.state]));
  } catch {
    return new Map();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------------------------

let stopping = false;
let interrupted = false;
/** Once the load runs, a signal ends the run with a summary; before that it just cleans up and exits. */
let loadStarted = false;

let interruptedAt = 0;

function onSignal(): void {
  // One Ctrl-C can arrive twice: from the terminal to the whole process group, and forwarded by `bun run`.
  if (interrupted && Date.now() - interruptedAt < 1000) return;
  if (interrupted || !loadStarted) {
    killChildren();
    process.exit(130);
  }
  interrupted = true;
  interruptedAt = Date.now();
  stopping = true;
  process.stderr.write("\nsoak: interrupted; stopping (Ctrl-C again to quit at once)\n");
}

interface Failure {
  atMs: number;
  method: string;
  reason: string;
  latencyMs: number;
  /** The most recent chaos event before it, and how long before. */
  lastChaos: string;
}

interface ChaosEvent {
  atMs: number;
  what: "kill" | "restart";
  backend: string;
}

interface WindowRow {
  endMs: number;
  lengthMs: number;
  requests: number;
  total: number;
  counts: Counts;
  totalCounts: Counts;
  p99: number;
  max: number;
  /** Median of the window's 1-s samples, and the highest one. */
  rssKiB: number;
  fds: number;
  /** lb's established connections to backends, and its fds without them (what the verdict checks). */
  upstream: number;
  fdsOwn: number;
  rssPeakKiB: number;
  fdsPeak: number;
  fdsOwnPeak: number;
  lbCpu: number;
  clientCpu: number;
  /** The longest the load client's own event loop was late: a stalled machine, not lb, when it nears max. */
  clientLag: number;
  machineCpu: number;
  down: number;
  kills: number;
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const workDir = mkdtempSync(join(tmpdir(), "lb-soak-"));
  eventsPath = join(workDir, "events.log");
  const random = seededRandom(options.seed); // chaos choices
  const postRandom = seededRandom(options.seed + 1);
  const started = new Date();
  const loadBefore = loadavg().map((l) => l.toFixed(2)).join(" ");

  // Backends on free ports, each its own process.
  const backends: BackendProcess[] = freePorts(options.backends).map((port) => ({
    port, url: `http://127.0.0.1:${port}`, proc: null, alive: false, killed: false, kills: 0, unexpected: 0,
  }));
  for (const b of backends) spawnBackend(b, options.backendDelayMs);
  for (const b of backends) {
    if (!(await waitUntilAnswering(b.url, 10_000))) throw new Error(`backend ${b.url} did not start`);
    b.alive = true;
  }

  const lb = await startLb(options, backends);
  const lbPid = lb.proc.pid;
  let lbDied: string | null = null;
  void lb.proc.exited.then((code) => {
    if (stopping) return;
    lbDied = `lb exited during the run (code ${code}, signal ${lb.proc.signalCode ?? "none"}); its last log lines:\n${lb.tail.join("\n")}`;
    stopping = true;
  });
  // Every backend in rotation before the clock starts.
  const readyDeadline = Date.now() + 10_000;
  for (;;) {
    const states = await lbStates(lb);
    if (backends.every((b) => states.get(b.url) === "healthy")) break;
    if (Date.now() > readyDeadline) throw new Error(`lb did not see every backend healthy: ${JSON.stringify([...states])}`);
    await Bun.sleep(50);
  }

  const target = `${lb.url}/`;
  process.stdout.write(
    `soak: lb pid ${lbPid} at ${lb.url} (admin ${lb.adminUrl}), ${options.backends} backends on ports ${backends.map((b) => b.port).join(", ")}\n` +
      `soak: ${seconds(options.durationMs)}, ${options.concurrency} workers, ` +
      `${options.rate ? `paced to ${fmtInt(options.rate)} req/s` : "closed loop"}, ${(options.postRatio * 100).toFixed(1)}% POST, ` +
      `backends answer after ${seconds(options.backendDelayMs)}, ` +
      (options.chaosEveryMs ? `SIGKILL a backend every ${seconds(options.chaosEveryMs)}, back after ~${seconds(options.downForMs)}` : "no chaos") +
      `, seed ${options.seed}\nsoak: lb ${lb.command.join(" ")}\nsoak: events (lb's log, kills, restarts, failures): ${eventsPath}\n` +
      `soak: lb's RSS and fds every second: ${join(workDir, "lb-samples.tsv")}\n` +
      "soak: every 10 s: lb RSS and fds are medians of 1-s samples, (n) = its connections to backends; CPU is % of one core; down = backends killed and not yet back\n\n",
  );

  // --- measurement state ---
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  let window = zeroCounts();
  let windowHist = new Histogram();
  const totals = zeroCounts();
  const totalHist = new Histogram();
  const getHist = new Histogram();
  const postHist = new Histogram();
  const failureReasons = new Map<string, number>(); // "GET reason" → count
  const failures: Failure[] = [];
  /** Successful requests slower than SLOW_MS: how many, and the ten slowest. */
  let slowCount = 0;
  const slowest: Failure[] = [];
  const chaosEvents: ChaosEvent[] = [];
  const rows: WindowRow[] = [];
  let killsTotal = 0;

  /** The last chaos event before a request failed, and when the request was sent relative to it. */
  const lastChaosBefore = (sentMs: number, endMs: number): string => {
    for (let i = chaosEvents.length - 1; i >= 0; i--) {
      const event = chaosEvents[i]!;
      if (event.atMs > endMs) continue;
      const delta = sentMs - event.atMs;
      const when = delta >= 0 ? `sent ${fmtMs(delta)} ms after it` : `sent ${fmtMs(-delta)} ms before it`;
      return `${event.what} ${event.backend.replace("http://", "")} at ${(event.atMs / 1000).toFixed(3)} s; ${when}`;
    }
    return "none yet";
  };

  const record = (isPost: boolean, latencyMs: number, failure: string | null, startedAt: number) => {
    if (interrupted) return; // lb and the backends got the Ctrl-C too; what follows is not lb's doing
    windowHist.add(latencyMs);
    (isPost ? postHist : getHist).add(latencyMs);
    if (isPost) {
      window.post++;
      totals.post++;
    } else {
      window.get++;
      totals.get++;
    }
    if (latencyMs >= SLOW_MS && failure === null) {
      slowCount++;
      const atMs = startedAt - t0;
      const entry: Failure = { atMs, method: isPost ? "POST" : "GET", reason: "answered", latencyMs, lastChaos: lastChaosBefore(atMs, atMs + latencyMs) };
      if (slowCount <= 1000) logEvent({ event: "slow request", elapsedMs: Math.round(atMs), method: entry.method, latencyMs: Math.round(latencyMs), lastChaos: entry.lastChaos });
      slowest.push(entry);
      slowest.sort((a, b) => b.latencyMs - a.latencyMs);
      slowest.length = Math.min(slowest.length, 10);
    }
    if (failure === null) return;
    if (isPost) {
      window.postFailed++;
      totals.postFailed++;
    } else {
      window.getFailed++;
      totals.getFailed++;
    }
    const method = isPost ? "POST" : "GET";
    const key = `${method} ${failure}`;
    failureReasons.set(key, (failureReasons.get(key) ?? 0) + 1);
    const atMs = startedAt - t0;
    const entry = { atMs, method, reason: failure, latencyMs, lastChaos: lastChaosBefore(atMs, atMs + latencyMs) };
    if (failures.length < 1000) {
      failures.push(entry);
      logEvent({ event: "request failed", elapsedMs: Math.round(atMs), method, reason: failure, latencyMs: Math.round(latencyMs), lastChaos: entry.lastChaos });
    }
  };

  // --- load: C closed-loop workers (paced only with --rate), keep-alive: Bun's fetch pools connections per origin ---
  const interval = options.rate > 0 ? 1000 / options.rate : 0;
  let nextSlot = 0;
  /** Waits for this worker's next send slot; a stall is not made up with a burst beyond 100 ms worth. */
  const pace = async () => {
    if (interval === 0) return;
    const now = performance.now();
    const slot = Math.max(nextSlot, now - 100);
    nextSlot = slot + interval;
    if (slot - now >= 1) await Bun.sleep(slot - now);
  };
  const postBody = JSON.stringify({ soak: true, note: "a small POST body" });
  const running = new Map<number, { controller: AbortController; since: number }>();
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const [, r] of running) if (now - r.since > CLIENT_TIMEOUT_MS) r.controller.abort();
  }, 1000);
  const decoder = new TextDecoder();
  const worker = async (id: number) => {
    let controller = new AbortController();
    while (!stopping) {
      await pace();
      if (stopping) break;
      const isPost = postRandom() < options.postRatio;
      if (controller.signal.aborted) controller = new AbortController();
      const startedAt = performance.now();
      running.set(id, { controller, since: startedAt });
      let failure: string | null = null;
      try {
        const response = await fetch(
          target,
          isPost
            ? { method: "POST", body: postBody, headers: { "content-type": "application/json" }, signal: controller.signal }
            : { signal: controller.signal },
        );
        const body = await response.arrayBuffer();
        if (response.status < 200 || response.status > 299) {
          const text = decoder.decode(body).trim().replace(/\s+/g, " ").slice(0, 120);
          failure = text.startsWith(String(response.status)) ? text : `${response.status} ${text}`;
        } else if (body.byteLength !== GREETING_BYTES) {
          failure = `${response.status} with a ${body.byteLength}-byte body (expected ${GREETING_BYTES})`;
        }
      } catch (error) {
        failure = describeError(error);
      }
      running.delete(id);
      record(isPost, performance.now() - startedAt, failure, startedAt);
    }
  };

  // --- chaos: SIGKILL a random live backend, restart it on the same port a little later ---
  const pendingRestarts = new Set<ReturnType<typeof setTimeout>>();
  const chaos = async () => {
    if (options.chaosEveryMs === 0) return;
    let next = options.chaosEveryMs;
    while (!stopping) {
      const wait = next - elapsed();
      if (wait > 0) await Bun.sleep(Math.min(wait, 250));
      if (stopping) break;
      if (elapsed() < next) continue;
      next += options.chaosEveryMs;
      const states = await lbStates(lb);
      if (stopping) break;
      const alive = backends.filter((b) => b.alive);
      // Never the last one: after the kill at least one other backend must be alive and in lb's rotation.
      const victims = alive.filter((victim) => alive.some((b) => b !== victim && states.get(b.url) === "healthy"));
      if (victims.length === 0) {
        logEvent({ event: "chaos skipped: no backend can be killed without leaving none", states: [...states] });
        continue;
      }
      const victim = victims[Math.floor(random() * victims.length)]!;
      victim.alive = false;
      victim.killed = true;
      victim.kills++;
      killsTotal++;
      victim.proc?.kill("SIGKILL");
      chaosEvents.push({ atMs: elapsed(), what: "kill", backend: victim.url });
      logEvent({ event: "SIGKILL backend", backend: victim.url, pid: victim.proc?.pid, elapsedMs: Math.round(elapsed()) });
      const downFor = options.downForMs * (0.5 + random());
      const timer = setTimeout(() => {
        pendingRestarts.delete(timer);
        if (stopping) return;
        void (async () => {
          await victim.proc?.exited; // the port is free once the killed process is gone
          await restartBackend(victim, options.backendDelayMs);
          chaosEvents.push({ atMs: elapsed(), what: "restart", backend: victim.url });
        })();
      }, downFor);
      pendingRestarts.add(timer);
    }
  };

  // --- sampler: one line every 10 s ---
  const header =
    "  elapsed   req/window        total   GET failed w/total   POST failed w/total   p99 ms   max ms   lb RSS MiB   lb fds (to backends)   lb CPU   client CPU   host CPU   down";
  process.stdout.write(`${header}\n`);
  const lbPort = Number(new URL(lb.url).port);
  const backendPorts = new Set(backends.map((b) => b.port));
  const sampleLb = () => sampleProc(lbPid, lbPort, backendPorts);
  let lastLbTicks = sampleLb()?.cpuTicks ?? 0;
  let lastClientCpu = process.cpuUsage();
  let lastMachine = machineTicks();
  let lastSampleAt = elapsed();
  // RSS and fds are read every second and each window reports the median of its samples: a single reading swings
  // by ±10% with the kill cycle alone (lb's upstream connections to a killed backend close, then reopen), which
  // would bury a leak's slow climb in noise.
  let windowSamples: ProcSample[] = [];
  const samplesPath = join(workDir, "lb-samples.tsv");
  writeFileSync(samplesPath, "elapsed_s\trss_kib\tfds\tclient_conns\tupstream_conns\tother_fds\tcpu_ticks\tbackends_down\n");
  const takeSample = (): ProcSample | null => {
    const sample = sampleLb();
    if (!sample) return null;
    windowSamples.push(sample);
    const down = backends.filter((b) => !b.alive).length;
    const { rssKiB, fds, clientConns, upstreamConns, otherFds, cpuTicks } = sample;
    appendFileSync(samplesPath, `${(elapsed() / 1000).toFixed(1)}\t${rssKiB}\t${fds}\t${clientConns}\t${upstreamConns}\t${otherFds}\t${cpuTicks}\t${down}\n`);
    return sample;
  };
  const procSampler = setInterval(takeSample, 1000);
  let lagMax = 0;
  let lastTick = performance.now();
  const lagProbe = setInterval(() => {
    const now = performance.now();
    lagMax = Math.max(lagMax, now - lastTick - 100);
    lastTick = now;
  }, 100);
  const closeWindow = (endMs: number) => {
    const sample = takeSample();
    const lengthMs = endMs - lastSampleAt;
    const cpu = process.cpuUsage();
    const machine = machineTicks();
    const lbTicks = sample?.cpuTicks ?? lastLbTicks;
    const row: WindowRow = {
      endMs,
      lengthMs,
      requests: window.get + window.post,
      total: totals.get + totals.post,
      counts: window,
      totalCounts: { ...totals },
      p99: windowHist.quantile(0.99),
      max: windowHist.max,
      rssKiB: median(windowSamples.map((x) => x.rssKiB)),
      fds: median(windowSamples.map((x) => x.fds)),
      rssPeakKiB: Math.max(...windowSamples.map((x) => x.rssKiB)),
      fdsPeak: Math.max(...windowSamples.map((x) => x.fds)),
      upstream: median(windowSamples.map((x) => x.upstreamConns)),
      fdsOwn: median(windowSamples.map((x) => x.fds - x.upstreamConns)),
      fdsOwnPeak: Math.max(...windowSamples.map((x) => x.fds - x.upstreamConns)),
      lbCpu: ((lbTicks - lastLbTicks) / CLOCK_TICKS / (lengthMs / 1000)) * 100,
      clientCpu: ((cpu.user - lastClientCpu.user + cpu.system - lastClientCpu.system) / 1000 / lengthMs) * 100,
      clientLag: Math.max(0, lagMax),
      machineCpu: ((machine.busy - lastMachine.busy) / Math.max(1, machine.total - lastMachine.total)) * 100,
      down: backends.filter((b) => !b.alive).length,
      kills: killsTotal,
    };
    rows.push(row);
    totalHist.merge(windowHist);
    window = zeroCounts();
    windowHist = new Histogram();
    windowSamples = [];
    lagMax = 0;
    lastLbTicks = lbTicks;
    lastClientCpu = cpu;
    lastMachine = machine;
    lastSampleAt = endMs;
    const c = row.counts;
    const t = row.totalCounts;
    process.stdout.write(
      [
        seconds(Math.round(endMs / 100) * 100).padStart(9),
        fmtInt(row.requests).padStart(12),
        fmtInt(row.total).padStart(12),
        `${fmtInt(c.getFailed)}/${fmtInt(t.getFailed)}`.padStart(20),
        `${fmtInt(c.postFailed)}/${fmtInt(t.postFailed)}`.padStart(21),
        fmtMs(row.p99).padStart(8),
        fmtMs(row.max).padStart(8),
        fmtMiB(row.rssKiB).padStart(12),
        `${Math.round(row.fds)} (${Math.round(row.upstream)})`.padStart(22),
        `${row.lbCpu.toFixed(0)}%`.padStart(8),
        `${row.clientCpu.toFixed(0)}%`.padStart(12),
        `${row.machineCpu.toFixed(0)}%`.padStart(10),
        `${row.down}/${options.backends}`.padStart(6),
      ].join(" ") + "\n",
    );
  };
  const sampler = async () => {
    let next = WINDOW_MS;
    while (!stopping) {
      const end = Math.min(next, options.durationMs);
      const wait = end - elapsed();
      if (wait > 0) await Bun.sleep(Math.min(wait, 250));
      if (stopping) break;
      if (elapsed() < end) continue;
      closeWindow(elapsed());
      if (end >= options.durationMs) {
        stopping = true; // the last sample is taken under load; now stop sending
        break;
      }
      next += WINDOW_MS;
    }
  };

  loadStarted = true;
  const workers = Array.from({ length: options.concurrency }, (_, i) => worker(i));
  const chaosDone = chaos();
  await sampler();
  const stoppedAtMs = elapsed();
  // Requests in flight at the end finish and are counted (unless interrupted), as part of no further window.
  await Promise.all(workers);
  await chaosDone;
  clearInterval(watchdog);
  clearInterval(procSampler);
  clearInterval(lagProbe);
  for (const timer of pendingRestarts) clearTimeout(timer);
  if (!interrupted && (window.get + window.post > 0) && rows.length > 0) {
    // Stragglers finished after the last sample: fold them into the totals without a new row.
    totalHist.merge(windowHist);
    const last = rows[rows.length - 1]!;
    last.totalCounts = { ...totals };
    last.total = totals.get + totals.post;
  }

  // --- stop lb gracefully, then everything else ---
  const finalSample = sampleLb();
  lb.proc.kill("SIGTERM");
  await Promise.race([lb.proc.exited, Bun.sleep(5000)]);
  killChildren("SIGKILL");
  await Promise.all(backends.map((b) => b.proc?.exited));

  const report = buildReport({
    options, lb, started, loadBefore, rows, totals, totalHist, getHist, postHist, failureReasons, failures, slowCount, slowest, chaosEvents,
    killsTotal, backends, lbDied, workDir, finalSample, stoppedAtMs,
  });
  process.stdout.write(`\n${report.markdown}\n`);
  if (options.out) {
    writeFileSync(options.out, report.markdown + "\n");
    process.stdout.write(`soak: report written to ${options.out}\n`);
  }
  process.stdout.write(`soak: events log ${eventsPath}\n`);
  if (interrupted) return 130;
  return report.pass ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------------

interface ReportInput {
  options: Options;
  lb: Lb;
  started: Date;
  loadBefore: string;
  rows: WindowRow[];
  totals: Counts;
  totalHist: Histogram;
  getHist: Histogram;
  postHist: Histogram;
  failureReasons: Map<string, number>;
  failures: Failure[];
  slowCount: number;
  slowest: Failure[];
  chaosEvents: ChaosEvent[];
  killsTotal: number;
  backends: BackendProcess[];
  lbDied: string | null;
  workDir: string;
  finalSample: ProcSample | null;
  /** When the load stopped (the end, an interruption, or lb's death), ms after the start. */
  stoppedAtMs: number;
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const latencies = (h: Histogram) =>
  h.count ? `${fmtMs(h.quantile(0.5))} / ${fmtMs(h.quantile(0.99))} / ${fmtMs(h.max)}` : "—";

function growth(first: number, last: number): number {
  return first > 0 ? ((last - first) / first) * 100 : 0;
}

function buildReport(r: ReportInput): { markdown: string; pass: boolean } {
  const { options, rows, totals } = r;
  // Baseline: the window ending at 20 s (the 2nd), or the first one in a run shorter than that.
  const baseline = rows.find((row) => row.endMs >= WARMUP_MS - 500) ?? rows[0];
  const last = rows[rows.length - 1];
  const rssGrowth = baseline && last ? growth(baseline.rssKiB, last.rssKiB) : 0;
  // lb's keep-alive pool to the backends shrinks by a backend's share at every kill and grows back after the restart
  // (53 to 78 connections at the defaults), which alone swings the fd count by ±10%; a socket leaked to a killed
  // backend is no longer established, so the verdict counts every fd except established backend connections.
  const fdGrowth = baseline && last ? growth(baseline.fdsOwn, last.fdsOwn) : 0;
  const fdGrowthAll = baseline && last ? growth(baseline.fds, last.fds) : 0;
  const warmedUp = baseline !== undefined && last !== undefined && last !== baseline;

  const reasons: string[] = [];
  if (r.lbDied) reasons.push("lb exited during the run");
  if (totals.getFailed > 0) reasons.push(`${fmtInt(totals.getFailed)} GET request(s) failed`);
  if (rssGrowth > GROWTH_LIMIT_PERCENT) reasons.push(`lb's RSS grew ${fmtPct(rssGrowth)} after warm-up (limit ${GROWTH_LIMIT_PERCENT}%)`);
  if (fdGrowth > GROWTH_LIMIT_PERCENT) {
    reasons.push(`lb's open fds (not counting established backend connections) grew ${fmtPct(fdGrowth)} after warm-up (limit ${GROWTH_LIMIT_PERCENT}%)`);
  }
  if (interrupted) reasons.push("interrupted before the end");
  if (rows.length === 0) reasons.push("no complete window measured");
  const pass = reasons.length === 0;

  // Interrupted: the requests counted so far (past the last window too) over the time until the interruption.
  const measuredMs = interrupted ? r.stoppedAtMs : (last?.endMs ?? 0);
  const requests = totals.get + totals.post;
  const rate = measuredMs > 0 ? (requests / measuredMs) * 1000 : 0;
  const avg = (f: (row: WindowRow) => number) => (rows.length ? rows.reduce((s, row) => s + f(row), 0) / rows.length : Number.NaN);
  const restarts = r.chaosEvents.filter((e) => e.what === "restart").length;
  const unexpected = r.backends.reduce((s, b) => s + b.unexpected, 0);
  const commit = (() => {
    const git = Bun.spawnSync(["git", "describe", "--always", "--dirty"], { cwd: ROOT, stderr: "ignore" });
    return git.exitCode === 0 ? git.stdout.toString().trim() : "unknown";
  })();

  const lines: string[] = [];
  const push = (...l: string[]) => lines.push(...l);
  push(`# lb soak, ${r.started.toISOString().slice(0, 16).replace("T", " ")} UTC — **${pass ? "PASS" : "FAIL"}**`, "");
  if (!pass) push(...reasons.map((reason) => `- FAIL: ${reason}`), "");
  if (r.lbDied) push("```", r.lbDied, "```", "");
  push(
    `- **lb:** \`${r.lb.command.join(" ")}\` at \`${commit}\`, bun ${Bun.version}`,
    `- **Load:** ${options.concurrency} keep-alive workers in the soak process, ` +
      `${options.rate ? `paced to ${fmtInt(options.rate)} req/s` : "closed loop"}, ${(options.postRatio * 100).toFixed(1)}% POST, GET / of ` +
      `\`bun bench/backend.ts <port> ${options.backendDelayMs}\` (100 bytes after ${seconds(options.backendDelayMs)}); ` +
      `no client retries; failure = non-2xx, wrong body length or a thrown error`,
    `- **Chaos:** ${options.chaosEveryMs ? `SIGKILL a random live backend every ${seconds(options.chaosEveryMs)} (never the last one lb has in rotation), restart on the same port after ${seconds(options.downForMs)} ±50%` : "none"}; ` +
      `${options.backends} backends, ${r.killsTotal} kills, ${restarts} restarts${unexpected ? `, **${unexpected} unexpected backend exits**` : ""}; seed ${options.seed}`,
    `- **Machine:** ${cpus().length} CPUs, ${cpus()[0]?.model ?? "?"}; load average ${r.loadBefore} before, ${loadavg().map((l) => l.toFixed(2)).join(" ")} after`,
    `- **Measured:** ${seconds(Math.round(measuredMs / 100) * 100)} of ${seconds(options.durationMs)}${interrupted ? " (interrupted)" : ""}; lb's log, kills, restarts and failures with timestamps: \`${join(r.workDir, "events.log")}\``,
    "",
    "| | total | GET | POST |",
    "|---|---|---|---|",
    `| requests | ${fmtInt(requests)} (${fmtInt(rate)}/s) | ${fmtInt(totals.get)} | ${fmtInt(totals.post)} |`,
    `| failed | ${fmtInt(totals.getFailed + totals.postFailed)} | ${fmtInt(totals.getFailed)} (goal 0) | ${fmtInt(totals.postFailed)} |`,
    `| latency p50 / p99 / max ms | ${latencies(r.totalHist)} | ${latencies(r.getHist)} | ${latencies(r.postHist)} |`,
    "",
    `| lb | after warm-up (window ending ${baseline ? seconds(Math.round(baseline.endMs / 1000) * 1000) : "—"}) | last (window ending ${last ? seconds(Math.round(last.endMs / 1000) * 1000) : "—"}) | growth | peak | limit |`,
    "|---|---|---|---|---|---|",
    `| RSS MiB | ${baseline ? fmtMiB(baseline.rssKiB) : "—"} | ${last ? fmtMiB(last.rssKiB) : "—"} | ${warmedUp ? fmtPct(rssGrowth) : "— (run too short)"} | ${fmtMiB(Math.max(...rows.map((row) => row.rssPeakKiB)))} | +${GROWTH_LIMIT_PERCENT}% |`,
    `| open fds, not counting established connections to backends | ${baseline ? Math.round(baseline.fdsOwn) : "—"} | ${last ? Math.round(last.fdsOwn) : "—"} | ${warmedUp ? fmtPct(fdGrowth) : "— (run too short)"} | ${Math.max(...rows.map((row) => row.fdsOwnPeak))} | +${GROWTH_LIMIT_PERCENT}% |`,
    `| open fds, all (not judged) | ${baseline ? Math.round(baseline.fds) : "—"} | ${last ? Math.round(last.fds) : "—"} | ${warmedUp ? fmtPct(fdGrowthAll) : "—"} | ${Math.max(...rows.map((row) => row.fdsPeak))} | |`,
    `| established connections to backends (not judged) | ${baseline ? Math.round(baseline.upstream) : "—"} | ${last ? Math.round(last.upstream) : "—"} | | | |`,
    "",
    "Each figure is the median of lb's 1-s samples in the window (VmRSS of /proc/<pid>/status; entries of /proc/<pid>/fd, " +
      "sockets matched to /proc/net/tcp); peak: the highest single sample. lb's keep-alive pool to the backends shrinks at every " +
      "kill and regrows after the restart, so the judged fd count leaves those connections out; a socket leaked to a dead backend " +
      "is not established and still counts.",
    "",
    `CPU, average over the windows: lb ${avg((row) => row.lbCpu).toFixed(0)}% of one core, the load client ${avg((row) => row.clientCpu).toFixed(0)}%, ` +
      `the whole machine ${avg((row) => row.machineCpu).toFixed(0)}% of ${cpus().length} cores.` +
      (() => {
        // A latency spike that the client's own event loop shares is the machine stalling, not lb.
        const lag = Math.max(0, ...rows.map((row) => row.clientLag));
        return lag >= 100 ? ` The load client's own event loop was up to ${fmtMs(lag)} ms late (the machine stalled; see the per-window table).` : "";
      })() +
      (r.finalSample
        ? ` lb after the load stopped: RSS ${fmtMiB(r.finalSample.rssKiB)} MiB, ${r.finalSample.fds} fds` +
          (r.finalSample.processes > 1 ? ` (summed over ${r.finalSample.processes} processes).` : ".")
        : ""),
    "",
    `lb's log: ${lbEvents.size ? [...lbEvents].map(([kind, n]) => `${kind} ${n}×`).join(", ") : "no backend events"}.`,
    "",
  );
  if (r.failureReasons.size > 0) {
    push("## Failures by reason", "", "| count | method and reason |", "|---|---|");
    for (const [reason, count] of [...r.failureReasons].sort((a, b) => b[1] - a[1])) push(`| ${fmtInt(count)} | ${reason.replace(/\|/g, "\\|")} |`);
    push("", `## First failures (${Math.min(20, r.failures.length)} of ${fmtInt(totals.getFailed + totals.postFailed)})`, "");
    push("| sent at s | method | latency ms | reason | last chaos event before it failed |", "|---|---|---|---|---|");
    for (const f of r.failures.slice(0, 20)) {
      push(`| ${(f.atMs / 1000).toFixed(3)} | ${f.method} | ${fmtMs(f.latencyMs)} | ${f.reason.replace(/\|/g, "\\|")} | ${f.lastChaos} |`);
    }
    push("");
  }
  if (r.slowCount > 0) {
    push(`## Slowest answers (${Math.min(10, r.slowCount)} of ${fmtInt(r.slowCount)} successful requests slower than ${SLOW_MS} ms)`, "");
    push("| sent at s | method | latency ms | last chaos event before it finished |", "|---|---|---|---|");
    for (const f of r.slowest) push(`| ${(f.atMs / 1000).toFixed(3)} | ${f.method} | ${fmtMs(f.latencyMs)} | ${f.lastChaos} |`);
    push("");
  }
  push(
    "## Every 10 s",
    "",
    "| elapsed | requests | total | GET failed (window/total) | POST failed (window/total) | p99 ms | max ms | lb RSS MiB | lb fds (to backends) | lb CPU | client CPU | client loop lag ms | host CPU | backends down | kills so far |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const row of rows) {
    push(
      `| ${seconds(Math.round(row.endMs / 100) * 100)} | ${fmtInt(row.requests)} | ${fmtInt(row.total)} | ${row.counts.getFailed}/${row.totalCounts.getFailed} | ` +
        `${row.counts.postFailed}/${row.totalCounts.postFailed} | ${fmtMs(row.p99)} | ${fmtMs(row.max)} | ${fmtMiB(row.rssKiB)} | ${Math.round(row.fds)} (${Math.round(row.upstream)}) | ${row.lbCpu.toFixed(0)}% | ` +
        `${row.clientCpu.toFixed(0)}% | ${fmtMs(row.clientLag)} | ${row.machineCpu.toFixed(0)}% | ${row.down}/${options.backends} | ${row.kills} |`,
    );
  }
  push(
    "",
    `PASS means: no GET failed, and lb's RSS and open fds (not counting established backend connections) in the last window are at most ${GROWTH_LIMIT_PERCENT}% above the window ending at 20 s.`,
  );
  return { markdown: lines.join("\n"), pass };
}

// Children die with us, however we leave: normal end, an error, or a signal (see onSignal).
process.on("exit", () => killChildren("SIGKILL"));
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal);
try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  killChildren("SIGKILL");
  process.exitCode = 1;
}
killChildren("SIGKILL");
process.exit(process.exitCode);
