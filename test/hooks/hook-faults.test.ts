/**
 * Faults of hook code outside lb's calls, through real processes: an error thrown from a hook's own timer or a
 * promise it leaves rejected is logged with its place and counted, and lb goes on serving (no worker dies); a hook
 * stuck in a loop makes /readyz say which worker, and the primary replaces it; a stuck worker dies with its primary,
 * in the compiled binary too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "../../build.ts";
import { SilenceWatch } from "../../src/cluster/silence.ts";
import { type LbProcess, ROOT, runCommand, spawnLb, startBackend, waitFor, workerPids } from "../helpers.ts";

const backend = startBackend("a");
const dir = realpathSync(mkdtempSync(join(tmpdir(), "lb-hook-faults-")));
const hooksFile = join(dir, "faulty.hooks.ts");
// Line 2: a throwing timer; line 3: a rejected promise nobody handles; line 4: a throw in the hook itself; line 6: a
// timer that throws a string (no stack to tell where it came from).
writeFileSync(
  hooksFile,
  `export function onRequest(ctx: { path: string }) {
  if (ctx.path === "/timer") setTimeout(() => { throw new Error("thrown in a hook's timer"); }, 1);
  if (ctx.path === "/reject") void Promise.reject(new Error("rejected in a hook"));
  if (ctx.path === "/throw") throw new Error("thrown by the hook itself");
  if (ctx.path === "/loop") for (;;) {}
  if (ctx.path === "/string") setTimeout(() => { throw "a plain string"; }, 1);
}
`,
);
const binary = join(dir, "lb");
/** Every lb started, with its first workers: a worker that outlived its primary is no longer found by pgrep -P. */
const spawned: Array<{ lb: LbProcess; workers: number[] }> = [];

beforeAll(async () => {
  expect(await build(binary, "test")).toBe(true);
}, 60_000);

afterAll(async () => {
  for (const { lb, workers } of spawned) {
    for (const pid of new Set([...workers, ...workerPids(lb.proc.pid)])) if (isRunning(pid)) process.kill(pid, "SIGKILL");
    if (lb.proc.exitCode === null) await lb.kill("SIGKILL");
  }
  await backend.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function startLb(args: string[], command?: string[]): Promise<LbProcess & { admin: string }> {
  const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--log-format", "pretty", "--hooks", hooksFile, ...args, backend.url], command);
  spawned.push({ lb, workers: workerPids(lb.proc.pid) });
  const listening = lb.stderr.find((line) => /lb listening on/.test(line))!;
  return { ...lb, admin: /admin (http:\/\/\S+)/.exec(listening)![1]! };
}

/** Running, as opposed to gone or a zombie nobody has reaped yet (which holds no socket). */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** The CPU time a process has spent in user mode, in clock ticks (utime, the 14th field of /proc/PID/stat). */
function cpuTicks(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")[11]);
}

/**
 * Whether anything listens on this TCP port (/proc/net/tcp and tcp6 write ports in hex; state 0A is LISTEN). Not a
 * connect: a listener still being torn down answers a SYN for a moment, and its process looks exited already.
 */
function isListening(port: number): boolean {
  const listener = new RegExp(`^\\s*\\d+: [0-9A-F]+:${port.toString(16).toUpperCase().padStart(4, "0")} [0-9A-F]+:[0-9A-F]{4} 0A `, "m");
  return ["/proc/net/tcp", "/proc/net/tcp6"].some((table) => listener.test(readFileSync(table, "utf8")));
}

/** lb_hook_errors_total by hook, from /metrics. */
async function hookErrors(admin: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  return Object.fromEntries([...text.matchAll(/^lb_hook_errors_total\{hook="(\w+)"\} (\d+)$/gm)].map(([, hook, count]) => [hook!, Number(count)]));
}

/** Each request on a new connection, so that with --workers they land on either worker (SO_REUSEPORT). */
const fresh = (url: string, timeoutMs = 3000) =>
  fetch(url, { headers: { connection: "close" }, signal: AbortSignal.timeout(timeoutMs) }).then(
    (response) => response.status,
    () => 0,
  );

describe("an error escaping hook code", () => {
  test("a timer of a hook that throws a string (no stack) is logged at an unknown place and counted; lb goes on serving", async () => {
    const lb = await startLb([]);
    expect(await fresh(`${lb.url}/string`)).toBe(200);
    await lb.waitForLine("stderr", /hooks: an error escaped hook code \(thrown from a timer or callback it set up\) at an unknown place .*: a plain string; lb goes on serving/);
    await waitFor(async () => (await hookErrors(lb.admin)).escaped === 1, "the escaped error counted");
    expect(await fresh(`${lb.url}/after`)).toBe(200);
    expect(lb.proc.exitCode).toBeNull();
    expect(await lb.kill("SIGTERM")).toBe(0);
  });

  test("a throwing timer and a rejected promise of a hook are logged with the hooks file's line, counted, and lb goes on serving", async () => {
    const lb = await startLb([]);
    for (const path of ["/timer", "/reject", "/timer"]) expect(await fresh(`${lb.url}${path}`)).toBe(200);
    await lb.waitForLine("stderr", /hooks: an error escaped hook code \(thrown from a timer or callback it set up\) at \S+\/faulty\.hooks\.ts:2:\d+: Error: thrown in a hook's timer; lb goes on serving/);
    await lb.waitForLine("stderr", /hooks: an error escaped hook code \(a rejected promise nobody handled\) at \S+\/faulty\.hooks\.ts:3:\d+: Error: rejected in a hook/);
    expect(await fresh(`${lb.url}/throw`)).toBe(500);
    await waitFor(async () => (await hookErrors(lb.admin)).escaped === 3, "three escaped errors counted");
    expect(await hookErrors(lb.admin)).toEqual({ escaped: 3, onRequest: 1 });
    expect(await fresh(`${lb.url}/after`)).toBe(200);
    expect(lb.proc.exitCode).toBeNull();
    expect(await lb.kill("SIGTERM")).toBe(0);
  }, 20_000);

  test("with --workers 2 no worker dies of them: the same processes serve, and the primary counts them all", async () => {
    const lb = await startLb(["--workers", "2"]);
    const pids = workerPids(lb.proc.pid);
    expect(pids).toHaveLength(2);
    const statuses = await Promise.all(Array.from({ length: 10 }, (_, i) => fresh(`${lb.url}/${i % 2 ? "timer" : "reject"}`)));
    expect(statuses).toEqual(Array(10).fill(200));
    // Summed from the workers' reports (every half second).
    await waitFor(async () => (await hookErrors(lb.admin)).escaped === 10, "ten escaped errors counted");
    expect(await Promise.all(Array.from({ length: 10 }, () => fresh(`${lb.url}/after`)))).toEqual(Array(10).fill(200));
    expect(workerPids(lb.proc.pid).sort()).toEqual(pids.sort());
    expect(lb.stderr.filter((line) => /exited|restart/.test(line))).toEqual([]);
    expect(await lb.kill("SIGTERM")).toBe(0);
  }, 20_000);

  test("an uncaught error that is not hook code's is lb's own: logged with its stack, and the process exits 70", async () => {
    const script = join(dir, "bug.ts");
    writeFileSync(
      script,
      `import { handleEscapedErrors } from "${ROOT}src/hooks/escaped.ts";
import { createLogger } from "${ROOT}src/log/log.ts";
const log = createLogger("info", "pretty");
handleEscapedErrors({ log: () => log, count: () => {} });
setTimeout(() => { throw new Error("a bug in lb"); }, 1);
setTimeout(() => console.log("still running"), 1000);
`,
    );
    const { code, stdout, stderr } = await runCommand([script], ["bun"]);
    expect(stderr).toMatch(/uncaught error in lb itself \(not hook code\): Error: a bug in lb\n\s+at .*bug\.ts:5:\d+/);
    expect(stdout).toBe("");
    expect(code).toBe(70);
  });
});

describe("a hook stuck in a loop, with --workers 2", () => {
  test("/readyz names the stuck worker while the other serves; the primary kills it and starts another", async () => {
    const lb = await startLb(["--workers", "2"]);
    const pids = workerPids(lb.proc.pid);
    const stuckRequest = fresh(`${lb.url}/loop`, 15_000);
    const readyz = await waitFor(
      async () => {
        const response = await fetch(`${lb.admin}/readyz`);
        return response.status === 503 ? ((await response.json()) as { ready: boolean; stuckWorkers: number[] }) : null;
      },
      "/readyz to report a stuck worker",
      5000,
    );
    const { ready, stuckWorkers } = readyz;
    expect(ready).toBe(false);
    expect(stuckWorkers).toHaveLength(1);
    const [stuck] = stuckWorkers;
    // New connections land on either worker: those on the stuck one hang, the others are served.
    const meanwhile = await Promise.all(Array.from({ length: 20 }, () => fresh(`${lb.url}/`, 1000)));
    expect(meanwhile.filter((status) => status === 200).length).toBeGreaterThan(0);
    await lb.waitForLine("stderr", new RegExp(`worker ${stuck} \\(pid \\d+\\) has not answered for 5\\.\\ds: killing it \\(SIGKILL\\) to start another`), 10_000);
    await lb.waitForLine("stderr", new RegExp(`worker ${stuck} restarted`));
    await waitFor(async () => (await fetch(`${lb.admin}/readyz`)).status === 200, "/readyz ready again");
    const now = workerPids(lb.proc.pid);
    expect(now).toHaveLength(2);
    expect(now.filter((pid) => pids.includes(pid))).toHaveLength(1); // the other worker was left alone
    expect(await Promise.all(Array.from({ length: 20 }, () => fresh(`${lb.url}/`)))).toEqual(Array(20).fill(200));
    expect(await stuckRequest).not.toBe(200);
    expect(await lb.kill("SIGTERM")).toBe(0);
  }, 30_000);

  for (const [how, command] of [
    ["bun src/main.ts", undefined],
    ["the compiled binary", [binary]],
  ] as const) {
    test(`killing the primary (SIGKILL) while a worker loops frees the port within 2 s (${how})`, async () => {
      const lb = await startLb(["--workers", "2"], command && [...command]);
      const pids = workerPids(lb.proc.pid);
      const port = Number(new URL(lb.url).port);
      const before = pids.map(cpuTicks);
      const stuckRequests = Array.from({ length: 4 }, () => fresh(`${lb.url}/loop`, 10_000));
      // A worker spins: a third of a second of CPU, far more than an idle one spends (the primary kills at 5 s).
      await waitFor(() => pids.some((pid, i) => cpuTicks(pid) - before[i]! >= 30), "a worker to spin in the hook's loop", 4000);
      expect(isListening(port)).toBe(true);
      const killedAt = performance.now();
      await lb.kill("SIGKILL");
      await waitFor(() => !isListening(port) && !pids.some(isRunning), "the workers to be gone and the port free", 2000);
      expect(performance.now() - killedAt).toBeLessThan(2000);
      await Promise.all(stuckRequests);
    }, 20_000);
  }
});

describe("SilenceWatch: which workers have stopped answering", () => {
  const limits = { stuckAfterMs: 2000, killAfterMs: 5000, lookEveryMs: 250 };
  /** Looks every 250 ms from `from` to `to`, as the primary's timer does; the news of each look. */
  const lookBetween = (watch: SilenceWatch, from: number, to: number) => {
    const news = [];
    for (let at = from; at <= to; at += 250) news.push(...watch.look(at).map((n) => ({ at, ...n })));
    return news;
  };

  test("stuck after 2 s of silence, killed after 5 s; a worker that speaks again is not stuck", () => {
    const watch = new SilenceWatch(limits);
    watch.heard(1, 0);
    watch.heard(2, 0);
    expect(lookBetween(watch, 0, 1750)).toEqual([]);
    watch.heard(2, 1750);
    expect(lookBetween(watch, 2000, 2000)).toEqual([{ at: 2000, id: 1, silentMs: 2000, verdict: "stuck" }]);
    expect(watch.stuck()).toEqual([1]);
    expect(watch.heard(1, 3000)).toBe(3000); // it was stuck for that long
    expect(watch.stuck()).toEqual([]);
    expect(lookBetween(watch, 2250, 7750)).toEqual([
      { at: 3750, id: 2, silentMs: 2000, verdict: "stuck" },
      { at: 5000, id: 1, silentMs: 2000, verdict: "stuck" },
      { at: 6750, id: 2, silentMs: 5000, verdict: "kill" },
    ]);
    // Killed: still stuck until its process is gone, and not killed twice.
    expect(watch.stuck()).toEqual([1, 2]);
    watch.forget(2);
    expect(watch.stuck()).toEqual([1]);
  });

  test("a stall of the primary itself (its look comes late) is not the workers' silence", () => {
    const watch = new SilenceWatch(limits);
    watch.heard(1, 0);
    expect(watch.look(250)).toEqual([]);
    // The primary's own event loop was blocked for 6 s: the worker's messages wait unread.
    expect(watch.look(6250)).toEqual([]);
    expect(lookBetween(watch, 6500, 8000)).toEqual([{ at: 7750, id: 1, silentMs: 2000, verdict: "stuck" }]);
  });
});
