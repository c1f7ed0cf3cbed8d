/**
 * Tracing through the compiled dist/lb, with a real OTLP/HTTP receiver (protobuf and JSON): W3C Trace Context in and
 * out, the spans and their parents, sampling, and a collector that is dead or hangs.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LbProcess, ROOT, type TestBackend, deadPort, rawBackend, rawRequest, spawnLb, startBackend, waitFor } from "../helpers.ts";
import { type Collector, type ReceivedSpan, startCollector } from "./collector.ts";

const binary = [`${ROOT}dist/lb`];
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map(async (stop) => stop()));
});

beforeAll(async () => {
  // Built from the current source, so a stale dist/lb never passes or fails for old code.
  const build = Bun.spawn(["bun", `${ROOT}build.ts`], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
  expect(await build.exited).toBe(0);
}, 60_000);

function collector(): Collector {
  const started = startCollector();
  cleanup.push(started.stop);
  return started;
}

function backend(name: string, handler?: (request: Request) => Response | Promise<Response>): TestBackend {
  const started = startBackend(name, handler);
  cleanup.push(started.stop);
  return started;
}

async function lb(args: string[], env: Record<string, string> = {}): Promise<LbProcess> {
  const started = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--health-interval", "1s", "--health-path", HEALTH, "--log-format", "json", ...args], binary, env);
  cleanup.push(() => started.kill("SIGKILL"));
  return started;
}

const HEALTH = "/health";
/** What the backend got from clients, not lb's health checks. */
const forwarded = (app: TestBackend) => app.seen.filter((seen) => seen.path !== HEALTH);

const CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN = "00f067aa0ba902b7";
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

const serverSpans = (spans: ReceivedSpan[]) => spans.filter((span) => span.kind === 2);
const childrenOf = (spans: ReceivedSpan[], parent: ReceivedSpan) => spans.filter((span) => span.parentSpanId === parent.spanId);

async function metric(proc: LbProcess, line: RegExp): Promise<number> {
  const admin = /admin (http:\/\/\S+)/.exec(proc.stderr.find((l) => l.includes("lb listening"))!)![1]!;
  const text = await (await fetch(`${admin}/metrics`)).text();
  const found = text.split("\n").find((l) => line.test(l));
  return found ? Number(found.split(" ").at(-1)) : Number.NaN;
}

describe("trace context", () => {
  test("a caller's trace continues: its span is the parent of lb's server span, whose client span is the backend's parent; tracestate passes; the access line names the span", async () => {
    const otlp = collector();
    const app = backend("app");
    // The standard variables alone turn tracing on.
    const proc = await lb([app.url], { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_SERVICE_NAME: "edge" });
    const response = await fetch(`${proc.url}/items?id=7`, {
      headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`, tracestate: "vendor=abc,other=1", "user-agent": "trace-test" },
    });
    expect(response.status).toBe(200);
    const requestId = response.headers.get("x-request-id")!;

    const sent = forwarded(app)[0]!.headers;
    const [, traceId, parentId] = TRACEPARENT.exec(sent.get("traceparent")!)!;
    expect(traceId).toBe(CALLER_TRACE);
    expect(parentId).not.toBe(CALLER_SPAN);
    expect(sent.get("tracestate")).toBe("vendor=abc,other=1");

    await waitFor(() => otlp.spans.length >= 2, () => `two spans at the collector; got ${otlp.spans.length}`);
    const [server] = serverSpans(otlp.spans);
    expect(server).toMatchObject({ service: "edge", traceId: CALLER_TRACE, parentSpanId: CALLER_SPAN, name: "GET", error: false });
    expect(server!.attributes).toMatchObject({
      "http.request.method": "GET",
      "url.path": "/items",
      "url.query": "id=7",
      "url.scheme": "http",
      "server.address": "127.0.0.1",
      "client.address": "127.0.0.1",
      "http.response.status_code": 200,
      "user_agent.original": "trace-test",
      "lb.request_id": requestId,
      "lb.pool": "default",
      "lb.attempts": 1,
    });
    const [client] = childrenOf(otlp.spans, server!);
    expect(client).toMatchObject({ kind: 3, traceId: CALLER_TRACE, spanId: parentId, name: "GET", error: false });
    expect(client!.attributes).toMatchObject({ "http.response.status_code": 200, "server.address": "127.0.0.1", "server.port": app.port, "url.full": `${app.url}/items?id=7` });
    expect(client!.startNs).toBeGreaterThanOrEqual(server!.startNs);
    expect(client!.endNs).toBeLessThanOrEqual(server!.endNs);

    expect(new Set(otlp.encodings)).toEqual(new Set(["application/x-protobuf"])); // OpenTelemetry's default

    const line = await proc.waitForLine("stdout", new RegExp(requestId));
    expect(JSON.parse(line)).toMatchObject({ trace_id: CALLER_TRACE, span_id: server!.spanId });
  });

  test("a malformed traceparent (or two of them) is replaced by one of lb's, and its tracestate dropped; with tracing off lb passes them untouched", async () => {
    const otlp = collector();
    const app = backend("app");
    const proc = await lb([app.url, "--otlp-endpoint", otlp.url]);
    const port = Number(new URL(proc.url).port);
    const malformed = ["00-xyz-00f067aa0ba902b7-01", `00-${"0".repeat(32)}-${CALLER_SPAN}-01`, `00-${CALLER_TRACE.toUpperCase()}-${CALLER_SPAN}-01`, `ff-${CALLER_TRACE}-${CALLER_SPAN}-01`];
    for (const traceparent of malformed) expect((await fetch(proc.url, { headers: { traceparent, tracestate: "vendor=abc" } })).status).toBe(200);
    const twice = await rawRequest(port, `GET /twice HTTP/1.1\r\nHost: x\r\ntraceparent: 00-${CALLER_TRACE}-${CALLER_SPAN}-01\r\ntraceparent: 00-${CALLER_TRACE}-${CALLER_SPAN}-01\r\nConnection: close\r\n\r\n`);
    expect(twice).toStartWith("HTTP/1.1 200");
    expect((await fetch(proc.url)).status).toBe(200); // none at all

    expect(forwarded(app)).toHaveLength(6);
    const traceIds = new Set<string>();
    for (const seen of forwarded(app)) {
      const traceparent = seen.headers.get("traceparent")!;
      expect(traceparent).toMatch(TRACEPARENT); // exactly one: two would have been joined with ", "
      expect(traceparent).toEndWith("-01");
      expect(traceparent).not.toContain(CALLER_TRACE);
      expect(seen.headers.get("tracestate")).toBeNull();
      traceIds.add(traceparent.slice(3, 35));
    }
    expect(traceIds.size).toBe(6); // each a new trace
    await waitFor(() => serverSpans(otlp.spans).length === 6, () => `six server spans; got ${serverSpans(otlp.spans).length}`);
    for (const span of serverSpans(otlp.spans)) expect(span.parentSpanId).toBe("");

    const plain = backend("plain");
    const off = await lb([plain.url]);
    await fetch(off.url, { headers: { traceparent: malformed[0]!, tracestate: "vendor=abc" } });
    expect(forwarded(plain)[0]!.headers.get("traceparent")).toBe(malformed[0]!);
    expect(forwarded(plain)[0]!.headers.get("tracestate")).toBe("vendor=abc");
  });
});

describe("spans", () => {
  test("a retried request has two client spans under its server span: the failed attempt's error, then the one the backend answered (its parent)", async () => {
    const otlp = collector();
    const resetting = rawBackend(HEALTH, "reset");
    cleanup.push(resetting.stop);
    const app = backend("app");
    const proc = await lb([resetting.url, app.url, "--otlp-endpoint", otlp.url, "--otlp-protocol", "http/json"]);
    // Round robin: one of two requests meets the resetting backend first.
    for (let i = 0; i < 2; i++) expect((await fetch(`${proc.url}/r${i}`)).status).toBe(200);
    await waitFor(() => otlp.spans.length >= 5, () => `five spans; got ${otlp.spans.length}`);
    const retried = serverSpans(otlp.spans).find((span) => span.attributes["lb.attempts"] === 2)!;
    expect(retried).toBeDefined();
    const attempts = childrenOf(otlp.spans, retried).sort((a, b) => Number(a.attributes["lb.attempt"]) - Number(b.attributes["lb.attempt"]));
    expect(attempts).toHaveLength(2);
    expect(attempts[0]!).toMatchObject({ kind: 3, error: true, attributes: { "error.type": "reset", "server.port": Number(new URL(resetting.url).port) } });
    expect(attempts[0]!.attributes["http.response.status_code"]).toBeUndefined();
    expect(attempts[1]!).toMatchObject({ kind: 3, error: false, attributes: { "http.request.resend_count": 1, "http.response.status_code": 200, "server.port": app.port } });
    expect(new Set(otlp.encodings)).toEqual(new Set(["application/json"]));
    const seen = forwarded(app).find((s) => s.path === retried.attributes["url.path"])!;
    expect(seen.headers.get("traceparent")).toBe(`00-${retried.traceId}-${attempts[1]!.spanId}-01`);
  });

  test("a request a route took is named by the route's path prefix (http.route) and carries its pool", async () => {
    const otlp = collector();
    const api = backend("api");
    const config = `${mkdtempSync(join(tmpdir(), "lb-tracing-"))}/lb.toml`;
    writeFileSync(config, `[pools.api]\nbackends = ["${api.url}"]\n\n[[routes]]\npath-prefix = "/api/"\nstrip-prefix = true\npool = "api"\n`);
    const proc = await lb(["--config", config, "--otlp-endpoint", otlp.url]);
    expect((await fetch(`${proc.url}/api/users?page=2`)).status).toBe(200);
    await waitFor(() => otlp.spans.length >= 2, () => `two spans; got ${otlp.spans.length}`);
    const [server] = serverSpans(otlp.spans);
    expect(server).toMatchObject({ name: "GET /api/*", attributes: { "http.route": "/api/*", "lb.pool": "api", "url.path": "/api/users", "url.query": "page=2" } });
    // The client span names what the backend got: the path with the prefix stripped.
    expect(childrenOf(otlp.spans, server!)[0]!.attributes["url.full"]).toBe(`${api.url}/users?page=2`);
  });

  test("a WebSocket tunnel's server and client spans last as long as the tunnel, and the backend's handshake names the client span as parent", async () => {
    const otlp = collector();
    let handshake: Headers | undefined;
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(request, srv) {
        if (request.headers.get("upgrade") === "websocket") {
          handshake = new Headers(request.headers);
          return srv.upgrade(request) ? undefined : new Response("no", { status: 400 });
        }
        return new Response("ok");
      },
      websocket: { message: (ws, message) => void ws.send(message) },
    });
    cleanup.push(() => server.stop(true));
    const proc = await lb([`http://127.0.0.1:${server.port}`, "--otlp-endpoint", otlp.url]);
    const ws = new WebSocket(`${proc.url.replace("http", "ws")}/chat`);
    await new Promise((resolve) => (ws.onopen = resolve));
    const echoed = new Promise((resolve) => (ws.onmessage = (event) => resolve(event.data)));
    ws.send("hello");
    expect(await echoed).toBe("hello");
    const openFor = 300;
    await Bun.sleep(openFor); // the tunnel's life the spans must cover
    ws.close();
    await waitFor(() => otlp.spans.length >= 2, () => `two spans; got ${otlp.spans.length}`);
    const [tunnel] = serverSpans(otlp.spans);
    expect(tunnel!.attributes["http.response.status_code"]).toBe(101);
    const [client] = childrenOf(otlp.spans, tunnel!);
    expect(client!.attributes["http.response.status_code"]).toBe(101);
    expect(handshake!.get("traceparent")).toBe(`00-${tunnel!.traceId}-${client!.spanId}-01`);
    expect(Number(tunnel!.endNs - tunnel!.startNs) / 1e6).toBeGreaterThanOrEqual(openFor);
    expect(Number(client!.endNs - client!.startNs) / 1e6).toBeGreaterThanOrEqual(openFor);
  });
});

describe("[[tcp]]", () => {
  test("a relayed TCP connection is one span for its life, with its pool, backend and bytes", async () => {
    const otlp = collector();
    const echo = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (socket, bytes) => void socket.write(bytes) } });
    cleanup.push(() => echo.stop(true));
    const listen = `127.0.0.1:${deadPort()}`;
    const config = `${mkdtempSync(join(tmpdir(), "lb-tracing-"))}/lb.toml`;
    writeFileSync(config, `[pools.echo]\nbackends = ["tcp://127.0.0.1:${echo.port}"]\n\n[[tcp]]\nlisten = "${listen}"\npool = "echo"\n`);
    await lb(["--config", config, "--otlp-endpoint", otlp.url]);
    const echoed = Promise.withResolvers<string>();
    const closed = Promise.withResolvers<void>();
    const client = await Bun.connect({
      hostname: "127.0.0.1",
      port: Number(listen.split(":")[1]),
      socket: { data: (_socket, bytes) => echoed.resolve(bytes.toString()), close: () => closed.resolve() },
    });
    client.write("hello");
    expect(await echoed.promise).toBe("hello");
    const openFor = 300;
    await Bun.sleep(openFor); // the connection's life the span must cover
    client.end();
    await closed.promise;
    await waitFor(() => otlp.spans.length >= 1, () => "the connection's span");
    const [span] = otlp.spans;
    expect(span).toMatchObject({ name: `TCP ${listen}`, kind: 2, parentSpanId: "", error: false });
    expect(span!.attributes).toMatchObject({ "network.transport": "tcp", "client.address": "127.0.0.1", "lb.pool": "echo", "lb.backend": `127.0.0.1:${echo.port}`, "lb.bytes_in": 5, "lb.bytes_out": 5, "lb.end": "closed" });
    expect(Number(span!.endNs - span!.startNs) / 1e6).toBeGreaterThanOrEqual(openFor);
  });
});

describe("sampling", () => {
  test("20% of 1,000 new traces are recorded (within 5 standard deviations), exactly those the backend saw flagged 01; a caller's flag decides for its trace", async () => {
    const otlp = collector();
    const app = backend("app");
    const proc = await lb([app.url, "--otlp-endpoint", otlp.url, "--trace-sample", "20%", "--no-access-log"]);
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => fetch(proc.url).then((r) => r.arrayBuffer())));
    }
    const flagged = forwarded(app).map((s) => s.headers.get("traceparent")!).filter((t) => t.endsWith("-01"));
    // Binomial(1000, 0.2): mean 200, standard deviation 12.6.
    expect(flagged.length).toBeGreaterThan(137);
    expect(flagged.length).toBeLessThan(263);
    await waitFor(() => serverSpans(otlp.spans).length === flagged.length, () => `${flagged.length} server spans; got ${serverSpans(otlp.spans).length}`);
    expect(new Set(serverSpans(otlp.spans).map((s) => s.traceId))).toEqual(new Set(flagged.map((t) => t.slice(3, 35))));

    // Parent-based: a sampled caller's trace is always recorded, an unsampled one never (but still passed on).
    const before = forwarded(app).length;
    for (let i = 0; i < 20; i++) {
      const id = `${i.toString(16).padStart(2, "0")}${CALLER_TRACE.slice(2)}`;
      await fetch(proc.url, { headers: { traceparent: `00-${id}-${CALLER_SPAN}-${i % 2 ? "01" : "00"}` } });
    }
    const passed = forwarded(app).slice(before).map((s) => s.headers.get("traceparent")!);
    expect(passed.filter((t) => t.endsWith("-01"))).toHaveLength(10);
    await waitFor(() => serverSpans(otlp.spans).length === flagged.length + 10, () => `10 more server spans; got ${serverSpans(otlp.spans).length - flagged.length}`);
    expect(serverSpans(otlp.spans).filter((s) => s.parentSpanId === CALLER_SPAN).every((s) => parseInt(s.traceId.slice(0, 2), 16) % 2 === 1)).toBe(true);
  }, 30_000);
});

describe("the collector", () => {
  test("with --workers 2 the workers trace and export, and the primary's /metrics counts what they exported", async () => {
    const otlp = collector();
    const app = backend("app");
    const proc = await lb([app.url, "--otlp-endpoint", otlp.url, "--workers", "2", "--no-access-log"]);
    for (let i = 0; i < 20; i++) expect((await fetch(proc.url, { headers: { connection: "close" } })).status).toBe(200);
    await waitFor(() => otlp.spans.length === 40, () => `40 spans; got ${otlp.spans.length}`);
    expect(new Set(forwarded(app).map((seen) => seen.headers.get("traceparent")!.slice(3, 35)))).toEqual(new Set(serverSpans(otlp.spans).map((s) => s.traceId)));
    await waitFor(async () => (await metric(proc, /^lb_trace_spans_exported_total/)) === 40, () => "40 exported spans in the primary's /metrics");
  });

  test("a dead collector costs nothing but the dropped-spans counter", async () => {
    const app = backend("app");
    const proc = await lb([app.url, "--otlp-endpoint", `http://127.0.0.1:${deadPort()}`, "--no-access-log"]);
    for (let i = 0; i < 100; i++) expect((await fetch(proc.url)).status).toBe(200);
    // 100 server and 100 client spans, each batch refused as it was sent.
    await waitFor(async () => (await metric(proc, /^lb_trace_spans_dropped_total\{reason="export-failed"\}/)) === 200, () => "200 spans counted as dropped", 8000);
    expect(await metric(proc, /^lb_trace_spans_exported_total/)).toBe(0);
    expect(await metric(proc, /^lb_trace_spans_dropped_total\{reason="queue-full"\}/)).toBe(0);
    expect(proc.stderr.filter((l) => l.includes("dropped")).length).toBe(1); // said once, not per batch
  });

  test("a collector answering with an endless body: lb reads a bounded part of it, not the gigabyte, and counts the spans exported", async () => {
    let streamed = 0;
    const chunk = new Uint8Array(1 << 20);
    const endless = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      async fetch(request) {
        await request.arrayBuffer();
        const body = new ReadableStream({ pull: (controller) => void ((streamed += chunk.length), controller.enqueue(chunk)) });
        return new Response(body, { headers: { "content-type": "application/x-protobuf" } });
      },
    });
    cleanup.push(() => endless.stop(true));
    const app = backend("app");
    const proc = await lb([app.url, "--otlp-endpoint", `http://127.0.0.1:${endless.port}`, "--no-access-log"]);
    expect((await fetch(proc.url)).status).toBe(200);
    await waitFor(async () => (await metric(proc, /^lb_trace_spans_exported_total/)) === 2, () => `2 spans exported; the collector streamed ${streamed >> 20} MiB`, 8000);
    const after = streamed;
    await Bun.sleep(500); // the stream has no end: a reader still at it would pull on
    expect(streamed).toBe(after);
    expect(streamed).toBeLessThan(16 << 20);
  }, 15_000);

  test("an endpoint's password shows nowhere: not in a failed export's warning, not in /api/config", async () => {
    const app = backend("app");
    const failing = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: async (request) => (await request.arrayBuffer(), new Response("busy", { status: 429 })) });
    cleanup.push(() => failing.stop(true));
    const proc = await lb([app.url, "--otlp-endpoint", `http://tracer:hunter2@127.0.0.1:${failing.port}`]);
    expect((await fetch(proc.url)).status).toBe(200);
    const warning = await proc.waitForLine("stderr", /dropped: the collector answered 429/);
    expect(warning).toContain(`http://tracer:***@127.0.0.1:${failing.port}/v1/traces`);
    const admin = /admin (http:\/\/\S+)/.exec(proc.stderr.find((l) => l.includes("lb listening"))!)![1]!;
    const config = await (await fetch(`${admin}/api/config`)).text();
    expect(config).toContain(`tracer:***@127.0.0.1:${failing.port}`);
    expect([...proc.stderr, ...proc.stdout, config].join("\n")).not.toContain("hunter2");
  });

  test("a refused endpoint or header names the setting but never echoes the password or the header's value", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lb-otlp-"));
    writeFileSync(join(dir, "lb.toml"), 'backends = ["http://127.0.0.1:9"]\n');
    const run = Bun.spawn([...binary, "validate", join(dir, "lb.toml"), "--otlp-endpoint", "ftp://tracer:hunter2@collector/", "--otlp-header", "authorization=Bearer hunter2"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, OTEL_EXPORTER_OTLP_HEADERS: "x-token%zz=hunter2" },
    });
    const [code, stderr] = await Promise.all([run.exited, new Response(run.stderr).text()]);
    expect(code).toBe(2);
    expect(stderr).toContain('command line: otlp-endpoint: "ftp://tracer:***@collector/" is not an http:// or https:// URL');
    expect(stderr).toContain('command line: otlp-header: "authorization=…" is not a header; write "Name: value"');
    expect(stderr).not.toContain("hunter2");
  });

  test("a collector that never answers: requests go on at once, the queue stays bounded and drops what does not fit", async () => {
    const hanging = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    cleanup.push(() => hanging.stop(true));
    const app = backend("app");
    const proc = await lb([app.url, "--otlp-endpoint", `http://127.0.0.1:${hanging.port}`, "--no-access-log"]);
    const started = performance.now();
    // 1,500 requests are 3,000 spans: one batch of 512 waits on the collector, 2,048 wait in the queue, the rest go.
    for (let i = 0; i < 1500; i += 50) {
      const statuses = await Promise.all(Array.from({ length: 50 }, () => fetch(proc.url).then((r) => r.status)));
      expect(statuses.every((s) => s === 200)).toBe(true);
    }
    // A request that waited on this collector would wait out the 10 s export timeout: 30 rounds, 300 s at least.
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(await metric(proc, /^lb_trace_spans_dropped_total\{reason="queue-full"\}/)).toBe(3000 - 512 - 2048);
  }, 30_000);
});
