/**
 * Startup time of the binary: from spawning `dist/lb` to its first proxied 200 (the first health round included, since
 * lb holds requests until it is done). Run `bun run build` first; then `bun bench/startup.ts [runs]`.
 */
import { existsSync } from "node:fs";
import { createServer } from "node:net";

const BINARY = "dist/lb";
const runs = Number(process.argv[2] ?? 20);
if (!existsSync(BINARY)) {
  console.error(`bench/startup.ts: ${BINARY} is missing; run \`bun run build\` first`);
  process.exit(2);
}

/** A port that was free a moment ago (lb needs a number to be polled on before it says anything). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

const backend = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("ok") });
const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const port = await freePort();
  const started = performance.now();
  const lb = Bun.spawn([BINARY, "--port", String(port), "--host", "127.0.0.1", "--admin", "off", "--no-access-log", backend.url.origin], {
    stdout: "ignore",
    stderr: "ignore",
  });
  for (;;) {
    const status = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.status, () => 0);
    if (status === 200) break;
    if (performance.now() - started > 5000) throw new Error("lb did not answer within 5 s");
    await Bun.sleep(1);
  }
  times.push(performance.now() - started);
  lb.kill();
  await lb.exited;
}
await backend.stop(true);
times.sort((a, b) => a - b);
const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(1);
console.log(`dist/lb spawn → first proxied 200, ${runs} runs: min ${at(0)} ms, median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms`);
