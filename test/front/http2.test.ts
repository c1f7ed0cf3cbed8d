/**
 * HTTP/2 (and HTTP/3) to clients: curl over h2c (prior knowledge) and over TLS by ALPN, h2load for many streams on few
 * connections; lb's own behaviour (request ids, X-Forwarded-Proto, limits) holds over HTTP/2. h2c is offered with
 * --http2 on (by default, HTTP/2 only by ALPN over TLS); --http2 off turns it off.
 * Backends are still spoken to in HTTP/1.1.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type InProcessLb, fetchH3, runCommand, selfSignedCertificate, startBackend, spawnLb, startEventsBackend, startTestLb, udpSocketsOn } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-h2-"));
const backend = startBackend("h2", async (request) => new Response(`backend h2: ${request.method} ${(await request.text()).length}`));
const lbs: InProcessLb[] = [];
afterAll(async () => {
  await Promise.all(lbs.map((lb) => lb.stop()));
  await backend.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function lbWith(settings: Record<string, unknown> = {}): Promise<InProcessLb> {
  const lb = await startTestLb([backend.url], { "health-interval": "1m", http2: "on", ...settings });
  lbs.push(lb);
  return lb;
}

async function curl(...args: string[]): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn(["curl", "-s", "-i", "--max-time", "5", ...args], { stdout: "pipe", stderr: "pipe" });
  return { out: await new Response(proc.stdout).text(), code: await proc.exited };
}

/** One HTTP/2 frame: a 9-byte header (length, type, flags, stream id) and its payload. */
function h2Frame(type: number, flags: number, stream: number, payload = new Uint8Array()): Uint8Array {
  const frame = new Uint8Array(9 + payload.length);
  frame.set([payload.length >> 16, (payload.length >> 8) & 0xff, payload.length & 0xff, type, flags]);
  new DataView(frame.buffer).setUint32(5, stream);
  frame.set(payload, 9);
  return frame;
}

/** The client preface, then `count` GETs each followed at once by RST_STREAM(CANCEL), then a PING. */
function rapidResetFrames(authority: string, count: number): Uint8Array {
  const name = new TextEncoder().encode(authority);
  // HPACK: :method GET, :path /, :scheme http from the static table, :authority as a literal not indexed.
  const headerBlock = new Uint8Array([0x82, 0x84, 0x86, 0x01, name.length, ...name]);
  const [HEADERS, RST_STREAM, SETTINGS, PING] = [1, 3, 4, 6];
  const frames = [new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), h2Frame(SETTINGS, 0, 0)];
  for (let stream = 1; stream < 2 * count; stream += 2) {
    frames.push(h2Frame(HEADERS, 0x5 /* END_STREAM | END_HEADERS */, stream, headerBlock), h2Frame(RST_STREAM, 0, stream, new Uint8Array([0, 0, 0, 8])));
  }
  frames.push(h2Frame(PING, 0, 0, new Uint8Array(8)));
  return Buffer.concat(frames);
}

/** Writes `bytes` to lb and waits for the PING's answer (or the connection's end): lb has read every frame before it. */
async function sendAndAwaitPing(port: number, bytes: Uint8Array): Promise<void> {
  const answered = Promise.withResolvers<void>();
  let received = new Uint8Array();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_, chunk) {
        received = new Uint8Array([...received, ...chunk]);
        for (let at = 0; at + 9 <= received.length; at += 9 + ((received[at]! << 16) | (received[at + 1]! << 8) | received[at + 2]!)) {
          if (received[at + 3] === 6 && received[at + 4] === 1) answered.resolve(); // PING with ACK
        }
      },
      close: () => answered.resolve(),
    },
  });
  socket.write(bytes);
  await answered.promise;
  socket.end();
}

describe("HTTP/2", () => {
  test("h2c by prior knowledge: the answer, lb's request id, and what the backend is told", async () => {
    const lb = await lbWith();
    const { out } = await curl("--http2-prior-knowledge", "-H", "x-request-id: h2-trace-1", "-d", "hello", `${lb.url}/post`);
    expect(out).toStartWith("HTTP/2 200");
    expect(out).toContain("x-request-id: h2-trace-1");
    expect(out).toEndWith("backend h2: POST 5");
    const seen = backend.seen.findLast((r) => r.path === "/post")!;
    expect(seen.headers.get("x-forwarded-proto")).toBe("http");
    expect(seen.headers.get("x-request-id")).toBe("h2-trace-1");
    expect(lb.access.findLast((e) => e.path === "/post")).toMatchObject({ status: 200, method: "POST", bytesIn: 5 });
    // HTTP/1.1 on the same port, as before.
    expect((await curl("--http1.1", `${lb.url}/`)).out).toStartWith("HTTP/1.1 200");
  });

  test("over TLS, by ALPN; X-Forwarded-Proto is https", async () => {
    const { cert, key } = selfSignedCertificate(dir, "localhost");
    const lb = await lbWith({ "tls-cert": cert, "tls-key": key });
    const { out } = await curl("--http2", "--cacert", cert, `https://localhost:${lb.lb.port}/tls`);
    expect(out).toStartWith("HTTP/2 200");
    expect(backend.seen.findLast((r) => r.path === "/tls")!.headers.get("x-forwarded-proto")).toBe("https");
    expect((await curl("--http1.1", "--cacert", cert, `https://localhost:${lb.lb.port}/`)).out).toStartWith("HTTP/1.1 200");
  });

  test("h2load: 2,000 requests as 10 streams on each of 10 connections, none failed", async () => {
    const lb = await lbWith({ "access-log": false });
    const proc = Bun.spawn(["h2load", "-n", "2000", "-c", "10", "-m", "10", `${lb.url}/load`], { stdout: "pipe", stderr: "pipe" });
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(0);
    expect(out).toContain("2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored");
    expect(out).toContain("status codes: 2000 2xx");
  });

  // Bun answers it before lb sees the request; about one time in twenty it resets the stream or the connection instead
  // of sending its 413 (curl exits 92 "stream was not closed cleanly", or under load 16 or 56, with nothing read), so
  // either is accepted here, and nothing may reach a backend.
  test("limits hold over HTTP/2: a body over --max-body-size gets 413 (or its stream reset), and goes nowhere", async () => {
    const lb = await lbWith({ "max-body-size": "1k" });
    for (let i = 0; i < 10; i++) {
      const { out, code } = await curl("--http2-prior-knowledge", "--data-binary", "x".repeat(4096), `${lb.url}/big`);
      if ([16, 56, 92].includes(code)) expect(out).toBe("");
      else expect(out).toStartWith("HTTP/2 413");
    }
    expect(backend.seen.some((r) => r.path === "/big")).toBe(false);
  });

  test("a stream over HTTP/2, quiet for longer than --client-timeout, arrives whole", async () => {
    const events = startEventsBackend(6000);
    const lb = await startTestLb([events.url], { "health-interval": "1m", "client-timeout": "1s", http2: "on" });
    lbs.push(lb);
    try {
      const { out, code } = await curl("--http2-prior-knowledge", "-N", "--max-time", "15", `${lb.url}/events`);
      expect(code).toBe(0);
      expect(out).toStartWith("HTTP/2 200");
      expect(out).toEndWith("data: first\n\ndata: second\n\n");
    } finally {
      await events.stop();
    }
  }, 20_000);

  test("rapid reset (CVE-2023-44487): 500 requests each cancelled in the same packet reach no backend", async () => {
    // lb in its own process, as in production: its writes to the backend are not ordered with this process's reads.
    const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--http2", "on", "--health-interval", "1m", "--access-log-format", "json", backend.url]);
    try {
      const port = Number(new URL(lb.url).port);
      // Idle connections to the backend, as a busy lb has: a request can be written to one at once.
      await Promise.all(Array.from({ length: 50 }, (_, i) => fetch(`${lb.url}/warm-${i}`).then((r) => r.text())));
      const before = backend.seen.length;
      await sendAndAwaitPing(port, rapidResetFrames(`127.0.0.1:${port}`, 500));
      // Requests are taken in order: once a later one is answered, each cancelled one was decided.
      expect((await curl("--http1.1", `${lb.url}/after-reset`)).out).toStartWith("HTTP/1.1 200");
      expect(backend.seen.slice(before).map((r) => r.path)).toEqual(["/after-reset"]);
      await lb.waitForLine("stdout", /"path":"\/after-reset"/);
      expect(lb.stdout.filter((line) => line.includes('"status":499')).length).toBeGreaterThan(100);
    } finally {
      await lb.kill();
    }
  });

  test("--http2 off, and the default (auto) on plain HTTP: a client speaking HTTP/2 by prior knowledge gets no HTTP/2", async () => {
    for (const http2 of ["off", "auto"]) {
      const lb = await lbWith({ http2 });
      const { out } = await curl("--http2-prior-knowledge", `${lb.url}/off-${http2}`);
      expect(out).not.toStartWith("HTTP/2");
      expect(backend.seen.some((r) => r.path === `/off-${http2}`)).toBe(false);
    }
  });

  test("with HTTP/2 on, a WebSocket upgrade (wss://, HTTP/1.1) still reaches the backend and echoes", async () => {
    const echo = Bun.serve<undefined>({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (request, server) => (server.upgrade(request) ? undefined : new Response("not a WebSocket")),
      websocket: { message: (ws, message) => void ws.send(`echo: ${message}`) },
    });
    const { cert, key } = selfSignedCertificate(dir, "ws.localhost", "DNS:localhost,IP:127.0.0.1");
    const lb = await startTestLb([`http://127.0.0.1:${echo.port}`], { "health-interval": "1m", "tls-cert": cert, "tls-key": key });
    lbs.push(lb);
    try {
      const ws = new WebSocket(`wss://127.0.0.1:${lb.lb.port}/ws`, { tls: { rejectUnauthorized: false } });
      const answer = await new Promise<unknown>((resolve, reject) => {
        ws.onopen = () => ws.send("hi");
        ws.onmessage = (event) => resolve(event.data);
        ws.onerror = () => reject(new Error("the WebSocket failed"));
      });
      expect(answer).toBe("echo: hi");
      ws.close();
    } finally {
      await echo.stop(true);
    }
  });

  test("the default (auto) with TLS: HTTP/2 by ALPN", async () => {
    const { cert, key } = selfSignedCertificate(dir, "auto.localhost", "DNS:localhost");
    const lb = await lbWith({ "tls-cert": cert, "tls-key": key, http2: "auto" });
    expect((await curl("--http2", "--cacert", cert, `https://localhost:${lb.lb.port}/auto`)).out).toStartWith("HTTP/2 200");
  });
});

describe("HTTP/3", () => {
  test("needs TLS: without it lb exits 2 with one line", async () => {
    const { code, stderr } = await runCommand(["--http3", "http://127.0.0.1:1"]);
    expect(code).toBe(2);
    expect(stderr.trim()).toBe("lb: http3: HTTP/3 runs over TLS only; give --tls-cert and --tls-key (or --acme)");
  });

  async function h3Lb(settings: Record<string, unknown> = {}, backends = [backend.url]): Promise<InProcessLb> {
    const { cert, key } = selfSignedCertificate(dir, "h3.localhost", "DNS:localhost,IP:127.0.0.1");
    const lb = await startTestLb(backends, { "health-interval": "1m", "tls-cert": cert, "tls-key": key, http3: true, ...settings });
    lbs.push(lb);
    return lb;
  }

  test("over QUIC: the answer, lb's request id, a POST body, X-Forwarded-Proto https; Alt-Svc on HTTP/1.1 and HTTP/2", async () => {
    const lb = await h3Lb();
    const origin = `https://127.0.0.1:${lb.lb.port}`;
    expect(await udpSocketsOn(lb.lb.port)).toBe(1);

    const answer = await fetchH3(`${origin}/h3`, { method: "POST", body: "hello", headers: { "x-request-id": "h3-trace-1" } });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-request-id")).toBe("h3-trace-1");
    expect(await answer.text()).toBe("backend h2: POST 5");
    const seen = backend.seen.findLast((r) => r.path === "/h3")!;
    expect(seen.headers.get("x-forwarded-proto")).toBe("https");
    expect(seen.headers.get("x-request-id")).toBe("h3-trace-1");
    expect(lb.access.findLast((e) => e.path === "/h3")).toMatchObject({ status: 200, method: "POST", bytesIn: 5 });

    // Clients learn of HTTP/3 from Alt-Svc on TCP answers (Bun adds it); over HTTP/3 itself there is none.
    for (const protocol of ["http1.1", "http2"]) {
      const tcp = await fetch(`${origin}/tcp`, { protocol, tls: { rejectUnauthorized: false } } as RequestInit);
      expect(tcp.headers.get("alt-svc")).toBe(`h3=":${lb.lb.port}"; ma=86400`);
    }
    expect(answer.headers.get("alt-svc")).toBeNull();
  });

  test("without --http3 a TLS lb offers no HTTP/3 (no Alt-Svc)", async () => {
    const lb = await h3Lb({ http3: false });
    const tcp = await fetch(`https://127.0.0.1:${lb.lb.port}/`, { tls: { rejectUnauthorized: false } });
    expect(tcp.status).toBe(200);
    expect(tcp.headers.get("alt-svc")).toBeNull();
  });

  test("limits hold over HTTP/3: a body over --max-body-size gets 413 and nothing reaches a backend", async () => {
    const lb = await h3Lb({ "max-body-size": "1k" });
    const answer = await fetchH3(`https://127.0.0.1:${lb.lb.port}/h3-big`, { method: "POST", body: "x".repeat(4096) });
    expect(answer.status).toBe(413);
    expect(backend.seen.some((r) => r.path === "/h3-big")).toBe(false);
  });

  test("1,000 requests, 20 at a time, none failed", async () => {
    const lb = await h3Lb({ "access-log": false });
    let sent = 0;
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (sent < 1000) {
          sent++;
          const answer = await fetchH3(`https://127.0.0.1:${lb.lb.port}/load`).catch((error: Error) => error);
          if (answer instanceof Error) failures.push(answer.message);
          else if ((await answer.text()) !== "backend h2: GET 0") failures.push(`status ${answer.status}`);
        }
      }),
    );
    expect(failures).toEqual([]);
  }, 30_000);

  // QUIC closes a connection on which nothing moved for its idle timeout (RFC 9000 §10.1), and Bun uses
  // --client-timeout for it, which lb cannot lift for one request as it does over TCP: a quiet stream lives while the
  // connection carries packets (the client's PINGs or, here, other requests).
  test("a stream quiet for longer than --client-timeout arrives whole while its connection carries other traffic", async () => {
    const events = startEventsBackend(3000);
    const lb = await h3Lb({ "client-timeout": "1s", "access-log": false }, [events.url]);
    const origin = `https://127.0.0.1:${lb.lb.port}`;
    let streaming = true;
    const otherTraffic = (async () => {
      while (streaming) {
        await (await fetchH3(`${origin}/`)).text();
        await Bun.sleep(300);
      }
    })();
    try {
      const stream = await fetchH3(`${origin}/events`);
      expect(await stream.text()).toBe("data: first\n\ndata: second\n\n");
    } finally {
      streaming = false;
      await otherTraffic;
      await events.stop();
    }
  }, 20_000);

  test("UDP garbage at the port does not stop lb: HTTP/3 and HTTPS keep answering", async () => {
    const lb = await h3Lb();
    const origin = `https://127.0.0.1:${lb.lb.port}`;
    const junk = await Bun.udpSocket({});
    const noise = new Uint8Array(1200);
    let sent = 0;
    for (let i = 0; i < 2000; i++) {
      crypto.getRandomValues(noise);
      // Half of them look like QUIC long-header Initial packets, the rest are any bytes.
      if (i % 2 === 0) noise[0] = 0xc0 | (noise[0]! & 0x0f);
      if (junk.send(noise, lb.lb.port, "127.0.0.1")) sent++;
      // lb shares this process: let it read, so the kernel's buffer does not drop what it has not read yet.
      if (i % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
    }
    junk.close();
    expect(sent).toBe(2000);
    expect((await fetchH3(`${origin}/after-junk`)).status).toBe(200);
    expect((await fetch(`${origin}/after-junk`, { tls: { rejectUnauthorized: false } })).status).toBe(200);
  });
});
