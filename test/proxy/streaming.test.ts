/**
 * Answers that are slow to start or stream for a long time (server-sent events, big downloads): the client's idle
 * timeout must not cut an answer that is merely late or quiet, and --upstream-read-timeout must cut one that has
 * stalled (the backend silent, or the client reading nothing), with a warning and a count. Real backends, real
 * clients (curl, a raw socket), real lb.
 */
import { describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { type InProcessLb, type TestBackend, startEventsBackend, stoppedAfterEach, waitFor } from "../helpers.ts";

const { cleanup, backend: startedBackend, lbFor } = stoppedAfterEach();

/** startEventsBackend, stopped after the test. */
function eventsBackend(silenceMs: number): TestBackend {
  const backend = startEventsBackend(silenceMs);
  cleanup.push(backend.stop);
  return backend;
}

async function curl(url: string): Promise<{ code: number; body: string; ms: number }> {
  const started = performance.now();
  const proc = Bun.spawn(["curl", "-sSN", "--max-time", "20", url], { stdout: "pipe", stderr: "pipe" });
  const [body, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  return { code, body, ms: performance.now() - started };
}

async function streamsCut(lb: InProcessLb): Promise<number> {
  const metrics = await (await fetch(`${lb.lb.adminUrl!.origin}/metrics`)).text();
  return [...metrics.matchAll(/^lb_streams_cut_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/**
 * A slow but working backend is answered, not reset. Bun's idle timeout also runs while a handler awaits its
 * backend; lb suspends it for that wait. Bun checks idle sockets every 4 s or so: with --client-timeout 1s, a request
 * whose handler waits is reset 1 to 5 s after it came (measured: 4.0 s for a wait of 4.2 s, 1.3 to 4.0 s for 6 s).
 * So the backend here takes 6 s: longer than the latest such reset, and far longer than the client idle timeout.
 */
describe("an answer slow to start", () => {
  test("an answer 6 s late, past the 1 s client timeout and Bun's idle sweep, reaches the client", async () => {
    const slow = startedBackend("slow", async (request) => {
      if (new URL(request.url).pathname === "/slow") await Bun.sleep(6000); // time passing is what is tested
      return new Response("worth the wait");
    });
    const lb = await lbFor([slow.url], { "health-interval": "1m", "client-timeout": "1s" });
    const response = await fetch(`${lb.url}/slow`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("worth the wait");
    expect(lb.access.at(-1)!.upstreamMs).toBeGreaterThan(5900);
  }, 12_000);
});

describe("streamed answers", () => {
  test("server-sent events arrive one by one, and a quiet stretch longer than --client-timeout cuts nothing", async () => {
    const silenceMs = 6000;
    const backend = eventsBackend(silenceMs);
    const lb = await lbFor([backend.url], { "client-timeout": "1s" });
    const started = performance.now();
    const response = await fetch(`${lb.url}/events`);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const arrivals: Array<{ text: string; at: number }> = [];
    for await (const chunk of response.body!) arrivals.push({ text: new TextDecoder().decode(chunk), at: performance.now() - started });
    expect(arrivals.map((a) => a.text).join("")).toBe("data: first\n\ndata: second\n\n");
    // Unbuffered: the first event came long before the second was sent.
    expect(arrivals[0]!.at).toBeLessThan(silenceMs - 1000);
    expect(arrivals.at(-1)!.at).toBeGreaterThan(silenceMs - 100);
    expect(await streamsCut(lb)).toBe(0);
  }, 15_000);

  test("a backend silent past --upstream-read-timeout: the stream is cut, logged with its reason and counted", async () => {
    const backend = eventsBackend(15_000);
    const lb = await lbFor([backend.url], { "upstream-read-timeout": "1s" });
    const { code, body, ms } = await curl(`${lb.url}/events`);
    expect(body).toBe("data: first\n\n");
    expect([18, 56]).toContain(code); // curl: the transfer was cut (closed or reset) before its end
    expect(ms).toBeLessThan(5000);
    const warning = await waitFor(() => lb.logs.find((l) => l.includes("was cut after")), "the cut's warning");
    expect(warning).toMatch(/warn: the answer from 127\.0\.0\.1:\d+ to GET \/events was cut after 13 bytes: the backend sent nothing for 1s/);
    expect(await streamsCut(lb)).toBe(1);
    // lb keeps serving, and the backend is still in rotation: one stalled stream is no proof it is down.
    expect((await fetch(`${lb.url}/`)).status).toBe(200);
  });

  test("a backend removed while its stream is silent: the read timeout still cuts the stream", async () => {
    const backend = eventsBackend(15_000);
    const lb = await lbFor([backend.url], { "upstream-read-timeout": "1s" });
    const stream = curl(`${lb.url}/events`);
    await waitFor(() => backend.seen.some((r) => r.path === "/events"), "the stream to start");
    // The operator removes the backend (a drain of 100 ms): the stream outlives it, and must still be bounded.
    const removed = await fetch(`${lb.lb.adminUrl!.origin}/api/backends/${new URL(backend.url).host}?timeout=100ms`, { method: "DELETE" });
    expect(removed.status).toBe(200);
    const { code, ms } = await stream;
    expect([18, 56]).toContain(code);
    expect(ms).toBeLessThan(5000);
  });

  test("a client that reads nothing of a big download is cut after --upstream-read-timeout, the backend not blamed", async () => {
    const chunk = new Uint8Array(64 * 1024).fill(120);
    const backend = startedBackend("download", (request) => {
      if (new URL(request.url).pathname !== "/big") return new Response("ok");
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 4096) controller.enqueue(chunk); // 256 MiB: far more than socket buffers hold
          else controller.close();
        },
      });
      return new Response(body);
    });
    const lb = await lbFor([backend.url], { "upstream-read-timeout": "1s" });
    const socket = connect(Number(new URL(lb.url).port), "127.0.0.1");
    cleanup.push(async () => socket.destroy());
    let received = 0;
    let closed = false;
    socket.on("close", () => (closed = true));
    socket.on("error", () => {});
    socket.write("GET /big HTTP/1.1\r\nhost: lb\r\n\r\n");
    // Read the head and a first piece, then stop reading altogether.
    await new Promise<void>((resolve) => socket.once("data", (data: Buffer) => ((received += data.length), resolve())));
    socket.pause();
    const warning = await waitFor(() => lb.logs.find((l) => l.includes("was cut after")), "the cut's warning", 10_000);
    expect(warning).toContain("to GET /big was cut after");
    expect(warning).toContain("the client read nothing for 1s");
    expect(await streamsCut(lb)).toBe(1);
    socket.resume();
    socket.on("data", (data: Buffer) => (received += data.length));
    await waitFor(() => closed, "lb to close the stalled client's connection", 10_000);
    expect(received).toBeLessThan(4096 * chunk.length);
    const pool = lb.lb.pool.backends[0]!;
    expect(pool.stats.errors).toBe(0);
    expect((await fetch(`${lb.url}/`)).status).toBe(200);
  }, 15_000);
});
