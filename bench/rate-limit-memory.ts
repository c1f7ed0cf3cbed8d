/**
 * A rate limit's memory with 1 million distinct keys (an attacker rotating addresses or header values): lb's table
 * (src/edge/rate-limit.ts, at most MAX_KEYS keys) against a plain Map that keeps every key, each in a process of its
 * own. Prints RSS after the keys went through, heap used after a GC, and the keys held.
 *
 *   bun bench/rate-limit-memory.ts            # both, 1,000,000 keys, IPv6-like keys (39 characters)
 *   KEYS=2000000 bun bench/rate-limit-memory.ts
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

if (process.argv[2]) run(process.argv[2]);
else {
  console.log(`# ${KEYS} distinct keys; lb's table holds at most ${MAX_KEYS}`);
  for (const kind of ["table", "map"]) {
    const child = Bun.spawnSync(["bun", import.meta.path, kind], { stdout: "pipe", stderr: "inherit", env: process.env });
    process.stdout.write(child.stdout);
  }
}
