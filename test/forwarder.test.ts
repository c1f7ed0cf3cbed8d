/**
 * The forwarder's policy with a scripted transport in place of the network (as Caddy's retries_test.go does): which
 * failures are retried on the next backend, which mark a backend down, and what the client is answered. The transport
 * itself is tested on real sockets in upstream-client.test.ts; here only the decisions are.
 */
import { describe, expect, test } from "bun:test";
import { RoundRobin } from "../src/balance/round-robin.ts";
import { createLogger } from "../src/log.ts";
import { Metrics } from "../src/metrics/metrics.ts";
import { Pool } from "../src/pool/pool.ts";
import { Forwarder } from "../src/proxy/forward.ts";
import { type ClientConnection, startTrip } from "../src/proxy/trip.ts";
import type { UpstreamAnswer, UpstreamCall, UpstreamClient, UpstreamRequest } from "../src/upstream/client.ts";
import { type Failure, failure } from "../src/upstream/failure.ts";
import { waitFor } from "./helpers.ts";

/** An answer now, or "hang": no answer until the call is cancelled (a frozen backend, or a client that left). */
type Script = (origin: string, request: UpstreamRequest) => UpstreamAnswer | Failure | "hang";

/** A transport that answers from `script` and records every request it was given, by backend. */
class ScriptedClient implements UpstreamClient {
  readonly sent: Array<{ origin: string; method: string; body: string | null }> = [];
  constructor(private readonly script: Script) {}

  send(origin: string, request: UpstreamRequest): UpstreamCall {
    const body = request.body instanceof Uint8Array ? new TextDecoder().decode(request.body) : null;
    this.sent.push({ origin, method: request.method, body });
    const outcome = this.script(origin, request);
    if (outcome !== "hang") return { result: Promise.resolve(outcome), cancel() {} };
    let cancel!: (why: Failure) => void;
    const result = new Promise<UpstreamAnswer | Failure>((resolve) => (cancel = resolve));
    // As the real client does: a client that leaves calls the request off.
    request.signal?.addEventListener("abort", () => cancel(failure("cancelled", "the client went away")));
    return { result, cancel };
  }
  configure() {}
  forget() {}
  connections() {
    return { busy: 0, idle: 0 };
  }
  close() {}
}

const answer = (text: string, status = 200): UpstreamAnswer => ({
  status,
  statusText: "",
  headers: [["content-type", "text/plain"]],
  body: new TextEncoder().encode(text),
});

const client: ClientConnection = {
  ip: "10.0.0.9",
  proto: "http",
  openRequests: 1,
  connection: "10.0.0.9:50000",
  holdOpen() {},
  upgrade: () => false,
};

function forwarder(script: Script) {
  const upstream = new ScriptedClient(script);
  const pool = new Pool([
    { url: "http://a:80", weight: 1 },
    { url: "http://b:80", weight: 1 },
  ]);
  for (const backend of pool.backends) pool.recordCheck(backend, { ok: true, reason: "status 200" });
  const log = createLogger("error", "json");
  const forwarding = new Forwarder({
    pool,
    upstream,
    accessLog: null,
    metrics: new Metrics(),
    log,
    policy: new RoundRobin(() => 1),
    sticky: null,
    timeoutMs: 1000,
    retries: 3,
    retryBudgetPercent: 20,
    maxInflight: 0,
    queueSize: 10,
    queueTimeoutMs: 1000,
    clientTimeoutMs: 1000,
    retryAfterSeconds: 1,
    debug: false,
  });
  const send = async (method: string, body?: string, signal?: AbortSignal) => {
    const response = await forwarding.handle(startTrip(new Request("http://lb/x", { method, body, signal }), client));
    return { status: response!.status, text: await response!.text() };
  };
  return { send, upstream, pool, forwarding };
}

/** Backend a fails with `failed`; backend b answers. */
const aFails = (failed: Failure): Script => (origin) => (origin === "http://a:80" ? failed : answer(`b answered`));

describe("the forwarder's decisions, with a scripted transport", () => {
  test("a connect failure (refused, or timed out) is retried on the next backend for any method, and marks the backend down", async () => {
    for (const reason of ["connection refused", "connect timed out"]) {
      const { send, upstream, pool } = forwarder(aFails(failure("connect", reason)));
      expect(await send("POST", "once")).toEqual({ status: 200, text: "b answered" });
      expect(upstream.sent).toEqual([
        { origin: "http://a:80", method: "POST", body: "once" },
        { origin: "http://b:80", method: "POST", body: "once" },
      ]);
      expect(pool.available().map((backend) => backend.url)).toEqual(["http://b:80"]);
    }
  });

  test("a reset is retried for a GET but not for a POST (the backend may have acted on it), and marks nobody down", async () => {
    const get = forwarder(aFails(failure("reset", "connection reset")));
    expect(await get.send("GET")).toEqual({ status: 200, text: "b answered" });
    expect(get.upstream.sent.map((s) => s.origin)).toEqual(["http://a:80", "http://b:80"]);
    const post = forwarder(aFails(failure("reset", "connection reset")));
    expect(await post.send("POST", "once")).toEqual({ status: 502, text: "502 Bad Gateway: backend failed (connection reset)\n" });
    expect(post.upstream.sent.map((s) => s.origin)).toEqual(["http://a:80"]);
    expect(post.pool.available()).toHaveLength(2);
  });

  test("a timeout is a 504 and is not retried; a malformed answer is a 502 and is not retried", async () => {
    const slow = forwarder(aFails(failure("timeout", "timed out")));
    expect((await slow.send("GET")).status).toBe(504);
    expect(slow.upstream.sent).toHaveLength(1);
    const garbled = forwarder(aFails({ kind: "protocol", reason: "malformed response", detail: 'bad status line "SSH-2.0"' }));
    expect(await garbled.send("GET")).toEqual({ status: 502, text: "502 Bad Gateway: backend failed (malformed response)\n" });
    expect(garbled.upstream.sent).toHaveLength(1);
  });

  test("an answer passes to the client with lb's request id; a 5xx from the backend is passed on as it is", async () => {
    const { send } = forwarder(() => answer("down for maintenance", 503));
    expect(await send("GET")).toEqual({ status: 503, text: "down for maintenance" });
  });

  test("requests stuck on a backend that stops answering its checks: a GET moves to the next backend, a POST waits on", async () => {
    const stuckOnA: Script = (origin) => (origin === "http://a:80" ? "hang" : answer("b answered"));
    const first = forwarder(stuckOnA);
    const get = first.send("GET"); // round robin: a first
    await Bun.sleep(0);
    first.forwarding.backendUnresponsive(first.pool.backends[0]!);
    expect(await get).toEqual({ status: 200, text: "b answered" });
    expect(first.upstream.sent.map((s) => s.origin)).toEqual(["http://a:80", "http://b:80"]);

    const second = forwarder(stuckOnA);
    const leaving = new AbortController();
    const post = second.send("POST", "once", leaving.signal);
    await Bun.sleep(0);
    second.forwarding.backendUnresponsive(second.pool.backends[0]!);
    // Not moved: the backend may yet answer it, and a POST is never sent twice.
    expect(await Promise.race([post.then(() => "answered"), Bun.sleep(50).then(() => "waiting")])).toBe("waiting");
    expect(second.upstream.sent).toHaveLength(1);
    leaving.abort();
    expect((await post).status).toBe(499);
  });

  test("a client that leaves while its request waits on a backend is logged 499 and the backend call is called off", async () => {
    const { send, pool } = forwarder(() => "hang");
    const leaving = new AbortController();
    const pending = send("GET", undefined, leaving.signal);
    await Bun.sleep(0);
    expect(pool.backends.map((b) => b.inflight).reduce((a, b) => a + b)).toBe(1);
    leaving.abort();
    expect((await pending).status).toBe(499);
    expect(pool.backends.map((b) => b.inflight)).toEqual([0, 0]);
  });

  describe("the retry budget (Envoy's: retries in flight at most 20% of requests in flight, but 3 always)", () => {
    /** Backend a resets everything; b holds everything: every retry of a's requests stays in flight on b. */
    const aResetsBHolds: Script = (origin) => (origin === "http://a:80" ? failure("reset", "connection reset") : "hang");

    test("isolated resets: the 4th retry while 3 are in flight is refused (502), not piled on", async () => {
      const { send, upstream } = forwarder(aResetsBHolds);
      const pending: Array<Promise<{ status: number }>> = [];
      // Round robin alternates a, b: requests 1, 3, 5, 7 meet a's reset; 2, 4, 6 wait on b. Spaced 120 ms apart,
      // the resets are no burst (a dying backend), so the budget applies to each.
      for (let i = 0; i < 7; i++) {
        pending.push(send("GET"));
        await Bun.sleep(120);
      }
      // The 7th met a reset with 3 retries already in flight on b: answered at once, not sent on.
      const seventh = await Promise.race([pending[6]!, Bun.sleep(100).then(() => null)]);
      expect(seventh?.status).toBe(502);
      expect(upstream.sent.filter((s) => s.origin === "http://b:80")).toHaveLength(6); // 3 retries + 3 first tries
    });

    test("resets in a burst from one backend (it died with requests in flight) are all retried, budget or not", async () => {
      const { send, upstream } = forwarder(aResetsBHolds);
      // 10 at once: 5 meet a's reset within the same moment, and all 5 go on to b although the floor is 3.
      for (let i = 0; i < 10; i++) void send("GET");
      const onB = () => upstream.sent.filter((s) => s.origin === "http://b:80").length;
      await waitFor(() => onB() === 10, () => `all 10 on b (5 first tries, 5 retries); ${onB()} so far`, 2000);
      expect(upstream.sent.filter((s) => s.origin === "http://a:80")).toHaveLength(5);
    });
  });
});
