/** Outlier ejection: the pure rules, the pool that applies them, and one check through a running lb. */
import { describe, expect, test } from "bun:test";
import { CLEAN_OUTLIER, type OutlierState, mayEject, recordOutcome } from "../../src/pool/outlier.ts";
import { Pool, type PoolEvent } from "../../src/pool/pool.ts";
import { stoppedAfterEach } from "../helpers.ts";

const { backend, lbFor } = stoppedAfterEach({ "health-interval": "1m" });

const rules = { consecutiveErrors: 3, baseEjectionMs: 1000, maxEjectedPercent: 50 };

function errors(count: number, state: OutlierState = CLEAN_OUTLIER, now = 0) {
  let ejectForMs = 0;
  for (let i = 0; i < count; i++) ({ state, ejectForMs } = recordOutcome(state, true, rules, now));
  return { state, ejectForMs };
}

describe("outlier detection (pure)", () => {
  test("N consecutive errors eject; a success in between resets the count", () => {
    expect(errors(2).ejectForMs).toBe(0);
    expect(errors(3).ejectForMs).toBe(1000);
    const reset = recordOutcome(errors(2).state, false, rules, 0).state;
    expect(errors(2, reset).ejectForMs).toBe(0);
  });

  test("repeat ejections double, capped at 10× the base; a long clean spell starts over", () => {
    let state: OutlierState = CLEAN_OUTLIER;
    const lengths: number[] = [];
    for (let round = 0; round < 6; round++) {
      const result = errors(3, state, 100);
      lengths.push(result.ejectForMs);
      state = { ...result.state, returnedAt: 100 };
    }
    expect(lengths).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(errors(3, state, 100 + 10_001).ejectForMs).toBe(1000);
  });

  test("0 consecutive errors turns ejection off", () => {
    expect(recordOutcome(CLEAN_OUTLIER, true, { ...rules, consecutiveErrors: 0 }, 0).ejectForMs).toBe(0);
  });

  test("the ejected share never passes the limit", () => {
    expect(mayEject(0, 4, rules)).toBe(true);
    expect(mayEject(1, 4, rules)).toBe(true);
    expect(mayEject(2, 4, rules)).toBe(false);
    expect(mayEject(0, 1, rules)).toBe(false);
  });
});

describe("ejection in the pool", () => {
  test("ejects, refuses past the share, and lets the backend back in after its time", async () => {
    const events: PoolEvent[] = [];
    const pool = new Pool(["http://a:1", "http://b:1", "http://c:1", "http://d:1"].map((url) => ({ url, weight: 1 })), {
      outlier: { consecutiveErrors: 2, baseEjectionMs: 100, maxEjectedPercent: 50 },
      listener: (e) => events.push(e),
    });
    for (const b of pool.backends) pool.recordCheck(b, { ok: true, reason: "status 200" });
    const [a, b, c] = pool.backends;
    for (const backend of [a!, b!, c!]) for (let i = 0; i < 2; i++) pool.recordOutcome(backend, true);
    expect(pool.available().map((x) => x.name)).toEqual(["c:1", "d:1"]);
    expect(events.filter((e) => e.type !== "health").map((e) => `${e.type} ${e.backend.name}`)).toEqual([
      "ejected a:1",
      "ejected b:1",
      "ejection-refused c:1",
    ]);
    const deadline = Date.now() + 2000;
    while (pool.available().length < 4 && Date.now() < deadline) await Bun.sleep(10);
    expect(pool.available()).toHaveLength(4);
    pool.close();
  });

  test("a backend marked down is not ejected for the errors of its dying, and coming back up ends an ejection", () => {
    const events: string[] = [];
    const pool = new Pool(["http://a:1", "http://b:1", "http://c:1"].map((url) => ({ url, weight: 1 })), {
      outlier: { consecutiveErrors: 2, baseEjectionMs: 60_000, maxEjectedPercent: 50 },
      listener: (e) => events.push(`${e.type} ${e.backend.name}`),
    });
    for (const b of pool.backends) pool.recordCheck(b, { ok: true, reason: "status 200" });
    const [a, b] = pool.backends;
    // a: refused (down), then the resets of the requests it held arrive: no ejection.
    pool.recordConnectFailure(a!, "connection refused");
    for (let i = 0; i < 5; i++) pool.recordOutcome(a!, true);
    expect(a!.ejected).toBe(false);
    // b: ejected first (its resets beat the refusal), then down, then its restart passes a check: back at once,
    // not after the minute-long ejection.
    pool.recordOutcome(b!, true);
    pool.recordOutcome(b!, true);
    pool.recordConnectFailure(b!, "connection refused");
    pool.recordCheck(b!, { ok: true, reason: "status 200" });
    expect(pool.available().map((x) => x.name)).toEqual(["b:1", "c:1"]);
    expect(events.slice(3)).toEqual(["health a:1", "ejected b:1", "health b:1", "health b:1", "returned b:1"]);
    pool.close();
  });
  test("stateSince moves when the state operators see changes (ejection, return, admin), not on news that changes nothing", () => {
    let now = 1000;
    const pool = new Pool(["http://a:1", "http://b:1", "http://c:1"].map((url) => ({ url, weight: 1 })), {
      outlier: { consecutiveErrors: 2, baseEjectionMs: 60_000, maxEjectedPercent: 50 },
      clock: () => now,
    });
    const a = pool.backends[0]!;
    expect(a.stateSince).toBe(1000);
    now = 2000;
    for (const b of pool.backends) pool.recordCheck(b, { ok: true, reason: "status 200" });
    expect(a.stateSince).toBe(2000); // checking → healthy
    now = 3000;
    pool.recordCheck(a, { ok: true, reason: "status 200" }); // still healthy
    expect(a.stateSince).toBe(2000);
    now = 4000;
    pool.recordOutcome(a, true);
    pool.recordOutcome(a, true);
    expect(a.ejected).toBe(true);
    expect(a.stateSince).toBe(4000); // the ejection, though its health (and health.since) did not change
    expect(a.health.since).toBe(2000);
    now = 5000;
    pool.setAdminState(a, "disabled");
    expect(a.stateSince).toBe(5000);
    now = 6000;
    pool.setAdminState(a, "disabled"); // no change
    expect(a.stateSince).toBe(5000);
    now = 7000;
    pool.recordConnectFailure(a, "connection refused"); // a health event, but operators still see "disabled"
    expect(a.health.status).toBe("unhealthy");
    expect(a.stateSince).toBe(5000);
    pool.close();
  });
});

describe("ejection in a running lb (real sockets)", () => {
  test("outlier ejection never takes the last backend in rotation", async () => {
    const failing = backend("failing", (request) => new Response("no", { status: new URL(request.url).pathname === "/" ? 200 : 500 }));
    const lb = await lbFor([failing.url, "http://127.0.0.1:1", "http://127.0.0.1:2"], { "outlier-errors": 2, "outlier-max-ejected": 100 });
    for (let i = 0; i < 6; i++) expect((await fetch(`${lb.url}/x`)).status).toBe(500);
    expect(lb.lb.pool.available()).toHaveLength(1);
  });
});
