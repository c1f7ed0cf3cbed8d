/**
 * The forwarder's policy with a scripted transport in place of the network (as Caddy's retries_test.go does): which
 * failures are retried on the next backend, which mark a backend down, and what the client is answered. The transport
 * itself is tested on real sockets in upstream-client.test.ts; here only the decisions are.
 */
import { describe, expect, test } from "bun:test";
import { type AccessEntry, AccessLog } from "../../src/log/access-log.ts";
import { RoundRobin } from "../../src/balance/round-robin.ts";
import { createLogger } from "../../src/log/log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { Pool } from "../../src/pool/pool.ts";
import { Forwarder } from "../../src/proxy/forward.ts";
import { type ClientConnection, startTrip } from "../../src/proxy/trip.ts";
import {
  type UpstreamCall,
  type UpstreamClient,
  type UpstreamRequest,
  type UpstreamResponse,
  mayGoElsewhere,
} from "../../src/upstream/client.ts";
import { type Failure, failure } from "../../src/upstream/failure.ts";
import { waitFor } from "../helpers.ts";

/** An answer now, or "hang": no answer until the call is cancelled (a frozen backend, or a client that left). */
type Script = (origin: string, request: UpstreamRequest) => UpstreamResponse | Failure | "hang";

/** A transport that answers from `script` and records every request it was given, by backend. */
class ScriptedClient implements UpstreamClient {
  readonly sent: Array<{ origin: string; method: string; body: string | null }> = [];
  /** The x-request-id each request carried, in the order sent. */
  readonly requestIds: Array<string | undefined> = [];
  /** The backends of the calls that were called off while they hung. */
  readonly calledOff: string[] = [];
  /** Calls left hanging by the script and not yet called off. */
  readonly #hung = new Set<{ origin: string; request: UpstreamRequest; cancel: (why: Failure) => void }>();
  constructor(private readonly script: Script) {}

  send(origin: string, request: UpstreamRequest): UpstreamCall {
    const body = request.body instanceof Uint8Array ? new TextDecoder().decode(request.body) : null;
    this.sent.push({ origin, method: request.method, body });
    this.requestIds.push([...request.headers].find(([name]) => name === "x-request-id")?.[1]);
    const outcome = this.script(origin, request);
    if (outcome !== "hang") return { result: Promise.resolve(outcome), sentAt: performance.now(), cancel() {} };
    let settle!: (outcome: Failure) => void;
    const result = new Promise<UpstreamResponse | Failure>((resolve) => (settle = resolve));
    const cancel = (why: Failure) => {
      this.#hung.delete(call);
      this.calledOff.push(origin);
      settle(why);
    };
    const call = { origin, request, cancel };
    this.#hung.add(call);
    // As the real client does: a client that leaves calls the request off.
    request.cancelledBy?.signal.addEventListener("abort", () => cancel(failure("cancelled", "the client went away")));
    return { result, sentAt: performance.now(), cancel };
  }
  configure() {}
  forget() {}
  /** As the real client does, by the same rule: the hung calls to `origin` that may go to another backend. */
  callOff(origin: string, why: Failure) {
    for (const call of [...this.#hung]) if (call.origin === origin && mayGoElsewhere(call.request)) call.cancel(why);
  }
  connections() {
    return { busy: 0, idle: 0 };
  }
  close() {}
}

const answer = (text: string, status = 200): UpstreamResponse => ({
  status,
  statusText: "",
  headers: [["content-type", "text/plain"]],
  body: new TextEncoder().encode(text),
});

const client: ClientConnection = {
  peer: "10.0.0.9",
  proto: "http",
  openRequests: () => 1,
  waited: false,
  connection: "10.0.0.9:50000",
  addresses: () => null,
  awaitingBackend() {},
  responseEnded() {},
  upgrade: () => false,
};

/** A client that records what the forwarder tells its listener about the request (the idle timer's cues). */
function recordingClient() {
  const told: string[] = [];
  const recording: ClientConnection = { ...client, awaitingBackend: () => told.push("awaiting backend"), responseEnded: () => told.push("response ended") };
  return { told, recording };
}

/** A forwarder over backends a and b, round robin from a; `now` is its clock for telling reset bursts apart. */
function forwarder(script: Script, now?: () => number) {
  const upstream = new ScriptedClient(script);
  const pool = new Pool([
    { url: "http://a:80", weight: 1 },
    { url: "http://b:80", weight: 1 },
  ]);
  for (const backend of pool.backends) pool.recordCheck(backend, { ok: true, reason: "status 200" });
  const log = createLogger("error", "json");
  const logged: AccessEntry[] = [];
  const accessLog = new AccessLog("json", { write: () => {}, flush: () => {} });
  accessLog.write = (entry) => void logged.push(entry);
  const forwarding = new Forwarder({
    pool,
    upstream,
    accessLog,
    metrics: new Metrics(),
    log,
    now,
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
  const respond = async (method: string, body?: string, signal?: AbortSignal) =>
    (await forwarding.handle(startTrip(new Request("http://lb/x", { method, body, signal }), client, null)))!;
  const send = async (method: string, body?: string, signal?: AbortSignal) => {
    const response = await respond(method, body, signal);
    return { status: response.status, text: await response.text() };
  };
  return { send, respond, upstream, pool, forwarding, logged };
}

/** Backend a fails with `failed`; backend b answers. */
const aFails = (failed: Failure): Script => (origin) => (origin === "http://a:80" ? failed : answer(`b answered`));

describe("the forwarder's decisions, with a scripted transport", () => {
  test("a connect failure (refused, or timed out) is retried on the next backend for any method, and marks the backend down", async () => {
    for (const reason of ["connection refused", "connect timed out"]) {
      for (const [method, body] of [["GET", null], ["POST", "once"], ["PATCH", "once"]] as const) {
        const { send, upstream, pool } = forwarder(aFails(failure("connect", reason)));
        expect(await send(method, body ?? undefined)).toEqual({ status: 200, text: "b answered" });
        expect(upstream.sent).toEqual([
          { origin: "http://a:80", method, body },
          { origin: "http://b:80", method, body },
        ]);
        expect(pool.available().map((backend) => backend.url)).toEqual(["http://b:80"]);
      }
    }
  });

  test("a reset is retried for a GET but not for a POST (the backend may have acted on it), and marks nobody down", async () => {
    const get = forwarder(aFails(failure("reset", "connection reset")));
    expect(await get.send("GET")).toEqual({ status: 200, text: "b answered" });
    expect(get.upstream.sent.map((s) => s.origin)).toEqual(["http://a:80", "http://b:80"]);
    expect(get.pool.available()).toHaveLength(2);
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

  test("an answer passes to the client with lb's request id in place of the backend's; a 5xx from the backend is passed on as it is", async () => {
    const { respond, upstream, logged } = forwarder(() => {
      const failing = answer("down for maintenance", 503);
      return { ...failing, headers: [...failing.headers, ["x-request-id", "the-backend-s-own"]] };
    });
    const response = await respond("GET");
    expect({ status: response.status, text: await response.text() }).toEqual({ status: 503, text: "down for maintenance" });
    // The client sent none: lb made one, sent it to the backend, logged it, and gave it to the client.
    const [sentId] = upstream.requestIds;
    expect(sentId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(response.headers.get("x-request-id")).toBe(sentId!);
    expect(logged.map((entry) => [entry.status, entry.requestId])).toEqual([[503, sentId!]]);
  });

  test("requests stuck on a backend that stops answering its checks: a GET moves to the next backend, a POST waits on", async () => {
    const stuckOnA: Script = (origin) => (origin === "http://a:80" ? "hang" : answer("b answered"));
    const first = forwarder(stuckOnA);
    const get = first.send("GET"); // round robin: a first
    await waitFor(() => first.upstream.sent.length === 1, "the GET to be sent to a");
    first.forwarding.backendUnresponsive(first.pool.backends[0]!);
    expect(await get).toEqual({ status: 200, text: "b answered" });
    expect(first.upstream.sent.map((s) => s.origin)).toEqual(["http://a:80", "http://b:80"]);

    // A POST and a GET both stuck on a (round robin: the POST to a, a GET to b, the next GET to a).
    const second = forwarder(stuckOnA);
    const leaving = new AbortController();
    let postAnswered = false;
    const post = second.send("POST", "once", leaving.signal).finally(() => (postAnswered = true));
    await waitFor(() => second.upstream.sent.length === 1, "the POST to be sent to a");
    expect(await second.send("GET")).toEqual({ status: 200, text: "b answered" });
    const stuckGet = second.send("GET");
    await waitFor(() => second.upstream.sent.length === 3, "the second GET to be sent to a");
    second.forwarding.backendUnresponsive(second.pool.backends[0]!);
    // The GET goes to b and is answered. A POST let go at that same moment would have been answered before it (its
    // way back is shorter: no second attempt), so it was not let go: the backend may yet answer it, and a POST is
    // never sent twice.
    expect(await stuckGet).toEqual({ status: 200, text: "b answered" });
    expect(postAnswered).toBe(false);
    expect(second.upstream.sent.map((s) => `${s.method} ${s.origin}`)).toEqual(["POST http://a:80", "GET http://b:80", "GET http://a:80", "GET http://b:80"]);
    leaving.abort();
    expect((await post).status).toBe(499);
  });

  test("a client that leaves while its request waits on a backend is logged 499 and the backend call is called off", async () => {
    const { send, pool, upstream, logged } = forwarder(() => "hang");
    const leaving = new AbortController();
    const pending = send("GET", undefined, leaving.signal);
    await waitFor(() => upstream.sent.length === 1, "the request to be sent to a");
    expect(pool.backends.map((b) => b.inflight)).toEqual([1, 0]);
    leaving.abort();
    expect((await pending).status).toBe(499);
    expect(upstream.calledOff).toEqual(["http://a:80"]);
    expect(pool.backends.map((b) => b.inflight)).toEqual([0, 0]);
    expect(logged.map((entry) => [entry.status, entry.backend])).toEqual([[499, "a:80"]]);
  });

  test("the listener is told when lb waits on a backend and when the response has ended: at once when whole, at the stream's end when streamed", async () => {
    const whole = forwarder(() => answer("whole"));
    const first = recordingClient();
    await whole.forwarding.handle(startTrip(new Request("http://lb/x"), first.recording, null));
    expect(first.told).toEqual(["awaiting backend", "response ended"]);

    let streamEnded: UpstreamRequest["streamWatcher"] | undefined;
    const streamed = forwarder((_origin, request) => {
      streamEnded = request.streamWatcher;
      return { ...answer(""), body: new ReadableStream<Uint8Array>() };
    });
    const second = recordingClient();
    await streamed.forwarding.handle(startTrip(new Request("http://lb/x"), second.recording, null));
    expect(second.told).toEqual(["awaiting backend"]);
    streamEnded!.streamEnded(5);
    expect(second.told).toEqual(["awaiting backend", "response ended"]);

    const noBackend = forwarder(() => answer("unused"));
    for (const backend of noBackend.pool.backends) noBackend.pool.recordCheck(backend, { ok: false, reason: "status 500" });
    const third = recordingClient();
    expect((await noBackend.forwarding.handle(startTrip(new Request("http://lb/x"), third.recording, null)))!.status).toBe(503);
    expect(third.told).toEqual(["response ended"]);
  });

  describe("the retry budget (Envoy's: retries in flight at most 20% of requests in flight, but 3 always)", () => {
    /** Backend a resets everything; b holds everything: every retry of a's requests stays in flight on b. */
    const aResetsBHolds: Script = (origin) => (origin === "http://a:80" ? failure("reset", "connection reset") : "hang");

    test("isolated resets: the 4th retry while 3 are in flight is refused (502), not piled on", async () => {
      let now = 0;
      const { send, upstream } = forwarder(aResetsBHolds, () => now);
      const onB = () => upstream.sent.filter((s) => s.origin === "http://b:80").length;
      // Round robin alternates a, b: requests 1, 3, 5 meet a's reset and are retried on b; 2, 4, 6 wait on b. The
      // clock moves 120 ms between them, past the 100 ms burst window: the resets are no burst (a dying backend), so
      // the budget applies to each.
      for (let i = 1; i <= 6; i++) {
        void send("GET");
        await waitFor(() => onB() === i, `request ${i} (or its retry) to wait on b`);
        now += 120;
      }
      // The 7th meets a reset with 3 retries already in flight on b: answered at once, not sent on.
      let status: number | undefined;
      void send("GET").then((answered) => (status = answered.status));
      expect(await waitFor(() => status ?? (onB() > 6 ? "sent on to b" : null), "the 7th request to be answered or sent on")).toBe(502);
      expect(onB()).toBe(6); // 3 retries + 3 first tries
    });

    test("resets in a burst from one backend (it died with requests in flight) are all retried, budget or not", async () => {
      const { send, upstream } = forwarder(aResetsBHolds, () => 0);
      // 10 at once: 5 meet a's reset at the same moment, and all 5 go on to b although the floor is 3.
      for (let i = 0; i < 10; i++) void send("GET");
      const onB = () => upstream.sent.filter((s) => s.origin === "http://b:80").length;
      await waitFor(() => onB() === 10, () => `all 10 on b (5 first tries, 5 retries); ${onB()} so far`, 2000);
      expect(upstream.sent.filter((s) => s.origin === "http://a:80")).toHaveLength(5);
    });
  });
});
