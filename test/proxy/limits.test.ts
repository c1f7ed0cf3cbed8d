/** Client-side limits: request body size, open requests (--max-connections), client silence (--client-timeout). */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { type Socket, connect } from "node:net";
import { ROOT, rawRequest, spawnLb, startBackend, startTestLb, waitFor } from "../helpers.ts";

const backend = startBackend("echo", async (request) => new Response(`got ${(await request.arrayBuffer()).byteLength}`));
const lb = await startTestLb([backend.url], { "max-body-size": "1k", "health-interval": "1m" });
afterAll(async () => {
  await lb.stop();
  await backend.stop();
});

test("a body over --max-body-size gets 413 and never reaches the backend; smaller ones pass", async () => {
  const small = await fetch(`${lb.url}/up`, { method: "POST", body: "x".repeat(500) });
  expect(await small.text()).toBe("got 500");
  const before = backend.seen.length;
  const big = await rawRequest(lb.lb.port, `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\nConnection: close\r\n\r\n${"x".repeat(2048)}`);
  expect(big).toStartWith("HTTP/1.1 413");
  const chunked = await rawRequest(
    lb.lb.port,
    `POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n${"x".repeat(2048)}\r\n0\r\n\r\n`,
  );
  expect(chunked).toStartWith("HTTP/1.1 413");
  expect(backend.seen.length).toBe(before);
});

describe("--max-connections", () => {
  test("past the limit a request gets 503 at once with Connection: close; under it, requests pass again", async () => {
    const gate = Promise.withResolvers<void>();
    const slow = startBackend("slow", async (request) => {
      if (new URL(request.url).pathname !== "/") await gate.promise; // health checks pass at once
      return new Response("slow done");
    });
    const capped = await startTestLb([slow.url], { "max-connections": "2", "health-interval": "1m" });
    try {
      const held = [fetch(`${capped.url}/a`), fetch(`${capped.url}/b`)];
      const proxied = () => slow.seen.filter((r) => r.path !== "/").map((r) => r.path);
      await waitFor(() => proxied().length === 2, "two requests at the backend");
      // Answered while /a and /b still hold the backend: at once, not after waiting for one of them to finish.
      const refused = await fetch(`${capped.url}/c`);
      expect(refused.status).toBe(503);
      expect(refused.headers.get("connection")).toBe("close");
      expect(refused.headers.get("retry-after")).toBeTruthy();
      expect(await refused.text()).toContain("connection limit");
      expect(proxied().sort()).toEqual(["/a", "/b"]); // the refused one never reached the backend
      const during = await (await fetch(`${capped.lb.adminUrl!.origin}/metrics`)).text();
      expect(during).toMatch(/^lb_client_connections 2$/m); // the two held requests
      gate.resolve();
      expect(await Promise.all(held.map(async (r) => (await r).status))).toEqual([200, 200]);
      expect((await fetch(`${capped.url}/d`)).status).toBe(200);
      const metrics = await (await fetch(`${capped.lb.adminUrl!.origin}/metrics`)).text();
      expect(metrics).toMatch(/^lb_requests_rejected_total\{reason="max-connections"\} 1$/m);
    } finally {
      gate.resolve();
      await capped.stop();
      await slow.stop();
    }
  });
});

describe("--client-timeout", () => {
  test("a client that stops sending a streamed body gets 408 and a close; others are served meanwhile", async () => {
    const sink = startBackend("sink", async (request) => new Response(`got ${(await request.arrayBuffer()).byteLength}`));
    const strict = await startTestLb([sink.url], { "client-timeout": "1s", "health-interval": "1m", timeout: "30s" });
    try {
      const socket = connect(strict.lb.port, "127.0.0.1");
      let answer = "";
      let closed = false;
      socket.on("data", (data) => (answer += data.toString("latin1")));
      socket.on("close", () => (closed = true));
      socket.on("error", () => {});
      // Over the 64 KiB replay limit, so the body streams to the backend; then the client goes quiet.
      socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n${"x".repeat(100_000)}`);
      const started = performance.now();
      expect((await fetch(`${strict.url}/other`, { method: "POST", body: "y" })).status).toBe(200);
      await waitFor(() => closed, "lb to close the stalled upload", 8000);
      expect(answer).toStartWith("HTTP/1.1 408");
      expect(performance.now() - started).toBeGreaterThan(900);
      expect(strict.access.find((a) => a.path === "/upload")?.status).toBe(408);
      expect((await fetch(`${strict.url}/after`)).status).toBe(200);
    } finally {
      await strict.stop();
      await sink.stop();
    }
  });

  test("a body that keeps coming, slower than the timeout in total but never silent for that long, passes", async () => {
    const sink = startBackend("sink", async (request) => new Response(`got ${(await request.arrayBuffer()).byteLength}`));
    const strict = await startTestLb([sink.url], { "client-timeout": "1s", "health-interval": "1m" });
    try {
      // 4 chunks 300 ms apart: 1.2 s in all, longer than the timeout, yet never 1 s silent.
      const chunks = 4;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (controller.desiredSize === null) return;
          await Bun.sleep(300); // time passing is what is tested: the client's pace
          controller.enqueue(new Uint8Array(20_000));
          if (--pending === 0) controller.close();
        },
      });
      let pending = chunks;
      const response = await fetch(`${strict.url}/trickle`, { method: "POST", body, duplex: "half" } as RequestInit);
      expect(await response.text()).toBe(`got ${chunks * 20_000}`);
    } finally {
      await strict.stop();
      await sink.stop();
    }
  });
});

describe("out of file descriptors", () => {
  test("under a low ulimit -n: 503 (never 502), no backend blamed, one warning, and serving again after", async () => {
    const release = Promise.withResolvers<void>();
    const backend = startBackend("fine", async (request) => {
      const { pathname } = new URL(request.url);
      if (pathname === "/hold") await release.promise;
      return pathname === "/fill" ? new Response(null, { status: 204 }) : new Response("ok");
    });
    // lb as a process of its own, so only it has the low limit (hard and soft: Bun raises the soft one to the hard).
    const args = ["--port", "0", "--host", "127.0.0.1", "--log-format", "pretty", "--no-access-log", "--health-interval", "300ms", backend.url];
    const lbProc = await spawnLb(args, ["bash", "-c", 'ulimit -n 160; exec bun "$0" "$@"', `${ROOT}src/main.ts`]);
    const clients: KeptAlive[] = [];
    try {
      expect(await lbProc.waitForLine("stderr", /lb listening/)).toContain("fd limit 160");
      const port = Number(new URL(lbProc.url).port);
      const openFiles = () => readdirSync(`/proc/${lbProc.proc.pid}/fd`).length;
      // Keep-alive clients, each served once, until lb holds every descriptor it may: one per client, and one to the
      // backend kept idle for the first client only (after a 204 lb keeps no backend connection), until a client's
      // request finds no descriptor for its backend connection. Each is answered before the next comes, so none waits
      // in lb's accept queue.
      while (clients.length < 200) {
        const client = await keptAlive(port);
        const path = clients.push(client) === 1 ? "/" : "/fill";
        const answer = await client.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        if (answer.startsWith("HTTP/1.1 503")) break;
        expect(answer).toStartWith(path === "/" ? "HTTP/1.1 200" : "HTTP/1.1 204");
      }
      expect(openFiles()).toBeGreaterThanOrEqual(159);
      // The first client's request takes its idle backend connection; the next client's needs a new one, and there
      // is no descriptor left.
      const held = clients[0]!.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor(() => backend.seen.some((r) => r.path === "/hold"), "the held request to reach the backend");
      const refused = await clients[1]!.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      expect(refused).toStartWith("HTTP/1.1 503");
      expect(refused).toContain("lb is out of file descriptors");
      expect(await clients[2]!.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).toStartWith("HTTP/1.1 503");
      release.resolve();
      expect(await held).toStartWith("HTTP/1.1 200");
      for (const client of clients.splice(0)) client.close();
      await waitFor(async () => (await rawRequest(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).startsWith("HTTP/1.1 200"), "a 200 once the clients are gone");
      const logs = lbProc.stderr.join("\n");
      expect(logs).not.toContain("went down");
      expect(logs).not.toContain("ejected");
      expect(logs.match(/out of file descriptors: answering 503/g)).toHaveLength(1);
      const metrics = await (await fetch(`${lbProc.url.replace(/:\d+$/, "")}:${adminPort(lbProc)}/metrics`)).text();
      expect(metrics).toMatch(/^lb_fd_exhausted_total\{backend="[^"]+",pool="default"\} 3$/m);
    } finally {
      release.resolve();
      for (const client of clients) client.close();
      await lbProc.kill();
      await backend.stop();
    }
  }, 30_000);
});

interface KeptAlive {
  /** Sends a request and resolves to its whole answer (a Content-Length one). */
  send(request: string): Promise<string>;
  close(): void;
}

/** A raw keep-alive connection that carries one request at a time. */
function keptAlive(port: number): Promise<KeptAlive> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, "127.0.0.1", () => resolve({ send, close: () => socket.destroy() }));
    socket.on("error", reject);
    let text = "";
    let done: ((answer: string) => void) | null = null;
    socket.on("data", (data) => {
      text += data.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      const length = Number(/content-length: *(\d+)/i.exec(text)?.[1] ?? 0);
      if (end === -1 || text.length < end + 4 + length) return;
      const answer = text;
      text = "";
      done?.(answer);
    });
    const send = (request: string) =>
      new Promise<string>((answered) => {
        done = answered;
        socket.write(request);
      });
  });
}

/** The admin port of a spawned lb, from its startup line. */
function adminPort(lb: { stderr: string[] }): string {
  return /admin http:\/\/[^ ]+:(\d+)/.exec(lb.stderr.join("\n"))![1]!;
}
