/**
 * Upstream connections: keep-alive sockets are reused, and however many clients arrive at once, lb never has more
 * than UPSTREAM_CONCURRENCY requests (hence sockets) open to backends; the rest queue and are all answered.
 */
import { afterAll, expect, test } from "bun:test";
import { type Server, createServer } from "node:http";
import { UPSTREAM_CONCURRENCY } from "../src/server.ts";
import { spawnLb } from "./helpers.ts";

/** A node:http backend, because it reports every new TCP connection and its live request count. */
async function countingBackend(delayMs: number) {
  const stats = { connections: 0, inflight: 0, peakInflight: 0 };
  const server: Server = createServer((request, response) => {
    stats.inflight++;
    stats.peakInflight = Math.max(stats.peakInflight, stats.inflight);
    setTimeout(
      () => {
        stats.inflight--;
        response.end("ok");
      },
      request.url === "/" ? 0 : delayMs,
    );
  });
  server.on("connection", () => stats.connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, stats, stop: () => new Promise((r) => server.close(r)) };
}

const backend = await countingBackend(20);
// A separate process: in this one, the test's own 300 fetches would share Bun's fetch client with lb's.
const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--health-interval", "1m", "--no-access-log", backend.url]);
afterAll(async () => {
  await lb.kill();
  await backend.stop();
});

test("sequential requests reuse one keep-alive connection", async () => {
  const before = backend.stats.connections;
  for (let i = 0; i < 100; i++) await (await fetch(`${lb.url}/`)).text();
  expect(backend.stats.connections - before).toBeLessThanOrEqual(2);
});

test(`300 concurrent clients: every one answered, never more than ${UPSTREAM_CONCURRENCY} upstream at once`, async () => {
  const before = backend.stats.connections;
  const statuses = await Promise.all(
    Array.from({ length: 300 }, async (_, i) => {
      const response = await fetch(`${lb.url}/slow/${i}`);
      await response.text();
      return response.status;
    }),
  );
  expect(statuses.filter((s) => s !== 200)).toEqual([]);
  expect(backend.stats.peakInflight).toBe(UPSTREAM_CONCURRENCY);
  expect(backend.stats.connections - before).toBeLessThanOrEqual(UPSTREAM_CONCURRENCY);
}, 15_000);
