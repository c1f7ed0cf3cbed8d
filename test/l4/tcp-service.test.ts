/**
 * The TCP service in this process, on real sockets, for what takes a clock through the binary: a client that never
 * sends its ClientHello, and a stop that drains an open connection until its deadline.
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { RoundRobin } from "../../src/balance/round-robin.ts";
import { TcpService } from "../../src/l4/tcp-service.ts";
import type { ConnectionEntry } from "../../src/log/access-log.ts";
import { AccessLog } from "../../src/log/access-log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { Pool } from "../../src/pool/pool.ts";
import { deadPort, waitFor } from "../helpers.ts";

const stops: Array<() => unknown> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

/** A service with one listener on a free port, its entries routing to one echo backend, and its access lines. */
function serviceWith(entries: Array<{ sni?: string[] }>, helloTimeoutMs: number) {
  const echo = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (socket, bytes) => void socket.write(bytes) } });
  stops.push(() => echo.stop(true));
  const pool = new Pool([{ url: `tcp://127.0.0.1:${echo.port}`, weight: 1 }]);
  pool.recordCheck(pool.backends[0]!, { ok: true, reason: "connected" });
  const lines: ConnectionEntry[] = [];
  const accessLog = new AccessLog("json", { write() {}, flush() {} });
  accessLog.writeConnection = (line) => void lines.push(line);
  const service = new TcpService({ metrics: new Metrics(), accessLog }, helloTimeoutMs);
  const port = deadPort();
  const listen = `127.0.0.1:${port}`;
  service
    .prepare([{ listen, address: { host: "127.0.0.1", port }, entries: entries.map((e) => ({ ...e, pool: "echo", idleTimeoutMs: 60_000 })) }])
    .apply(new Map([["echo", { pool, policy: new RoundRobin(), connectTimeoutMs: 1000, sendProxy: null }]]), 1000);
  stops.push(() => service.stop(0));
  return { service, port, listen, lines };
}

async function connect(port: number) {
  const closed = Promise.withResolvers<void>();
  let received = "";
  const socket: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data: (_s, bytes) => void (received += bytes.toString()), close: () => closed.resolve() },
  });
  return { socket, closed: closed.promise, received: () => received };
}

test("a client of a listener routing by name that sends no ClientHello is closed at the hello timeout, counted", async () => {
  const { service, port, listen, lines } = serviceWith([{ sni: ["a.test"] }, {}], 200);
  const silent = await connect(port);
  const started = performance.now();
  await silent.closed;
  expect(performance.now() - started).toBeGreaterThanOrEqual(200);
  expect(lines).toMatchObject([{ listen, backend: "-", end: "hello-timeout" }]);
  expect(service.stats.of(listen).rejected.get("hello-timeout")).toBe(1);
});

test("stop lets an open connection go on until the drain deadline, then closes it as drained", async () => {
  const { service, port, lines } = serviceWith([{}], 10_000);
  const client = await connect(port);
  client.socket.write("before");
  await waitFor(() => client.received() === "before" || undefined, "the echo");
  const stopped = service.stop(400);
  await Bun.sleep(100);
  client.socket.write(" during");
  await waitFor(() => client.received() === "before during" || undefined, "an echo while draining");
  await client.closed;
  await stopped;
  expect(lines).toMatchObject([{ end: "drained", bytesIn: 13, bytesOut: 13 }]);
  expect(await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(() => "connected", (e) => e.code)).toBe("ECONNREFUSED");
});
