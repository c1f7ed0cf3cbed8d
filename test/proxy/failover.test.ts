/** Failover and lb's own answers (502/503/504), against real Bun backends and an in-process lb. */
import { describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { type TestBackend, deadPort, rawBackend, stoppedAfterEach, waitFor } from "../helpers.ts";

const { cleanup, backend, lbFor } = stoppedAfterEach();

/** Backends that answer "backend <name>", stopped after the test. */
const backends = (...names: string[]): TestBackend[] => names.map((name) => backend(name));

/** A backend that passes health checks on /health but resets the connection of every other request. */
const resettingBackend = () => rawBackend("/health", "reset");

describe("failover", () => {
  test("a backend killed under concurrent load costs zero failed requests", async () => {
    const [a, b, c] = backends("a", "b", "c");
    const lb = await lbFor([a!.url, b!.url, c!.url]);
    const statuses: number[] = [];
    let killed = false;
    const worker = async () => {
      for (let i = 0; i < 60; i++) {
        const response = await fetch(`${lb.url}/load`);
        await response.text();
        statuses.push(response.status);
        if (statuses.length === 600 && !killed) {
          killed = true;
          await c!.stop();
        }
      }
    };
    await Promise.all(Array.from({ length: 30 }, worker));
    expect(killed).toBe(true);
    expect(statuses).toHaveLength(1800);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(lb.lb.pool.available().map((x) => x.url)).toEqual([a!.url, b!.url]);
    const retried = lb.access.filter((e) => e.attempts > 1);
    expect(retried.length).toBeGreaterThan(0);
    expect(retried.every((e) => e.status === 200 && e.backend !== new URL(c!.url).host)).toBe(true);
  });

  test("a backend that resets all its in-flight requests at once (it died) costs no GET, retry budget or not", async () => {
    const [good] = backends("good");
    // Holds every proxied request until 8 are in, then resets all 8 connections together, still listening (so no
    // refused connection marks it down first): what lb sees the instant a loaded backend is SIGKILLed.
    const held: Array<{ terminate(): void }> = [];
    let dead = false;
    const dying = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket, data) {
          if (data.toString().startsWith("GET /health") && !dead) return void socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
          if (dead) return void socket.terminate(); // fetch's own quiet resend of a GET meets the same fate
          held.push(socket);
          if (held.length < 8) return;
          dead = true;
          for (const s of held.splice(0)) s.terminate();
        },
      },
    });
    cleanup.push(async () => dying.stop(true));
    const lb = await lbFor([`http://127.0.0.1:${dying.port}`, good!.url], { "health-path": "/health", "outlier-errors": "0" });
    // 16 at once: round robin puts 8 on the dying backend; the budget alone would allow max(3, 20% of 16) retries.
    const statuses = await Promise.all(Array.from({ length: 16 }, (_, i) => fetch(`${lb.url}/r${i}`).then((r) => r.status)));
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(lb.access.filter((e) => e.attempts === 2)).toHaveLength(8);
  });

  test("a backend that dies between checks is marked down at once and never tried twice for one request", async () => {
    const [a, b] = backends("a", "b");
    const lb = await lbFor([b!.url, a!.url], { "health-interval": "1m" });
    expect(lb.lb.pool.available()).toHaveLength(2);
    await b!.stop();
    const responses = await Promise.all([1, 2, 3, 4].map(() => fetch(`${lb.url}/`).then((r) => r.text())));
    expect(responses).toEqual(["backend a", "backend a", "backend a", "backend a"]);
    expect(lb.lb.pool.available().map((x) => x.url)).toEqual([a!.url]);
    expect(lb.access.every((e) => e.attempts <= 2)).toBe(true);
    const down = lb.logs.filter((l) => l.includes("went down"));
    expect(down).toHaveLength(1);
    expect(down[0]).toContain("connection refused");
  });

  test("a backend whose name does not resolve is down with the reason, and requests go to the others", async () => {
    const [a] = backends("a");
    const lb = await lbFor(["http://no-such-backend.invalid:8080", a!.url], { "health-interval": "1m" });
    expect(lb.logs.find((l) => l.includes("1 of 2 backends healthy; down: no-such-backend.invalid:8080 ("))).toContain("DNS lookup failed");
    const texts = await Promise.all([1, 2, 3].map(() => fetch(`${lb.url}/`).then((r) => r.text())));
    expect(texts).toEqual(["backend a", "backend a", "backend a"]);
  });

  test("a POST with a small body is replayed on the next backend after a connect failure", async () => {
    const b = backend("b");
    const a = backend("a", async (request) => new Response(`a got ${await request.text()}`));
    const lb = await lbFor([b.url, a.url], { "health-interval": "1m" });
    await b.stop();
    const response = await fetch(`${lb.url}/submit`, { method: "POST", body: "x".repeat(5000) });
    expect(await response.text()).toBe(`a got ${"x".repeat(5000)}`);
    expect(lb.access.at(-1)).toMatchObject({ method: "POST", status: 200, attempts: 2 });
  });

  test("a reset is retried for GET but a POST gets 502, never replayed", async () => {
    const resetter = resettingBackend();
    const [a] = backends("a");
    cleanup.push(resetter.stop);
    const lb = await lbFor([resetter.url, a!.url], { "health-path": "/health", "health-interval": "1m" });
    expect(await (await fetch(`${lb.url}/x`)).text()).toBe("backend a");
    expect(lb.access.at(-1)).toMatchObject({ status: 200, attempts: 2 });

    // A fresh lb, so the resetter is in rotation and first in line again.
    const lbPost = await lbFor([resetter.url, a!.url], { "health-path": "/health", "health-interval": "1m" });
    const post = await fetch(`${lbPost.url}/x`, { method: "POST", body: "once" });
    expect(post.status).toBe(502);
    expect(await post.text()).toBe("502 Bad Gateway: backend failed (connection reset)\n");
    expect(a!.seen.filter((r) => r.method === "POST")).toHaveLength(0);
  });

  test("a reset is retried but does not mark the backend down (it may be a stale keep-alive socket)", async () => {
    const resetter = resettingBackend();
    const good = backend("good");
    cleanup.push(resetter.stop);
    const lb = await lbFor([resetter.url, good.url], { "health-path": "/health", "health-interval": "1m", "outlier-errors": 0 });
    expect(await (await fetch(`${lb.url}/x`)).text()).toBe("backend good");
    expect(lb.access.at(-1)).toMatchObject({ attempts: 2, status: 200 });
    expect(lb.lb.pool.available()).toHaveLength(2);
    await waitFor(() => lb.lb.pool.backends[0]!.stats.errors === 1, "the reset to count as an error");
  });
});

describe("lb's own answers", () => {
  test("503 with Retry-After and a short body when no backend is healthy", async () => {
    const lb = await lbFor([`http://127.0.0.1:${deadPort()}`, `http://127.0.0.1:${deadPort()}`], { "health-interval": "3s" });
    expect(lb.logs.some((l) => /^warn: 0 of 2 backends healthy; down: .*; answering 503 until one comes up$/.test(l))).toBe(true);
    const response = await fetch(`${lb.url}/`);
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("3");
    expect(response.headers.get("content-type")).toStartWith("text/plain");
    expect(await response.text()).toBe("503 Service Unavailable: no healthy backend\n");
  });

  test("502 when every attempt failed", async () => {
    const one = resettingBackend();
    const two = resettingBackend();
    cleanup.push(one.stop, two.stop);
    const lb = await lbFor([one.url, two.url], { "health-path": "/health", "health-interval": "1m" });
    const response = await fetch(`${lb.url}/`);
    expect(response.status).toBe(502);
    expect(lb.access.at(-1)).toMatchObject({ status: 502, attempts: 2 });
  });

  test("502 when a backend answers something that is not HTTP", async () => {
    const garbage = rawBackend("/health", "SSH-2.0-OpenSSH\r\n\r\n");
    cleanup.push(garbage.stop);
    const lb = await lbFor([garbage.url], { "health-path": "/health", "health-interval": "1m" });
    const response = await fetch(`${lb.url}/`);
    expect(response.status).toBe(502);
    expect(await response.text()).toContain("malformed response");
  });

  test("504 when the backend does not answer within --timeout", async () => {
    const slow = backend("slow", async (request) => {
      if (new URL(request.url).pathname === "/") return new Response("ok");
      await Bun.sleep(3000);
      return new Response("late");
    });
    const lb = await lbFor([slow.url], { timeout: "300ms", "health-interval": "1m" });
    const started = Date.now();
    const response = await fetch(`${lb.url}/slow`);
    expect(response.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await response.text()).toBe("504 Gateway Timeout: backend did not answer within 300ms\n");
    // A timeout is not a connect failure: the backend stays in rotation.
    expect(lb.lb.pool.available()).toHaveLength(1);
  });

  test("a client that disconnects while queued or waiting is logged as 499", async () => {
    const gate = Promise.withResolvers<void>();
    const hung = backend("hung", async (request) => {
      if (new URL(request.url).pathname === "/") return new Response("ok");
      await gate.promise;
      return new Response("late");
    });
    cleanup.push(async () => gate.resolve());
    const lb = await lbFor([hung.url], { "health-interval": "1m" });
    const socket = connect(lb.lb.port, "127.0.0.1", () => socket.write("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"));
    await waitFor(() => hung.seen.some((r) => r.path === "/wait"), "the backend to get the request");
    socket.destroy();
    await waitFor(() => lb.access.find((e) => e.status === 499), "a 499 access entry");
  });
});
