/**
 * Rate limits: the table on its own with a stepped clock (GCRA's allowance, refill, bounded keys), then through real
 * sockets (429 with Retry-After and the IETF fields, never forwarded, logged, counted; keys by header; a route's own
 * table), then with --workers 2: each worker counts on its own, as docs/edge.md says.
 */
import { describe, expect, test } from "bun:test";
import { resolveConfig } from "../../src/config/load.ts";
import { RateLimiter } from "../../src/edge/rate-limit.ts";
import { spawnLb, stoppedAfterEach, waitFor } from "../helpers.ts";

describe("the table", () => {
  test("a key may send its burst at once, then one request per interval; the answer says how long to wait", () => {
    const limiter = new RateLimiter({ count: 10, periodMs: 1000 }, 3);
    const at = (now: number) => limiter.take("k", now);
    expect([at(0), at(0), at(0)].map((v) => [v.allowed, v.remaining])).toEqual([[true, 2], [true, 1], [true, 0]]);
    expect(at(0)).toEqual({ allowed: false, remaining: 0, retryAfterMs: 100, resetMs: 300 });
    expect(at(99).allowed).toBe(false);
    expect(at(100)).toMatchObject({ allowed: true, remaining: 0 });
    expect(at(1000)).toMatchObject({ allowed: true, remaining: 2 }); // all back after a quiet while
    expect(limiter.take("other", 1000)).toMatchObject({ allowed: true, remaining: 2 });
  });

  test("without a burst, the rate's count may come at once", () => {
    const limiter = new RateLimiter({ count: 5, periodMs: 60_000 }, 0);
    const verdicts = Array.from({ length: 6 }, () => limiter.take("k", 0).allowed);
    expect(verdicts).toEqual([true, true, true, true, true, false]);
    expect(limiter.take("k", 0).retryAfterMs).toBe(12_000);
  });

  test("the table never holds more than its size; the keys seen lately are kept, and long keys are kept as a hash", () => {
    const limiter = new RateLimiter({ count: 1, periodMs: 60_000 }, 0, 100);
    expect(limiter.take("busy", 0).allowed).toBe(true);
    for (let i = 0; i < 10_000; i++) {
      limiter.take(`key-${i}`, 0);
      if (i % 10 === 0) expect(limiter.take("busy", 0).allowed).toBe(false); // still known, still over
      expect(limiter.size).toBeLessThanOrEqual(100);
    }
    const long = "x".repeat(8192);
    expect(limiter.take(long, 0).allowed).toBe(true);
    expect(limiter.take(long, 0).allowed).toBe(false);
  });
});

const { backend, lbFor } = stoppedAfterEach();

describe("through real sockets", () => {
  test("over the limit: 429 with Retry-After and RateLimit-Policy/RateLimit, never forwarded, logged and counted", async () => {
    const b = backend("b");
    const lb = await lbFor([b.url], { "rate-limit": "3/m" });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${lb.url}/ok${i}`)).status);
    const over = await fetch(`${lb.url}/over`);
    expect([...statuses, over.status]).toEqual([200, 200, 200, 429]);
    expect(over.headers.get("retry-after")).toBe("20");
    expect(over.headers.get("ratelimit-policy")).toBe('"lb";q=3;w=60');
    expect(over.headers.get("ratelimit")).toBe('"lb";r=0;t=20');
    expect(await over.text()).toBe("429 Too Many Requests: too many requests; try again later\n");
    expect(b.seen.map((r) => r.path).filter((p) => p !== "/")).toEqual(["/ok0", "/ok1", "/ok2"]);
    expect(lb.access.at(-1)).toMatchObject({ path: "/over", status: 429, client: "127.0.0.1" });
    const metrics = await (await fetch(`${lb.lb.adminUrl!.origin}/metrics`)).text();
    expect(metrics).toContain('lb_requests_rejected_total{reason="rate-limit"} 1');
  });

  test("keyed by a header: each value has its own allowance, a request without it counts by its address", async () => {
    const b = backend("b");
    const lb = await lbFor([b.url], { "rate-limit": "1/h", "rate-limit-key": "header:X-Api-Key" });
    const get = async (key?: string) => (await fetch(`${lb.url}/`, { headers: key ? { "x-api-key": key } : {} })).status;
    expect([await get("a"), await get("a"), await get("b"), await get(), await get(), await get("127.0.0.1")]).toEqual([200, 429, 200, 200, 429, 200]);
  });

  test("an empty header or cookie counts by the client's address, as a missing one does, not in one bucket for all", async () => {
    const b = backend("b");
    const byHeader = await lbFor([b.url], { "rate-limit": "1/h", "rate-limit-key": "header:X-Api-Key" });
    const header = async (headers: Record<string, string>) => (await fetch(`${byHeader.url}/`, { headers })).status;
    expect([await header({ "x-api-key": "" }), await header({})]).toEqual([200, 429]);
    const byCookie = await lbFor([b.url], { "rate-limit": "1/h", "rate-limit-key": "cookie:sid" });
    const cookie = async (headers: Record<string, string>) => (await fetch(`${byCookie.url}/`, { headers })).status;
    expect([await cookie({ cookie: "sid=" }), await cookie({})]).toEqual([200, 429]);
  });

  test("a short key cannot spend a long key's allowance by sending the text the long key is kept as", async () => {
    const b = backend("b");
    const lb = await lbFor([b.url], { "rate-limit": "1/h", "rate-limit-key": "header:X-Api-Key" });
    const get = async (key: string) => (await fetch(`${lb.url}/`, { headers: { "x-api-key": key } })).status;
    const long = "k".repeat(100);
    // What an unseeded table would keep it as: the attacker can compute it from a key it saw or guessed.
    const stored = `#${Bun.hash(long).toString(36)}`;
    expect([await get(long), await get(stored), await get(long)]).toEqual([200, 200, 429]);
  });

  test("a route that sets its own limit counts in its own table; routes that inherit the pool's share the pool's", async () => {
    const b = backend("b");
    const lb = await lbFor([], {
      pools: { api: { backends: [b.url], "rate-limit": "2/h" } },
      routes: [{ "path-prefix": "/login", pool: "api", "rate-limit": "1/h" }, { "path-prefix": "/a", pool: "api" }, { pool: "api" }],
    });
    const get = async (path: string) => (await fetch(`${lb.url}${path}`)).status;
    expect([await get("/login"), await get("/login")]).toEqual([200, 429]);
    expect([await get("/a"), await get("/b"), await get("/a")]).toEqual([200, 200, 429]);
  });
});

describe("reloads", () => {
  test("a reload that keeps a limit keeps its counts; one that changes it starts a new table", async () => {
    const b = backend("b");
    const lb = await lbFor([b.url], { "rate-limit": "2/h" });
    const reload = (values: Record<string, unknown>) =>
      lb.lb.reload(resolveConfig([{ source: "test", values: { port: 0, host: "127.0.0.1", admin: "127.0.0.1:0", backends: [b.url], ...values } }], { stdoutIsTTY: false }));
    const get = async () => (await fetch(`${lb.url}/x`)).status;
    expect([await get(), await get()]).toEqual([200, 200]);
    reload({ "rate-limit": "2/h", retries: 1 });
    expect(await get()).toBe(429);
    reload({ "rate-limit": "3/h" });
    expect(await get()).toBe(200);
  });
});

describe("--workers 2", () => {
  test("each worker counts on its own: one connection gets the limit, many new connections get at most workers × the limit", async () => {
    const b = backend("b");
    const args = ["--port", "0", "--host", "127.0.0.1", "--workers", "2", "--no-access-log", "--rate-limit", "5/h", "--rate-limit-key", "header:X-K"];
    const lb = await spawnLb([...args, b.url]);
    try {
      await lb.waitForLine("stderr", /2 workers/);
      const one: number[] = [];
      for (let i = 0; i < 8; i++) one.push((await fetch(`${lb.url}/one${i}`, { headers: { "x-k": "one" } })).status);
      expect(one).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
      // keepalive: false opens a new connection per request; the kernel spreads them over the two workers.
      const spread: number[] = [];
      for (let i = 0; i < 40; i++) spread.push((await fetch(`${lb.url}/n${i}`, { keepalive: false, headers: { connection: "close", "x-k": "many" } })).status);
      const passed = spread.filter((s) => s === 200).length;
      // 40 connections over 2 workers: each gets at least 5 but for a chance of about 1 in 10 million.
      expect(passed).toBe(10);
      expect(spread.filter((s) => s !== 200 && s !== 429)).toEqual([]);
      await waitFor(() => b.seen.filter((r) => r.path.startsWith("/n")).length === 10, "10 requests at the backend");
    } finally {
      await lb.kill();
    }
  }, 20_000);
});
