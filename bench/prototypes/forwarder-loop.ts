/**
 * PROTOTYPE FOR MEASUREMENT ONLY: lb's forwarder alone, in a loop, with a transport that answers at once (no sockets): the
 * JavaScript lb runs per request, without Bun.serve or the network. `bun bench/prototypes/forwarder-loop.ts` prints ns per
 * request for each of 14 rounds of 20,000 (the first rounds warm the JIT); `bun --cpu-prof` on it shows where they go.
 */
import { Pool } from "../../src/pool/pool.ts";
import { Forwarder } from "../../src/proxy/forward.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { RoundRobin } from "../../src/balance/round-robin.ts";
import { createLogger } from "../../src/log/log.ts";
import { startTrip, type ClientConnection } from "../../src/proxy/trip.ts";
import { refusal } from "../../src/proxy/admission.ts";
import { scanFields } from "../../src/proxy/headers.ts";
import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from "../../src/upstream/client.ts";

const body = new Uint8Array(100);
const upstream: UpstreamClient = {
  send(_origin: string, request: UpstreamRequest) {
    for (const _ of request.headers) {}
    const answer: UpstreamResponse = { status: 200, statusText: "OK", headers: [["content-type", "text/plain"], ["date", "x"]], body };
    return { result: Promise.resolve(answer), sentAt: performance.now(), cancel() {} };
  },
  configure() {}, forget() {}, callOff() {}, connections: () => ({ busy: 0, idle: 0 }), close() {},
};
const pool = new Pool([{ url: "http://a:80", weight: 1 }, { url: "http://b:80", weight: 1 }]);
for (const backend of pool.backends) pool.recordCheck(backend, { ok: true, reason: "status 200" });
const f = new Forwarder({ pool, upstream, accessLog: null, metrics: new Metrics(), log: createLogger("error", "json"), policy: new RoundRobin(), sticky: null,
  timeoutMs: 1000, retries: 3, retryBudgetPercent: 20, maxInflight: 0, queueSize: 10, queueTimeoutMs: 1000, clientTimeoutMs: 1000, compression: null, retryAfterSeconds: 1, debug: false } as any);
const client: ClientConnection = { peer: "127.0.0.1", ip: "127.0.0.1", proto: "http", openRequests: () => 1, waited: false, connection: "127.0.0.1:5000", addresses: () => null, awaitingBackend() {}, responseEnded() {}, upgrade: () => false } as any;
const request = new Request("http://127.0.0.1:8080/", { headers: { host: "127.0.0.1:8080", "user-agent": "wrk", accept: "*/*" } });
async function one() {
  const trip = startTrip(request, client, null);
  if (refusal(request, scanFields(request.headers), "/", client, 0)) throw new Error("refused");
  const response = await f.handle(trip);
  if (!response || response.status !== 200) throw new Error("bad");
}
const N = 20_000;
for (let r = 0; r < 14; r++) {
  const t = Bun.nanoseconds();
  for (let i = 0; i < N; i++) await one();
  console.log(`${((Bun.nanoseconds() - t) / N).toFixed(0)} ns/request`);
}
