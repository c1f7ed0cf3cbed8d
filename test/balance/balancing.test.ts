/** Policies, stickiness and overload protection over real backends and an in-process lb. */
import { describe, expect, test } from "bun:test";
import { type TestBackend, stoppedAfterEach, waitFor } from "../helpers.ts";

const { cleanup, backend: startedBackend, lbFor } = stoppedAfterEach({ "health-interval": "1m" });

/** A backend that answers its name, after `delayMs` (its slowness is what the load-aware policies see). */
function backend(name: string, delayMs = 0): TestBackend {
  return startedBackend(name, async (request) => {
    if (delayMs && new URL(request.url).pathname !== "/") await Bun.sleep(delayMs);
    return new Response(name);
  });
}

/** `workers` clients each sending `each` requests back to back; how many each backend answered. */
async function load(url: string, workers: number, each: number, init?: RequestInit): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let i = 0; i < each; i++) {
        const text = await (await fetch(url, init)).text();
        counts[text] = (counts[text] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

describe("policies over real backends", () => {
  test("round robin honours weights smoothly: 5,1,1 gives a a b a c a a", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")];
    const lb = await lbFor([`${a.url}#weight=5`, b.url, c.url]);
    const order: string[] = [];
    for (let i = 0; i < 7; i++) order.push(await (await fetch(`${lb.url}/x`)).text());
    expect(order.join(" ")).toBe("a a b a c a a");
  });

  for (const policy of ["least-connections", "ewma", "p2c"]) {
    test(`${policy} sends far fewer requests to a backend 10× slower`, async () => {
      const [a, b, slow] = [backend("a", 4), backend("b", 4), backend("slow", 40)];
      const lb = await lbFor([a.url, b.url, slow.url], { policy });
      const counts = await load(`${lb.url}/work`, 12, 25);
      const total = 12 * 25;
      expect((counts.a ?? 0) + (counts.b ?? 0) + (counts.slow ?? 0)).toBe(total);
      // Round robin would give it a third (100); load-aware policies give it much less.
      expect(counts.slow ?? 0).toBeLessThan(total / 6);
    });
  }

  test("ewma does not pour traffic into a backend that hangs", async () => {
    const [hung, fine] = [backend("hung", 5000), backend("fine")];
    const lb = await lbFor([hung.url, fine.url], { policy: "ewma", timeout: "300ms" });
    // Four clients, ten requests each: once the hung backend holds a request and the other has answered, the hung one
    // scores worst. Before the fix it looked free (no latency sample) and took nearly everything.
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 10; i++) statuses.push((await fetch(`${lb.url}/work`)).status);
      }),
    );
    expect(statuses.filter((s) => s === 504).length).toBeLessThanOrEqual(4);
  });

  test("random spreads by weight", async () => {
    const [a, b] = [backend("a"), backend("b")];
    const lb = await lbFor([`${a.url}#weight=3`, b.url], { policy: "random" });
    const counts = await load(`${lb.url}/r`, 10, 80);
    expect(counts.a! / 800).toBeGreaterThan(0.68);
    expect(counts.a! / 800).toBeLessThan(0.82);
  });

  test("hash on a header: the same user always reaches the same backend; users spread", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")];
    const lb = await lbFor([a.url, b.url, c.url], { policy: "hash", "hash-key": "header:X-User" });
    const seen = new Map<string, Set<string>>();
    for (let user = 0; user < 30; user++) {
      for (let i = 0; i < 3; i++) {
        const text = await (await fetch(`${lb.url}/h`, { headers: { "x-user": `u${user}` } })).text();
        seen.set(`u${user}`, (seen.get(`u${user}`) ?? new Set()).add(text));
      }
    }
    expect([...seen.values()].every((s) => s.size === 1)).toBe(true);
    expect(new Set([...seen.values()].map((s) => [...s][0])).size).toBe(3);
  });
});

describe("sticky sessions", () => {
  test("the first answer sets the cookie; it keeps the client on that backend, and moves it when the backend dies", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")];
    const lb = await lbFor([a.url, b.url, c.url], { "sticky-cookie": "lb_sticky" });
    const first = await fetch(`${lb.url}/s`);
    const home = await first.text();
    const cookie = first.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^lb_sticky=[0-9a-z]+; Path=\/; HttpOnly; SameSite=Lax$/);
    expect(cookie).not.toContain("127.0.0.1");
    const jar = cookie.split(";")[0]!;
    for (let i = 0; i < 6; i++) {
      const again = await fetch(`${lb.url}/s`, { headers: { cookie: jar } });
      expect(await again.text()).toBe(home);
      expect(again.headers.get("set-cookie")).toBeNull();
    }
    await [a, b, c].find((x) => x.name === home)!.stop();
    const moved = await fetch(`${lb.url}/s`, { headers: { cookie: jar } });
    expect(moved.status).toBe(200);
    const newHome = await moved.text();
    expect(newHome).not.toBe(home);
    expect(moved.headers.get("set-cookie")).toStartWith("lb_sticky=");
    const jar2 = moved.headers.get("set-cookie")!.split(";")[0]!;
    expect(await (await fetch(`${lb.url}/s`, { headers: { cookie: jar2 } })).text()).toBe(newHome);
  });
});

describe("overload protection", () => {
  test("max-inflight queues requests in order and answers 503 at once when the queue is full", async () => {
    const gate = Promise.withResolvers<void>();
    const order: string[] = [];
    const slow = startedBackend("slow", async (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/") return new Response("ok");
      order.push(path);
      await gate.promise;
      return new Response(path);
    });
    cleanup.push(async () => gate.resolve());
    const lb = await lbFor([slow.url], { "max-inflight": 1, "queue-size": 2 });
    const running = fetch(`${lb.url}/1`);
    await waitFor(() => order.length === 1, "/1 to reach the backend");
    const queued = [fetch(`${lb.url}/2`)];
    await waitFor(() => lb.lb.queued() === 1, "/2 to queue");
    queued.push(fetch(`${lb.url}/3`));
    await waitFor(() => lb.lb.queued() === 2, "/3 to queue");
    // Answered while /1 holds the backend and /2 and /3 wait: refused at once, not queued (a queued request would
    // wait for the gate, or for the 10 s queue timeout and then say it waited too long).
    const overflow = await fetch(`${lb.url}/4`);
    expect(overflow.status).toBe(503);
    expect(await overflow.text()).toContain("queue is full");
    expect(lb.lb.queued()).toBe(2);
    gate.resolve();
    expect(await Promise.all([running, ...queued].map(async (r) => (await r).text()))).toEqual(["/1", "/2", "/3"]);
    expect(order).toEqual(["/1", "/2", "/3"]);
  });

  test("a queued request gets 503 when the queue timeout passes", async () => {
    const gate = Promise.withResolvers<void>();
    const slow = startedBackend("slow", async (request) => {
      if (new URL(request.url).pathname !== "/") await gate.promise;
      return new Response("ok");
    });
    cleanup.push(async () => gate.resolve());
    const lb = await lbFor([slow.url], { "max-inflight": 1, "queue-timeout": "200ms" });
    const running = fetch(`${lb.url}/hold`);
    await waitFor(() => slow.seen.some((r) => r.path === "/hold"), "/hold to reach the backend");
    const started = Date.now();
    const waited = await fetch(`${lb.url}/wait`);
    expect(waited.status).toBe(503);
    expect(await waited.text()).toContain("waited too long");
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    gate.resolve();
    expect((await running).status).toBe(200);
  });
});
