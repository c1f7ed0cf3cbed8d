/**
 * A rate limit's memory with 1 million distinct keys (an attacker rotating addresses or header values): lb's table
 * (src/edge/rate-limit.ts, at most MAX_KEYS keys) against a plain Map that keeps every key, each in a process of its
 * own. Prints RSS after the keys went through, heap used after a GC, and the keys held.
 *
 *   bun bench/rate-limit-memory.ts            # both, 1,000,000 keys, IPv6-like keys (39 characters)
 *   KEYS=2000000 bun bench/rate-limit-memory.ts
 *   bun bench/rate-limit-memory.ts lb         # through lb: wrk sends a new X-Key on every request for DURATION seconds (60)
 *                                             # to lb keyed on it, then without a limit; lb's RSS and peak each time
 */
import { MAX_KEYS, RateLimiter } from "../src/edge/rate-limit.ts";

const KEYS = Number(process.env.KEYS ?? 1_000_000);
const mib = (bytes: number) => (bytes / 1024 ** 2).toFixed(1);

/** One run, in this process: "table" or "map". */
function run(kind: string): void {
  const limiter = new RateLimiter({ count: 100, periodMs: 1000 }, 0);
  const everything = new Map<string, number>();
  const baseline = process.memoryUsage().rss;
  const started = performance.now();
  for (let i = 0; i < KEYS; i++) {
    const key = `2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}:0:0:0:${(i % 7919).toString(16)}`;
    if (kind === "table") limiter.take(key, i / 1000);
    else everything.set(key, i);
  }
  const ms = performance.now() - started;
  Bun.gc(true);
  const held = kind === "table" ? limiter.size : everything.size;
  console.log(
    JSON.stringify({ kind, keys: KEYS, held, rssMiB: mib(process.memoryUsage().rss), baselineMiB: mib(baseline), heapUsedMiB: mib(process.memoryUsage().heapUsed), nsPerKey: Math.round((ms * 1e6) / KEYS) }),
  );
}

/** lb (this checkout) in front of bench/backend.ts, wrk giving every request a key of its own; lb's memory after. */
async function throughLb(limited: boolean): Promise<void> {
  const [backendPort, lbPort] = [free(), free()];
  const backend = Bun.spawn(["bun", `${import.meta.dir}/backend.ts`, String(backendPort)], { stdout: "ignore", stderr: "ignore" });
  const limit = limited ? ["--rate-limit", "1000/s", "--rate-limit-key", "header:X-Key"] : [];
  const lb = Bun.spawn(["bun", `${import.meta.dir}/../src/main.ts`, "--port", String(lbPort), "--host", "127.0.0.1", "--admin", "off", "--no-access-log", ...limit, `http://127.0.0.1:${backendPort}`], { stdout: "ignore", stderr: "ignore" });
  try {
    while (!(await fetch(`http://127.0.0.1:${lbPort}/`).then((r) => r.ok, () => false))) await Bun.sleep(100);
    const script = `${process.env.TMPDIR ?? "/tmp"}/lb-unique-keys.lua`;
    await Bun.write(script, 'local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, nil, { ["X-Key"] = string.format("%d-%d-%d", math.random(1e9), n, math.random(1e9)) })\nend\n');
    const wrk = Bun.spawnSync(["wrk", "-t2", "-c50", `-d${process.env.DURATION ?? 60}s`, "-s", script, `http://127.0.0.1:${lbPort}/`]);
    const requests = /(\d+) requests in/.exec(wrk.stdout.toString())?.[1];
    const status = await Bun.file(`/proc/${lb.pid}/status`).text();
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    console.log(JSON.stringify({ lb: limited ? "rate-limit keyed on X-Key" : "no limit", distinctKeys: Number(requests), rssMiB: mib(kib("VmRSS") * 1024), peakMiB: mib(kib("VmHWM") * 1024) }));
  } finally {
    lb.kill();
    backend.kill();
  }
}

function free(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

if (process.argv[2] === "lb") {
  await throughLb(true);
  await throughLb(false);
} else if (process.argv[2]) run(process.argv[2]);
else {
  console.log(`# ${KEYS} distinct keys; lb's table holds at most ${MAX_KEYS}`);
  for (const kind of ["table", "map"]) {
    const child = Bun.spawnSync(["bun", import.meta.path, kind], { stdout: "pipe", stderr: "inherit", env: process.env });
    process.stdout.write(child.stdout);
  }
}
